"""Write a .pth file into the dev venv that defaults DDS to loopback.

Every interpreter of the project's venv then starts with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a non-zero ROS_DOMAIN_ID unless
the environment already sets them, so a shell that forgot them cannot send
discovery traffic off the machine. The demo, tests and benchmarks also set
these in code; this file covers ad-hoc scripts run in the venv.

Usage: python scripts/install_dds_defaults.py VENV
"""
import pathlib
import sys
import sysconfig

PTH_NAME = "omni_agent_dds_defaults.pth"
# A .pth line that starts with "import" is executed at interpreter start-up.
PTH_LINE = (
    "import os; "
    "os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'); "
    "os.environ['ROS_DOMAIN_ID'] = os.environ.get('ROS_DOMAIN_ID', '').strip('0 ') and os.environ['ROS_DOMAIN_ID'] or '42'\n"
)


def main(venv: str) -> int:
    site_packages = pathlib.Path(sysconfig.get_paths()["purelib"])
    if not str(site_packages).startswith(str(pathlib.Path(venv).resolve())):
        print(f"error: {sys.executable} is not the interpreter of {venv}", file=sys.stderr)
        return 1
    (site_packages / PTH_NAME).write_text(PTH_LINE)
    print(f"wrote {site_packages / PTH_NAME}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
