#!/usr/bin/env bash
# Run a command inside the project's environment: the venv, the colcon
# install and the ament index. Example: scripts/env.sh python -m pytest
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -f "$root/install/setup.bash" ] || { echo "no build found; run 'make setup' first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
# shellcheck disable=SC1091
source "$root/install/setup.bash"
# The source tree comes first so that new modules need no rebuild; the
# generated omni_agent.msg is still found in install/ (see omni_agent/__init__.py).
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# omni-agent and the node executables, as installed by colcon.
export PATH="$root/install/omni_agent/lib/omni_agent:$PATH"
exec "$@"
