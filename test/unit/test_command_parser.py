"""Tests of the vocabulary and the rule-based command parser, in English and Mandarin."""
import math
import pathlib

import pytest

from omni_agent.model.command_parser import (
    SOURCE_NAME,
    CommandParser,
    describe,
    normalise_english,
    parse_chinese_number,
)
from omni_agent.model.result import (
    ACTION_BRING,
    ACTION_MOVE,
    ACTION_NAVIGATE,
    ACTION_PICK,
    ACTION_PLACE,
    ACTION_STOP,
    ACTION_UNKNOWN,
)
from omni_agent.model.vocabulary import load_vocabulary

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
PLACES_FILE = DATA_DIR / "places.yaml"
OBJECTS_FILE = DATA_DIR / "objects.yaml"
FOOT_M = 0.3048


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary(str(PLACES_FILE), str(OBJECTS_FILE))


@pytest.fixture(scope="module")
def parser(vocabulary):
    return CommandParser(vocabulary)


def check(result, action, object_label="", place="", forward_m=0.0, left_m=0.0, turn_deg=0.0):
    assert result.action == action
    assert result.object_label == object_label
    assert result.place == place
    assert result.forward_m == pytest.approx(forward_m)
    assert result.left_m == pytest.approx(left_m)
    assert math.degrees(result.turn_rad) == pytest.approx(turn_deg)


# --- English -------------------------------------------------------------------

NAVIGATE_EN = [
    ("Go to the kitchen.", "kitchen"),
    ("go to the kitchen counter", "kitchen"),
    ("navigate to the living room", "living_room"),
    ("go to the lounge", "living_room"),
    ("go to the couch", "living_room"),
    ("go to the bedroom", "bedroom"),
    ("go to the bed room", "bedroom"),
    ("go to the bathroom", "bathroom"),
    ("head to the restroom", "bathroom"),
    ("go to the toilet", "bathroom"),
    ("go to the entrance", "entrance"),
    ("go to the front door", "entrance"),
    ("walk to the hallway", "entrance"),
    ("go to the charging station", "charging_station"),
    ("return to the charger", "charging_station"),
    ("go to the home base", "charging_station"),
    ("Robot, please drive to the dock!", "charging_station"),
]


@pytest.mark.parametrize("text, place", NAVIGATE_EN)
def test_english_navigate(parser, text, place):
    result = parser.parse(text)

    check(result, ACTION_NAVIGATE, place=place)
    assert result.confidence == 1.0
    assert result.language == "en"


def test_english_navigate_unknown_place(parser):
    result = parser.parse("go to the garage")

    check(result, ACTION_NAVIGATE, place="garage")
    assert result.confidence < 1.0
    assert "garage" in result.detail


MOVE_EN = [
    ("go forward ten meters", 10.0, 0.0),
    ("Go forward 10 meters.", 10.0, 0.0),
    ("move forward two metres", 2.0, 0.0),
    ("go forward twenty five meters", 25.0, 0.0),
    ("go forward ten point five meters", 10.5, 0.0),
    ("go forward 0.5 meters", 0.5, 0.0),
    ("go forward half meter", 0.5, 0.0),
    ("go forward a meter", 1.0, 0.0),
    ("go forward", 1.0, 0.0),
    ("go 2 meters forward", 2.0, 0.0),
    ("go back three meters", -3.0, 0.0),
    ("step back one meter", -1.0, 0.0),
    ("go left one meter", 0.0, 1.0),
    ("move right 1.5 meters", 0.0, -1.5),
    ("go forward 3 feet", 3 * FOOT_M, 0.0),
    ("go forward one foot", FOOT_M, 0.0),
    ("move forward 50 cm", 0.5, 0.0),
    ("move forward fifty centimeters", 0.5, 0.0),
    ("go right 30 centimeters", 0.0, -0.3),
    ("drive forward 4 steps", 2.0, 0.0),
]


@pytest.mark.parametrize("text, forward_m, left_m", MOVE_EN)
def test_english_move(parser, text, forward_m, left_m):
    check(parser.parse(text), ACTION_MOVE, forward_m=forward_m, left_m=left_m)


# NOTE: each case below loses its distance and yields the 1 m default.
# "backward", "backwards" and "forwards" lose it because "back" and "forward"
# come first in the direction alternation of _MOVE. In "back up", the direction
# match stops at "back". "half a meter" becomes "half 1 meter", which no
# amount pattern matches.
MOVE_EN_WRONG_DISTANCE = [
    ("move backward 2 meters", -2.0),
    ("go backwards three meters", -3.0),
    ("go forwards 2 meters", 2.0),
    ("back up two meters", -2.0),
    ("move forward half a meter", 0.5),
]


