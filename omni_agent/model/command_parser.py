"""Rule-based command parser: transcript text -> CommandResult.

This is the fallback understanding path: it reads only the text, in English
or Mandarin, with the places and objects of a Vocabulary. Mandarin is matched
on toneless pinyin as well as characters, which absorbs the recogniser's
near-homophones.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Tuple

from omni_agent.model.result import (
    ACTION_BRING, ACTION_MOVE, ACTION_NAVIGATE, ACTION_PICK, ACTION_PLACE, ACTION_STOP,
    ACTION_UNKNOWN, CommandResult,
)
from omni_agent.model.vocabulary import Vocabulary, has_cjk, to_pinyin

SOURCE_NAME = "command_parser"
#: Distance and angle when a motion command names none.
DEFAULT_DISTANCE_M = 1.0
DEFAULT_TURN_RAD = math.pi / 2

_UNITS = {"zero": 0, "one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
          "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
          "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_NUMBER = r"(\d+(?:\.\d+)?|half)"
_DISTANCE_UNIT = r"(meters?|m|feet|foot|ft|centimeters?|cm|steps?)"

_STOP = re.compile(r"^(please )?(stop|halt|freeze|cancel|abort|emergency stop|stay still|don't move)\b")
_TURN = re.compile(rf"\b(turn|rotate|spin)\s+(left|right|around)(?:\s+(?:by\s+)?{_NUMBER}\s*(degrees?|deg|radians?|rad))?")
_MOVE = re.compile(
    rf"\b(?:go|move|drive|walk|head|roll|step)?\s*(forwards|forward|ahead|straight|backwards|backward|back up|back|left|right)"
    rf"(?:\s+(?:by\s+|for\s+)?{_NUMBER}\s*{_DISTANCE_UNIT})?")
_MOVE_NUMBER_FIRST = re.compile(
    rf"\b(?:go|move|drive|walk|head|roll)\s+{_NUMBER}\s*{_DISTANCE_UNIT}\s+(forwards|forward|ahead|backwards|backward|back|left|right)")
_BRING = re.compile(r"\b(bring|fetch|get|hand|give|grab(?=\s+(?:me|us)\b))\s+(?:me\s+|us\s+)?(?:back\s+)?(.+?)(?:\s+(?:from|in|on|at)\s+(?:the\s+)?(.+))?$")
_PICK = re.compile(r"\b(?:pick up|pick|grab|take|lift)\s+(?:up\s+)?(.+?)(?:\s+(?:from|off|on|in)\s+(?:the\s+)?(.+))?$")
_PLACE = re.compile(r"\b(?:put|place|drop|set|leave)\s+(.+?)\s+(?:down\s+)?(?:on|in|at|into|onto)\s+(?:the\s+)?(.+)$")
_NAVIGATE = re.compile(r"\b(?:go|navigate|drive|move|head|walk|come|return|take me|bring me)\s+(?:back\s+)?(?:to|into|towards|toward)\s+(?:the\s+)?(.+)$")
_DETERMINERS = re.compile(r"^(the|a|an|my|your|some|that|this|it)\s+")

_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_NUMBER = re.compile(r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十百半]+)")


class CommandParser:
    """Parse transcripts of robot commands with a vocabulary of places and objects."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary

    def parse(self, text: str, language: Optional[str] = None) -> CommandResult:
        """Return the command in `text`, or action "unknown" with a detail when nothing fits."""
        language = language or ("zh" if has_cjk(text) else "en")
        # The text decides: a recogniser set to "zh" can still return English words.
        if has_cjk(text):
            result = self._parse_chinese(text)
            result.language = "zh"
        else:
            result = self._parse_english(text)
            result.language = "en"
        result.transcript = text
        result.source = SOURCE_NAME
        return result

    # English ------------------------------------------------------------
    def _parse_english(self, text: str) -> CommandResult:
        sentence = normalise_english(text)
        if not sentence:
            return CommandResult(detail="empty text")
        if _STOP.search(sentence):
            return CommandResult(ACTION_STOP, confidence=1.0, detail="stop word")

        match = _TURN.search(sentence)
        if match:
            direction, amount, unit = match.group(2), match.group(3), match.group(4)
            angle = DEFAULT_TURN_RAD if direction != "around" else math.pi
            if amount:
                value = 0.5 if amount == "half" else float(amount)
                angle = value if unit and unit.startswith("rad") else math.radians(value)
            sign = -1.0 if direction == "right" else 1.0
            return CommandResult(ACTION_MOVE, turn_rad=sign * angle, confidence=1.0, detail="turn")

        # "go to the kitchen and bring me the apple": a bring with a place.
        for clause_place, clause_rest in _split_go_and(sentence):
            result = self._english_object_action(clause_rest)
            if result and result.action in (ACTION_BRING, ACTION_PICK) and not result.place:
                result.place = self._resolve_place(clause_place)
                return result

        result = self._english_object_action(sentence)
        if result:
            return result

        match = _NAVIGATE.search(sentence)
        if match:
            place = self._resolve_place(match.group(1))
            known = place in self.vocabulary.places
            return CommandResult(ACTION_NAVIGATE, place=place, confidence=1.0 if known else 0.7,
                                 detail="navigate" if known else f"unknown place {place!r}")

        match = _MOVE_NUMBER_FIRST.search(sentence)
        if match:
            return _relative_motion(match.group(3), match.group(1), match.group(2))
        match = _MOVE.search(sentence)
        if match and re.search(r"\b(go|move|drive|walk|head|roll|back up|step)\b", sentence):
            return _relative_motion(match.group(1), match.group(2), match.group(3))
        return CommandResult(detail=f"no command pattern matches {sentence!r}")

    def _english_object_action(self, sentence: str) -> Optional[CommandResult]:
        match = _PLACE.search(sentence)
        if match and not re.search(r"\b(bring|fetch)\b", sentence):
            label = self._resolve_object(match.group(1))
            place = self._resolve_place(match.group(2))
            return CommandResult(ACTION_PLACE, object_label="" if label == "it" else label, place=place,
                                 confidence=1.0, detail="place")
        match = _BRING.search(sentence)
        if match and not re.match(r"^(to|into|towards)\b", match.group(2)):
            label = self._resolve_object(match.group(2))
            place = self._resolve_place(match.group(3)) if match.group(3) else ""
            known = label in self.vocabulary.objects
            return CommandResult(ACTION_BRING, object_label=label, place=place,
                                 confidence=1.0 if known else 0.7, detail="bring")
        match = _PICK.search(sentence)
        if match:
            label = self._resolve_object(match.group(1))
            place = self._resolve_place(match.group(2)) if match.group(2) else ""
            known = label in self.vocabulary.objects
            return CommandResult(ACTION_PICK, object_label=label, place=place,
                                 confidence=1.0 if known else 0.7, detail="pick")
        return None

    def _resolve_place(self, phrase: str) -> str:
        phrase = phrase.strip()
        return self.vocabulary.find_place(phrase) or _strip_determiners(phrase).replace(" ", "_")

    def _resolve_object(self, phrase: str) -> str:
        phrase = phrase.strip()
        return self.vocabulary.find_object(phrase) or _strip_determiners(phrase)

    # Mandarin -------------------------------------------------------------
    def _parse_chinese(self, text: str) -> CommandResult:
        compact = re.sub(r"[\s，。！？、,.!?]", "", text)
        syllables = " " + " ".join(to_pinyin(compact)) + " "
        if not compact:
            return CommandResult(detail="empty text")
        # Names such as 客厅 ("ke ting") contain the syllable of 停 (stop): look for
        # stop words only in the text without the known names.
        unnamed = self.vocabulary.without_names(compact)
        unnamed_syllables = " " + " ".join(to_pinyin(unnamed)) + " "
        if re.search(r"停|别动|站住|取消", unnamed) or re.search(r" ting | bie dong ", unnamed_syllables):
            return CommandResult(ACTION_STOP, confidence=1.0, detail="stop word")

        turn = re.search(r"(左|右)转|向(左|右)转|掉头|转身", compact)
        if turn:
            if "掉头" in compact or "转身" in compact:
                angle = math.pi
            else:
                number = _zh_number_before(compact, "度")
                angle = math.radians(number) if number is not None else DEFAULT_TURN_RAD
                if "右" in (turn.group(1) or turn.group(2) or ""):
                    angle = -angle
            return CommandResult(ACTION_MOVE, turn_rad=angle, confidence=1.0, detail="turn")

        place = self.vocabulary.find_place(compact) or ""
        label = self.vocabulary.find_object(compact) or ""
        wants_bring = re.search(r"拿给我|拿来|带给我|带来|给我拿|给我带|递给我|取来|拿过来|送给我|帮我拿", compact) or \
            re.search(r" na gei wo | na lai | dai gei wo | gei wo na | di gei wo ", syllables)
        wants_pick = re.search(r"拿起|捡起|抓起|拿|捡|抓", compact)
        wants_place = re.search(r"放(在|到|下)", compact)
        if label and wants_place and place:
            return CommandResult(ACTION_PLACE, object_label=label, place=place, confidence=1.0, detail="place")
        if label and wants_bring:
            return CommandResult(ACTION_BRING, object_label=label, place=place, confidence=1.0, detail="bring")
        if label and wants_pick:
            return CommandResult(ACTION_PICK, object_label=label, place=place, confidence=1.0, detail="pick")

        direction = re.search(r"(向前|往前|前进|向后|往后|后退|倒退|向左|往左|向右|往右)", compact)
        if direction:
            word = direction.group(1)
            distance = _zh_number_before(compact, "米")
            distance = DEFAULT_DISTANCE_M if distance is None else distance
            if "前" in word:
                return CommandResult(ACTION_MOVE, forward_m=distance, confidence=1.0, detail="move")
            if "后" in word or "退" in word:
                return CommandResult(ACTION_MOVE, forward_m=-distance, confidence=1.0, detail="move")
            sign = 1.0 if "左" in word else -1.0
            return CommandResult(ACTION_MOVE, left_m=sign * distance, confidence=1.0, detail="move")

        if place and (re.search(r"去|到|回|走|进", compact) or re.search(r" (qu|dao|hui|zou) ", syllables)):
            return CommandResult(ACTION_NAVIGATE, place=place, confidence=1.0, detail="navigate")
        return CommandResult(detail=f"no command pattern matches {text!r}")


