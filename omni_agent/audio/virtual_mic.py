"""A virtual microphone: a private PulseAudio server whose default source hears what is played into it.

`VirtualMicrophone` starts a user-mode `pulseaudio` in a temporary directory.
The daemon listens only on a unix socket in that directory (no TCP module is
loaded, and start() checks that none is). It has one null sink at the chosen
rate, mono, and a remap source of that sink's monitor, which is the default
source. Audio played into the sink with `play()` is what any client
recording the default source hears.

Clients reach the server through the variables in `env`: pass them to a
node process, or apply them to this process with `apply_env()`. PortAudio
reaches the server through ALSA's pulse plugin (Debian: libasound2-plugins).

Needs `pulseaudio` (Debian package pulseaudio) and `pactl` and `paplay`
(Debian package pulseaudio-utils). This module does not import ROS.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from typing import Dict, Iterator, List, MutableMapping, Optional, Union

SINK_NAME = "omni_virtual_sink"
SOURCE_NAME = "omni_virtual_mic"
#: Default time allowed for the daemon to start and load its modules, in seconds.
STARTUP_TIMEOUT_S = 20.0
#: Sample rates the null sink accepts here, in Hz.
SAMPLE_RATES_HZ = (8000, 16000, 22050, 32000, 44100, 48000)
#: The programs needed, with the Debian package that installs each.
REQUIRED_TOOLS = {"pulseaudio": "pulseaudio", "pactl": "pulseaudio-utils", "paplay": "pulseaudio-utils"}

PathLike = Union[str, pathlib.Path]


class VirtualMicrophoneError(RuntimeError):
    """A virtual microphone that cannot be created, started or played into."""


def missing_tools() -> List[str]:
    """Return the PulseAudio programs that are not on PATH, in REQUIRED_TOOLS order."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


class VirtualMicrophone:
    """A PulseAudio daemon whose default source is a virtual microphone.

    Use it as a context manager, or call start() and stop(). Raises
    VirtualMicrophoneError when a required program is missing.
    """

    def __init__(self, sample_rate: int = 16000, startup_timeout_s: float = STARTUP_TIMEOUT_S):
        if sample_rate not in SAMPLE_RATES_HZ:
            raise ValueError(f"sample_rate {sample_rate!r} is not one of {SAMPLE_RATES_HZ} Hz; "
                             f"use 16000 or 44100")
        missing = missing_tools()
        if missing:
            packages = sorted({REQUIRED_TOOLS[tool] for tool in missing})
            raise VirtualMicrophoneError(
                f"{', '.join(missing)} not found on PATH; install the Debian package(s) "
                f"{', '.join(packages)}, or play a WAV file instead of a virtual microphone")

        self.sample_rate = sample_rate
        self.startup_timeout_s = startup_timeout_s
        self.sink = SINK_NAME
        self.source = SOURCE_NAME
        self.directory: Optional[pathlib.Path] = None   # created by start()
        self._process: Optional[subprocess.Popen] = None

    @classmethod
    def available(cls) -> bool:
        """Return whether pulseaudio, pactl and paplay are all on PATH."""
        return not missing_tools()

    @property
    def running(self) -> bool:
        """True while the daemon process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def socket(self) -> pathlib.Path:
        """The daemon's unix socket."""
        return self._require_directory() / "native"

    @property
    def env(self) -> Dict[str, str]:
        """Environment variables that make libpulse clients (and ALSA's pulse plugin) use this server."""
        client_conf = self._require_directory() / "client.conf"
        return {"PULSE_SERVER": f"unix:{self.socket}", "PULSE_CLIENTCONFIG": str(client_conf)}

    @contextlib.contextmanager
    def apply_env(self, environ: Optional[MutableMapping[str, str]] = None) -> Iterator[Dict[str, str]]:
        """Set `env` in `environ` (default os.environ) and restore the old values on exit.

        PortAudio lists its devices once, when sounddevice is first imported.
        A process that imported it before this call must rescan, for example
        with omni_agent.audio.sources.refresh_devices(), to reach this server.
        """
        environ = os.environ if environ is None else environ
        values = self.env
        previous = {name: environ.get(name) for name in values}
        environ.update(values)
        try:
            yield values
        finally:
            for name, value in previous.items():
                if value is None:
                    environ.pop(name, None)
                else:
                    environ[name] = value

    def _require_directory(self) -> pathlib.Path:
        if self.directory is None:
            raise VirtualMicrophoneError("the virtual microphone has not been started; call start() first")
        return self.directory

    @property
    def _log_path(self) -> pathlib.Path:
        return self._require_directory() / "pulseaudio.log"

    def _client_env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    def _daemon_env(self) -> Dict[str, str]:
        env = self._client_env()
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

    def start(self) -> "VirtualMicrophone":
        """Start the daemon and wait until the virtual microphone exists.

        After stop_daemon(), start() reuses the same directory, so the server
        comes back at the same address and `env` stays valid.
        """
        if self._process is not None:
            raise VirtualMicrophoneError("the virtual microphone is already running; call stop_daemon() first")
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
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise VirtualMicrophoneError(f"pulseaudio exited with status {self._process.returncode}; "
                                             f"its log:\n{self.log()}")
            if self.socket.exists():
                result = self._pactl(["list", "short", "sources"], check=False)
                if result.returncode == 0 and self.source in result.stdout:
                    return
            time.sleep(0.05)
        raise VirtualMicrophoneError(f"pulseaudio did not start within {self.startup_timeout_s:.0f} s; "
                                     f"its log:\n{self.log()}")

    def _check_modules(self) -> None:
        modules = self._pactl(["list", "short", "modules"]).stdout
        if "tcp" in modules.lower():
            raise VirtualMicrophoneError(f"the PulseAudio server loaded a TCP module; modules:\n{modules}")

    def _pactl(self, args: List[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self._client_env(), capture_output=True, text=True,
                              timeout=10, check=check)

    def play(self, wav_path: PathLike) -> None:
        """Play a sound file into the virtual microphone and wait until it has been played.

        Raises FileNotFoundError for a missing file and VirtualMicrophoneError
        when paplay fails.
        """
        wav_path = pathlib.Path(wav_path)
        if not wav_path.is_file():
            raise FileNotFoundError(f"sound file not found: '{wav_path}'; pass an existing WAV file")
        result = subprocess.run(["paplay", f"--device={self.sink}", str(wav_path)], env=self._client_env(),
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise VirtualMicrophoneError(f"paplay {wav_path} failed with status {result.returncode}: "
                                         f"{result.stderr.strip()}")

    def log(self) -> str:
        """Return the daemon's log so far, or '' before start()."""
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

    def __enter__(self) -> "VirtualMicrophone":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
