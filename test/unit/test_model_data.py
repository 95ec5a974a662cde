"""Generated training and evaluation data of the Omni model: instructions, speech clips and images."""
import json
import pathlib
import wave

import numpy as np
import pytest

from omni_agent.model.chatter import HELDOUT_KINDS, chinese_number, english_number, generate_chatter
from omni_agent.model.image_data import MIN_OBJECT_PIXELS, real_photos, render_sim_scenes
from omni_agent.model.instructions import (
    LANGUAGES, TEMPLATES, generate_instructions, heldout_template_ids,
)
from omni_agent.model.labels import TaskLabel, AMOUNTS, DIRECTIONS, NONE, TASK_ACTIONS, LabelSpace
from omni_agent.model.speech_data import (
    AUGMENTATIONS, SAMPLE_RATE_HZ, TRIM_MARGIN_S, VOICES, add_noise, add_reverberation, augment,
    build_speech_set, load_manifest, mandarin_to_pinyin, plan_clips, real_recordings, shift_pitch, synthesize,
    voice_by_name,
)
from omni_agent.model.vocabulary import load_vocabulary
from omni_agent.sim.world import load_world

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")
needs_testdata = pytest.mark.skipif(not GOFORWARD.exists(), reason="needs the Debian package pocketsphinx-testdata")


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary()


@pytest.fixture(scope="module")
def instructions(vocabulary):
    return generate_instructions(seed=0, vocabulary=vocabulary)


# --- instructions ------------------------------------------------------------------------

def test_instructions_deterministic_for_seed(vocabulary):
    first = generate_instructions(seed=3, vocabulary=vocabulary, per_template=4)
    second = generate_instructions(seed=3, vocabulary=vocabulary, per_template=4)
    other = generate_instructions(seed=4, vocabulary=vocabulary, per_template=4)

    assert first == second
    assert [i.text for i in first] != [i.text for i in other]


def test_instruction_labels_in_label_space(instructions, vocabulary):
    space = LabelSpace.from_vocabulary(sorted(vocabulary.objects), sorted(vocabulary.places))

    for instruction in instructions:
        space.encode(instruction.label)   # raises ValueError naming the slot


def test_instructions_cover_languages_actions_splits(instructions):
    present = {(i.language, i.label.action, i.split) for i in instructions}

    for language in LANGUAGES:
        for action in TASK_ACTIONS:
            assert (language, action, "train") in present
            assert (language, action, "heldout") in present


def test_instruction_counts(instructions):
    english = [i for i in instructions if i.language == "en"]
    mandarin = [i for i in instructions if i.language == "zh"]
    heldout_share = sum(i.split == "heldout" for i in instructions) / len(instructions)

    assert 1500 <= len(english) <= 3000
    assert 800 <= len(mandarin) <= 1800
    assert 0.10 <= heldout_share <= 0.25


def test_heldout_templates_never_in_train(instructions):
    train_templates = {i.template for i in instructions if i.split == "train"}
    heldout_templates = {i.template for i in instructions if i.split == "heldout"}
    train_texts = {(i.language, i.text) for i in instructions if i.split == "train"}
    heldout_texts = {(i.language, i.text) for i in instructions if i.split == "heldout"}
    expected = {t for language in LANGUAGES for action in TASK_ACTIONS
                for t in heldout_template_ids(language, action)}

    assert not train_templates & heldout_templates
    assert not train_texts & heldout_texts
    assert heldout_templates <= expected
    for language in LANGUAGES:
        for action in TASK_ACTIONS:
            assert len(heldout_template_ids(language, action)) < len(TEMPLATES[language][action])


def test_instruction_texts_unique(instructions):
    keys = [(i.language, i.text) for i in instructions]

    assert len(keys) == len(set(keys))


def test_labelled_names_are_said(instructions, vocabulary):
    for instruction in instructions:
        label = instruction.label
        if label.object != NONE:
            entry = vocabulary.objects[label.object]
            names = entry.chinese if instruction.language == "zh" else entry.english
            assert any(name in instruction.text.lower() for name in names), instruction
        if label.place != NONE:
            entry = vocabulary.places[label.place]
            names = entry.chinese if instruction.language == "zh" else entry.english
            assert any(name in instruction.text.lower() for name in names), instruction


def test_unknown_has_no_slots(instructions):
    unknown = [i for i in instructions if i.label.action == "unknown"]

    assert unknown
    for instruction in unknown:
        assert (instruction.label.object, instruction.label.place) == (NONE, NONE), instruction
        assert (instruction.label.direction, instruction.label.amount) == (NONE, NONE), instruction


