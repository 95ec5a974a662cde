"""Object detection from the simulator's ground truth, not from a learned model.

`SimGroundTruthDetector` reads the segmentation render, which labels every
pixel with the geom it shows, so its labels are always right. Positions
come from the depth render and the camera model, as they would for a real
RGB-D detector. Use it to test everything downstream of detection. It does
not measure how well a learned detector would see the same scene.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from omni_agent.sim.mjcf import OBJECT_PREFIX
from omni_agent.sim.simulator import CameraIntrinsics, CameraPose, Segmentation, Simulator


@dataclass(frozen=True)
class Detection:
    """One object seen by the camera.

    `bbox` is (u_min, v_min, u_max, v_max) in pixels, inclusive, with u to
    the right and v down. `position` is the median of the object's
    back-projected pixels (x, y, z) in `frame_id`, so it lies on the visible
    surface, nearer to the camera than the object's centre by up to its
    radius. `bounds_min` and `bounds_max` are the corners (x, y, z) of the
    axis-aligned box around those points. `depth_m` is the median distance
    along the optical axis.
    """

    label: str
    bbox: Tuple[int, int, int, int]
    pixel_count: int
    position: Tuple[float, float, float]
    bounds_min: Tuple[float, float, float]
    bounds_max: Tuple[float, float, float]
    depth_m: float
    frame_id: str = "map"

    @property
    def bounds_center(self) -> Tuple[float, float, float]:
        """Centre (x, y, z) of the box around the visible points, in metres."""
        return tuple((low + high) / 2.0 for low, high in zip(self.bounds_min, self.bounds_max))

    @property
    def bbox_center(self) -> Tuple[float, float]:
        """Centre (u, v) of the bounding box in pixels."""
        return (self.bbox[0] + self.bbox[2]) / 2.0, (self.bbox[1] + self.bbox[3]) / 2.0


class SimGroundTruthDetector:
    """Find the simulated objects in the head camera's view from segmentation and depth.

    Objects covering fewer than `min_pixels` pixels are ignored, because a
    few pixels at an image edge or behind an occluder give neither a usable
    box nor a usable position.
    """

    def __init__(self, min_pixels: int = 20):
        if not isinstance(min_pixels, int) or min_pixels < 1:
            raise ValueError(f"min_pixels must be a positive int, got {min_pixels!r}")
        self.min_pixels = min_pixels

    def detect(self, sim: Simulator) -> List[Detection]:
        """Render the head camera of `sim` and return the visible objects, largest first."""
        return self.detect_frame(sim.render_segmentation(), sim.render_depth(), sim.camera_intrinsics(),
                                 sim.camera_pose())

    def find(self, sim: Simulator, label: str) -> Optional[Detection]:
        """Return the detection of object `label` (for example 'apple'), or None if it is not visible."""
        for detection in self.detect(sim):
            if detection.label == label:
                return detection
        return None

    def detect_frame(self, segmentation: Segmentation, depth: np.ndarray, intrinsics: CameraIntrinsics,
                     camera_pose: CameraPose) -> List[Detection]:
        """Return the objects in one frame, largest first.

        `depth` has shape (H, W) in metres along the optical axis, the same
        shape as `segmentation.geom_ids`. `camera_pose` is the optical
        frame's pose, and positions are returned in its frame.
        """
        ids = segmentation.geom_ids
        if depth.shape != ids.shape:
            raise ValueError(f"depth shape {depth.shape} differs from segmentation shape {ids.shape}; "
                             "render both from the same camera and step")
        visible, counts = np.unique(ids[ids >= 0], return_counts=True)
        detections = []
        for geom_id, count in zip(visible, counts):
            name = segmentation.names[geom_id]
            if not name.startswith(OBJECT_PREFIX) or count < self.min_pixels:
                continue
            rows, cols = np.nonzero(ids == geom_id)
            z = depth[rows, cols].astype(np.float64)
            points_optical = np.stack([(cols - intrinsics.cx) / intrinsics.fx * z,
                                       (rows - intrinsics.cy) / intrinsics.fy * z, z], axis=1)
            points = camera_pose.to_frame(points_optical)
            low, high = points.min(axis=0), points.max(axis=0)
            median = np.median(points, axis=0)
            detections.append(Detection(
                label=name[len(OBJECT_PREFIX):],
                bbox=(int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())),
                pixel_count=int(count),
                position=(float(median[0]), float(median[1]), float(median[2])),
                bounds_min=(float(low[0]), float(low[1]), float(low[2])),
                bounds_max=(float(high[0]), float(high[1]), float(high[2])),
                depth_m=float(np.median(z)),
                frame_id=camera_pose.frame_id,
            ))
        detections.sort(key=lambda detection: detection.pixel_count, reverse=True)
        return detections
