"""omni_agent: voice and vision commands for ROS 2 robots through one omni-modal model.

The pure-Python core (audio, vision, model, planning) imports without ROS;
the rclpy node wrappers live in omni_agent.nodes and the generated message
classes in omni_agent.msg (present only in a colcon build).
"""
from pkgutil import extend_path

# Run from the source tree, `import omni_agent` finds this folder first. The
# generated omni_agent.msg lives in the colcon install folder on sys.path, so
# the package spans every omni_agent folder on the path.
__path__ = extend_path(__path__, __name__)

from omni_agent._version import read_version  # noqa: E402

__version__ = read_version()