def normalise_english(text: str) -> str:
    """Lower-case, drop punctuation, spell numbers as digits and units consistently."""
    sentence = text.lower().replace("metres", "meters").replace("metre", "meter")
    sentence = re.sub(r"(\d),(\d{3})", r"\1\2", sentence)
    sentence = re.sub(r"[^\w\s.'-]", " ", sentence)
    sentence = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", sentence)
    sentence = re.sub(r"\bplease\b|\bcould you\b|\bcan you\b|\bwould you\b|\brobot\b", " ", sentence)
    sentence = _words_to_numbers(" ".join(sentence.split()))
    return sentence.strip()


def _words_to_numbers(sentence: str) -> str:
    words = sentence.split()
    out, i = [], 0
    while i < len(words):
        word = words[i]
        if word in _TENS or (word in _UNITS and word not in ("a", "an")):
            value = _TENS.get(word, _UNITS.get(word, 0))
            if word in _TENS and i + 1 < len(words) and words[i + 1] in _UNITS and _UNITS[words[i + 1]] < 10:
                value += _UNITS[words[i + 1]]
                i += 1
            if i + 2 < len(words) and words[i + 1] == "point" and words[i + 2] in _UNITS:
                value = float(f"{value}.{_UNITS[words[i + 2]]}")
                i += 2
            out.append(str(value))
        elif word == "half" and i + 1 < len(words) and words[i + 1] in ("a", "an"):
            out.append("0.5")
            i += 1
        elif word in ("a", "an") and i + 1 < len(words) and re.match(r"meters?|step|foot|half", words[i + 1]):
            out.append("1")
        else:
            out.append(word)
        i += 1
    return " ".join(out)