def test_fixed_objects_appear_only_in_bring_and_pick(instructions, vocabulary):
    """"bring me the piano" is a bring of the piano (the planner rejects it); "put the piano ..." is never made."""
    fixed = {i.label.object for i in instructions if i.label.action in ("bring", "pick")
             and i.label.object != NONE and not vocabulary.graspable[i.label.object]}
    assert "piano" in fixed
    for instruction in instructions:
        if instruction.label.action == "place" and instruction.label.object != NONE:
            assert vocabulary.graspable[instruction.label.object], instruction


def test_unknown_names_leave_the_slot_empty(instructions):
    garage = [i for i in instructions if i.text == "go to the garage"]
    xylophone = [i for i in instructions if i.text == "bring me the xylophone"]
    assert garage and garage[0].label == TaskLabel("navigate")
    assert xylophone and xylophone[0].label == TaskLabel("bring")


def test_move_labels_match_words(instructions):
    moves = [i for i in instructions if i.label.action == "move"]
    english_amounts = {"10m": ("ten", "10 "), "2m": ("two", "2 "), "90deg": ("ninety", "90 "),
                       "0.5m": ("half", "0.5", "zero point five")}
    chinese_amounts = {"10m": ("十米", "10米"), "2m": ("两米", "二米", "2米"), "90deg": ("九十度", "90度"),
                       "0.5m": ("半米", "零点五米")}

    assert {i.label.direction for i in moves} == set(DIRECTIONS) - {NONE}
    assert {i.label.amount for i in moves} == set(AMOUNTS)
    for instruction in moves:
        words = chinese_amounts if instruction.language == "zh" else english_amounts
        if instruction.label.amount in words:
            assert any(w in instruction.text + " " for w in words[instruction.label.amount]), instruction
        if instruction.language == "en" and instruction.label.direction in ("turn_left", "turn_right"):
            side = "left" if instruction.label.direction == "turn_left" else "right"
            assert side in instruction.text or "around" in instruction.text, instruction


@pytest.mark.parametrize("text, language, action, fields", [
    ("go to the kitchen", "en", "navigate", {"place": "kitchen"}),
    ("bring me the apple", "en", "bring", {"object": "apple"}),
    ("stop", "en", "stop", {}),
    ("what do you see", "en", "describe", {}),
    ("thank you", "en", "unknown", {}),
    ("去厨房", "zh", "navigate", {"place": "kitchen"}),
    ("到卧室去", "zh", "navigate", {"place": "bedroom"}),
    ("停下", "zh", "stop", {}),
    ("左转", "zh", "move", {"direction": "turn_left"}),
    ("你看到了什么", "zh", "describe", {}),
    ("今天天气很好", "zh", "unknown", {}),
])
def test_plain_examples_present(instructions, text, language, action, fields):
    matches = [i for i in instructions if i.text == text and i.language == language]

    assert len(matches) == 1
    assert matches[0].label.action == action
    for slot, value in fields.items():
        assert getattr(matches[0].label, slot) == value


# --- speech ------------------------------------------------------------------------------

def _assert_speech(samples, min_s, max_s):
    assert samples.dtype == np.float32
    assert min_s <= samples.size / SAMPLE_RATE_HZ <= max_s
    assert np.all(np.isfinite(samples))
    assert float(np.sqrt(np.mean(samples ** 2))) > 0.02
    margin = int(0.8 * TRIM_MARGIN_S * SAMPLE_RATE_HZ)
    assert float(np.max(np.abs(samples[:margin]))) < 0.01      # trimmed: silence, then speech
    assert float(np.max(np.abs(samples[-margin:]))) < 0.01


# --- chatter (non-commands) -------------------------------------------------------------

@pytest.mark.parametrize("value, english, chinese", [
    (0, "zero", "零"), (7, "seven", "七"), (10, "ten", "十"), (15, "fifteen", "十五"), (40, "forty", "四十"),
    (99, "ninety nine", "九十九"), (105, "one hundred five", "一百零五"), (300, "three hundred", "三百"),
    (692, "six hundred ninety two", "六百九十二"),
])
def test_numbers_in_words(value, english, chinese):
    assert english_number(value) == english
    assert chinese_number(value) == chinese


@pytest.mark.parametrize("function", [english_number, chinese_number])
def test_numbers_out_of_range_are_rejected(function):
    with pytest.raises(ValueError, match="1000|999"):
        function(1000)


def test_chatter_is_unknown_and_reproducible():
    chatter = generate_chatter(seed=0)

    assert chatter == generate_chatter(seed=0)
    assert [i.text for i in chatter] != [i.text for i in generate_chatter(seed=1)]
    assert {i.label for i in chatter} == {TaskLabel("unknown")}
    assert {i.language for i in chatter} == {"en", "zh"}
    assert all(i.template.startswith(f"{i.language}.chatter.") for i in chatter)


