# Shared paths for the scripts in this folder; sourced, not run.
# The venv lives outside the source tree because CMake refuses exported
# include folders (numpy's, found through the venv) that lie inside the
# package's source folder. Set OMNI_AGENT_VENV to put it elsewhere.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OMNI_AGENT_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/omni_agent/venv-jazzy-py311}"
