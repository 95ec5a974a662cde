"""Generated English and Mandarin instructions with their task labels.

Each instruction comes from a template (one phrasing of one action) whose
slots are filled with place and object names from the vocabulary, distances,
angles, directions and polite openings or endings. About 15% of the
templates of every language and action are held out: their texts never
appear in the training split, so an evaluation on them measures phrasings
that the model has not seen.

English text is lower case without final punctuation. Numbers are mostly
spelled out in words. Each distance and angle also has a digit form,
because Whisper writes "go forward 10 meters", and about 30% of the
instructions with an amount use it (seed 0). Mandarin text has no spaces.

Run `python -m omni_agent.model.instructions` to print the counts.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from omni_agent.model.labels import ACTION_DESCRIBE, NONE, TASK_ACTIONS, TaskLabel
from omni_agent.model.result import (
    ACTION_BRING, ACTION_MOVE, ACTION_NAVIGATE, ACTION_PICK, ACTION_PLACE, ACTION_STOP, ACTION_UNKNOWN,
)
from omni_agent.model.vocabulary import Vocabulary, load_vocabulary

LANGUAGES: Tuple[str, ...] = ("en", "zh")
SPLITS: Tuple[str, ...] = ("train", "heldout")
#: Share of each (language, action) template list kept out of training, with at least one template.
HELDOUT_FRACTION = 0.15
DEFAULT_PER_TEMPLATE = 20
#: Mandarin templates draw fewer instructions each, which keeps Mandarin near 40% of the set.
PER_TEMPLATE_SCALE = {"en": 1.0, "zh": 0.75}


@dataclass(frozen=True)
class Instruction:
    """One instruction text with its task label and where it came from."""

    text: str
    language: str            # "en" | "zh"
    label: TaskLabel
    template: str            # template id: "<language>.<action>.<index>", e.g. "en.navigate.3"
    split: str               # "train" | "heldout"


# --- slot fillers ------------------------------------------------------------------------
#
# A filler is a surface form and the label fields it sets, for example
# ("the kitchen", {"place": "kitchen"}). A template such as "go to {place}"
# draws one filler per slot. Fillers are grouped by the value they stand
# for, and a slot draws the value first, so a place with six aliases is not
# drawn six times as often as a place with one name.

Filler = Tuple[str, Dict[str, str]]
FillerGroups = List[List[Filler]]

_EN_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                    9: "nine", 10: "ten", 30: "thirty", 45: "forty five", 90: "ninety",
                    180: "a hundred and eighty"}
_ZH_NUMBER_WORDS = {1: "一", 2: "两", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十",
                    30: "三十", 45: "四十五", 90: "九十", 180: "一百八十"}

# Place words used without an article ("go home", not "go to the home").
_EN_BARE_PLACES = ("home",)
# Last words of place names that take "on" ("on the sofa"); rooms take "in", other places "at".
_EN_SURFACE_WORDS = ("table", "nightstand", "sofa", "couch", "counter", "shelf", "bed", "desk")
_EN_ROOM_WORDS = ("room", "kitchen", "bedroom", "lounge", "hallway", "bathroom", "office", "garage")


def _en_distances() -> FillerGroups:
    groups = [
        [("half a meter", {}), ("half a metre", {}), ("zero point five meters", {}), ("0.5 meters", {})],
        [("one meter", {}), ("one metre", {}), ("a meter", {}), ("1 meter", {})],
        [("one and a half meters", {}), ("one point five metres", {}), ("a meter and a half", {}),
         ("1.5 meters", {})],
    ]
    amounts = ["0.5m", "1m", "1.5m"]
    for value in range(2, 11):
        word = _EN_NUMBER_WORDS[value]
        groups.append([(f"{word} meters", {}), (f"{word} metres", {}), (f"{value} meters", {})])
        amounts.append(f"{value}m")
    return _with_field(groups, "amount", amounts)


def _en_angles() -> FillerGroups:
    groups, amounts = [], []
    for value in (30, 45, 90, 180):
        surfaces = [f"{_EN_NUMBER_WORDS[value]} degrees", f"{value} degrees"]
        if value == 45:
            surfaces.append("forty-five degrees")
        if value == 180:
            surfaces.append("one hundred eighty degrees")
        groups.append([(surface, {}) for surface in surfaces])
        amounts.append(f"{value}deg")
    return _with_field(groups, "amount", amounts)


def _zh_distances() -> FillerGroups:
    groups = [[("半米", {}), ("零点五米", {})], [("一米", {}), ("1米", {})], [("一米半", {}), ("一点五米", {})]]
    amounts = ["0.5m", "1m", "1.5m"]
    for value in range(2, 11):
        surfaces = [f"{_ZH_NUMBER_WORDS[value]}米", f"{value}米"]
        if value == 2:
            surfaces.append("二米")
        groups.append([(surface, {}) for surface in surfaces])
        amounts.append(f"{value}m")
    return _with_field(groups, "amount", amounts)


def _zh_angles() -> FillerGroups:
    groups = [[(f"{_ZH_NUMBER_WORDS[value]}度", {}), (f"{value}度", {})] for value in (30, 45, 90, 180)]
    return _with_field(groups, "amount", ["30deg", "45deg", "90deg", "180deg"])


def _with_field(groups: FillerGroups, name: str, values: Sequence[str]) -> FillerGroups:
    return [[(surface, {**fields, name: value}) for surface, fields in group] for group, value in zip(groups, values)]


def _en_place_phrase(word: str) -> str:
    return word if word in _EN_BARE_PLACES else f"the {word}"


def _en_at_place_phrase(word: str) -> str:
    """Return the place with the preposition it usually takes: "in the kitchen", "on the sofa", "at the dock"."""
    if word in _EN_BARE_PLACES:
        return f"at {word}"
    last = word.split()[-1]
    if last in _EN_SURFACE_WORDS:
        return f"on the {word}"
    if last in _EN_ROOM_WORDS:
        return f"in the {word}"
    return f"at the {word}"


def _en_object_phrases(word: str) -> List[str]:
    plural = word.endswith("s") and not word.endswith("ss")
    return [f"the {word}", f"my {word}"] + ([f"those {word}"] if plural else [f"that {word}"])


#: Place and object names that the default vocabulary lacks, for "go to the garage" style commands.
_EN_UNKNOWN_PLACES = ("garage", "garden", "office", "bathroom", "attic", "basement", "balcony", "laundry room",
                      "dining room", "library", "backyard", "study")
_EN_UNKNOWN_OBJECTS = ("xylophone", "guitar", "umbrella", "laptop", "shoes", "hammer", "towel", "scissors",
                       "newspaper", "blanket", "pillow", "wallet")
_ZH_UNKNOWN_PLACES = ("车库", "花园", "办公室", "阳台", "浴室", "书房", "餐厅", "地下室")
_ZH_UNKNOWN_OBJECTS = ("吉他", "雨伞", "电脑", "鞋子", "锤子", "毛巾", "剪刀", "报纸", "钱包")


def _build_fillers(vocabulary: Vocabulary) -> Dict[str, Dict[str, FillerGroups]]:
    """Return the slot fillers of both languages: {language: {slot: groups}}."""
    english: Dict[str, FillerGroups] = {}
    chinese: Dict[str, FillerGroups] = {}
    places = [vocabulary.places[key] for key in sorted(vocabulary.places)]
    english["place"] = [[(_en_place_phrase(w), {"place": e.key}) for w in e.english] for e in places if e.english]
    english["at_place"] = [[(_en_at_place_phrase(w), {"place": e.key}) for w in e.english]
                           for e in places if e.english]
    chinese["place"] = [[(w, {"place": e.key}) for w in e.chinese] for e in places if e.chinese]

    objects = [vocabulary.objects[key] for key in sorted(vocabulary.objects)]
    graspable = [e for e in objects if vocabulary.graspable.get(e.key, True)]
    fixed = [e for e in objects if not vocabulary.graspable.get(e.key, True)]
    for slot, entries in (("object", graspable), ("thing", objects), ("surface", fixed)):
        english[slot] = [[(phrase, {"object": e.key}) for w in e.english for phrase in _en_object_phrases(w)]
                         for e in entries if e.english]
        chinese[slot] = [[(w, {"object": e.key}) for w in e.chinese] for e in entries if e.chinese]

    # Names the vocabulary lacks give a command with place or object "none". The planner then
    # rejects it and quotes the transcript.
    english["unknown_place"] = [[(f"the {word}", {})] for word in _EN_UNKNOWN_PLACES]
    english["unknown_object"] = [[(f"the {word}", {}), (f"my {word}", {})] for word in _EN_UNKNOWN_OBJECTS]
    chinese["unknown_place"] = [[(word, {})] for word in _ZH_UNKNOWN_PLACES]
    chinese["unknown_object"] = [[(word, {})] for word in _ZH_UNKNOWN_OBJECTS]

    english["distance"] = _en_distances()
    english["angle"] = _en_angles()
    english["move_dir"] = [
        [("forward", {"direction": "forward"}), ("forwards", {"direction": "forward"}),
         ("ahead", {"direction": "forward"}), ("straight ahead", {"direction": "forward"})],
        [("back", {"direction": "backward"}), ("backward", {"direction": "backward"}),
         ("backwards", {"direction": "backward"})],
        [("left", {"direction": "left"}), ("to the left", {"direction": "left"}),
         ("sideways to the left", {"direction": "left"})],
        [("right", {"direction": "right"}), ("to the right", {"direction": "right"}),
         ("sideways to the right", {"direction": "right"})],
    ]
    english["side"] = [[("left", {"direction": "turn_left"})], [("right", {"direction": "turn_right"})]]

    chinese["distance"] = _zh_distances()
    chinese["angle"] = _zh_angles()
    chinese["move_dir"] = [
        [("向前", {"direction": "forward"}), ("往前", {"direction": "forward"})],
        [("向后", {"direction": "backward"}), ("往后", {"direction": "backward"})],
        [("向左", {"direction": "left"}), ("往左", {"direction": "left"})],
        [("向右", {"direction": "right"}), ("往右", {"direction": "right"})],
    ]
    chinese["side"] = [[("左", {"direction": "turn_left"})], [("右", {"direction": "turn_right"})]]
    return {"en": english, "zh": chinese}


# Polite openings and endings around imperative templates. The empty string
# is listed several times so that most instructions have none.
_WRAPPERS = {
    "en": (("", "", "", "", "please ", "robot, ", "hey robot, ", "can you ", "could you ", "okay, now "),
           ("", "", "", "", " please", " now", " right away", " for me")),
    "zh": (("", "", "", "请", "机器人，", "麻烦你", "你"),
           ("", "", "", "吧", "，谢谢", "，快点")),
}


# --- templates ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """One phrasing of an action: a pattern with {slot} fields and the label fields it fixes."""

    pattern: str
    wrap: bool = True                                  # whether polite openings and endings may be added
    fixed: Dict[str, str] = field(default_factory=dict)
    max_count: Optional[int] = None                    # at most this many instructions, below per_template

    @property
    def slots(self) -> List[str]:
        return re.findall(r"{(\w+)}", self.pattern)


def _table(*entries: Union[str, Template]) -> List[Template]:
    """Return the templates of one action: a plain string is an imperative that polite wrappers may surround."""
    return [Template(entry) if isinstance(entry, str) else entry for entry in entries]


def _bare(*patterns: str, max_count: Optional[int] = None) -> List[Template]:
    """Return templates that are never wrapped (questions, statements, sentences with their own opening)."""
    return [Template(pattern, wrap=False, max_count=max_count) for pattern in patterns]


def _fixed(pattern: str, **fields: str) -> Template:
    """Return a template whose words fix label fields, such as the direction of "back up"."""
    return Template(pattern, fixed=dict(fields))


# Non-commands that name a place or an object, so that a name alone does not make a command.
_UNKNOWN_WITH_NAMES = 10
# "turn around" is labelled as a counter-clockwise half turn, as the command parser reads it.
_TURN_AROUND = {"direction": "turn_left", "amount": "180deg"}

_EN_TEMPLATES: Dict[str, List[Template]] = {
    ACTION_NAVIGATE: _table(
        "go to {place}", "head to {place}", "navigate to {place}", "drive to {place}", "move to {place}",
        "walk over to {place}", "take me to {place}", "go back to {place}", "return to {place}",
        "make your way to {place}", *_bare("I want you to go to {place}"), "proceed to {place}",
        "get over to {place}", *_bare("your next stop is {place}", "let's go to {place}"),
        "head over to {place}", "go over to {place} and wait there",
        "go to {unknown_place}", "head to {unknown_place}", "take me to {unknown_place}",
        "navigate to {unknown_place}",
    ),
    ACTION_BRING: _table(
        "bring me {object}", "fetch {object}", "fetch me {object}", "get me {object}", "bring {object} to me",
        "bring me {object} from {place}", "fetch {object} from {place}", "go to {place} and bring me {object}",
        "go to {place} and get {object}", "grab me {object}", *_bare("I need {object}, can you bring it"),
        "hand me {object}", *_bare("can I have {object}"), "get {object} from {place}",
        "head to {place} and fetch {object}", "bring {object} over here", "go get {object}", "give me {object}",
        "bring me {surface}", "fetch {surface}", "bring me {unknown_object}", "fetch {unknown_object}",
        "go get {unknown_object}", "bring me {unknown_object} from {place}",
    ),
    ACTION_PICK: _table(
        "pick up {object}", "pick {object} up", "grab {object}", "take {object}", "lift {object}",
        "pick up {object} {at_place}", "grasp {object}", "get hold of {object}", "take hold of {object}",
        "grab {object} {at_place}", "go to {place} and pick up {object}", "lift {object} off the floor",
        "pick up {surface}", "grab {surface}", "pick up {unknown_object}", "grab {unknown_object}",
    ),
    ACTION_PLACE: _table(
        "put {object} {at_place}", "place {object} {at_place}", "leave {object} {at_place}",
        "drop {object} off {at_place}", "set {object} down {at_place}", "take {object} to {place}",
        "carry {object} to {place}", "move {object} to {place}", "put it {at_place}",
        "put {object} away {at_place}", "bring {object} to {place}", "store {object} {at_place}",
        "put it down {at_place}",
    ),
    ACTION_STOP: _table(
        "stop", "halt", "freeze", *_bare("stop right there"), "stop moving",
        *_bare("stop now", "stop immediately", "emergency stop"), "cancel that", "cancel the task", "abort",
        "don't move", "stay where you are", *_bare("hold on, stop", "wait, stop", "that's enough, stop"),
        "stand still", "stay still", *_bare("hold it right there"),
    ),
    ACTION_MOVE: _table(
        "go {move_dir} {distance}", "move {move_dir} {distance}", "drive {move_dir} {distance}",
        "roll {move_dir} {distance}", "go {move_dir}", "move {move_dir}", "go {distance} {move_dir}",
        "move {move_dir} by {distance}", _fixed("back up {distance}", direction="backward"),
        _fixed("back up", direction="backward"), "walk {move_dir} {distance}", "step {move_dir}",
        _fixed("drive straight ahead for {distance}", direction="forward"), "move {distance} {move_dir}",
        _fixed("reverse {distance}", direction="backward"), "turn {side}", "turn {side} {angle}",
        "rotate {side} by {angle}", "turn {angle} to the {side}", "turn to the {side}", "spin {side} {angle}",
        _fixed("turn around", **_TURN_AROUND), "make a {side} turn", "rotate {side}", "turn {side} by {angle}",
    ),
    ACTION_DESCRIBE: _table(
        *_bare("what do you see", "what can you see"), "describe the room", "describe what you see",
        "tell me what you see", *_bare("what is in front of you"), "look around and tell me what is there",
        *_bare("what is on {surface}", "what is {at_place}", "can you see {thing}", "do you see {thing}",
               "where is {thing}", "is {thing} {at_place}"),
        "look at {thing}", "describe {thing}", *_bare("what color is {thing}"), "take a look around",
        *_bare("what's around you", "what are you looking at"), "tell me about {place}",
        *_bare("what's on {surface} right now"),
    ),
    # Non-commands. Slots here only vary the wording: the label stays "unknown" with no object or place.
    ACTION_UNKNOWN: _bare(
        "hello", "hi there", "good morning", "good night", "how are you", "how are you doing today",
        "thank you", "thanks a lot", "thank you very much", "nice to meet you", "you are doing great",
        "never mind", "that's fine", "okay", "yes", "no", "maybe later", "I'm tired", "what's your name",
        "what time is it", "tell me a joke", "the weather is nice today", "it is raining outside",
        "I had a long day at work", "let me think about it", "sorry, I was talking to someone else",
        "turn on the lights", "play some music", "call my mother", "set an alarm for seven",
        "order a pizza for dinner",
        "the old house stood at the end of a quiet lane",
        "she folded the letter twice and slipped it into her coat",
        "he walked forward into the morning fog without looking back",
        "they had not spoken to each other since the winter began",
        "the river rose higher that spring than anyone could remember",
        "after supper the children ran out to play in the garden",
        "her brother never cared much for life in the city",
        "the captain turned left at the harbour and was gone",
        "it was the last train of the evening and the carriage was empty",
        "nobody in the village knew where the stranger had come from",
        "the letter arrived three days too late",
        "he stopped at the door and listened for a long time",
        "the kitchen smelled of fresh bread and strong coffee",
        "she brought him a cup of tea without saying a word",
        "the book lay open on the table all night",
        "ten meters of rope hung loose from the mast",
        "my grandmother kept the keys in a blue tin by the stove",
        "can you hear me", "I think it's going to snow tonight", "my favourite colour is green",
        "we are having guests this weekend", "did you sleep well", "the meeting has been moved to Thursday",
        "that was a great movie", "how much does this cost", "happy birthday", "see you tomorrow", "good job",
        "I'll be back in an hour", "the bus was late again this morning",
        "he read the newspaper slowly, page by page", "a cold wind came down from the mountains",
        "the garden was full of roses that summer", "she laughed and shook her head",
        "the door creaked open and a cat slipped inside",
        "we walked two miles along the beach before sunset", "the clock on the wall had stopped at midnight",
        "he turned right at the end of the street and kept walking",
        "in the morning the fields were white with frost",
        "the soldiers moved forward slowly through the trees", "one two three four five",
        "seven of hearts and the queen of spades",
    ) + _bare(
        "I bought {thing} yesterday", "{place} looks very clean today", "{thing} belongs to my sister",
        "I left {object} {at_place} last week", "there used to be {thing} {at_place}",
        max_count=_UNKNOWN_WITH_NAMES,
    ),
}

_ZH_TEMPLATES: Dict[str, List[Template]] = {
    ACTION_NAVIGATE: _table(
        "去{place}", "到{place}去", "去一下{place}", "走到{place}", "回{place}", "回到{place}", "前往{place}",
        "带我去{place}", "移动到{place}", "导航到{place}", "开到{place}去", "去{place}那边", "到{place}那里去",
        "过去{place}看看", "去{unknown_place}", "到{unknown_place}去", "带我去{unknown_place}",
    ),
    ACTION_BRING: _table(
        "把{object}拿给我", "给我拿{object}", "帮我拿一下{object}", "去{place}把{object}拿过来", "把{object}拿过来",
        "把{object}带给我", "给我把{object}拿来", *_bare("我想要{object}，帮我拿来"), "从{place}把{object}拿来",
        "去{place}拿{object}给我", "递给我{object}", "把{place}的{object}拿给我", "帮我把{object}取来",
        "去拿{object}给我", "把{surface}拿给我", "把{unknown_object}拿给我", "给我拿{unknown_object}",
        "帮我拿一下{unknown_object}",
    ),
    ACTION_PICK: _table(
        "拿起{object}", "把{object}拿起来", "捡起{object}", "抓起{object}", "把{object}捡起来", "抓住{object}",
        "拿起{place}的{object}", "去{place}拿起{object}", "把{place}的{object}捡起来", "把地上的{object}捡起来",
        "拿起{surface}", "拿起{unknown_object}", "把{unknown_object}捡起来",
    ),
    ACTION_PLACE: _table(
        "把{object}放到{place}", "把{object}放在{place}", "把{object}拿到{place}去", "把{object}送到{place}",
        "将{object}放进{place}", "把{object}带到{place}", "把它放到{place}", "把{object}放回{place}",
        "把{object}搬到{place}", "把{object}留在{place}",
    ),
    ACTION_STOP: _table(
        "停下", "停", "别动", "停止", "站住", "停下来", "不要动", *_bare("快停下"), "取消", "取消任务",
        *_bare("等一下，停", "紧急停止"), "别走了", "停住",
    ),
    ACTION_MOVE: _table(
        "{move_dir}走{distance}", "{move_dir}移动{distance}", "{move_dir}走",
        _fixed("前进{distance}", direction="forward"), _fixed("后退{distance}", direction="backward"),
        _fixed("前进", direction="forward"), _fixed("后退", direction="backward"), "{move_dir}挪{distance}",
        _fixed("往后退{distance}", direction="backward"), "{side}转", "向{side}转", "{side}转{angle}",
        "向{side}转{angle}", _fixed("掉头", **_TURN_AROUND), _fixed("转身", **_TURN_AROUND), "原地{side}转{angle}",
        _fixed("向前开{distance}", direction="forward"), _fixed("倒退{distance}", direction="backward"),
    ),
    ACTION_DESCRIBE: _table(
        *_bare("你看到了什么", "你能看到什么"), "描述一下这个房间", *_bare("前面有什么", "周围有什么"),
        "告诉我你看到了什么",
        *_bare("{surface}上有什么", "{place}有什么", "你能看到{thing}吗", "{thing}在哪里", "{thing}是什么颜色的"),
        "看看{thing}", "描述一下{thing}", "看一下四周",
    ),
    ACTION_UNKNOWN: _bare(
        "你好", "谢谢", "谢谢你", "早上好", "晚安", "今天天气很好", "外面在下雨", "我今天很累", "你叫什么名字",
        "现在几点了", "给我讲个笑话", "没关系", "好的", "不用了", "我在跟别人说话", "打开电灯", "放一首歌",
        "明天早上七点叫我起床",
        "他慢慢地向前走去，没有回头", "那天晚上，她一个人坐在窗前", "这本书讲的是一个老渔夫的故事",
        "他停下脚步，抬头看了看天空", "小时候我们常常在河边玩", "火车在黄昏时到站了", "村里没有人知道那个陌生人从哪里来",
        "信寄到的时候已经晚了三天", "厨房里飘着新鲜面包的香味", "她没说一句话，给他倒了一杯茶",
        "明天见", "生日快乐", "辛苦了", "这部电影很好看", "我们周末有客人来", "你听得到我说话吗",
        "他向右拐进了一条小巷", "风从山上吹下来", "那年夏天花园里开满了玫瑰", "她笑着摇了摇头",
        "我们沿着海边走了两公里", "墙上的钟停在了午夜", "一二三四五",
    ) + _bare(
        "我昨天在{place}", "{thing}是我妹妹的", "我喜欢{thing}", "{place}今天很干净",
        max_count=_UNKNOWN_WITH_NAMES,
    ),
}

TEMPLATES: Dict[str, Dict[str, List[Template]]] = {"en": _EN_TEMPLATES, "zh": _ZH_TEMPLATES}


def heldout_template_ids(language: str, action: str) -> Tuple[str, ...]:
    """Return the ids of the held-out templates of one language and action.

    The choice depends only on the template ids (ordered by a SHA-1 of the
    id), not on the generation seed, so instruction sets generated with
    different seeds hold out the same phrasings.
    """
    count = len(TEMPLATES[language][action])
    ids = [f"{language}.{action}.{index}" for index in range(count)]
    keep_out = max(1, int(round(HELDOUT_FRACTION * count)))
    return tuple(sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())[:keep_out])


# --- generation --------------------------------------------------------------------------

def generate_instructions(seed: int = 0, vocabulary: Optional[Vocabulary] = None,
                          per_template: int = DEFAULT_PER_TEMPLATE) -> List[Instruction]:
    """Generate up to `per_template` distinct instructions from every template of both languages.

    Templates without slots or polite variants yield fewer. The result is
    the same for the same seed, vocabulary and templates, and each template
    draws from its own random stream, so adding a template leaves the
    others' instructions unchanged. A text is kept once, and a text that
    both a held-out and a training template produce is kept only in the
    held-out split. Objects come from `vocabulary`: place uses graspable ones,
    bring and pick also name fixed furniture ("bring me the piano", which
    the planner rejects). A label names an object or place only when the
    vocabulary has the name, so "go to the garage" is a navigate command
    without a place.
    """
    if per_template < 1:
        raise ValueError(f"per_template must be at least 1, got {per_template!r}")
    vocabulary = vocabulary or load_vocabulary()
    fillers = _build_fillers(vocabulary)
    generated: List[Instruction] = []
    for language in LANGUAGES:
        for action in TASK_ACTIONS:
            heldout = set(heldout_template_ids(language, action))
            for index, template in enumerate(TEMPLATES[language][action]):
                template_id = f"{language}.{action}.{index}"
                split = "heldout" if template_id in heldout else "train"
                rng = np.random.default_rng([seed, zlib.crc32(template_id.encode())])
                count = round(per_template * PER_TEMPLATE_SCALE[language])
                if template.max_count is not None:
                    count = min(count, template.max_count)
                for text, label in _fill(template, action, fillers[language], _WRAPPERS[language], rng,
                                         max(count, 1), language):
                    generated.append(Instruction(text, language, label, template_id, split))
    return _deduplicate(generated)


def _fill(template: Template, action: str, fillers: Dict[str, FillerGroups],
          wrappers: Tuple[Sequence[str], Sequence[str]], rng: np.random.Generator, count: int,
          language: str) -> Iterable[Tuple[str, TaskLabel]]:
    """Yield up to `count` distinct (text, label) pairs of one template."""
    for slot in template.slots:
        if not fillers.get(slot):
            return   # the vocabulary has no names for this slot (for example no Mandarin place names)
    seen = set()
    # The first draws are plain: each value of the first slot in its main
    # form ("go to the kitchen"), without openings or endings, for up to
    # half of the count. Random draws fill the rest; they repeat when a
    # template has few combinations, and 8 tries per wanted text find nearly all.
    first_groups = fillers[template.slots[0]] if template.slots else []
    plain = min(len(first_groups), count // 2)
    for draw in range(8 * count):
        if len(seen) >= count:
            break
        fields: Dict[str, str] = dict(template.fixed)
        values = {}
        for slot in template.slots:
            if draw < plain and slot == template.slots[0]:
                group, position = first_groups[draw], 0
            else:
                group = fillers[slot][rng.integers(len(fillers[slot]))]
                position = rng.integers(len(group))
            surface, slot_fields = group[position]
            values[slot] = surface
            fields.update(slot_fields)
        text = template.pattern.format(**values)
        if template.wrap and draw >= plain:
            prefixes, suffixes = wrappers
            prefix, suffix = prefixes[rng.integers(len(prefixes))], suffixes[rng.integers(len(suffixes))]
            # No "please ... please" or "hand me ... for me": an ending whose words are already present is dropped.
            if set(suffix.strip(" ，").split()) & set((prefix + text).split()):
                suffix = ""
            text = prefix + text + suffix
        text = _tidy(text, language)
        if text in seen:
            continue
        seen.add(text)
        yield text, _label(action, fields)


def _label(action: str, fields: Dict[str, str]) -> TaskLabel:
    if action == ACTION_UNKNOWN:
        return TaskLabel(ACTION_UNKNOWN)
    return TaskLabel(action, fields.get("object", NONE), fields.get("place", NONE),
                     fields.get("direction", NONE), fields.get("amount", NONE))


def _tidy(text: str, language: str) -> str:
    if language == "zh":
        return re.sub(r"\s+", "", text)
    for word in _EN_BARE_PLACES:
        text = re.sub(rf"\b(to|into) {word}\b", word, text)   # "go to home" -> "go home"
    return " ".join(text.split())


def _deduplicate(instructions: List[Instruction]) -> List[Instruction]:
    by_text: Dict[Tuple[str, str], Instruction] = {}
    for instruction in instructions:
        key = (instruction.language, instruction.text)
        current = by_text.get(key)
        if current is None or (current.split == "train" and instruction.split == "heldout"):
            by_text[key] = instruction
    kept_ids = {id(instruction) for instruction in by_text.values()}
    return [instruction for instruction in instructions if id(instruction) in kept_ids]


def count_instructions(instructions: Sequence[Instruction]) -> Counter:
    """Return the number of instructions per (language, action, split)."""
    return Counter((i.language, i.label.action, i.split) for i in instructions)


def format_counts(instructions: Sequence[Instruction]) -> str:
    """Return a table of the counts per language, action and split."""
    counts = count_instructions(instructions)
    lines = [f"{'language':8} {'action':10} {'train':>6} {'heldout':>8}"]
    for language in LANGUAGES:
        for action in TASK_ACTIONS:
            lines.append(f"{language:8} {action:10} {counts[(language, action, 'train')]:6d} "
                         f"{counts[(language, action, 'heldout')]:8d}")
        total_train = sum(v for (lang, _, split), v in counts.items() if lang == language and split == "train")
        total_heldout = sum(v for (lang, _, split), v in counts.items() if lang == language and split == "heldout")
        lines.append(f"{language:8} {'total':10} {total_train:6d} {total_heldout:8d}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the instruction set and print its counts.")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the slot fillers")
    parser.add_argument("--per-template", type=int, default=DEFAULT_PER_TEMPLATE,
                        help="maximum number of instructions drawn from one template")
    parser.add_argument("--examples", type=int, default=0, help="also print this many random examples")
    args = parser.parse_args(argv)
    instructions = generate_instructions(args.seed, per_template=args.per_template)
    print(format_counts(instructions))
    if args.examples:
        rng = np.random.default_rng(args.seed)
        for index in rng.choice(len(instructions), size=min(args.examples, len(instructions)), replace=False):
            item = instructions[index]
            print(f"{item.template:18} {item.split:7} {item.text!r} -> {item.label.to_dict()}")


if __name__ == "__main__":
    main()
