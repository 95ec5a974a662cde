"""Labelled images: robot camera views of the simulated home and a few real photos.

Simulator views come from the MuJoCo home (config/world.yaml) with the
robot placed at varied poses. Every object and piece of furniture whose
name maps to a vocabulary object is labelled from the segmentation render,
so labels and boxes are exact. Real photos are scikit-image's bundled
sample images; the objects in them that have a vocabulary word were boxed
by hand.

Run `python -m omni_agent.model.image_data --count 200` to print how often
each vocabulary object appears in the simulator views.
"""
from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from omni_agent.model.result import Pose2D
from omni_agent.model.vocabulary import Vocabulary, load_vocabulary

#: Objects covering fewer pixels than this in a view are not labelled (same rule as SimGroundTruthDetector).
MIN_OBJECT_PIXELS = 20
#: Share of simulator views aimed at an object or a piece of furniture; the rest look in a random direction.
AIMED_SHARE = 0.75
#: Distance range from the robot to the thing it aims at, in metres.
AIM_DISTANCE_M = (0.6, 2.0)
#: Random error of the aimed heading, in radians.
AIM_YAW_ERROR_RAD = 0.35
#: Objects start up to this far (x and y, metres) from their world-file position, which keeps them on their support.
OBJECT_JITTER_M = 0.08


@dataclass
class LabelledImage:
    """An RGB image with the vocabulary objects it shows.

    Each object is (vocabulary object key, box), and the box is
    (x0, y0, x1, y1) in pixels, inclusive, x to the right and y down, as
    SimGroundTruthDetector reports it. `instance_map` (simulator views
    only) is an (H, W) int16 array holding k + 1 where objects[k] is seen
    and 0 elsewhere. `pose` is the robot's base pose in map for a
    simulator view. `note` describes what a photo shows that has no
    vocabulary word.
    """

    rgb: np.ndarray
    objects: List[Tuple[str, np.ndarray]]
    source: str                                   # "sim" | "photo"
    name: str
    instance_map: Optional[np.ndarray] = None
    pose: Optional[Pose2D] = None
    note: str = ""


# --- simulator views ---------------------------------------------------------------------

