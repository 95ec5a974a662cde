"""Places and objects the robot recognises by name, in English and Mandarin.

Mandarin names are also matched on their toneless pinyin, so that a
recogniser's near-homophones ("去除防" for "去厨房", both "qu chu fang") still
resolve to the intended word.
"""
from __future__ import annotations

import pathlib
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import yaml

from omni_agent.model.result import Pose2D

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent.parent / "config"
_CJK = re.compile(r"[\u4e00-\u9fff]")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def to_pinyin(text: str) -> List[str]:
    """Toneless pinyin syllables of the Chinese characters in `text` (others dropped)."""
    from pypinyin import Style, lazy_pinyin

    return [s for s in lazy_pinyin(text, style=Style.NORMAL, errors="ignore") if s.isalpha()]


@dataclass
class Entry:
    """One named thing: its key and every surface form it is recognised by."""

    key: str
    english: List[str]
    chinese: List[str]
    pinyin: List[Tuple[str, ...]] = field(default_factory=list)

    def __post_init__(self):
        self.pinyin = [tuple(to_pinyin(word)) for word in self.chinese if to_pinyin(word)]


@dataclass
class Vocabulary:
    """Named places (with poses in `frame_id`) and named objects."""

    places: Dict[str, Entry]
    place_poses: Dict[str, Pose2D]
    objects: Dict[str, Entry]
    graspable: Dict[str, bool]
    frame_id: str = "map"

    def find_place(self, text: str) -> Optional[str]:
        return _find(self.places, text)

    def find_object(self, text: str) -> Optional[str]:
        return _find(self.objects, text)

    def without_names(self, text: str) -> str:
        """Return `text` with every Chinese place and object name removed."""
        names = [w for entries in (self.places, self.objects) for e in entries.values() for w in e.chinese]
        for name in sorted(names, key=len, reverse=True):
            text = text.replace(name, " ")
        return text

    def place_names(self) -> List[str]:
        return sorted(self.places)


def _find(entries: Dict[str, Entry], text: str) -> Optional[str]:
    """Return the key of the entry named in `text`, preferring the longest match."""
    lowered = " " + re.sub(r"[_\s]+", " ", text.lower()) + " "
    best: Tuple[int, Optional[str]] = (0, None)
    for entry in entries.values():
        for word in entry.english:
            if f" {word} " in lowered and len(word) > best[0]:
                best = (len(word), entry.key)
        for word in entry.chinese:
            if word in text and 2 * len(word) > best[0]:
                best = (2 * len(word), entry.key)
    if best[1] is not None or not has_cjk(text):
        return best[1]
    syllables = to_pinyin(text)
    joined = " " + " ".join(syllables) + " "
    for entry in entries.values():
        for sequence in entry.pinyin:
            if f" {' '.join(sequence)} " in joined and 2 * len(sequence) > best[0]:
                best = (2 * len(sequence), entry.key)
    if best[1] is not None:
        return best[1]
    # Last resort for names of two or more syllables: sounds that speakers and
    # recognisers confuse are merged (煮飯 "zhu fan" for 厨房 "chu fang").
    fuzzy = " " + " ".join(fuzzy_syllable(s) for s in syllables) + " "
    for entry in entries.values():
        for sequence in entry.pinyin:
            if len(sequence) < 2:
                continue
            target = " ".join(fuzzy_syllable(s) for s in sequence)
            if f" {target} " in fuzzy and 2 * len(sequence) > best[0]:
                best = (2 * len(sequence), entry.key)
    return best[1]


def fuzzy_syllable(syllable: str) -> str:
    """Merge commonly confused pinyin sounds: retroflex and flat initials
    (zh/z/ch/c, sh/s), n/l, and the nasal finals -ng/-n after a, e, i."""
    for retroflex, flat in (("zh", "z"), ("ch", "z"), ("sh", "s")):
        if syllable.startswith(retroflex):
            syllable = flat + syllable[len(retroflex):]
            break
    else:
        if syllable.startswith("c"):
            syllable = "z" + syllable[1:]
        elif syllable.startswith("n"):
            syllable = "l" + syllable[1:]
    if len(syllable) >= 3 and syllable.endswith("ng") and syllable[-3] in "aei":
        syllable = syllable[:-1]
    return syllable


def load_vocabulary(places_file: Optional[str] = None, vocabulary_file: Optional[str] = None) -> Vocabulary:
    """Load places (with poses) and objects from YAML files; defaults are in config/."""
    places_path = pathlib.Path(places_file) if places_file else _default_config("places.yaml")
    vocabulary_path = pathlib.Path(vocabulary_file) if vocabulary_file else _default_config("vocabulary.yaml")
    places_doc = _read_yaml(places_path)
    frame_id = places_doc.get("frame_id", "map")
    places, poses = {}, {}
    for key, spec in (places_doc.get("places") or {}).items():
        pose = (spec or {}).get("pose")
        if not isinstance(pose, dict) or not {"x", "y"} <= set(pose):
            raise ValueError(f"place {key!r} in {places_path} needs a pose with x and y (metres) and yaw (radians)")
        poses[key] = Pose2D(float(pose["x"]), float(pose["y"]), float(pose.get("yaw", 0.0)), frame_id)
        english, chinese = _split_aliases([key.replace("_", " ")] + list(spec.get("aliases", [])))
        places[key] = Entry(key, english, chinese)

    objects, graspable = {}, {}
    for key, spec in (_read_yaml(vocabulary_path).get("objects") or {}).items():
        spec = spec or {}
        english, chinese = _split_aliases([key] + list(spec.get("aliases", [])) + list(spec.get("zh", [])))
        objects[key] = Entry(key, english, chinese)
        graspable[key] = bool(spec.get("graspable", True))
    return Vocabulary(places, poses, objects, graspable, frame_id)


def _split_aliases(words: List[str]) -> Tuple[List[str], List[str]]:
    english = [w.lower() for w in words if not has_cjk(w)]
    chinese = [w for w in words if has_cjk(w)]
    return english, chinese


def _default_config(name: str) -> pathlib.Path:
    # The source tree, then a pip install (<prefix>/share), then a colcon install (ament index).
    candidates = [CONFIG_DIR / name, pathlib.Path(sys.prefix) / "share" / "omni_agent" / "config" / name]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(pathlib.Path(get_package_share_directory("omni_agent")) / "config" / name)
    except (ImportError, LookupError, ValueError):
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"default {name} not found in {[str(c) for c in candidates]}; pass its path")


def _read_yaml(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass an existing YAML file")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"{path} must contain a mapping at the top level")
    return document
