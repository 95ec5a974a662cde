#!/usr/bin/env bash
# colcon build of omni_agent against the ROS 2 prefix inside .venv.
set -eo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$root"
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run 'make setup' first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
colcon build --symlink-install --base-paths "$root" \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" "$@"