def render_sim_scenes(count: int, seed: int, width: int = 320, height: int = 240,
                      vocabulary: Optional[Vocabulary] = None, world=None) -> List[LabelledImage]:
    """Render `count` head-camera views of the simulated home from varied robot poses.

    Each view resets the simulator with its own object offsets, then places
    the robot at a free pose. AIMED_SHARE of the views face a randomly
    chosen object or piece of furniture from AIM_DISTANCE_M, and the rest
    face a random heading. A geom is labelled with the vocabulary object
    its name maps to ("object:cup" -> cup, "furniture:kitchen_table" ->
    table). Geoms whose name matches no vocabulary object (walls, floors,
    bed, counter) are not labelled. The same arguments give the same views
    on the same machine and MuJoCo build.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count!r}")
    from omni_agent.sim.mjcf import FURNITURE_PREFIX, OBJECT_PREFIX
    from omni_agent.sim.navigation import OccupancyGrid
    from omni_agent.sim.simulator import Simulator
    from omni_agent.sim.world import load_world

    world = world if world is not None else load_world()
    vocabulary = vocabulary or load_vocabulary()
    grid = OccupancyGrid(world)
    free_rows, free_cols = np.nonzero(~grid.lethal)
    targets = ([(item.xy[0], item.xy[1]) for item in world.objects.values()]
               + [(item.center[0], item.center[1]) for item in world.furniture.values()])

    images = []
    with Simulator(world, camera_width=width, camera_height=height, seed=seed,
                   object_jitter_m=OBJECT_JITTER_M) as sim:
        geom_labels = [_vocabulary_word(name, vocabulary, OBJECT_PREFIX, FURNITURE_PREFIX) for name in sim.geom_names]
        for index in range(count):
            rng = np.random.default_rng([seed, index])
            sim.reset(seed=int(rng.integers(2 ** 31)))
            pose = _sample_pose(rng, grid, free_rows, free_cols, targets)
            sim.set_base_pose(pose)
            rgb = sim.render_rgb()
            objects, instance_map = _label_view(sim.render_segmentation().geom_ids, geom_labels)
            images.append(LabelledImage(rgb, objects, "sim", f"sim-{seed}-{index:05d}", instance_map, pose))
    return images


def _vocabulary_word(geom_name: str, vocabulary: Vocabulary, object_prefix: str,
                     furniture_prefix: str) -> Optional[str]:
    for prefix in (object_prefix, furniture_prefix):
        if geom_name.startswith(prefix):
            name = geom_name[len(prefix):]
            if name in vocabulary.objects:
                return name
            return vocabulary.find_object(name.replace("_", " "))
    return None


def _sample_pose(rng: np.random.Generator, grid, free_rows: np.ndarray, free_cols: np.ndarray,
                 targets: Sequence[Tuple[float, float]]) -> Pose2D:
    """Return a base pose, aimed at one of `targets` with probability AIMED_SHARE.

    Only the pose's centre is checked: it lies outside the occupancy grid's
    lethal zone (inscribed radius plus margin), so a corner of the base may
    overlap furniture in a view.
    """
    if targets and rng.random() < AIMED_SHARE:
        target = targets[rng.integers(len(targets))]
        for _ in range(100):
            distance = rng.uniform(*AIM_DISTANCE_M)
            bearing = rng.uniform(-math.pi, math.pi)
            x, y = target[0] + distance * math.cos(bearing), target[1] + distance * math.sin(bearing)
            row, col = grid.cell_of(x, y)
            if grid.in_bounds(row, col) and not grid.lethal[row, col]:
                yaw = math.atan2(target[1] - y, target[0] - x) + rng.uniform(-AIM_YAW_ERROR_RAD, AIM_YAW_ERROR_RAD)
                return Pose2D(x, y, _wrap(yaw))
    pick = rng.integers(free_rows.size)
    x, y = grid.center_of(int(free_rows[pick]), int(free_cols[pick]))
    return Pose2D(x, y, rng.uniform(-math.pi, math.pi))


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


def _label_view(geom_ids: np.ndarray, geom_labels: Sequence[Optional[str]]
                ) -> Tuple[List[Tuple[str, np.ndarray]], np.ndarray]:
    """Return the labelled objects of one segmentation image, largest first, and their instance map."""
    visible, counts = np.unique(geom_ids[geom_ids >= 0], return_counts=True)
    found = []
    for geom_id, pixels in zip(visible, counts):
        label = geom_labels[geom_id]
        if label is None or pixels < MIN_OBJECT_PIXELS:
            continue
        found.append((int(pixels), int(geom_id), label))
    found.sort(key=lambda item: (-item[0], item[1]))
    objects = []
    instance_map = np.zeros(geom_ids.shape, dtype=np.int16)
    for number, (_, geom_id, label) in enumerate(found, start=1):
        mask = geom_ids == geom_id
        rows, cols = np.nonzero(mask)
        objects.append((label, np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.int32)))
        instance_map[mask] = number
    return objects, instance_map


# --- real photos -------------------------------------------------------------------------

# (scikit-image loader, name, [(vocabulary object, box)], note). Boxes were
# drawn by hand on the bundled images (scikit-image 0.26) and are inclusive
# pixel corners.
_PHOTOS = (
    ("coffee", "coffee", [("cup", (172, 17, 410, 306)), ("table", (0, 0, 599, 399))],
     "an espresso cup on a saucer with a spoon, on a wooden table; the saucer and spoon have no vocabulary word"),
    ("stereo_motorcycle", "motorcycle", [("bottle", (401, 51, 418, 91))],
     "a motorcycle in a garage with a bench and shelves; the only vocabulary object is a yellow bottle on a shelf"),
    ("chelsea", "chelsea", [], "a cat's face; no vocabulary object"),
    ("astronaut", "astronaut", [], "an astronaut with a helmet, a flag and a shuttle model; no vocabulary object"),
    ("rocket", "rocket", [], "a rocket on a launch pad at dusk; no vocabulary object"),
    ("camera", "camera", [], "a man with a camera on a tripod (greyscale); no vocabulary object"),
)


def real_photos() -> List[LabelledImage]:
    """Return scikit-image's bundled photos with their vocabulary objects boxed.

    The coffee photo shows a cup on a table and the motorcycle photo a
    bottle. The others show no vocabulary object, so their object list is
    empty and their note describes what they show. Greyscale photos are
    returned as three equal channels.
    """
    import skimage.data

    images = []
    for loader, name, objects, note in _PHOTOS:
        image = getattr(skimage.data, loader)()
        if loader == "stereo_motorcycle":
            image = image[0]                      # (left, right, disparity): the left view
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        boxes = [(label, np.array(box, dtype=np.int32)) for label, box in objects]
        images.append(LabelledImage(image, boxes, "photo", name, note=note))
    return images


# --- command line ------------------------------------------------------------------------

def object_frequencies(images: Sequence[LabelledImage]) -> Tuple[Counter, Counter]:
    """Return (views showing each object, boxes of each object) over `images`."""
    views = Counter(label for image in images for label in {label for label, _ in image.objects})
    boxes = Counter(label for image in images for label, _ in image.objects)
    return views, boxes


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Render simulator views and count the vocabulary objects in them.")
    parser.add_argument("--count", type=int, default=200, help="number of views")
    parser.add_argument("--seed", type=int, default=0, help="seed of the poses and object offsets")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    images = render_sim_scenes(args.count, args.seed)
    elapsed = time.perf_counter() - started
    views, boxes = object_frequencies(images)
    empty = sum(1 for image in images if not image.objects)
    print(f"{len(images)} views in {elapsed:.1f} s ({1000.0 * elapsed / max(len(images), 1):.0f} ms each); "
          f"{empty} show no vocabulary object")
    vocabulary = load_vocabulary()
    for key in sorted(vocabulary.objects):
        print(f"{key:14} in {views[key]:4d} views ({100.0 * views[key] / max(len(images), 1):5.1f}%), "
              f"{boxes[key]:4d} boxes")


if __name__ == "__main__":
    main()
