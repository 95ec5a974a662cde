"""setup.py: the plain pip package of the pure-Python library."""
import subprocess
import sys
import zipfile

from ros_harness import REPO


def test_wheel_contents(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                "-q", "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    wheels = list(tmp_path.glob("omni_agent-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    version = (REPO / "package.xml").read_text().split("<version>")[1].split("</version>")[0]
    assert wheels[0].name.startswith(f"omni_agent-{version}-")
    assert "omni_agent/model/command_parser.py" in names
    assert "omni_agent/planning/planner.py" in names
    assert "omni_agent/cli.py" in names
    assert f"omni_agent-{version}.data/data/share/omni_agent/config/places.yaml" in names
    assert not [name for name in names if name.startswith("config/")]  # nothing at the top of site-packages
