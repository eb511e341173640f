"""``toolexpander eval --model M --bench bfcl:multi_turn_*``: BFCL's per-turn protocol run with our
prompts, readers and safe dispatcher (`toolexpander.episodes.turns`), on the two BFCL items
of `tests.bfcl_episodes`."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.bfcl_episodes import KEPT_ITEMS, ground_truth_replies, hermes_reply
from toolexpander.cli import main
from toolexpander.episodes import turns as multi_turn
from toolexpander.evaluation.runner import EvalConfig, run_eval
from toolexpander.prompts import render_answer
from toolexpander.tasks import bfcl
from toolexpander.tasks import bfcl_multi_turn as mt

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bfcl_eval") is None,
    reason="needs the bfcl-eval wheel (its data and simulators)",
)


def test_a_tiny_random_model_runs_two_episodes_end_to_end(tiny_model_dir, small_data, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "eval",
        "--bench",
        "bfcl:multi_turn_base",
        "--data-dir",
        str(small_data),
        "--model",
        tiny_model_dir,
    ]
    assert main([*argv, "--max_new_tokens", "8", "--out", str(out)]) == 0
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert [item["id"] for item in items] == list(KEPT_ITEMS)
    for item, turns in zip(items, (4, 2), strict=True):
        assert item["valid"] is False  # a random model makes no call
        assert len(item["turns"]) == len(item["replies"]) == len(item["turns_valid"]) == turns
        assert all(len(replies) >= 1 for replies in item["replies"]) and item["stopped"] is None
    results = json.loads((out / "results.json").read_text())
    assert results["categories"] == {"multi_turn_base": {"accuracy": 0.0, "correct": 0, "n": 2}}
    assert results["config"]["call_format"] == "tooln1"
    assert any(note.startswith("BFCL v4 overall left out") for note in results["notes"])
    assert any(
        note.startswith("multi_turn left out: not run: multi_turn_miss_func") for note in results["notes"]
    )
    assert "| multi_turn_base | 2 | 0.00 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("prompt_format", "render_calls", "result_turn"),
    [
        ("tooln1", render_answer, "<|im_start|>user\n<tool_response>\n"),
        ("native", hermes_reply, "<|im_start|>user\n<tool_response>\n"),
    ],
)
def test_a_policy_that_makes_the_ground_truth_calls_passes(
    qwen_tiny_dir, small_data, records, monkeypatch, prompt_format, render_calls, result_turn
):
    from toolexpander.evaluation import generation

    record = records[0]
    replies, prompts = ground_truth_replies(record, render_calls), []

    def scripted(model, tokenizer, batch, *args, **kwargs):
        prompts.extend(batch)
        return [replies.pop(0) for _ in batch]

    monkeypatch.setattr(generation, "generate_completions", scripted)
    config = EvalConfig(
        bench="bfcl:multi_turn_base",
        data_dir=str(small_data),
        limit=1,
        model=qwen_tiny_dir,
        prompt_format=prompt_format,
    )
    results = run_eval(config)
    assert results["categories"]["multi_turn_base"]["correct"] == 1 and replies == []
    # The second step sees the result of the first turn's call (ls) as a tool turn of the template.
    assert result_turn + '{"current_directory_content": ["workspace"]}' in prompts[1]
    assert prompts[1].endswith("<|im_start|>assistant\n")


def test_vllm_runs_the_episode_from_rendered_tokens(qwen_tiny_dir, small_data, records, install_fake_vllm):
    replies = ground_truth_replies(records[0], hermes_reply)
    llms = install_fake_vllm(qwen_tiny_dir, lambda prompt: replies.pop(0))
    config = EvalConfig(
        bench="bfcl:multi_turn_base",
        data_dir=str(small_data),
        limit=1,
        model="org/model",
        backend="vllm",
        prompt_format="native",
    )
    results = run_eval(config)
    assert results["categories"]["multi_turn_base"]["correct"] == 1 and replies == []
    assert results["config"]["call_format"] == "hermes"
    assert all(set(prompt) == {"prompt_token_ids"} for prompts, _ in llms[0].calls for prompt in prompts)


# ------------------------------------------------------------------------ the protocol, unit by unit


def _run(records: list[dict], reply, fits=lambda prompt: True) -> tuple[dict, list[dict]]:
    """Episodes where every step gets ``reply(posed record)``; also the records as posed."""
    posed: list[dict] = []

    def render(record: dict) -> str:
        posed.append(record)
        return str(len(posed) - 1)

    def generate(prompts: list[str]) -> list[str]:
        return [reply(posed[int(prompt)]) for prompt in prompts]

    return multi_turn.run_episodes(records, generate, render, fits, "tooln1"), posed


def test_a_miss_func_turn_offers_the_held_out_functions_with_bfcls_message():
    (record,) = mt.load_categories(bfcl.default_data_dir(), ["multi_turn_miss_func"])[
        "multi_turn_miss_func"
    ].records[:1]
    turn = next(index for index, tools in enumerate(record["added_tools"]) if tools)
    episodes, posed = _run([record], lambda posed: render_answer([]))
    assert len(episodes[record["id"]]["turns"]) == len(record["turns"])
    before, at = posed[turn - 1], posed[turn]  # one step per turn: a reply without calls
    added = {tool["name"] for tool in record["added_tools"][turn]}
    assert added.isdisjoint(tool["name"] for tool in before["tools"])
    assert added <= {tool["name"] for tool in at["tools"]}
    assert at["messages"][-1] == {"role": "user", "content": mt.ADDED_FUNCTIONS_MESSAGE}


def test_more_than_twenty_steps_with_calls_force_quit_the_episode(records):
    record = records[0]
    episodes, _ = _run([record], lambda posed: render_answer([{"name": "pwd", "arguments": {}}]))
    episode = episodes[record["id"]]
    assert episode["stopped"] == multi_turn.STEP_LIMIT
    assert len(episode["turns"]) == 1 and len(episode["turns"][0]) == mt.MAX_STEPS_PER_TURN + 1
    assert mt.check_episode(record, episode["turns"])["error_type"] == "multi_turn:force_terminated"


def test_a_prompt_past_the_episode_budget_ends_the_episode(records):
    episodes, posed = _run(records[:1], lambda posed: render_answer([]), fits=lambda prompt: False)
    assert episodes[records[0]["id"]] == {
        "turns": [[]],
        "replies": [[]],
        "stopped": multi_turn.EPISODE_TOKENS,
    }
    assert len(posed) == 1


HOSTILE_CALLS = [  # (call, its error result)
    ({"name": "__class__", "arguments": {}}, "unknown function '__class__'"),
    ({"name": "_load_scenario", "arguments": {"scenario": {}}}, "unknown function '_load_scenario'"),
    ({"name": "os.system", "arguments": {"command": "touch /tmp/pwned"}}, "unknown function 'os.system'"),
    (
        {"name": "cd", "arguments": {"folder": "x" * 10_000_000}},
        "arguments longer than 100,000 characters as JSON",
    ),
]


def test_hostile_replies_get_error_results_and_no_exception(records):
    record = records[0]
    hostile = [call for call, _ in HOSTILE_CALLS]
    replies = iter([render_answer(hostile), render_answer([{"name": "pwd", "arguments": {}}] * 10_000)])
    episodes, posed = _run([record], lambda posed: next(replies, render_answer([])))
    results = [message["content"] for message in posed[1]["messages"] if message["role"] == "tool"]
    assert results == [f"Error during execution: {error}" for _, error in HOSTILE_CALLS]
    # 10,000 calls in one step: the cap ends the turn, and the turn fails for too many calls.
    turns = episodes[record["id"]]["turns"]
    assert len(turns[0]) == 10_004 and len(turns) == len(record["turns"])
    assert mt.check_episode(record, turns)["error_type"] == "multi_turn:too_many_calls"
    assert posed[2]["messages"][-1] == record["turns"][1][0]  # the next user turn came
