"""The package version, read from package.xml, its single source."""
import pathlib
import re


def read_version() -> str:
    """Return the version from an installed distribution or from package.xml."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("omni_agent")
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    candidates = [pathlib.Path(__file__).resolve().parent.parent / "package.xml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(pathlib.Path(get_package_share_directory("omni_agent")) / "package.xml")
    except (ImportError, LookupError, ValueError):
        pass
    for path in candidates:
        if path.is_file():
            match = re.search(r"<version>([^<]+)</version>", path.read_text())
            if match:
                return match.group(1).strip()
    return "0+unknown"
