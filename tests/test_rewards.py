"""The rewards: Tool-N1's binary reward rule by rule (SPEC §2), ToolRL's fine-grained reward,
the self-exemplifying bonus, the TRL calling convention and the registry."""

import functools
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.errors import UserError
from toolexpander.evaluation.scoring import score_item
from toolexpander.prompts import render_answer, render_calls
from toolexpander.rewards import (
    REWARDS,
    get_reward,
    self_exemplify,
    self_exemplify_score,
    tool_n1,
    tool_n1_score,
    toolrl,
    toolrl_score,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

T = "<think>reasoning</think>\n"
F = {"name": "f", "arguments": {"a": 1, "b": "x"}}
G = {"name": "g", "arguments": {}}


def answer(calls, think: str = "reasoning") -> str:
    return f"<think>{think}</think>\n<tool_call>{json.dumps(calls)}</tool_call>"


def call(name="f", **arguments):
    return {"name": name, "arguments": arguments}


TOOL_N1_CASES = [
    # (what it checks, completion text, answer, expected)
    ("exact", answer([F]), [F], 1.0),
    (
        "argument key order",
        T + '<tool_call>[{"name": "f", "arguments": {"b": "x", "a": 1}}]</tool_call>',
        [F],
        1.0,
    ),
    (
        "nested key order",
        answer([call(p={"y": 1, "z": [2]})]),
        [{"name": "f", "arguments": {"p": {"z": [2], "y": 1}}}],
        1.0,
    ),
    ("call order", answer([G, F]), [F, G], 1.0),
    (
        "item key order",
        T + '<tool_call>[{"arguments": {"a": 1, "b": "x"}, "name": "f"}]</tool_call>',
        [F],
        1.0,
    ),
    ("duplicate predicted", answer([F, F]), [F], 0.0),
    ("duplicate expected", answer([F]), [F, F], 0.0),
    ("duplicates both", answer([F, F]), [F, F], 1.0),
    ("same size, other multiset", answer([F, G]), [F, F], 0.0),
    ("string vs number", answer([call(a="5")]), [call(a=5)], 0.0),
    ("int vs float", answer([call(a=1.0)]), [call(a=1)], 0.0),
    ("bool vs int", answer([call(a=True)]), [call(a=1)], 0.0),
    ("null vs missing", answer([call(a=1, b=None)]), [call(a=1)], 0.0),
    ("extra argument", answer([call(a=1, c=2)]), [call(a=1)], 0.0),
    ("missing argument", answer([call(a=1)]), [call(a=1, b=2)], 0.0),
    ("list order inside a value", answer([call(a=[1, 2])]), [call(a=[2, 1])], 0.0),
    ("wrong name", answer([call("h", a=1, b="x")]), [F], 0.0),
    (
        "NaN equals NaN as JSON text",
        T + '<tool_call>[{"name": "f", "arguments": {"a": NaN}}]</tool_call>',
        '[{"name": "f", "arguments": {"a": NaN}}]',
        1.0,
    ),
    ("two empty lists", answer([]), [], 1.0),
    ("empty predicted", answer([]), [F], 0.0),
    ("empty expected", answer([F]), [], 0.0),
    ("string-encoded list", T + f"<tool_call>{json.dumps(json.dumps([F]))}</tool_call>", [F], 1.0),
    ("dict instead of list", T + f"<tool_call>{json.dumps(F)}</tool_call>", [F], 1.0),
    ("string-encoded dict", T + f"<tool_call>{json.dumps(json.dumps(F))}</tool_call>", [F], 1.0),
    (
        "doubly encoded empty string is no call (Tool-N1 quirk)",
        T + '<tool_call>"\\"\\""</tool_call>',
        [],
        1.0,
    ),
    ("the last block wins", answer([G]) + "\n<tool_call>" + json.dumps([F]) + "</tool_call>", [F], 1.0),
    ("an earlier right block does not count", answer([F]) + "<tool_call>[]</tool_call>", [F], 0.0),
    ("an unparsable last block is no answer", answer([F]) + "<tool_call>[oops]</tool_call>", [F], 0.0),
    ("an unclosed trailing block is ignored", answer([F]) + "<tool_call>[]", [F], 1.0),
    (
        "lazy match keeps a nested opening tag",
        T + "<tool_call>[<tool_call>" + json.dumps([F]) + "</tool_call>",
        [F],
        0.0,
    ),
    ("no think at all", f"<tool_call>{json.dumps([F])}</tool_call>", [F], 0.0),
    ("unclosed think", "<think>reasoning\n" + f"<tool_call>{json.dumps([F])}</tool_call>", [F], 0.0),
    ("closing tag only", "reasoning</think>" + f"<tool_call>{json.dumps([F])}</tool_call>", [F], 0.0),
    (
        "think tags in reverse order still pass",
        f"</think>x<think><tool_call>{json.dumps([F])}</tool_call>",
        [F],
        1.0,
    ),
    (
        "think after the call still passes",
        f"<tool_call>{json.dumps([F])}</tool_call><think>x</think>",
        [F],
        1.0,
    ),
    (
        "cut: answer after the last assistant marker",
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n" + answer([F]),
        [F],
        1.0,
    ),
    (
        "cut: think only before the marker",
        "<think>x</think><|im_start|>assistant\n" + f"<tool_call>{json.dumps([F])}</tool_call>",
        [F],
        0.0,
    ),
    (
        "cut: right call only before the marker",
        answer([F]) + "<|im_start|>assistant\n" + answer([G]),
        [F],
        0.0,
    ),
    (
        "cut: the last marker counts",
        answer([G]) + "<|im_start|>assistant" + answer([G]) + "<|im_start|>assistant" + answer([F]),
        [F],
        1.0,
    ),
    ("non-dict item", answer([F, ["g", {}]]), [F], 0.0),
    ("number items", T + "<tool_call>[1]</tool_call>", [F], 0.0),
    ("missing arguments", answer([{"name": "f"}]), [{"name": "f"}], 0.0),
    ("missing name", answer([{"arguments": {}}]), [{"arguments": {}}], 0.0),
    ("parameters instead of arguments", answer([{"name": "f", "parameters": F["arguments"]}]), [F], 0.0),
    ("extra keys in an item are ignored", answer([{**F, "id": "call_1", "type": "function"}]), [F], 1.0),
    (
        "arguments as a JSON string are not an object",
        answer([{"name": "f", "arguments": json.dumps(F["arguments"])}]),
        [F],
        0.0,
    ),
    (
        "non-object arguments compare as JSON",
        answer([{"name": "f", "arguments": [1, "a"]}]),
        [{"name": "f", "arguments": [1, "a"]}],
        1.0,
    ),
    ("unhashable name", answer([{"name": ["f"], "arguments": {}}]), [{"name": ["f"], "arguments": {}}], 0.0),
    ("pretty-printed JSON", T + "<tool_call>\n" + json.dumps([F], indent=4) + "\n</tool_call>", [F], 1.0),
    ("Unicode spaces stripped", T + "<tool_call>\u00a0" + json.dumps([F]) + "\u2003</tool_call>", [F], 1.0),
    (
        "Unicode values, escaped or not",
        T + '<tool_call>[{"name": "météo", "arguments": {"v": "Z\\u00fcrich 🙂"}}]</tool_call>',
        [{"name": "météo", "arguments": {"v": "Zürich 🙂"}}],
        1.0,
    ),
    ("bare number", T + "<tool_call>42</tool_call>", [F], 0.0),
    ("null", T + "<tool_call>null</tool_call>", [], 0.0),
    ("true", T + "<tool_call>true</tool_call>", [], 0.0),
    ("a plain string", T + '<tool_call>"f(a=1)"</tool_call>', [F], 0.0),
    (
        "Python literal, not JSON",
        T + "<tool_call>[{'name': 'f', 'arguments': {'a': 1, 'b': 'x'}}]</tool_call>",
        [F],
        0.0,
    ),
    ("trailing comma", T + "<tool_call>[" + json.dumps(F) + ",]</tool_call>", [F], 0.0),
    ("empty block", T + "<tool_call></tool_call>", [], 0.0),
    ("no block", T + "The answer is f(a=1).", [F], 0.0),
    ("deep nesting", T + "<tool_call>" + "[" * 50_000 + "</tool_call>", [], 0.0),
    ("huge integer", T + "<tool_call>[" + "7" * 5000 + "]</tool_call>", [], 0.0),
    ("empty text", "", [], 0.0),
]


@pytest.mark.parametrize(
    "text, gold, expected", [case[1:] for case in TOOL_N1_CASES], ids=[c[0] for c in TOOL_N1_CASES]
)
def test_tool_n1_rules(text, gold, expected):
    assert tool_n1_score(text, gold) == expected
    assert tool_n1_score(text, json.dumps(gold) if not isinstance(gold, str) else gold) == expected


@pytest.mark.parametrize(
    "gold, expected",
    [
        ([F], 1.0),
        (json.dumps([F]), 1.0),
        (json.dumps(json.dumps([F])), 1.0),  # double-encoded JSON text is decoded once more
        (json.dumps(F), 0.0),  # Tool-N1 never wraps a single expected call object
        ("not json", 0.0),
        (None, 0.0),
        (42, 0.0),
        ([["f", {}]], 0.0),
        ([{"name": "f"}], 0.0),
    ],
)
def test_tool_n1_answer_forms(gold, expected):
    assert tool_n1_score(answer([F]), gold) == expected


def test_an_empty_object_as_answer_matches_no_call_as_in_tool_n1():
    assert tool_n1_score(answer([]), "{}") == 1.0


@given(st.permutations([F, G, call(a=2), call("h", z=[1, {"q": None}])]))
def test_tool_n1_ignores_call_order(calls):
    assert tool_n1_score(answer(calls), [F, G, call(a=2), call("h", z=[1, {"q": None}])]) == 1.0


@pytest.mark.skipif(not DATA.exists(), reason="shared data not present")
def test_tool_n1_on_api_bank_gold_answers():
    """Every gold answer of Hammer's API-Bank level-1 conversion, rendered by our prompt module
    in shuffled call order, scores 1 (ToolRL: its maximum); with one argument value changed it
    scores 0 (ToolRL: less)."""
    records = json.loads((DATA / "hammer/data/test/original/apibank_l1.json").read_text())
    rng = random.Random(0)
    changed_records = 0
    for record in records:
        gold = record["answers"]
        shuffled = rng.sample(gold, len(gold))
        assert tool_n1_score(render_answer(shuffled), json.dumps(gold)) == 1.0
        assert toolrl_score(render_answer(shuffled), gold) == 4.0
        changed = [dict(c, arguments=dict(c["arguments"])) for c in gold]
        if changed[0]["arguments"]:
            key, value = next(iter(changed[0]["arguments"].items()))
            changed[0]["arguments"][key] = value + " " if isinstance(value, str) else str(value)
            assert tool_n1_score(render_answer(changed), json.dumps(gold)) == 0.0
            assert toolrl_score(render_answer(changed), gold) < 4.0
            changed_records += 1
    assert len(records) == 399 and changed_records > 300


# --- toolrl ----------------------------------------------------------------------------------

A, B = call(a=1, b=2), call("g", c="x")

TOOLRL_CASES = [
    # (what, text, answer, expected): format (0/1) + 6 * score / best_possible - 3
    ("exact", answer([A]), [A], 1 + 3.0),
    ("one value wrong: 1 + (1 + 1) of 4", answer([call(a=1, b=3)]), [A], 1 + 6 * 3 / 4 - 3),
    ("one parameter missing: 1 + (0.5 + 1) of 4", answer([call(a=1)]), [A], 1 + 6 * 2.5 / 4 - 3),
    ("wrong name", answer([call("h", a=1, b=2)]), [A], 1 + -3.0),
    ("values compare with ==, so 1 == 1.0", answer([call(a=1.0, b=2)]), [A], 1 + 3.0),
    ("but '1' != 1", answer([call(a="1", b=2)]), [A], 1 + 6 * 3 / 4 - 3),
    ("order-free", answer([B, A]), [A, B], 1 + 3.0),
    ("one of two calls: names 1/2, A 3 of 4+2", answer([A]), [A, B], 1 + 6 * (0.5 + 3) / 6 - 3),
    (
        "a duplicate is matched once: 1 + 3 + 2 of 1+3+3",
        answer([A, A]),
        [A, call(a=2, b=2)],
        1 + 6 * 6 / 7 - 3,
    ),
    ("no call for no call", answer([]), [], 1 + 3.0),
    ("a call for no call", answer([A]), [], 1 + -3.0),
    ("no call for a call", answer([]), [A], 1 + -3.0),
    ("no think: format 0", f"<tool_call>{json.dumps([A])}</tool_call>", [A], 0 + 3.0),
    ("two blocks: format 0", answer([B]) + f"<tool_call>{json.dumps([A])}</tool_call>", [A], 0 + 3.0),
    ("text after the block: format 0", answer([A]) + " done", [A], 0 + 3.0),
    ("text before think: format 0", "Sure. " + answer([A]), [A], 0 + 3.0),
    (
        "im_end and what follows are cut",
        "<|im_start|>assistant\n" + answer([A]) + "<|im_end|>\ntrailing",
        [A],
        1 + 3.0,
    ),
    ("unparsable calls: lowest", answer([A])[:-14] + "</tool_call>", [A], 1 + -3.0),
    ("no block", "<think>x</think> I would call f.", [A], 0 + -3.0),
    ("arguments not an object", answer([{"name": "f", "arguments": "a=1"}]), [A], 1 + -3.0),
    ("unhashable name", answer([{"name": ["f"], "arguments": {}}]), [A], 1 + -3.0),
    ("malformed answer", answer([A]), "oops", 1 + -3.0),
    ("answer None", answer([A]), None, 1 + -3.0),
]


@pytest.mark.parametrize(
    "text, gold, expected", [c[1:] for c in TOOLRL_CASES], ids=[c[0] for c in TOOLRL_CASES]
)
def test_toolrl(text, gold, expected):
    assert toolrl_score(text, gold) == pytest.approx(expected)


# --- self_exemplify ---------------------------------------------------------------------------

EXAMPLE = '<example>Query: Weather in Oslo?\nCall: [{"name": "w", "arguments": {"city": "Oslo"}}]</example>'

BONUS_CASES = [
    # (what, text, requires_correct, expected with bonus 0.01)
    ("example and valid answer", answer([F], think=EXAMPLE), False, 0.01),
    ("a wrong answer still gets it", answer([G], think=EXAMPLE), False, 0.01),
    ("requires_correct and wrong", answer([G], think=EXAMPLE), True, 0.0),
    ("requires_correct and right", answer([F], think=EXAMPLE), True, 0.01),
    ("no call is a valid answer", answer([], think=EXAMPLE), False, 0.01),
    ("no example", answer([F]), False, 0.0),
    ("example outside the think block", answer([F]) + EXAMPLE, False, 0.0),
    ("example but no think block", EXAMPLE + f"<tool_call>{json.dumps([F])}</tool_call>", False, 0.0),
    ("example but no tool call", f"<think>{EXAMPLE}</think> done", False, 0.0),
    (
        "example but an unparsable call",
        f"<think>{EXAMPLE}</think><tool_call>[f(a=1)]</tool_call>",
        False,
        0.0,
    ),
    ("example but ill-formed items", answer([{"name": "f"}], think=EXAMPLE), False, 0.0),
    (
        "example without a query",
        answer([F], think='<example>Query: \nCall: [{"name": "w", "arguments": {}}]</example>'),
        False,
        0.0,
    ),
    (
        "example with an empty call list",
        answer([F], think="<example>Query: q\nCall: []</example>"),
        False,
        0.0,
    ),
    (
        "example with a non-JSON call",
        answer([F], think="<example>Query: q\nCall: w(city=1)</example>"),
        False,
        0.0,
    ),
    ("unclosed example", answer([F], think=EXAMPLE[: -len("</example>")]), False, 0.0),
    ("one good example among bad ones", answer([F], think="<example>bad</example>" + EXAMPLE), False, 0.01),
    (
        "single call object in the example",
        answer([F], think='<example>Query: q\nCall: {"name": "w", "arguments": {}}</example>'),
        False,
        0.01,
    ),
]


@pytest.mark.parametrize(
    "text, requires_correct, expected", [c[1:] for c in BONUS_CASES], ids=[c[0] for c in BONUS_CASES]
)
def test_self_exemplify_bonus(text, requires_correct, expected):
    assert self_exemplify_score(text, [F], requires_correct=requires_correct) == expected
    assert self_exemplify_score(text, [F], bonus=0.5, requires_correct=requires_correct) == expected * 50


def test_bonus_options_bind_with_partial_and_keep_the_name():
    reward = functools.partial(get_reward("self_exemplify"), bonus=0.25, requires_correct=True)
    texts = [answer([F], think=EXAMPLE), answer([G], think=EXAMPLE), answer([F])]
    assert reward(texts, [[F]] * 3) == [0.25, 0.0, 0.0]
    assert reward.func.__name__ == "self_exemplify"  # what TRL logs for a partial


# --- the TRL calling convention and the registry ----------------------------------------------

TRL_KWARGS = {
    "prompts": [[{"role": "user", "content": "q"}]] * 3,
    "completion_ids": [[1, 2]] * 3,
    "trainer_state": object(),
    "log_extra": print,
    "log_metric": print,
    "id": ["a", "b", "c"],
    "tools": [[]] * 3,
}


@pytest.mark.parametrize(
    "reward, expected",
    [(tool_n1, [1.0, 0.0, 0.0]), (toolrl, [4.0, -2.0, -3.0]), (self_exemplify, [0.01, 0.0, 0.0])],
)
def test_trl_style_calls(reward, expected):
    """Conversational completions, answers as JSON text (how the trainer stores them), and the
    keyword arguments TRL adds; the standard (string) format gives the same rewards."""
    texts = [answer([F], think=EXAMPLE), answer([G]), "no answer"]
    conversational = [[{"role": "assistant", "content": text}] for text in texts]
    answers = [json.dumps([F])] * 3
    assert reward(completions=conversational, answer=answers, **TRL_KWARGS) == pytest.approx(expected)
    assert reward(texts, [[F]] * 3, **TRL_KWARGS) == pytest.approx(expected)


def test_conversational_completion_uses_the_last_assistant_message():
    completion = [
        {"role": "assistant", "content": answer([G])},
        {"role": "tool", "content": "result"},
        {"role": "assistant", "content": [{"type": "text", "text": answer([F])}]},
    ]
    assert tool_n1([completion, [], [{"role": "assistant", "content": None}]], [[F]] * 3) == [1.0, 0.0, 0.0]


def test_registry_names_are_the_logged_names():
    assert sorted(REWARDS) == ["self_exemplify", "tool_n1", "toolrl"]
    for name, func in REWARDS.items():
        assert get_reward(name) is func and func.__name__ == name


@pytest.mark.parametrize(
    "path", ["toolexpander.rewards.rewards:tool_n1", "toolexpander.rewards.rewards.tool_n1"]
)
def test_get_reward_by_import_path(path):
    assert get_reward(path) is tool_n1


@pytest.mark.parametrize(
    "name, message",
    [
        ("nope", "tool_n1, toolrl, self_exemplify"),
        ("no_such_module:f", "cannot load"),
        ("toolexpander.rewards.rewards:missing", "cannot load"),
        ("toolexpander.rewards.rewards:TOOLRL_MAX", "not callable"),
    ],
)
def test_get_reward_errors(name, message):
    with pytest.raises(UserError, match=message):
        get_reward(name)


@pytest.mark.parametrize(
    "text",
    [
        "<think>" + "</think>" * 100_000 + "<tool_call>[]</tool_call>",
        "<think>" + "</think> " * 100_000 + "<tool_call>[]</tool_call>x",
        "<think>x</think>" + "<tool_call></tool_call>" * 100_000,
        "<think><example>Query: q" + "\n" * 100_000 + "</example></think><tool_call>[]</tool_call>",
    ],
)
def test_degenerate_outputs_score_in_linear_time(text):
    start = time.process_time()
    for score in (tool_n1_score, toolrl_score, self_exemplify_score):
        score(text, [])
    assert time.process_time() - start < 2.0


# --- no reward ever raises ---------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<example>",
        "</example>",
        "Query: q\n",
        "Call: ",
        "<|im_start|>assistant",
        "<|im_end|>",
        "[",
        "]",
        "{",
        "}",
        '{"name":',
        '"arguments":',
        '"f"',
        "{}",
        ",",
        ":",
        '"',
        "\\",
        " ",
        "\n",
        "null",
        "1",
        "NaN",
        '""',
        "é",
    ]
)
TEXTS = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=3)), max_size=40).map("".join))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "arguments", "a"]), inner, max_size=3)
    ),
    max_leaves=8,
)
ANSWERS = st.one_of(
    JSON, JSON.map(json.dumps), st.text(), st.lists(st.fixed_dictionaries({"name": JSON, "arguments": JSON}))
)