@pytest.mark.parametrize("text, forward_m", MOVE_EN_WRONG_DISTANCE)
def test_english_move_distance_dropped(parser, text, forward_m):
    check(parser.parse(text), ACTION_MOVE, forward_m=forward_m)


TURN_EN = [
    ("turn left", 90.0),
    ("turn right", -90.0),
    ("turn around", 180.0),
    ("turn left 45 degrees", 45.0),
    ("turn right by 90 degrees", -90.0),
    ("turn left ninety degrees", 90.0),
    ("rotate right 30 deg", -30.0),
    ("spin left 1.5 radians", math.degrees(1.5)),
]


@pytest.mark.parametrize("text, turn_deg", TURN_EN)
def test_english_turn(parser, text, turn_deg):
    result = parser.parse(text)

    check(result, ACTION_MOVE, turn_deg=turn_deg)
    assert result.detail == "turn"


@pytest.mark.parametrize("text", [
    "stop", "Stop!", "please stop", "halt", "freeze", "cancel", "abort", "emergency stop",
    "don't move", "stay still", "Stop moving now.",
])
def test_english_stop(parser, text):
    result = parser.parse(text)

    check(result, ACTION_STOP)
    assert result.confidence == 1.0


OBJECT_EN = [
    ("bring me the apple", ACTION_BRING, "apple", ""),
    ("get me a banana", ACTION_BRING, "banana", ""),
    ("bring me the mug", ACTION_BRING, "cup", ""),
    ("give me the remote control", ACTION_BRING, "remote", ""),
    ("bring me an apple from the kitchen", ACTION_BRING, "apple", "kitchen"),
    ("fetch the cup from the kitchen", ACTION_BRING, "cup", "kitchen"),
    ("go to the kitchen and bring me the apple", ACTION_BRING, "apple", "kitchen"),
    ("go to the bedroom and get me the book", ACTION_BRING, "book", "bedroom"),
    ("bring me the piano", ACTION_BRING, "piano", ""),
    ("pick up the cup", ACTION_PICK, "cup", ""),
    ("take the bottle", ACTION_PICK, "bottle", ""),
    ("pick up the book from the bedroom", ACTION_PICK, "book", "bedroom"),
    ("go to the kitchen then pick up the apple", ACTION_PICK, "apple", "kitchen"),
    ("put the cup on the table", ACTION_PLACE, "cup", "table"),
    ("place the apple in the kitchen", ACTION_PLACE, "apple", "kitchen"),
    ("drop the ball in the bedroom", ACTION_PLACE, "ball", "bedroom"),
    ("put it in the kitchen", ACTION_PLACE, "", "kitchen"),
]


@pytest.mark.parametrize("text, action, object_label, place", OBJECT_EN)
def test_english_object_command(parser, text, action, object_label, place):
    result = parser.parse(text)

    check(result, action, object_label=object_label, place=place)
    assert result.confidence == 1.0


def test_english_unknown_object(parser):
    result = parser.parse("bring me the unicorn")

    check(result, ACTION_BRING, object_label="unicorn")
    assert result.confidence < 1.0


@pytest.mark.parametrize("text", ["hello there", "what time is it", "sing a song", "sit on the chair", ""])
def test_english_unknown(parser, text):
    result = parser.parse(text)

    check(result, ACTION_UNKNOWN)
    assert result.confidence == 0.0
    assert result.detail


def test_result_records_transcript(parser):
    result = parser.parse("Go to the kitchen.")

    assert result.transcript == "Go to the kitchen."
    assert result.source == SOURCE_NAME


@pytest.mark.parametrize("text, expected", [
    ("Go forward TEN metres!", "go forward 10 meters"),
    ("walk forward 1,000 meters", "walk forward 1000 meters"),
    ("Robot, could you turn left?", "turn left"),
    ("go forward twenty one point five meters", "go forward 21.5 meters"),
])
def test_normalise_english(text, expected):
    assert normalise_english(text) == expected


# --- Mandarin ------------------------------------------------------------------

