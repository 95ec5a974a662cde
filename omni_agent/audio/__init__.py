"""Audio core: chunk formats, resampling, speech detection and transcription."""

#: Sample rate that Silero VAD and Whisper run at.
MODEL_SAMPLE_RATE_HZ = 16000
