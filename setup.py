"""Plain `pip install .` of omni_agent's pure-Python library (audio, vision,
model, planning and the CLI) for use without ROS.

colcon does not use this file: package.xml declares build_type ament_cmake,
and CMakeLists.txt builds the messages and installs the same Python package.
Name, version, description and license are read from package.xml so that
there is one source for them.
"""
import pathlib
import xml.etree.ElementTree as ET

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).resolve().parent
MANIFEST = ET.parse(HERE / "package.xml").getroot()


def manifest(tag: str) -> str:
    return " ".join(MANIFEST.findtext(tag, default="").split())


def requirements() -> list:
    lines = (HERE / "requirements" / "python.txt").read_text().splitlines()
    # The test tools are not runtime requirements.
    return [line.strip() for line in lines
            if line.strip() and not line.startswith("#") and not line.startswith("pytest")]


setup(
    name=manifest("name"),
    version=manifest("version"),
    description=manifest("description"),
    license=manifest("license"),
    maintainer=MANIFEST.find("maintainer").text,
    maintainer_email=MANIFEST.find("maintainer").get("email"),
    python_requires=">=3.10",
    packages=find_packages(include=["omni_agent", "omni_agent.*"]),
    # The trained Omni checkpoint that the model node loads by default.
    package_data={"omni_agent.model": ["checkpoints/*/*.json", "checkpoints/*/*.safetensors"]},
    # The default places, vocabulary and world, found by omni_agent under <prefix>/share/omni_agent/config.
    data_files=[("share/omni_agent/config", [str(path.relative_to(HERE)) for path in sorted((HERE / "config").glob("*.yaml"))])],
    install_requires=requirements(),
    entry_points={"console_scripts": ["omni-agent = omni_agent.cli:main"]},
)