CHINESE = [
    ("去厨房", ACTION_NAVIGATE, "", "kitchen", 0.0, 0.0, 0.0),
    ("去除防", ACTION_NAVIGATE, "", "kitchen", 0.0, 0.0, 0.0),    # same pinyin "qu chu fang"
    ("去廚房", ACTION_NAVIGATE, "", "kitchen", 0.0, 0.0, 0.0),    # traditional characters
    ("去 厨房。", ACTION_NAVIGATE, "", "kitchen", 0.0, 0.0, 0.0),
    ("去卧室", ACTION_NAVIGATE, "", "bedroom", 0.0, 0.0, 0.0),
    ("去卫生间", ACTION_NAVIGATE, "", "bathroom", 0.0, 0.0, 0.0),
    ("回充电桩", ACTION_NAVIGATE, "", "charging_station", 0.0, 0.0, 0.0),
    ("向前走两米", ACTION_MOVE, "", "", 2.0, 0.0, 0.0),
    ("往前走三米", ACTION_MOVE, "", "", 3.0, 0.0, 0.0),
    ("向前走十五米", ACTION_MOVE, "", "", 15.0, 0.0, 0.0),
    ("向前走2米", ACTION_MOVE, "", "", 2.0, 0.0, 0.0),
    ("向前走", ACTION_MOVE, "", "", 1.0, 0.0, 0.0),
    ("后退一米", ACTION_MOVE, "", "", -1.0, 0.0, 0.0),
    ("向左走一米", ACTION_MOVE, "", "", 0.0, 1.0, 0.0),
    ("往右走半米", ACTION_MOVE, "", "", 0.0, -0.5, 0.0),
    ("左转九十度", ACTION_MOVE, "", "", 0.0, 0.0, 90.0),
    ("右转九十度", ACTION_MOVE, "", "", 0.0, 0.0, -90.0),
    ("右转四十五度", ACTION_MOVE, "", "", 0.0, 0.0, -45.0),
    ("左转", ACTION_MOVE, "", "", 0.0, 0.0, 90.0),
    ("掉头", ACTION_MOVE, "", "", 0.0, 0.0, 180.0),
    ("停下", ACTION_STOP, "", "", 0.0, 0.0, 0.0),
    ("别动", ACTION_STOP, "", "", 0.0, 0.0, 0.0),
    ("取消", ACTION_STOP, "", "", 0.0, 0.0, 0.0),
    ("去厨房把苹果拿给我", ACTION_BRING, "apple", "kitchen", 0.0, 0.0, 0.0),
    ("给我拿香蕉", ACTION_BRING, "banana", "", 0.0, 0.0, 0.0),
    ("帮我拿手机", ACTION_BRING, "phone", "", 0.0, 0.0, 0.0),
    ("拿起杯子", ACTION_PICK, "cup", "", 0.0, 0.0, 0.0),
    ("去厨房拿苹果", ACTION_PICK, "apple", "kitchen", 0.0, 0.0, 0.0),
    ("把杯子放到厨房", ACTION_PLACE, "cup", "kitchen", 0.0, 0.0, 0.0),
    ("你好", ACTION_UNKNOWN, "", "", 0.0, 0.0, 0.0),
    ("去车库", ACTION_UNKNOWN, "", "", 0.0, 0.0, 0.0),
]


@pytest.mark.parametrize("text, action, object_label, place, forward_m, left_m, turn_deg", CHINESE)
def test_chinese_command(parser, text, action, object_label, place, forward_m, left_m, turn_deg):
    result = parser.parse(text)

    check(result, action, object_label, place, forward_m, left_m, turn_deg)
    assert result.language == "zh"


# NOTE: 客厅 (living room) reads "ke ting", and the stop rule matches the
# syllable "ting" (停) anywhere, so every command naming the living room stops.
@pytest.mark.parametrize("text", ["去客厅", "到客厅去", "回客厅"])
def test_chinese_living_room(parser, text):
    check(parser.parse(text), ACTION_NAVIGATE, place="living_room")


def test_chinese_one_and_a_half_meters(parser):
    check(parser.parse("向前走一米半"), ACTION_MOVE, forward_m=1.5)


def test_chinese_text_with_english_language(parser):
    result = parser.parse("去厨房", language="en")

    check(result, ACTION_NAVIGATE, place="kitchen")
    assert result.language == "zh"


@pytest.mark.parametrize("token, value", [
    ("一", 1.0), ("两", 2.0), ("二", 2.0), ("十", 10.0), ("十五", 15.0), ("二十", 20.0),
    ("二十五", 25.0), ("九十", 90.0), ("一百", 100.0), ("一百零五", 105.0), ("两百三十", 230.0),
    ("半", 0.5), ("零", 0.0), ("3", 3.0), ("2.5", 2.5),
])
def test_parse_chinese_number(token, value):
    assert parse_chinese_number(token) == value


