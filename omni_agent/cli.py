"""The omni-agent command line.

  omni-agent run         the node graph in one process over loopback DDS, on
                         real recordings and a real photo by default
  omni-agent sim-run     a spoken fetch command, closed loop in the MuJoCo home
  omni-agent understand  the model result for one audio file, as JSON
  omni-agent train       build the Omni model's data and train it (three stages)
  omni-agent eval        evaluate an Omni checkpoint on held-out data
  omni-agent ablate      train and compare the design's variants over seeds
  omni-agent say         synthesise a spoken command into a WAV file
  omni-agent devices     list audio input devices
  omni-agent gazebo-world
                         write the Gazebo world, robot and bridge files
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from typing import List, Optional

from omni_agent.model.result import DEFAULT_MIN_CONFIDENCE, sure_from_audio



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omni-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run camera, microphone, model and planner nodes in one process")
    run.add_argument("--audio", nargs="+", metavar="FILE",
                     help="audio files to play as the microphone, in order (default: the real recording "
                          "'go forward ten meters' and a Piper-spoken 'go to the kitchen')")
    run.add_argument("--device", metavar="NAME_OR_INDEX",
                     help="record a PortAudio input device instead of playing files ('' = default input)")
    run.add_argument("--image", metavar="SOURCE",
                     help="camera source: image, folder, video, device index or URL (default: a real photo)")
    run.add_argument("--model", default="tiny.en", help="Whisper model: tiny.en, base, or a folder (default tiny.en)")
    run.add_argument("--language", default="auto", choices=("auto", "en", "zh"), help="recognition language")
    run.add_argument("--places", metavar="FILE", help="places YAML (default config/places.yaml)")
    run.add_argument("--timeout", type=float, default=120.0,
                     help="give up after this many seconds [s] (default 120)")
    run.add_argument("--ros-network", choices=("loopback", "inherit"), default="loopback",
                     help="'loopback' (default) keeps DDS on this machine with a non-zero domain; "
                          "'inherit' uses the ROS_* variables of the environment as they are")
    run.add_argument("--domain-id", type=int, help="ROS domain id with --ros-network loopback (default 42)")

    sim = sub.add_parser("sim-run", help="speak a command to the robot in the embedded simulator (closed loop)",
                         description="Exit status: 0 when the command ends done, 1 when it ends rejected, "
                                     "failed or timed out, 2 for invalid arguments. sim_node's own log is "
                                     "sim_node.log in the output folder.")
    sim.add_argument("--command", dest="sentence", default="Go to the kitchen and bring me the apple.",
                     help="sentence spoken by Piper into the microphone (default: the apple fetch task)")
    sim.add_argument("--audio", metavar="FILE", help="play this recording instead of a Piper voice")
    sim.add_argument("--out", metavar="DIR", help="output folder (default results/sim-run-<time>)")
    sim.add_argument("--model", default="tiny.en", help="Whisper model (default tiny.en)")
    sim.add_argument("--language", default="auto", choices=("auto", "en", "zh"))
    sim.add_argument("--real-time-factor", type=float, default=1.0,
                     help="simulated seconds per wall second; 0 runs as fast as possible (default 1)")
    sim.add_argument("--closed-door", action="append", default=[], metavar="NAME",
                     help="close a door of the world, e.g. kitchen_door (repeatable)")
    sim.add_argument("--no-virtual-microphone", action="store_true",
                     help="play the file through the microphone node even when PulseAudio is installed")
    sim.add_argument("--no-video", action="store_true", help="skip the MP4/GIF (faster)")
    sim.add_argument("--timeout", type=float, default=600.0, help="give up after this many wall seconds")
    sim.add_argument("--domain-id", type=int, help="ROS domain id (default 42); DDS stays on loopback")

    understand = sub.add_parser("understand", help="print the model result for one utterance")
    understand.add_argument("--audio", required=True, metavar="FILE",
                            help="WAV/FLAC/OGG, or .raw/.pcm as 16 kHz S16LE mono")
    understand.add_argument("--image", metavar="FILE", help="camera image seen while the command was spoken")
    understand.add_argument("--model", default="tiny.en", help="Whisper model for the transcript (default tiny.en)")
    understand.add_argument("--understanding", choices=("omni", "command_parser"), default="omni",
                            help="omni (the Omni model, default) or command_parser (rules on the transcript)")
    understand.add_argument("--checkpoint", metavar="DIR", help="Omni checkpoint folder (default: the packaged one)")
    understand.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE, metavar="P",
                            help="audio-only Omni results below this confidence are decided again from audio + "
                                 f"transcript, as in the model node (default {DEFAULT_MIN_CONFIDENCE})")
    understand.add_argument("--language", default="auto", choices=("auto", "en", "zh"),
                            help="recognition language of the transcript (default: detect it)")
    understand.add_argument("--places", metavar="FILE", help="places YAML (default config/places.yaml)")
    understand.add_argument("--all", action="store_true", help="every utterance in the file, not only the first")
    understand.add_argument("--json", action="store_true", help="print JSON (one object, or a list with --all)")

    say = sub.add_parser("say", help="synthesise speech to a 16 kHz WAV file")
    say.add_argument("text", help="the sentence to speak")
    say.add_argument("--out", required=True, metavar="FILE", help="WAV file to write (16 kHz mono)")
    say.add_argument("--voice", choices=("piper", "espeak"), default="piper",
                     help="piper (natural English, the default) or espeak (English or Mandarin)")
    say.add_argument("--language", choices=("en", "zh"), default="en",
                     help="en (default) or zh; zh always uses espeak-ng with tone-numbered pinyin")

    sub.add_parser("devices", help="list audio input devices that PortAudio can open")
    for name, text in (("train", "train the Omni model; 'omni-agent train --help' lists the options"),
                       ("eval", "evaluate an Omni checkpoint; 'omni-agent eval --help' lists the options"),
                       ("ablate", "compare the design's variants; 'omni-agent ablate --help' lists the options")):
        sub.add_parser(name, help=text, add_help=False).add_argument("options", nargs=argparse.REMAINDER)

    gazebo = sub.add_parser("gazebo-world",
                            help="write the Gazebo world, robot model and ros_gz_bridge config for the home")
    gazebo.add_argument("--out", required=True, metavar="DIR",
                        help="folder for home.sdf, robot.sdf and bridge.yaml (created if missing)")
    gazebo.add_argument("--world", metavar="FILE", help="world description YAML (default config/world.yaml)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    delegated = {"train": "omni_agent.model.train", "eval": "omni_agent.model.evaluate",
                 "ablate": "omni_agent.model.ablations"}
    if argv and argv[0] in delegated:
        import importlib
        return importlib.import_module(delegated[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from omni_agent.demo import run_graph

            return run_graph(args)
        if args.command == "sim-run":
            return sim_run(args)
        if args.command == "understand":
            return understand(args)
        if args.command == "say":
            return say(args)
        if args.command == "gazebo-world":
            return gazebo_world(args)
        return devices()
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"omni-agent {args.command}: error: {error}", file=sys.stderr)
        return 2


def sim_run(args) -> int:
    """Run the spoken fetch task in the embedded simulator and write its artefacts."""
    from omni_agent.sim_run import RunOptions, run_sim

    report = run_sim(RunOptions(
        command=args.sentence, audio=args.audio, out=args.out, model=args.model, language=args.language,
        real_time_factor=args.real_time_factor, closed_doors=tuple(args.closed_door),
        virtual_microphone=not args.no_virtual_microphone, timeout_s=args.timeout, video=not args.no_video,
        domain_id=args.domain_id))
    print(f"outcome: {report.outcome}; files in {pathlib.Path(report.files['result']).parent}")
    return 0 if report.outcome == "done" else 1


def understand(args) -> int:
    """Run VAD, Whisper and the understanding model on one file; print the result."""
    from omni_agent.audio import MODEL_SAMPLE_RATE_HZ
    from omni_agent.audio.asr import WhisperTranscriber
    from omni_agent.audio.resample import resample
    from omni_agent.audio.sources import load_audio_file
    from omni_agent.audio.vad import find_utterances
    from omni_agent.model.understanding import Understanding, UtteranceUnderstander
    from omni_agent.model.vocabulary import load_vocabulary

    samples, rate = load_audio_file(args.audio)
    samples = resample(samples, rate, MODEL_SAMPLE_RATE_HZ)
    image = _load_image(args.image) if args.image else None
    started = time.perf_counter()
    utterances = find_utterances(samples)
    vad_s = time.perf_counter() - started
    if not utterances:
        print(json.dumps({"audio": args.audio, "error": "no speech detected"}) if args.json
              else f"no speech detected in {args.audio}")
        return 3
    vocabulary = load_vocabulary(args.places)
    understander = UtteranceUnderstander(WhisperTranscriber(args.model, args.language), vocabulary)
    omni = None
    if args.understanding == "omni":
        if not 0.0 <= args.min_confidence <= 1.0:
            raise ValueError(f"--min-confidence {args.min_confidence} is outside 0..1; use for example "
                             f"{DEFAULT_MIN_CONFIDENCE}")
        from omni_agent.model.runtime import OmniRuntime
        omni = OmniRuntime(args.checkpoint, vocabulary, load_image=image is not None)
    outputs = []
    for index, event in enumerate(utterances if args.all else utterances[:1]):
        uid = f"utt-{index + 1}"
        if omni is None:
            done = understander.understand_audio(event.audio, uid, image)
            outputs.append(_understanding_record(args, event, done, vad_s, image))
            continue
        # The model node's rule: the audio-only result when it is sure, else audio + transcript.
        started = time.perf_counter()
        item = omni.encode(audio=event.audio, image=image)
        prediction = omni.predict_batch([item], [uid])[0]
        transcription = understander.transcriber.transcribe(event.audio)
        decided_from, result = "audio", prediction.result
        if not sure_from_audio(result, args.min_confidence):
            decided_from, result = "audio + transcript", None
            if transcription.accepted:
                item.features["text"] = omni.encode(text=transcription.text).features["text"]
                prediction = omni.predict_batch([item], [uid])[0]
                result = prediction.result
        if result is not None:
            result.transcript, result.language = transcription.text, transcription.language or result.language
        understanding_s = time.perf_counter() - started - transcription.processing_time_s
        done = Understanding(transcription, result, understanding_s)
        record = _understanding_record(args, event, done, vad_s, image)
        record["omni"] = {"decided_from": decided_from,
                          "slot_confidence": {k: round(v, 3) for k, v in prediction.slot_confidence.items()},
                          "fusion_weights": prediction.importance, "routing": prediction.routing,
                          "grounding": prediction.grounding, "timings_ms": prediction.timings_ms}
        if result is not None and result.action == "describe" and image is not None:
            record["result"]["explanation"] = omni.describe(image)
        outputs.append(record)
    if args.json:
        print(json.dumps(outputs if args.all else outputs[0], ensure_ascii=False, indent=2))
    else:
        for record in outputs:
            print(f"{record['utterance_id'] or 'utterance'}: heard {record['transcript']!r} -> {_summary(record)}")
    return 0 if any(record["result"] for record in outputs) else 3


def _understanding_record(args, event, done, vad_s, image) -> dict:
    from omni_agent.audio import MODEL_SAMPLE_RATE_HZ

    transcription = done.transcription
    result = None
    if done.result is not None:
        result = done.result.to_dict()
        result.pop("detail")
        result["explanation"] = done.result.detail
    return {
        "audio": args.audio,
        "utterance_id": result["utterance_id"] if result else "",
        "speech_start_s": round(event.start_sample / MODEL_SAMPLE_RATE_HZ, 3),
        "speech_end_s": round(event.end_sample / MODEL_SAMPLE_RATE_HZ, 3),
        "transcript": transcription.text,
        "language": transcription.language,
        "transcript_confidence": round(transcription.confidence, 3),
        "rejected_reason": transcription.rejected_reason,
        "image": None if image is None else {"path": args.image, "width": image.shape[1], "height": image.shape[0]},
        "result": result,
        "timing_s": {"vad": round(vad_s, 3), "transcribe": round(transcription.processing_time_s, 3),
                     "understand": round(done.understanding_time_s, 4)},
    }


def _summary(record: dict) -> str:
    """Return one line for a record of `understand`: the result's fields, or why there is none."""
    result = record["result"]
    if result is None:
        return f"not a command: {record['rejected_reason']}"
    parts = [result["action"]]
    if result["action"] == "move":
        parts.append(f"forward={result['forward_m']:.2f} m left={result['left_m']:.2f} m "
                     f"turn={math.degrees(result['turn_rad']):.0f} deg")
    parts += [f"{key}={result[key]}" for key in ("object_label", "place") if result[key]]
    parts.append(f"(confidence {result['confidence']:.2f}, {result['source']}")
    if "omni" in record:
        parts[-1] += f", from {record['omni']['decided_from']}"
    return " ".join(parts) + ")"


