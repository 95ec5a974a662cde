"""A private PulseAudio server whose default source is a virtual microphone.

`PulseServer` starts a user-mode `pulseaudio` in a temporary directory. It
listens only on a unix socket there (no TCP module is loaded) and has one
null sink at the chosen rate, mono, plus a remap source of that sink's
monitor set as the default source. Audio played into the sink with `play()`
is what any client recording the default source hears. Processes started
with `env` reach this server through PULSE_SERVER, including PortAudio
through ALSA's pulse plugin.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import pytest

SINK_NAME = "omni_test_sink"
SOURCE_NAME = "omni_test_mic"
#: Time allowed for the daemon to start and load its modules, in seconds.
STARTUP_TIMEOUT_S = 20.0


class PulseServer:
    """A PulseAudio daemon with a virtual microphone; use as a context manager."""

    def __init__(self, sample_rate: int = 16000):
        if sample_rate not in (8000, 16000, 22050, 32000, 44100, 48000):
            raise ValueError(f"sample_rate {sample_rate} is not a common audio rate; use 16000 or 44100")
        if shutil.which("pulseaudio") is None:
            pytest.skip("pulseaudio is not installed (Debian packages: pulseaudio, pulseaudio-utils)")
        for tool in ("pactl", "paplay"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is missing; install the Debian package pulseaudio-utils")

        self.sample_rate = sample_rate
        self.sink = SINK_NAME
        self.source = SOURCE_NAME
        self.directory: Optional[pathlib.Path] = None   # created by start()
        self._process: Optional[subprocess.Popen] = None

    @property
    def socket(self) -> pathlib.Path:
        return self._require_directory() / "native"

    @property
    def env(self) -> Dict[str, str]:
        """Environment that makes libpulse clients (and ALSA's pulse plugin) use this server."""
        client_conf = self._require_directory() / "client.conf"
        return {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_CLIENTCONFIG": str(client_conf)}

    def _require_directory(self) -> pathlib.Path:
        if self.directory is None:
            raise RuntimeError("the PulseAudio server has not been started; call start() first")
        return self.directory

    @property
    def _log_path(self) -> pathlib.Path:
        return self._require_directory() / "pulseaudio.log"

    def _daemon_env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        # Keep every file the daemon writes (cookie, state, runtime) inside the temp dir.
        for name in ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            env[name] = str(self.directory)
        env["PULSE_RUNTIME_PATH"] = str(self.directory / "runtime")
        env["PULSE_STATE_PATH"] = str(self.directory / "state")
        return env

    def _script(self) -> str:
        return "\n".join([
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            f"load-module module-null-sink sink_name={self.sink} rate={self.sample_rate} "
            f"channels=1 format=s16le",
            f"load-module module-remap-source source_name={self.source} master={self.sink}.monitor "
            f"channels=1",
            f"set-default-sink {self.sink}",
            f"set-default-source {self.source}",
            "",
        ])

    def start(self) -> "PulseServer":
        """Start the daemon and wait until the virtual microphone exists."""
        if self._process is not None:
            raise RuntimeError("the PulseAudio server is already running; call stop_daemon() first")
        if self.directory is None:
            self.directory = pathlib.Path(tempfile.mkdtemp(prefix="omni-pulse-"))
            # autospawn = no: a client that loses this server must fail, not start another one.
            (self.directory / "client.conf").write_text("autospawn = no\n")
        script = self.directory / "omni.pa"
        script.write_text(self._script())
        command = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--system=no",
                   "--use-pid-file=no", "--log-target=stderr", "-F", str(script)]
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             env=self._daemon_env(), cwd=str(self.directory),
                                             start_new_session=True)
        try:
            self._wait_until_ready()
            self._check_modules()
        except BaseException:
            # __exit__ does not run when __enter__ raises, so clean up here.
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with status {self._process.returncode}; "
                                   f"its log:\n{self.log()}")
            if self.socket.exists():
                result = self._pactl(["list", "short", "sources"], check=False)
                if result.returncode == 0 and self.source in result.stdout:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"pulseaudio did not start within {STARTUP_TIMEOUT_S:.0f} s; "
                           f"its log:\n{self.log()}")

    def _check_modules(self) -> None:
        modules = self._pactl(["list", "short", "modules"]).stdout
        if "tcp" in modules.lower():
            raise RuntimeError(f"the test PulseAudio server loaded a TCP module; modules:\n{modules}")

    def _pactl(self, args: List[str], check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update(self.env)
        return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True,
                              timeout=10, check=check)

    def play(self, wav_path: pathlib.Path) -> None:
        """Play a sound file into the virtual microphone and wait until it has been played."""
        env = dict(os.environ)
        env.update(self.env)
        result = subprocess.run(["paplay", f"--device={self.sink}", str(wav_path)], env=env,
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"paplay {wav_path} failed with status {result.returncode}: "
                               f"{result.stderr.strip()}")

    def log(self) -> str:
        if self.directory is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def stop_daemon(self) -> None:
        """Stop the daemon but keep its directory, so that start() brings it back at the same address."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self.directory is not None and self.socket.exists():
            self.socket.unlink()

    def stop(self) -> None:
        """Stop the daemon and remove its temp dir."""
        self.stop_daemon()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> "PulseServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