def _split_go_and(sentence: str):
    """Yield (place phrase, rest) for "go to PLACE and REST" sentences."""
    match = re.search(r"\b(?:go|navigate|head|drive|walk)\s+(?:to|into)\s+(?:the\s+)?(.+?)\s+(?:and|then|and then)\s+(.+)$",
                      sentence)
    if match:
        yield match.group(1), match.group(2)


def _strip_determiners(phrase: str) -> str:
    previous = None
    while previous != phrase:
        previous = phrase
        phrase = _DETERMINERS.sub("", phrase.strip())
    return phrase.strip()


def _relative_motion(direction: str, amount: Optional[str], unit: Optional[str]) -> CommandResult:
    distance = DEFAULT_DISTANCE_M
    if amount:
        distance = 0.5 if amount == "half" else float(amount)
        distance *= _unit_scale(unit)
    if direction in ("back", "back up", "backward", "backwards"):
        return CommandResult(ACTION_MOVE, forward_m=-distance, confidence=1.0, detail="move")
    if direction in ("left", "right"):
        sign = 1.0 if direction == "left" else -1.0
        return CommandResult(ACTION_MOVE, left_m=sign * distance, confidence=1.0, detail="move")
    return CommandResult(ACTION_MOVE, forward_m=distance, confidence=1.0, detail="move")


def _unit_scale(unit: Optional[str]) -> float:
    if not unit or unit.startswith("m") and not unit.startswith("mi"):
        return 1.0
    if unit in ("feet", "foot", "ft"):
        return 0.3048
    if unit.startswith("centi") or unit == "cm":
        return 0.01
    if unit.startswith("step"):
        return 0.5
    return 1.0


def _zh_number_before(text: str, unit: str) -> Optional[float]:
    """Return the number written before `unit`, with a trailing 半 (X米半 = X and a half)."""
    match = re.search(_ZH_NUMBER.pattern + unit + "(半)?", text)
    if not match:
        return None
    value = parse_chinese_number(match.group(1))
    if value is not None and match.group(2):
        value += 0.5
    return value


def parse_chinese_number(token: str) -> Optional[float]:
    """Value of a number written with digits or Chinese numerals (up to the hundreds)."""
    if re.fullmatch(r"\d+(?:\.\d+)?", token):
        return float(token)
    if token in ("半", "一半"):
        return 0.5
    if not token:
        return None
    total, current = 0, 0
    for char in token:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
        elif char == "半":
            return float(total + current) + 0.5
        else:
            return None
    return float(total + current)


def describe(result: CommandResult) -> Tuple[str, str]:
    """One-line summary of a result for logs: (action, details)."""
    parts = []
    if result.object_label:
        parts.append(f"object={result.object_label}")
    if result.place:
        parts.append(f"place={result.place}")
    if result.action == ACTION_MOVE:
        parts.append(f"forward={result.forward_m:.2f} m left={result.left_m:.2f} m turn={math.degrees(result.turn_rad):.0f} deg")
    return result.action, " ".join(parts)
