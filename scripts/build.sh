#!/usr/bin/env bash
# colcon build of omni_agent against the ROS 2 prefix inside .venv, plus two
# interface packages that carry COLCON_IGNORE so that a plain colcon build
# on a system ROS 2 skips them:
#   third_party/tf2_msgs                   only where the venv has no tf2_msgs
#                                          (the ROS 2 wheels on PyPI have none)
#   test/interfaces/omni_agent_test_msgs   always, because the tests need it
# colcon skips a folder with COLCON_IGNORE even when --paths names it. So
# each one is copied without that file into build/staged_packages/ and
# passed to --paths.
set -eo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$root"
[ -x "$venv/bin/python" ] || { echo "no venv at $venv; run 'make setup' first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV" CMAKE_PREFIX_PATH="$VIRTUAL_ENV"

staging="$root/build/staged_packages"
staged=()
stage_package() {
  local source_dir="$root/$1" target
  target="$staging/$(basename "$1")"
  rm -rf "$target"
  mkdir -p "$target"
  cp -R "$source_dir/." "$target/"
  rm -f "$target/COLCON_IGNORE"
  staged+=("$target")
}

# PYTHONPATH is cleared so that a tf2_msgs built here earlier (install/) does
# not count as the venv's own.
if ! env -u PYTHONPATH python -c 'import tf2_msgs.msg' 2>/dev/null; then
  stage_package third_party/tf2_msgs
fi
stage_package test/interfaces/omni_agent_test_msgs

colcon build --symlink-install --base-paths "$root" --paths "${staged[@]}" \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" "$@"
