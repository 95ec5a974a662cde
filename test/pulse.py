"""The tests' name for omni_agent.audio.virtual_mic.VirtualMicrophone.

`PulseServer` is a VirtualMicrophone that skips the calling test, in place
of raising, when pulseaudio, pactl or paplay is not installed.
"""
from __future__ import annotations

import pytest

from omni_agent.audio.virtual_mic import (  # noqa: F401  (re-exported for the tests)
    SINK_NAME,
    SOURCE_NAME,
    STARTUP_TIMEOUT_S,
    VirtualMicrophone,
    VirtualMicrophoneError,
    missing_tools,
)


class PulseServer(VirtualMicrophone):
    """A VirtualMicrophone that skips the test when the PulseAudio programs are missing."""

    def __init__(self, sample_rate: int = 16000):
        missing = missing_tools()
        if missing:
            pytest.skip(f"{', '.join(missing)} not installed (Debian packages: pulseaudio, pulseaudio-utils)")
        super().__init__(sample_rate)