def test_chatter_holds_out_whole_kinds():
    chatter = generate_chatter(seed=0)

    for instruction in chatter:
        kind = instruction.template.rsplit(".", 1)[1]
        assert (instruction.split == "heldout") == (kind in HELDOUT_KINDS[instruction.language])
    assert {i.split for i in chatter} == {"train", "heldout"}


def test_chatter_never_repeats_a_command(instructions):
    commands = {(i.language, i.text) for i in instructions if i.label.action != "unknown"}

    assert not [i.text for i in generate_chatter(seed=0) if (i.language, i.text) in commands]


def test_chatter_rejects_bad_arguments():
    with pytest.raises(ValueError, match="per_kind"):
        generate_chatter(per_kind=0)
    with pytest.raises(ValueError, match="fr"):
        generate_chatter(languages=("fr",))


@pytest.mark.parametrize("voice_name, text, language", [
    ("piper-joe", "go forward ten meters", "en"),
    ("espeak-en-us-f2", "go forward ten meters", "en"),
    ("espeak-zh", "向前走三米", "zh"),
])
def test_synthesis_gives_trimmed_speech(voice_name, text, language):
    samples = synthesize(text, voice_by_name(voice_name), language)

    _assert_speech(samples, 0.8, 4.0)


def test_piper_speech_is_understood():
    from omni_agent.audio.asr import WhisperTranscriber

    samples = synthesize("bring me the apple from the kitchen", voice_by_name("piper-joe"), "en")
    text = WhisperTranscriber("tiny.en").transcribe(samples).text.lower()

    assert "apple" in text
    assert "kitchen" in text


def test_synthesis_rejects_other_language():
    with pytest.raises(ValueError, match="speaks"):
        synthesize("去厨房", voice_by_name("piper-joe"), "zh")


def test_mandarin_pinyin_reads_digits():
    assert mandarin_to_pinyin("向前走3米") == "xiang4 qian2 zou3 san1 mi3"
    assert mandarin_to_pinyin("转45度") == "zhuan3 si4 shi2 wu3 du4"


def test_voices_hold_out_each_language():
    heldout = {(v.language, v.split) for v in VOICES}
    names = [v.name for v in VOICES]

    assert ("en", "heldout") in heldout
    assert ("zh", "heldout") in heldout
    assert len(names) == len(set(names))


@pytest.fixture(scope="module")
def speech():
    return synthesize("bring me the cup from the kitchen", voice_by_name("espeak-en-us"), "en")


@pytest.mark.parametrize("kind", AUGMENTATIONS)
def test_augment_keeps_length_and_changes_signal(speech, kind):
    out = augment(speech, np.random.default_rng(7), kind)

    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert float(np.max(np.abs(out))) <= 1.0
    if "speed" in kind:
        assert 1 / 1.1 - 0.01 <= out.size / speech.size <= 1 / 0.9 + 0.01
    else:
        assert out.size == speech.size
    if kind == "none":
        np.testing.assert_array_equal(out, speech)
    elif out.size == speech.size:
        assert float(np.sqrt(np.mean((out - speech) ** 2))) > 1e-3


def test_augment_rejects_unknown_kind(speech):
    with pytest.raises(ValueError, match="invalid"):
        augment(speech, np.random.default_rng(0), "echo")


def test_noise_reaches_requested_snr():
    tone = np.sin(2 * np.pi * 300 * np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ).astype(np.float32)

    for colour in ("white", "pink"):
        noisy = add_noise(tone, 10.0, np.random.default_rng(1), colour)
        snr_db = 10 * np.log10(np.mean(tone ** 2) / np.mean((noisy - tone) ** 2))
        assert snr_db == pytest.approx(10.0, abs=0.3)


def test_reverberation_adds_decaying_tail():
    impulse = np.zeros(SAMPLE_RATE_HZ, dtype=np.float32)
    impulse[100] = 1.0
    wet = add_reverberation(impulse, 0.5, np.random.default_rng(2))
    early = np.sum(wet[200:2000] ** 2)
    late = np.sum(wet[6000:7800] ** 2)

    assert wet.size == impulse.size
    assert np.sum(wet[:100] ** 2) < 1e-12      # nothing before the direct sound
    assert early > 10 * late > 0.0


def test_pitch_shift_moves_fundamental():
    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    tone = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in (1, 2, 3)).astype(np.float32) * 0.3
    shifted = shift_pitch(tone, 3.0)
    spectrum = np.abs(np.fft.rfft(shifted[2000:-2000] * np.hanning(shifted.size - 4000)))
    frequencies = np.fft.rfftfreq(shifted.size - 4000, 1 / SAMPLE_RATE_HZ)
    low = (frequencies > 100) & (frequencies < 320)

    assert shifted.size == tone.size
    assert frequencies[low][np.argmax(spectrum[low])] == pytest.approx(200 * 2 ** (3 / 12), rel=0.02)


