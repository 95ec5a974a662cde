"""omni_model_node: microphone audio (+ latest camera frame) -> model results and transcripts.

Audio chunks of any rate, size and sample format are decoded, resampled to
16 kHz and segmented by Silero VAD in the subscription callback (cheap).
Understanding runs on a worker thread, so the executor keeps receiving audio
and images meanwhile. Only the newest camera frame (or image feature message)
is kept; one older than max_frame_age_s counts as no frame.

With understanding_model "omni" (the default) the Omni model gives the result
from the Whisper encoder's features of the utterance, plus the camera view,
as soon as the VAD closes the utterance; the Whisper transcript is decoded
after it, for logs and display. A result below omni_min_confidence waits for
the transcript and is computed again from audio + text. Without an Omni
checkpoint the node falls back to the command parser on the transcript and
logs that it did.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Set

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ
from omni_agent.audio.asr import WhisperTranscriber
from omni_agent.audio.chunk import AudioFormatError, decode_chunk
from omni_agent.audio.resample import StreamingResampler
from omni_agent.audio.vad import SileroVad, SpeechSegmenter, VadConfig
from omni_agent.model.batching import DynamicBatcher
from omni_agent.model.checkpoint import CheckpointError
from omni_agent.model.command_parser import describe
from omni_agent.model.result import ACTION_DESCRIBE, ACTION_UNKNOWN, DEFAULT_MIN_CONFIDENCE, sure_from_audio
from omni_agent.model.understanding import UtteranceUnderstander
from omni_agent.model.vocabulary import has_cjk, load_vocabulary
from omni_agent.msg import AgentStatus, AudioChunk, ImageFeatures, ModelResult, Transcript
from omni_agent.nodes.common import AUDIO_QOS, COMMAND_QOS, LATEST_FRAME_QOS, LogLimiter, declare, run_node
from omni_agent.nodes.conversions import result_to_msg
from omni_agent.vision.features_msg import features_from_msg
from omni_agent.vision.image import ImageError, image_to_rgb

#: Final utterances arriving while this many wait for the worker get a FAILED status (busy).
MAX_PENDING_UTTERANCES = 8


class OmniModelNode(Node):
    """Speech detection, transcription and command understanding."""

    def __init__(self, **kwargs):
        super().__init__("omni_model_node", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        model = p("whisper_model", "tiny.en",
                  "Whisper model: 'tiny.en' (English, packaged), 'base' (multilingual, packaged) or a CTranslate2 model folder")
        language = p("language", "auto", "Recognition language: 'auto' (English or Mandarin), 'en' or 'zh'")
        beam_size = p("beam_size", 5, "Whisper beam size")
        cpu_threads = p("cpu_threads", 2, "CPU threads for Whisper")
        min_confidence = p("min_transcript_confidence", 0.35,
                           "Transcripts below this confidence (0..1) are not treated as commands")
        self.vad_config = VadConfig(
            threshold=p("vad_threshold", 0.5, "Silero VAD speech probability that starts speech"),
            neg_threshold=p("vad_neg_threshold", 0.35, "Speech probability below which silence is counted"),
            min_speech_s=p("vad_min_speech_s", 0.25, "Shortest speech kept as an utterance [s]"),
            min_silence_s=p("vad_min_silence_s", 0.4, "Silence that ends an utterance [s]"),
            speech_pad_s=p("vad_speech_pad_s", 0.2, "Audio kept before speech starts [s]"),
            max_utterance_s=p("max_utterance_s", 15.0, "Utterances are cut after this long [s]"),
        )
        self.partial_interval_s = p("partial_interval_s", 1.0,
                                    "Seconds between partial transcripts of an open utterance; 0 disables them")
        self.max_frame_age_s = p("max_frame_age_s", 1.0, "Camera frames older than this are stale and ignored [s]")
        places_file = p("places_file", "", "YAML file of named places; empty = the package's config/places.yaml")
        vocabulary_file = p("vocabulary_file", "", "YAML file of known objects; empty = config/vocabulary.yaml")
        backend = p("understanding_model", "omni",
                    "Model that turns an utterance into a result: 'omni' (the Omni model, result from the "
                    "audio features before the transcript when it is sure) or 'command_parser' (rules on "
                    "the Whisper transcript)")
        checkpoint = p("omni_checkpoint", "", "Omni checkpoint folder; empty = the checkpoint in the package")
        self.omni_min_confidence = p("omni_min_confidence", DEFAULT_MIN_CONFIDENCE,
                                     "Omni results from audio alone below this confidence (0..1) wait for the "
                                     "transcript and are computed again from audio + text")
        text_int8 = p("omni_text_int8", True, "Run the Omni text path in INT8 (dynamic quantisation)")
        image_precision = p("omni_image_precision", "float32",
                            "Precision of the in-node image front-end: 'float32' or 'bfloat16'")
        self.image_features_topic = p("image_features_topic", "",
                                      "ImageFeatures topic of image_frontend_node; empty = this node encodes "
                                      "camera frames itself")
        batch_max = p("batch_max_size", 8, "Most requests with the same modalities in one Omni forward pass")
        batch_wait_ms = p("batch_max_wait_ms", 2.0, "Longest wait for more requests before a batch runs [ms]")
        if backend not in ("omni", "command_parser"):
            raise ValueError(f"understanding_model {backend!r} is not known; use 'omni' or 'command_parser'")
        if not 0.0 <= self.omni_min_confidence <= 1.0:
            raise ValueError(f"omni_min_confidence {self.omni_min_confidence!r} is outside 0..1; use for example "
                             f"{DEFAULT_MIN_CONFIDENCE} (1.0 makes every result wait for the transcript)")
        if image_precision not in ("float32", "bfloat16"):
            raise ValueError(f"omni_image_precision {image_precision!r}; use 'float32' or 'bfloat16'")

        self.vocabulary = load_vocabulary(places_file or None, vocabulary_file or None)
        transcriber = WhisperTranscriber(model, language, beam_size, cpu_threads, min_confidence=min_confidence)
        self.understander = UtteranceUnderstander(transcriber, self.vocabulary)
        self.segmenter = SpeechSegmenter(SileroVad(), self.vad_config)
        self.omni = None
        self.batcher = None
        self.understanding_backend = backend
        if backend == "omni":
            # Imported here so that the parser-only node does not load torch.
            from omni_agent.model.runtime import ModalityInput, OmniRuntime
            self._modality_input = ModalityInput
            try:
                self.omni = OmniRuntime(checkpoint or None, self.vocabulary, text_int8=text_int8,
                                        image_dtype=image_precision, load_image=not self.image_features_topic,
                                        cpu_threads=cpu_threads)
            except CheckpointError as error:
                self.understanding_backend = "command_parser (fallback)"
                self.get_logger().warning(
                    f"no usable Omni checkpoint: {error}. Falling back to the command parser on the transcript; "
                    f"set omni_checkpoint to a trained checkpoint folder to use the Omni model")
        if self.omni is not None:
            self.batcher = DynamicBatcher(self._predict_batch, key_of=lambda request: request[0].key,
                                          max_batch=batch_max, max_wait_s=batch_wait_ms / 1000.0)
            self.get_logger().info(
                f"Omni model {self.omni.checkpoint} ({self.omni.model.parameter_counts()['total']} parameters, "
                f"text path {'INT8' if text_int8 else 'float32'}, image "
                f"{'from ' + self.image_features_topic if self.image_features_topic else image_precision})")
        self.get_logger().info(
            f"loaded Whisper {model} from {transcriber.model_path} (language {transcriber.language}), "
            f"Silero VAD, understanding model '{self.understanding_backend}'")

        self._resampler: Optional[StreamingResampler] = None
        self._input_format = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper_worker")
        # The Omni model has its own worker so that Whisper decoding never delays its result.
        self._omni_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omni_worker")
        self._pending = 0
        self._lock = threading.Lock()
        self._utterance_count = 0
        # Omni utterances whose result or final status is not out yet. A sure result from audio
        # alone goes out early only when no earlier utterance is in here, so results keep the
        # order in which they were spoken (the planner lets the newest command win).
        self._undecided: Set[str] = set()
        self._last_partial_s = 0.0
        self._latest_frame = None            # (msg, receive time [monotonic s])
        self._latest_features = None         # (ModalityInput, receive time [monotonic s])
        self._utterance_started_wall = 0.0
        self._limited = LogLimiter(self.get_logger())

        audio_group = MutuallyExclusiveCallbackGroup()
        self.create_subscription(AudioChunk, "audio/chunk", self._on_audio, AUDIO_QOS, callback_group=audio_group)
        self.create_subscription(Image, "camera/image_raw", self._on_image, LATEST_FRAME_QOS,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        if self.omni is not None and self.image_features_topic:
            self.create_subscription(ImageFeatures, self.image_features_topic, self._on_image_features,
                                     LATEST_FRAME_QOS, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_subscription(String, "command_text", self._on_text, COMMAND_QOS,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.transcript_pub = self.create_publisher(Transcript, "transcript", COMMAND_QOS)
        self.result_pub = self.create_publisher(ModelResult, "model_result", COMMAND_QOS)
        self.status_pub = self.create_publisher(AgentStatus, "agent_status", COMMAND_QOS)
        self.get_logger().info("listening on audio/chunk, camera/image_raw and command_text")

    # Inputs ---------------------------------------------------------------
    def _on_audio(self, msg: AudioChunk) -> None:
        try:
            chunk = decode_chunk(msg.data, msg.sample_rate, msg.channels, msg.sample_format)
        except AudioFormatError as error:
            self._limited.log("error", f"audio:{error}", f"dropped audio chunk: {error}")
            return
        if chunk.nonfinite_count:
            self._limited.log("warning", "nonfinite",
                              f"audio chunk had {chunk.nonfinite_count} NaN/Inf samples; replaced them with 0 "
                              f"(check the microphone driver)")
        if chunk.clipped_fraction > 0.01:
            self._limited.log("warning", "clipping",
                              f"audio is clipping ({chunk.clipped_fraction:.0%} of samples at full scale); "
                              f"lower the microphone gain")

        input_format = (msg.sample_rate, msg.channels, msg.sample_format)
        if input_format != self._input_format:
            self._input_format = input_format
            self._resampler = StreamingResampler(msg.sample_rate, MODEL_SAMPLE_RATE_HZ)
            note = "" if msg.sample_rate == MODEL_SAMPLE_RATE_HZ else f", resampling to {MODEL_SAMPLE_RATE_HZ} Hz"
            self.get_logger().info(
                f"audio input: {msg.sample_rate} Hz, {msg.channels} channel(s), {msg.sample_format}{note}")
        samples = self._resampler.process(chunk.samples)

        for event in self.segmenter.push(samples):
            if event.kind == "start":
                self._utterance_started_wall = time.time()
                self._last_partial_s = time.monotonic()
                self.get_logger().debug("speech started")
            elif event.kind == "discarded":
                self.get_logger().info(f"ignored a sound: {event.reason}")
            else:
                self._submit_utterance(event.audio, event.reason)
        if self.segmenter.in_speech and self.partial_interval_s > 0:
            if time.monotonic() - self._last_partial_s >= self.partial_interval_s and self._pending == 0:
                self._last_partial_s = time.monotonic()
                with self._lock:
                    self._pending += 1
                uid = f"utt-{self._utterance_count + 1}"
                self._worker.submit(self._run_partial, self.segmenter.current_audio(), uid)

    def _on_image(self, msg: Image) -> None:
        try:
            # Validate the header only; pixels are converted when an utterance needs them.
            expected = msg.height * msg.step
            if msg.width == 0 or msg.height == 0 or len(msg.data) == 0:
                raise ImageError(
                    f"empty image ({msg.width}x{msg.height}, {len(msg.data)} bytes, encoding "
                    f"{msg.encoding!r}) from the camera; check the camera driver")
            if len(msg.data) != expected:
                raise ImageError(f"image data has {len(msg.data)} bytes but height x step = {expected}")
            image_to_rgb(1, msg.width, msg.encoding, msg.step, bytes(msg.data[:msg.step]))
        except ImageError as error:
            self._limited.log("error", f"image:{msg.encoding}:{msg.width}x{msg.height}", f"dropped camera frame: {error}")
            return
        self._latest_frame = (msg, time.monotonic())

    def _on_image_features(self, msg: ImageFeatures) -> None:
        try:
            output, size = features_from_msg(msg)
            if output.tokens.shape[1] != self.omni.model.config.feature_dims["image"]:
                raise ValueError(f"invalid feature_dim {output.tokens.shape[1]}: the Omni checkpoint expects "
                                 f"{self.omni.model.config.feature_dims['image']}; run image_frontend_node with the "
                                 f"front-end the checkpoint was trained with")
        except ValueError as error:
            self._limited.log("error", f"features:{error}", f"dropped image features: {error}")
            return
        if self._latest_features is None:
            self.get_logger().info(f"receiving image features on {self.image_features_topic} "
                                   f"({msg.frontend}, {msg.num_tokens} tokens of {msg.feature_dim})")
        self._latest_features = (self._modality_input({"image": output}, size), time.monotonic())

    def _on_text(self, msg: String) -> None:
        text = msg.data.strip()
        uid = self._next_id("text")
        if not text:
            self._publish_status(uid, AgentStatus.REJECTED, "empty text command; send words such as 'go to the kitchen'")
            return
        self.get_logger().info(f"[{uid}] text command: {text!r}")
        self._enqueue(self._run_text, text, uid, worker=self._omni_worker if self.omni is not None else None)

    # Work on the worker thread ----------------------------------------------
    def _submit_utterance(self, audio: np.ndarray, reason: str) -> None:
        uid = self._next_id("utt")
        self.get_logger().info(
            f"[{uid}] end of speech ({audio.size / MODEL_SAMPLE_RATE_HZ:.2f} s, closed by {reason})")
        if self.omni is not None:
            with self._lock:
                self._undecided.add(uid)
            self._enqueue(self._run_omni, audio, uid, time.monotonic(), worker=self._omni_worker)
        else:
            self._enqueue(self._run_final, audio, uid, time.monotonic())

    @property
    def audio_received(self) -> bool:
        """True once the first valid audio chunk has arrived."""
        return self._input_format is not None

    @property
    def busy(self) -> bool:
        """True while an utterance is open or waiting for, or in, the worker."""
        return self._pending > 0 or self.segmenter.in_speech

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._utterance_count += 1
            return f"{prefix}-{self._utterance_count}"

    def _enqueue(self, function, *args, worker: Optional[ThreadPoolExecutor] = None) -> None:
        with self._lock:
            if self._pending >= MAX_PENDING_UTTERANCES:
                self._publish_status(args[1], AgentStatus.FAILED,
                                     f"model node busy: {self._pending} utterances are waiting; repeat the command")
                return
            self._pending += 1
        (worker or self._worker).submit(function, *args)

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    def _run_partial(self, audio: np.ndarray, uid: str) -> None:
        try:
            # Greedy decoding keeps a partial short, because a final utterance waits for it.
            transcription = self.understander.transcriber.transcribe(audio, beam_size=1)
            if transcription.text:
                self._publish_transcript(uid, transcription, final=False)
        except Exception as error:  # keep the worker alive for the next utterance
            self.get_logger().error(f"[{uid}] partial transcription failed: {error!r}")
        finally:
            self._done()

    def _run_final(self, audio: np.ndarray, uid: str, speech_end_s: float) -> None:
        try:
            image = self._fresh_frame(uid)
            understanding = self.understander.understand_audio(audio, uid, image)
            transcription = understanding.transcription
            self._publish_transcript(uid, transcription, final=True)
            if understanding.result is None:
                self.get_logger().info(f"[{uid}] not a command: {transcription.rejected_reason}")
                self._publish_status(uid, AgentStatus.REJECTED,
                                     f"not treated as a command: {transcription.rejected_reason}")
                return
            self._publish_result(understanding.result, time.monotonic() - speech_end_s)
        except Exception as error:
            self.get_logger().error(f"[{uid}] understanding failed: {error!r}")
            self._publish_status(uid, AgentStatus.FAILED, f"model failed on this utterance: {error}")
        finally:
            self._done()

    def _predict_batch(self, requests):
        return self.omni.predict_batch([item for item, _ in requests], [uid for _, uid in requests])

    def _omni_predict(self, item, uid: str):
        return self.batcher.submit((item, uid)).result()

    def _run_omni(self, audio: np.ndarray, uid: str, speech_end_s: float) -> None:
        """On the Omni worker: the result from audio features (+ camera) at once; the transcript follows.

        Whisper runs on the other worker, so a partial transcript being decoded
        does not delay the result.
        """
        try:
            item = self.omni.encode(audio=audio)
            self._add_image(item, uid)
            result = self._omni_predict(item, uid).result
            # Only a complete, confident result goes out before the transcript. "go to the garage" (no
            # known place) waits for it, so that the planner's rejection can quote the transcript.
            confident = sure_from_audio(result, self.omni_min_confidence)
            earlier = self._earlier_undecided(uid)
            if confident and earlier:
                # Going out now would overtake an earlier command that waits for its transcript.
                self.get_logger().info(f"[{uid}] sure from audio features, but waits for {', '.join(earlier)} "
                                       "to keep the spoken order")
                confident = False
            if confident:
                self._answer_question(result, item)
                self._publish_result(result, time.monotonic() - speech_end_s, "from audio features")
                self._decided(uid)
        except Exception as error:
            self.get_logger().error(f"[{uid}] understanding failed: {error!r}")
            self._publish_status(uid, AgentStatus.FAILED, f"model failed on this utterance: {error}")
            self._decided(uid)
            self._done()
            return
        self._worker.submit(self._finish_omni, audio, uid, item, result, confident, speech_end_s)

    def _finish_omni(self, audio: np.ndarray, uid: str, item, result, published: bool, speech_end_s: float) -> None:
        """On the Whisper worker: the transcript, and the decision from audio + text when needed."""
        try:
            transcription = self.understander.transcriber.transcribe(audio)
            self._publish_transcript(uid, transcription, final=True)
            if published:
                return
            if not transcription.accepted:
                self.get_logger().info(f"[{uid}] not a command: {result.action} at confidence "
                                       f"{result.confidence:.2f} and {transcription.rejected_reason}")
                self._publish_status(uid, AgentStatus.REJECTED,
                                     f"not treated as a command: {transcription.rejected_reason}")
                return
            # Not sure from the sound alone: add the transcript as the text modality and decide again.
            item.features["text"] = self.omni.encode(text=transcription.text).features["text"]
            result = self._omni_predict(item, uid).result
            result.transcript = transcription.text
            result.language = transcription.language or result.language
            self._answer_question(result, item)
            self._publish_result(result, time.monotonic() - speech_end_s, "from audio + transcript")
        except Exception as error:
            self.get_logger().error(f"[{uid}] understanding failed: {error!r}")
            self._publish_status(uid, AgentStatus.FAILED, f"model failed on this utterance: {error}")
        finally:
            self._decided(uid)
            self._done()

    def _earlier_undecided(self, uid: str) -> List[str]:
        """Return the Omni utterances spoken before `uid` whose result or final status is not out yet."""
        number = _sequence_number(uid)
        with self._lock:
            return sorted((u for u in self._undecided if _sequence_number(u) < number), key=_sequence_number)

    def _decided(self, uid: str) -> None:
        with self._lock:
            self._undecided.discard(uid)

    def _add_image(self, item, uid: str) -> None:
        """Add the fresh camera view (features from image_frontend_node, or the frame encoded here)."""
        if self.image_features_topic:
            latest = self._latest_features
            if latest is None:
                return
            features, received_s = latest
            age_s = time.monotonic() - received_s
            if age_s > self.max_frame_age_s:
                self.get_logger().info(f"[{uid}] last image features are {age_s:.1f} s old (stale); not used")
                return
            item.features["image"], item.image_size = features.features["image"], features.image_size
            return
        frame = self._fresh_frame(uid)
        if frame is not None:
            image = self.omni.encode(image=frame)
            item.features["image"], item.image_size = image.features["image"], image.image_size

    def _answer_question(self, result, item) -> None:
        """Put the description of the view into the detail of a describe result."""
        if result.action != ACTION_DESCRIBE:
            return
        if "image" not in item.features:
            result.detail = "no fresh camera view to describe"
            return
        view = self._modality_input({"image": item.features["image"]}, item.image_size)
        result.detail = self.omni.describe(features=view)

    def _run_text(self, text: str, uid: str) -> None:
        if self.omni is not None:
            try:
                item = self.omni.encode(text=text)
                self._add_image(item, uid)
                result = self._omni_predict(item, uid).result
                result.transcript = text
                result.language = "zh" if has_cjk(text) else "en"
                self._answer_question(result, item)
                self._publish_result(result, None)
            except Exception as error:
                self.get_logger().error(f"[{uid}] understanding failed: {error!r}")
                self._publish_status(uid, AgentStatus.FAILED, f"model failed on this command: {error}")
            finally:
                self._done()
            return
        try:
            self._publish_result(self.understander.understand_text(text, uid), None)
        except Exception as error:
            self.get_logger().error(f"[{uid}] understanding failed: {error!r}")
            self._publish_status(uid, AgentStatus.FAILED, f"model failed on this command: {error}")
        finally:
            self._done()

    def _fresh_frame(self, uid: str) -> Optional[np.ndarray]:
        frame = self._latest_frame
        if frame is None:
            return None
        msg, received_s = frame
        age_s = time.monotonic() - received_s
        if age_s > self.max_frame_age_s:
            self.get_logger().info(f"[{uid}] last camera frame is {age_s:.1f} s old (stale); using speech only")
            return None
        try:
            return image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, bytes(msg.data))
        except ImageError as error:
            self.get_logger().error(f"[{uid}] camera frame unusable: {error}")
            return None

    # Outputs ------------------------------------------------------------------
    def _publish_transcript(self, uid: str, transcription, final: bool) -> None:
        msg = Transcript()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.utterance_id = uid
        msg.text = transcription.text
        msg.language = transcription.language
        msg.is_final = final
        msg.audio_duration_s = float(transcription.audio_duration_s)
        msg.processing_time_s = float(transcription.processing_time_s)
        msg.confidence = float(transcription.confidence)
        self.transcript_pub.publish(msg)
        if final:
            self.get_logger().info(
                f"[{uid}] transcript ({transcription.language}, confidence {transcription.confidence:.2f}, "
                f"{transcription.processing_time_s:.2f} s): {transcription.text!r}")

    def _publish_result(self, result, latency_s: Optional[float], how: str = "") -> None:
        self.result_pub.publish(result_to_msg(result, self.get_clock().now().to_msg()))
        action, details = describe(result)
        timing = f" {latency_s:.2f} s after end of speech" if latency_s is not None else ""
        timing += f" ({how})" if how else ""
        self.get_logger().info(
            f"[{result.utterance_id}] result{timing}: {' '.join(part for part in (action, details) if part)} "
            f"(confidence {result.confidence:.2f}, {result.source}; {result.detail})")

    def _publish_status(self, uid: str, state: int, reason: str) -> None:
        msg = AgentStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.utterance_id = uid
        msg.state = state
        msg.reason = reason
        self.status_pub.publish(msg)

    def close(self) -> None:
        self._omni_worker.shutdown(wait=True, cancel_futures=True)
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self.batcher is not None:
            self.batcher.close()


def _sequence_number(uid: str) -> int:
    """Return the number in an id such as "utt-12" (utterance and text ids share one counter)."""
    return int(uid.rsplit("-", 1)[1])


def main(args=None):
    run_node(OmniModelNode, args)


if __name__ == "__main__":
    main()