@settings(max_examples=300, deadline=None)
@given(TEXTS, ANSWERS)
def test_rewards_never_raise_and_stay_in_range(text, gold):
    assert tool_n1_score(text, gold) in (0.0, 1.0)
    assert -3.0 <= toolrl_score(text, gold) <= 4.0
    assert self_exemplify_score(text, gold) in (0.0, 0.01)
    assert self_exemplify_score(text, gold, requires_correct=True) in (0.0, 0.01)
    assert len(tool_n1([text, [{"role": "assistant", "content": text}]], [gold, gold])) == 2


def test_rewards_import_no_torch():
    """The rewards are pure Python: importing them (and the score command) loads no ML stack."""
    code = (
        "import sys, toolexpander.rewards, toolexpander.rewards.commands; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- evaluation's generic verdict is this reward -----------------------------------------------

CALL_LISTS = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["f", "g"]), "arguments": st.dictionaries(st.just("a"), JSON)}),
    max_size=2,
)


@pytest.mark.parametrize(
    "text, gold",
    [case[1:3] for case in TOOL_N1_CASES if isinstance(case[2], list)],
    ids=[c[0] for c in TOOL_N1_CASES if isinstance(c[2], list)],
)
def test_generic_task_verdict_is_tool_n1(text, gold):
    record = {"id": "x", "task": "generic", "answer": gold}
    assert score_item(record, text)["valid"] == (tool_n1_score(text, gold) == 1.0)


@settings(max_examples=200, deadline=None)
@given(st.one_of(TEXTS, CALL_LISTS.map(render_answer), CALL_LISTS.map(render_calls)), CALL_LISTS)
def test_generic_task_verdict_is_tool_n1_on_any_text(text, gold):
    for task in ("generic", "suite"):
        record = {"id": "x", "task": task, "answer": gold}
        assert score_item(record, text)["valid"] == (tool_n1_score(text, gold) == 1.0)