def test_plan_spreads_clips_over_voices(instructions):
    plans = plan_clips(instructions, 3000, seed=0)

    assert len(plans) == 3000
    assert {p.voice.name for p in plans} == {v.name for v in VOICES}
    assert {p.augment for p in plans} == set(AUGMENTATIONS)
    assert {p.instruction.split for p in plans} == {"train", "heldout"}
    assert all(p.voice.language == p.instruction.language for p in plans)
    assert len({p.id for p in plans}) == len(plans)
    assert [p.id for p in plan_clips(instructions, 50, seed=0)] == [p.id for p in plans[:50]]


def test_build_speech_set_writes_and_resumes(instructions, tmp_path):
    subset = [i for i in instructions if i.split == "heldout"][::40]
    manifest_path = build_speech_set(subset, tmp_path, max_clips=8, seed=1)
    entries = load_manifest(tmp_path)
    written = {e["wav"]: pathlib.Path(e["wav"]).stat().st_mtime_ns for e in entries}

    assert manifest_path == tmp_path / "manifest.jsonl"
    assert len(entries) == 8
    for entry in entries:
        assert {"id", "text", "language", "label", "template", "voice", "voice_split", "phrasing_split",
                "augment", "wav"} <= set(entry)
        assert entry["phrasing_split"] == "heldout"
        with wave.open(entry["wav"]) as handle:
            assert handle.getframerate() == SAMPLE_RATE_HZ
            assert handle.getnchannels() == 1
            assert 0.5 < handle.getnframes() / SAMPLE_RATE_HZ < 30.0

    build_speech_set(subset, tmp_path, max_clips=8, seed=1)
    again = load_manifest(tmp_path)

    assert [e["id"] for e in again] == [e["id"] for e in entries]
    assert {e["wav"]: pathlib.Path(e["wav"]).stat().st_mtime_ns for e in again} == written
    assert len(manifest_path.read_text(encoding="utf-8").splitlines()) == 8
    json.loads(manifest_path.read_text(encoding="utf-8").splitlines()[0])


@needs_testdata
def test_real_recordings_label_goforward():
    recordings = {r["id"]: r for r in real_recordings()}
    goforward = recordings["real-goforward"]

    assert goforward["label"] == {"action": "move", "object": NONE, "place": NONE, "direction": "forward",
                                  "amount": "10m"}
    assert goforward["text"] == "go forward ten meters"
    assert 2.0 < goforward["samples"].size / SAMPLE_RATE_HZ < 4.0
    assert goforward["samples"].dtype == np.float32
    others = [r for key, r in recordings.items() if key != "real-goforward"]
    assert len(others) >= 12
    assert all(r["label"]["action"] == "unknown" for r in others)
    assert any(r["id"].startswith("real-librivox") for r in others)
    assert any(r["id"].startswith("real-cards") for r in others)


# --- images ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_scenes():
    return render_sim_scenes(12, seed=0, width=160, height=120)


def test_sim_scenes_deterministic(sim_scenes):
    again = render_sim_scenes(3, seed=0, width=160, height=120)

    for first, second in zip(sim_scenes[:3], again):
        np.testing.assert_array_equal(first.rgb, second.rgb)
        assert [(label, box.tolist()) for label, box in first.objects] == \
               [(label, box.tolist()) for label, box in second.objects]


def test_sim_boxes_match_segmentation(sim_scenes, vocabulary):
    world = load_world()
    labelled = [image for image in sim_scenes if image.objects]

    assert labelled
    for image in labelled:
        assert image.rgb.shape == (120, 160, 3)
        assert image.rgb.dtype == np.uint8
        for number, (label, box) in enumerate(image.objects, start=1):
            rows, cols = np.nonzero(image.instance_map == number)
            assert label in vocabulary.objects
            assert rows.size >= MIN_OBJECT_PIXELS
            assert 0 <= box[0] <= box[2] < 160
            assert 0 <= box[1] <= box[3] < 120
            assert box.tolist() == [cols.min(), rows.min(), cols.max(), rows.max()]
            if label in world.objects:
                # The pixels show the object: their strongest colour channel is that of its colour in world.yaml.
                mean_rgb = image.rgb[rows, cols].astype(float).mean(axis=0)
                assert np.argmax(mean_rgb) == np.argmax(world.objects[label].color), (image.name, label)


def test_real_photos_box_cup():
    photos = {photo.name: photo for photo in real_photos()}
    coffee = photos["coffee"]

    assert [label for label, _ in coffee.objects] == ["cup", "table"]
    for photo in photos.values():
        height, width, channels = photo.rgb.shape
        assert channels == 3
        assert photo.rgb.dtype == np.uint8
        assert photo.source == "photo"
        for _, box in photo.objects:
            assert 0 <= box[0] < box[2] < width
            assert 0 <= box[1] < box[3] < height
        if not photo.objects:
            assert "no vocabulary object" in photo.note
