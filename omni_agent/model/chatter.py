"""Generated speech that is not a command: numbers, card names, dates, spelling.

A robot hears people read out numbers, play cards or spell words. Words
such as "two", "four" or "turn" also occur in commands, so without such
utterances in training the model took spoken digit strings and card names
for moves and stops (docs/model.md). This module generates them in English
and Mandarin, all labelled "unknown".

Each kind of chatter is one template id ("en.chatter.digits"). The kinds in
HELDOUT_KINDS never appear in training, so the held-out phrasing split
measures chatter of an unseen kind. NOTE: digit strings and card names are
training kinds, and the real recordings of pocketsphinx-testdata contain
both, so the real test set is not blind to them any more.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

from omni_agent.model.instructions import Instruction
from omni_agent.model.labels import TaskLabel
from omni_agent.model.result import ACTION_UNKNOWN

#: Chatter kinds kept out of training, per language.
HELDOUT_KINDS = {"en": ("dates", "times"), "zh": ("dates", "times")}
DEFAULT_PER_KIND = 40

_EN_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_EN_RANKS = ("ace", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "jack", "queen",
             "king")
_EN_SUITS = ("clubs", "diamonds", "hearts", "spades")
_EN_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
              "october", "november", "december")
_EN_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                "eleventh", "twelfth", "fifteenth", "twentieth", "twenty first", "thirtieth")
_EN_LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_RANKS = ("二", "三", "四", "五", "六", "七", "八", "九", "十")
_ZH_SUITS = ("红桃", "黑桃", "梅花", "方块")


def english_number(value: int) -> str:
    """Spell 0..999 in English words ("six hundred ninety two")."""
    if not 0 <= value <= 999:
        raise ValueError(f"english_number takes 0..999, got {value!r}")
    if value < 20:
        return _EN_ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _EN_TENS[tens] + ("" if ones == 0 else " " + _EN_ONES[ones])
    hundreds, rest = divmod(value, 100)
    return _EN_ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + english_number(rest))


def chinese_number(value: int) -> str:
    """Write 0..999 in Chinese characters ("六百九十二")."""
    if not 0 <= value <= 999:
        raise ValueError(f"chinese_number takes 0..999, got {value!r}")
    if value < 10:
        return _ZH_DIGITS[value]
    if value < 20:
        return "十" + ("" if value == 10 else _ZH_DIGITS[value - 10])
    hundreds, rest = divmod(value, 100)
    tens, ones = divmod(rest, 10)
    text = ""
    if hundreds:
        text = _ZH_DIGITS[hundreds] + "百"
        if rest and tens == 0:
            return text + "零" + _ZH_DIGITS[ones]
    if tens:
        text += _ZH_DIGITS[tens] + "十"
    if ones:
        text += _ZH_DIGITS[ones]
    return text


def _en_kinds(rng: np.random.Generator) -> Dict[str, Callable[[], str]]:
    def digits(count_low=3, count_high=7):
        return " ".join(rng.choice(_EN_ONES[:10], rng.integers(count_low, count_high)))

    def card():
        return f"{rng.choice(_EN_RANKS)} of {rng.choice(_EN_SUITS)}"

    def number():
        return english_number(int(rng.integers(0, 1000)))

    return {
        "digits": lambda: digits(),
        "cards": lambda: " ".join(card() for _ in range(rng.integers(1, 4))),
        "numbers": lambda: " ".join(number() for _ in range(rng.integers(1, 4))),
        "counting": lambda: " ".join(_EN_ONES[start] for start in range(*sorted(rng.choice(11, 2, replace=False)))),
        "phone": lambda: f"{rng.choice(('my number is', 'call', 'the code is', 'extension'))} {digits(4, 8)}",
        "spelling": lambda: " ".join(rng.choice(_EN_LETTERS, rng.integers(2, 6))),
        "scores": lambda: f"{rng.choice(('it was', 'they won', 'the score is', 'we lost'))} "
                          f"{english_number(int(rng.integers(0, 10)))} to {english_number(int(rng.integers(0, 10)))}",
        "dates": lambda: f"{rng.choice(('the', 'on the'))} {rng.choice(_EN_ORDINALS)} of {rng.choice(_EN_MONTHS)}",
        "times": lambda: f"{rng.choice(('it is', 'at', 'see you at', 'half past'))} "
                         f"{english_number(int(rng.integers(1, 13)))}"
                         f"{rng.choice(('', ' thirty', ' fifteen', ' o clock'))}",
    }


def _zh_kinds(rng: np.random.Generator) -> Dict[str, Callable[[], str]]:
    def digits(count_low=3, count_high=7):
        return "".join(rng.choice(list(_ZH_DIGITS), rng.integers(count_low, count_high)))

    def card():
        return f"{rng.choice(_ZH_SUITS)}{rng.choice(_ZH_RANKS)}"

    return {
        "digits": lambda: digits(),
        "cards": lambda: "".join(card() for _ in range(rng.integers(1, 4))),
        "numbers": lambda: "".join(chinese_number(int(rng.integers(0, 1000))) for _ in range(rng.integers(1, 3))),
        "counting": lambda: "".join(_ZH_DIGITS[n] for n in range(*sorted(rng.choice(10, 2, replace=False)))),
        "phone": lambda: f"{rng.choice(('我的电话是', '号码是', '密码是', '分机'))}{digits(4, 8)}",
        "scores": lambda: f"{rng.choice(('比分是', '他们赢了', '我们输了'))}"
                          f"{chinese_number(int(rng.integers(0, 10)))}比{chinese_number(int(rng.integers(0, 10)))}",
        "dates": lambda: f"{chinese_number(int(rng.integers(1, 13)))}月{chinese_number(int(rng.integers(1, 32)))}号",
        "times": lambda: f"{rng.choice(('现在', '我们', '明天'))}{chinese_number(int(rng.integers(1, 13)))}点"
                         f"{rng.choice(('', '半', '一刻', '十分'))}",
    }


def generate_chatter(seed: int = 0, per_kind: int = DEFAULT_PER_KIND,
                     languages: Sequence[str] = ("en", "zh")) -> List[Instruction]:
    """Return up to `per_kind` distinct non-command utterances of every kind and language.

    The result is the same for the same seed. Labels are "unknown"; kinds in
    HELDOUT_KINDS get the split "heldout", the others "train".
    """
    if per_kind < 1:
        raise ValueError(f"per_kind must be at least 1, got {per_kind!r}")
    builders = {"en": _en_kinds, "zh": _zh_kinds}
    chatter: List[Instruction] = []
    for language in languages:
        if language not in builders:
            raise ValueError(f"no chatter for language {language!r}; use one of {sorted(builders)}")
        kinds = builders[language](np.random.default_rng([seed] + [ord(letter) for letter in language]))
        for kind, make in kinds.items():
            split = "heldout" if kind in HELDOUT_KINDS[language] else "train"
            seen = set()
            for _ in range(8 * per_kind):
                if len(seen) >= per_kind:
                    break
                text = str(make()).strip()
                if text and text not in seen:
                    seen.add(text)
                    chatter.append(Instruction(text, language, TaskLabel(ACTION_UNKNOWN),
                                               f"{language}.chatter.{kind}", split))
    return chatter
