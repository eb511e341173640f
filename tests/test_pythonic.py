"""The ``pythonic`` call format (Llama 3.2 / 4, vLLM's ``pythonic`` parser): golden replies,
hostile ones (never evaluated, never raising), and its place among the call formats."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.cli import main
from toolexpander.rewards import CALL_FORMATS, parse_calls, tool_n1
from toolexpander.rewards.call_formats import NATIVE_CALL_FORMATS, read_pythonic

F = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}
G = {"name": "g", "arguments": {"b": "x"}}

GOLDEN = [
    ("[get_weather(city='Paris', days=3)]", [F]),
    ("[get_weather(city=\"Paris\", days=3), g(b='x')]", [F, G]),
    ("[get_weather(city='Paris', days=3),\n g(b='x')]", [F, G]),
    ("[ping()]", [{"name": "ping", "arguments": {}}]),
    (
        "[f(a=[1, {'k': None}], b=True, c=-1.5, d={'x': [False]})]",
        [{"name": "f", "arguments": {"a": [1, {"k": None}], "b": True, "c": -1.5, "d": {"x": [False]}}}],
    ),
    ("<|python_start|>[get_weather(city='Paris', days=3)]<|python_end|>", [F]),  # Llama 4
    ("<|python_start|>[get_weather(city='Paris', days=3)]<|python_end|><|eom_id|>", [F]),
    ("[get_weather(city='Paris', days=3)]<|eot_id|>", [F]),  # Llama 3.2
    ("<|python_tag|>[get_weather(city='Paris', days=3)]", [F]),
    ("  [get_weather(city='Paris', days=3)]\n", [F]),
    ("No function fits this request.", []),
    ("I would call [get_weather(city='Paris')] but it is not needed.", []),  # prose first: vLLM's too
    ("[]", []),
    ("[1, 2, 3] are the numbers.", []),
    ("", []),
]

# Replies that look like a call list but cannot be read as one: None (wrong), never "no call".
BROKEN = [
    "[get_weather('Paris')]",  # positional: its name is unknown (vLLM drops it silently)
    "[get_weather(city=paris)]",  # a name, not a literal
    "[get_weather(city=__import__('os').system('touch /tmp/pwned'))]",
    "[get_weather(city=open('/etc/passwd').read())]",
    "[get_weather(city=(lambda: 'Paris')())]",
    "[get_weather(city=f'{1}')]",
    "[os.system('rm -rf /')]",  # a dotted name
    "[__import__('os').system('ls')]",
    "[get_weather(**{'city': 'Paris'})]",
    "[get_weather(city='Paris', city='Rome')]",
    "[get_weather(city=('Paris', 'Rome'))]",  # a tuple is not JSON
    "[get_weather(city={'Paris'})]",  # nor a set
    "[get_weather(city=b'Paris')]",  # nor bytes
    "[get_weather(city={1: 'Paris'})]",  # nor an integer key
    "[get_weather(days=1j)]",
    "[get_weather(city='Paris'), 3]",
    "[get_weather(city='Paris')",
    "[get_weather(city='Paris')] and then more",
    "[get_weather(city='Paris')]; [g(b='x')]",
    "[get_weather(city='Paris')]\nimport os",
    "[get_weather(city='Paris\x00')]",
    "[f(a=" + "9" * 5000 + ")]",  # an integer too long for Python to read
    "[f(a=" + "[" * 10_000 + "]" * 10_000 + ")]",  # nested past ast's parser
    "[f(a=" + "[" * 150 + "]" * 150 + ")]",  # within the parser, past MAX_DEPTH
    "[f(a='" + "x" * 10_000_000 + "')]",  # 10 MB: refused before ast sees it
    "[f(" + "(" * 100_000,
]


@pytest.mark.parametrize(("reply", "expected"), GOLDEN)
def test_golden_pythonic_replies(reply, expected):
    assert read_pythonic(reply) == expected
    assert parse_calls("<think>plan</think>" + reply, "pythonic") == expected


@pytest.mark.parametrize("reply", BROKEN, ids=[str(i) for i in range(len(BROKEN))])
def test_a_broken_or_hostile_call_list_is_none(reply):
    assert read_pythonic(reply) is None
    assert parse_calls("<think>.</think>" + reply, "pythonic") is None


def test_ten_thousand_calls_are_read_and_a_reply_past_the_length_cap_is_not():
    assert read_pythonic("[" + ", ".join(["f()"] * 10_000) + "]") == [{"name": "f", "arguments": {}}] * 10_000
    assert (
        read_pythonic("[" + ", ".join(f"f(i={i})" for i in range(10_000)) + "]") is None
    )  # 110,000 characters


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_reply_reads_as_calls_none_or_prose_without_raising(tail):
    for reply in (tail, "[f(" + tail, "[f(a=" + tail + ")]"):
        result = read_pythonic(reply)
        assert result is None or isinstance(result, list)


def test_pythonic_is_a_call_format_and_native_is_unchanged():
    assert "pythonic" in NATIVE_CALL_FORMATS and "pythonic" in CALL_FORMATS
    # native tells hermes from llama3_json only: a pythonic reply reads as prose there, as before.
    assert parse_calls("[get_weather(city='Paris', days=3)]", "native") == []


def test_rewards_score_pythonic_calls():
    answer = json.dumps([G, F])
    assert tool_n1(
        ["<think>p</think>[get_weather(city='Paris', days=3), g(b='x')]"], [answer], call_format="pythonic"
    ) == [1.0]
    assert tool_n1(
        ["<think>p</think>[get_weather(city='Paris', days='3')]"], [answer], call_format="pythonic"
    ) == [0.0]


def test_score_command_takes_pythonic(tmp_path, capsys):
    line = {"completion": "<think>p</think>[g(b='x')]", "answer": [G]}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(line) + "\n")
    assert main(["score", str(path), "--call_format", "pythonic"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["reward"] == 1.0