@pytest.mark.parametrize("token", ["abc", "三点五", "一个", "-3"])
def test_parse_chinese_number_invalid(token):
    assert parse_chinese_number(token) is None


def test_describe_move(parser):
    action, details = describe(parser.parse("turn left 45 degrees"))

    assert action == ACTION_MOVE
    assert "turn=45 deg" in details


def test_describe_bring(parser):
    action, details = describe(parser.parse("bring me an apple from the kitchen"))

    assert action == ACTION_BRING
    assert details == "object=apple place=kitchen"


# --- vocabulary ------------------------------------------------------------------

def test_vocabulary_places(vocabulary):
    assert vocabulary.place_names() == [
        "bathroom", "bedroom", "charging_station", "entrance", "kitchen", "living_room"]
    assert vocabulary.frame_id == "map"


def test_vocabulary_kitchen_pose(vocabulary):
    pose = vocabulary.place_poses["kitchen"]

    assert (pose.x, pose.y) == (4.0, 2.5)
    assert pose.yaw == pytest.approx(math.pi / 2, abs=1e-4)
    assert pose.frame_id == "map"


def test_vocabulary_graspable(vocabulary):
    assert vocabulary.graspable["apple"]
    assert not vocabulary.graspable["piano"]


def test_default_config_loads():
    default = load_vocabulary()

    assert default.places
    assert default.objects
    assert set(default.place_poses) == set(default.places)


def test_default_config_places_navigable():
    default = load_vocabulary()
    parser = CommandParser(default)

    for key, entry in default.places.items():
        for name in entry.english:
            result = parser.parse(f"go to the {name}")
            assert result.action == ACTION_NAVIGATE, name
            assert result.place == key, name


@pytest.mark.parametrize("text, key", [
    ("the coffee cup", "cup"), ("水瓶", "bottle"), ("橘子", "orange"), ("the fridge", "refrigerator"),
])
def test_find_object(vocabulary, text, key):
    assert vocabulary.find_object(text) == key


def test_find_place_prefers_longest(vocabulary, tmp_path):
    places = tmp_path / "places.yaml"
    places.write_text(
        "places:\n"
        "  door: {pose: {x: 1, y: 0}}\n"
        "  back_door: {pose: {x: 2, y: 0}, aliases: [back door]}\n", encoding="utf-8")

    custom = load_vocabulary(str(places))

    assert custom.find_place("go to the back door") == "back_door"
    assert custom.find_place("go to the door") == "door"


def test_load_custom_frame_and_yaw(tmp_path):
    places = tmp_path / "places.yaml"
    places.write_text("frame_id: floor2\nplaces:\n  lab: {pose: {x: 1.5, y: -2}}\n", encoding="utf-8")

    custom = load_vocabulary(str(places))
    pose = custom.place_poses["lab"]

    assert (pose.x, pose.y, pose.yaw) == (1.5, -2.0, 0.0)
    assert pose.frame_id == "floor2"
    assert custom.frame_id == "floor2"


def test_load_missing_file(tmp_path):
    missing = tmp_path / "absent.yaml"

    with pytest.raises(FileNotFoundError) as error:
        load_vocabulary(str(missing))

    assert str(missing) in str(error.value)


def test_load_missing_vocabulary_file(tmp_path):
    missing = tmp_path / "absent_objects.yaml"

    with pytest.raises(FileNotFoundError) as error:
        load_vocabulary(vocabulary_file=str(missing))

    assert str(missing) in str(error.value)


def test_load_invalid_yaml(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("places:\n  kitchen: {pose: [x: 1\n", encoding="utf-8")

    with pytest.raises(ValueError) as error:
        load_vocabulary(str(broken))

    assert str(broken) in str(error.value)
    assert "not valid YAML" in str(error.value)


def test_load_top_level_list(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- kitchen\n- bedroom\n", encoding="utf-8")

    with pytest.raises(ValueError) as error:
        load_vocabulary(str(listed))

    assert str(listed) in str(error.value)


@pytest.mark.parametrize("spec", ["{aliases: [cellar]}", "{pose: {x: 1}}", "{pose: [1, 2]}", "null"])
def test_load_place_without_pose(tmp_path, spec):
    places = tmp_path / "places.yaml"
    places.write_text(f"places:\n  basement: {spec}\n", encoding="utf-8")

    with pytest.raises(ValueError) as error:
        load_vocabulary(str(places))

    message = str(error.value)
    assert "'basement'" in message
    assert str(places) in message
