"""Utterance understanding without ROS: audio -> transcript -> CommandResult.

Used by the model node and by `omni-agent understand`. The command parser is
the understanding model here. It reads the transcript only, so the camera
frame passed in is recorded but does not change the result.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from omni_agent.audio.asr import Transcription, WhisperTranscriber
from omni_agent.audio.vad import SileroVad, VadConfig, find_utterances
from omni_agent.model.command_parser import CommandParser
from omni_agent.model.result import CommandResult
from omni_agent.model.vocabulary import Vocabulary, load_vocabulary


@dataclass
class Understanding:
    """Everything produced for one utterance."""

    transcription: Transcription
    result: Optional[CommandResult]      # None when the utterance is not a command
    understanding_time_s: float          # parse time after the transcript [s]


class UtteranceUnderstander:
    """Transcribe an utterance and turn its text into a CommandResult."""

    def __init__(self, transcriber: WhisperTranscriber, vocabulary: Optional[Vocabulary] = None):
        self.transcriber = transcriber
        self.parser = CommandParser(vocabulary or load_vocabulary())

    def understand_audio(self, samples: np.ndarray, utterance_id: str = "",
                         image: Optional[np.ndarray] = None) -> Understanding:
        """Return the transcript and result of one utterance (16 kHz float32 mono)."""
        transcription = self.transcriber.transcribe(samples)
        started = time.perf_counter()
        result = None
        if transcription.accepted:
            result = self.understand_text(transcription.text, utterance_id, transcription.language)
            result.confidence *= transcription.confidence
        return Understanding(transcription, result, time.perf_counter() - started)

    def understand_text(self, text: str, utterance_id: str = "", language: Optional[str] = None) -> CommandResult:
        """Return the result for a typed or transcribed command."""
        result = self.parser.parse(text, language)
        result.utterance_id = utterance_id
        return result


def understand_clip(samples: np.ndarray, understander: UtteranceUnderstander,
                    vad_config: Optional[VadConfig] = None, vad: Optional[SileroVad] = None) -> List[Understanding]:
    """Segment a whole 16 kHz clip with the VAD and understand each utterance."""
    outputs = []
    for index, event in enumerate(find_utterances(samples, vad, vad_config)):
        outputs.append(understander.understand_audio(event.audio, utterance_id=f"utt-{index + 1}"))
    return outputs
