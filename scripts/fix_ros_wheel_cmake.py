"""Point the CMake export files of the ROS 2 wheels at this interpreter.

The ros-<distro>-* wheels are built under manylinux, and their CMake export
files name the builder's Python paths (/opt/python/cp311-cp311/...). Until
those are replaced with this interpreter's include folder and site-packages,
`colcon build` of any interface package fails with "Imported target ...
includes non-existent path". Running this again changes nothing.

Usage: python scripts/fix_ros_wheel_cmake.py VENV
"""
import pathlib
import re
import sys
import sysconfig

BUILDER_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
BUILDER_SITE_PACKAGES = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages")


def main(venv: str) -> int:
    share = pathlib.Path(venv) / "share"
    if not share.is_dir():
        print(f"error: {share} does not exist; install the ROS wheels into {venv} first", file=sys.stderr)
        return 1
    include = sysconfig.get_paths()["include"]
    site_packages = sysconfig.get_paths()["purelib"]
    if not (pathlib.Path(include) / "Python.h").exists():
        print(f"error: {include}/Python.h not found; install the Python development headers", file=sys.stderr)
        return 1

    changed = 0
    for path in share.rglob("*.cmake"):
        text = path.read_text()
        new = BUILDER_INCLUDE.sub(include, text)
        new = BUILDER_SITE_PACKAGES.sub(site_packages, new)
        if new != text:
            path.write_text(new)
            changed += 1
    print(f"rewrote {changed} CMake file(s) to use {include} and {site_packages}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
