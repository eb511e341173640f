"""Multi-turn training data read into episode records (`toolexpander.tasks.chat_episodes`): OpenAI
chat logs, ShareGPT dialogues (APIGen-MT / xLAM-2), glaive-function-calling-v2's raw text; every
fixture is written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolexpander.cli import main
from toolexpander.tasks import load_records

WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BOOK = {"name": "book", "description": "Book a table", "parameters": {"type": "object", "properties": {}}}
PARIS, OSLO = (
    {"name": "get_weather", "arguments": {"city": "Paris"}},
    {"name": "get_weather", "arguments": {"city": "Oslo"}},
)


def openai_call(call: dict, number: int) -> dict:
    arguments = json.dumps(call["arguments"])
    return {
        "id": f"c{number}",
        "type": "function",
        "function": {"name": call["name"], "arguments": arguments},
    }


OPENAI_LOG = {
    "id": "d1",
    "tools": [{"type": "function", "function": WEATHER}, {"type": "function", "function": BOOK}],
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [openai_call(PARIS, 1), openai_call(OSLO, 2)]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 20}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"temp": 5}'},
        {"role": "assistant", "content": "Paris 20, Oslo 5."},
        {"role": "user", "content": "Book in Paris then."},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "book", "arguments": {}}]},
        {"role": "tool", "content": "booked"},
        {"role": "assistant", "content": "Done."},
    ],
}


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def test_an_openai_chat_log_is_one_episode(tmp_path):
    result = load_records(write_jsonl(tmp_path / "chats.jsonl", [OPENAI_LOG]))  # told by messages + tools
    assert result.problems == []
    (record,) = result.records
    assert record["id"] == "chat_episodes-d1" and record["task"] == "chat_episode"
    assert record["tools"] == [WEATHER, BOOK] and record["answer"] is None
    assert record["turns"] == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Oslo?"},
        ],
        [{"role": "user", "content": "Book in Paris then."}],
    ]
    assert record["messages"] == record["turns"][0]
    assert record["steps"] == [
        [{"calls": [PARIS, OSLO], "results": ['{"temp": 20}', '{"temp": 5}']}],
        [{"calls": [{"name": "book", "arguments": {}}], "results": ["booked"]}],
    ]
    assert record["replies"] == ["Paris 20, Oslo 5.", "Done."]


SHAREGPT_LOG = {
    "system": "You are a travel agent.",
    "tools": json.dumps([WEATHER]),
    "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": json.dumps(PARIS)},
        {"from": "observation", "value": "sunny"},
        {"from": "gpt", "value": "Sunny."},
        {"from": "human", "value": "And Oslo?"},
        {"from": "function_call", "value": json.dumps(OSLO)},
        {"from": "observation", "value": "rain"},
        {"from": "function_call", "value": json.dumps([PARIS, OSLO])},
        {"from": "observation", "value": "sunny"},
        {"from": "observation", "value": "rain"},
        {"from": "gpt", "value": "Rain."},
    ],
}


def test_a_sharegpt_dialogue_is_an_episode_when_named_and_glaive_items_by_default(tmp_path):
    path = write_jsonl(tmp_path / "apigen_mt.jsonl", [SHAREGPT_LOG])
    (record,) = load_records(path, "chat_episodes").records
    assert record["turns"][0] == [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert record["steps"][1] == [
        {"calls": [OSLO], "results": ["rain"]},
        {"calls": [PARIS, OSLO], "results": ["sunny", "rain"]},
    ]
    assert record["replies"] == ["Sunny.", "Rain."]
    assert [r["id"] for r in load_records(path).records] == ["glaive-0-1", "glaive-0-5", "glaive-0-7"]


GLAIVE_SYSTEM = (
    "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
    + json.dumps(WEATHER, indent=4)
    + "\n\n"
    + json.dumps(BOOK, indent=4)
)
GLAIVE_CHAT = (
    "USER: Hi, what's the weather in Paris?\n\n\n"
    'ASSISTANT: <functioncall> {"name": "get_weather", "arguments": \'{"city": "Paris"}\'} <|endoftext|>\n\n\n'
    'FUNCTION RESPONSE: {"temp": 20}\n\n\n'
    "ASSISTANT: It is 20 degrees in Paris. <|endoftext|>\n\n\n"
    "USER: Book me a table at Chez L'Ami.\n\n\n"
    'ASSISTANT: Sure. <functioncall> {"name": "book", "arguments": \'{"place": "Chez L\'Ami"}\'} <|endoftext|>\n\n\n'
    'FUNCTION RESPONSE: {"status": "booked"}\n\n\n'
    "ASSISTANT: Your table is booked. <|endoftext|>\n"
)


def test_a_glaive_v2_chat_is_an_episode(tmp_path):
    rows = [
        {"system": GLAIVE_SYSTEM, "chat": GLAIVE_CHAT},
        {
            "system": "SYSTEM: You are a helpful assistant, with no access to external functions.",
            "chat": "USER: Hi\n\n\nASSISTANT: Hello! <|endoftext|>",
        },
    ]
    result = load_records(write_jsonl(tmp_path / "glaive_v2.jsonl", rows))  # told by system + chat
    assert result.problems == []  # the dialogue without calls yields no episode, and no problem
    (record,) = result.records
    assert record["id"] == "glaive_chat-0" and record["tools"] == [WEATHER, BOOK]
    assert record["turns"] == [
        [{"role": "user", "content": "Hi, what's the weather in Paris?"}],
        [{"role": "user", "content": "Book me a table at Chez L'Ami."}],
    ]
    assert record["steps"] == [
        [{"calls": [PARIS], "results": ['{"temp": 20}']}],
        [
            {
                "calls": [{"name": "book", "arguments": {"place": "Chez L'Ami"}}],
                "results": ['{"status": "booked"}'],
            }
        ],
    ]
    assert record["replies"] == ["It is 20 degrees in Paris.", "Your table is booked."]


def _with(messages: list) -> dict:
    return {**OPENAI_LOG, "messages": messages}


USER = {"role": "user", "content": "Weather?"}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            _with([USER, {"role": "assistant", "tool_calls": [{"name": "rm", "arguments": {}}]}]),
            "messages[1].tool_calls[0] calls 'rm', which is not among the offered tools",
        ),
        (
            _with([USER, {"role": "tool", "content": "x"}]),
            "messages[1]: a tool result with no call before it in its turn",
        ),
        (
            _with([{"role": "assistant", "content": "Hi"}, USER]),
            "messages[0]: assistant message before any user message",
        ),
        (
            _with(
                [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "book", "arguments": "{oops"}}],
                    },
                ]
            ),
            "broken messages[1].tool_calls[0].arguments JSON",
        ),
        (
            _with([USER, {"role": "assistant", "tool_calls": "book()"}]),
            "messages[1].tool_calls must be a list",
        ),
        (_with([USER, {"role": "narrator", "content": "x"}]), "messages[1]: unknown role 'narrator'"),
        ({**OPENAI_LOG, "tools": 5}, "'tools' must be a string or a list, got int"),
        (
            {**SHAREGPT_LOG, "messages": [{"from": "bot", "value": "x"}]},
            "messages[0]: unknown turn role 'bot'",
        ),
    ],
)
def test_a_row_that_is_not_an_episode_is_a_one_line_problem(tmp_path, capsys, row, reason):
    path = write_jsonl(tmp_path / "chats.jsonl", [OPENAI_LOG, row])
    assert main(["data", "validate", path, "--format", "chat_episodes"]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{path}:2: {reason}") and "\n" not in out


def test_validate_counts_the_episodes(tmp_path, capsys):
    path = write_jsonl(tmp_path / "chats.jsonl", [OPENAI_LOG, {**OPENAI_LOG, "id": "d2"}])
    assert main(["data", "validate", path]) == 0
    assert capsys.readouterr().out.strip() == "2 records"


def test_eval_scores_predictions_of_chat_episodes_per_turn(tmp_path, capsys):
    data = write_jsonl(tmp_path / "chats.jsonl", [OPENAI_LOG, {**OPENAI_LOG, "id": "d2"}])
    rows = [
        {
            "id": "chat_episodes-d1",
            "turns": [[OSLO, PARIS], [{"name": "book", "arguments": {}}]],
        },  # order-free
        {"id": "chat_episodes-d2", "turns": [[PARIS], [{"name": "book", "arguments": {}}]]},
    ]
    out = tmp_path / "out"
    argv = ["eval", "--bench", data, "--out", str(out)]
    assert main([*argv, "--predictions", write_jsonl(tmp_path / "p.jsonl", rows)]) == 0
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [(item["valid"], item["turns_valid"]) for item in items] == [
        (True, [True, True]),
        (False, [False, True]),
    ]
    assert json.loads((out / "results.json").read_text())["overall"] == 0.5
    assert main([*argv, "--model", "org/model"]) == 2
    assert "only BFCL's multi-turn episodes run with a model" in capsys.readouterr().err