def _load_image(path: str):
    import cv2

    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"image {path} not found; pass an existing image file")
    image = cv2.imread(path)
    if image is None or image.size == 0:
        raise ValueError(f"{path} is not an image OpenCV can read (PNG, JPEG, BMP, ...)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def say(args) -> int:
    import shutil

    from omni_agent.audio.tts import synthesize

    voice = "espeak" if args.language == "zh" else args.voice
    path = synthesize(args.text, voice=voice, language=args.language)
    shutil.copyfile(path, args.out)
    print(f"wrote {args.out} ({voice}, {args.language})")
    return 0


def gazebo_world(args) -> int:
    """Write home.sdf, robot.sdf and bridge.yaml for Gazebo into args.out."""
    from omni_agent.sim.gazebo import write_gazebo_files
    from omni_agent.sim.world import load_world

    world = load_world(args.world)
    files = write_gazebo_files(args.out, world)
    print(f"wrote {files.world_sdf} (world {world.name}: {len(world.walls)} walls, {len(world.doors)} doors, "
          f"{len(world.furniture)} furniture, {len(world.objects)} objects)")
    print(f"wrote {files.robot_sdf}")
    print(f"wrote {files.bridge_yaml}")
    return 0


def devices() -> int:
    from omni_agent.audio.sources import list_input_devices

    found = list_input_devices()
    if not found:
        print("no audio input devices found (PortAudio lists none); use an audio file, "
              "or a PulseAudio virtual source")
        return 1
    for device in found:
        print(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
