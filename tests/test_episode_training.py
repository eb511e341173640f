"""Multi-turn episodes as training items (issue 25, `toolexpander.trainer.episodes`): the real
trainer loop on a tiny random model, TRL's generation patched with scripted policies, on the two
BFCL items of `tests.bfcl_episodes`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.bfcl_episodes import BASE, KEPT_ITEMS, ground_truth_replies, hermes_reply
from toolexpander.prompts import render_answer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bfcl_eval") is None,
    reason="needs the bfcl-eval wheel (its data and simulators)",
)

ASSISTANT = "<|im_start|>assistant\n"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu.yaml"


def first_turn_only_replies(record: dict) -> list[str]:
    """The first turn played right, then no call at all."""
    first = record["ground_truth"][0]
    return [render_answer(first), *[render_answer([])] * 20]


def never_calls(record: dict) -> list[str]:
    return [render_answer([])] * 20


def script_generation(monkeypatch, records: list[dict], policy) -> list[str]:
    """Patch TRL's generation: the reply to a prompt is ``policy(record)[i]``, the record told by its
    first user message (the last such in the prompt, after any demonstration episodes) and i by the
    replies it holds since. Returns the prompts generated from (a list that fills)."""
    from trl import GRPOTrainer

    prompts: list[str] = []

    def generate(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tokenizer, replies = self.processing_class, []
        for ids in prompt_ids:
            text = tokenizer.decode(ids)
            prompts.append(text)
            starts = {text.rfind(r["turns"][0][0]["content"]): r for r in records}
            at = max(starts)
            record = starts[at]
            reply = policy(record)[text[at:].count(ASSISTANT) - 1]
            replies.append(tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
        return replies, None

    monkeypatch.setattr(GRPOTrainer, "_generate_single_turn", generate)
    return prompts


def build_trainer(tmp_path, tiny_model_dir, records, **fields):
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.trainer.config import ToolExpanderConfig
    from toolexpander.trainer.trainer import ToolExpanderTrainer

    settings = {
        "output_dir": str(tmp_path),
        "mode": "grpo",
        "num_generations": 2,
        "per_device_train_batch_size": 4,
        "max_completion_length": 64,
        "max_steps": 1,
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
    }
    settings.update(fields)
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    trainer = ToolExpanderTrainer(model, ToolExpanderConfig(**settings), records, processing_class=tokenizer)
    return trainer, tokenizer


def spy(trainer, name: str) -> list:
    """What ``trainer.<name>`` returns (rewards) or is given (loss batches), call by call."""
    seen, original = [], getattr(trainer, name)

    def wrapped(*args, **kwargs):
        if name == "compute_loss":
            seen.append({k: v.clone() if torch.is_tensor(v) else v for k, v in args[1].items()})
            return original(*args, **kwargs)
        result = original(*args, **kwargs)
        seen.append(result.clone())
        return result

    setattr(trainer, name, wrapped)
    return seen


@pytest.mark.parametrize(
    ("prompt_format", "render_calls"), [("tooln1", render_answer), ("native", hermes_reply)]
)
def test_a_policy_that_makes_the_ground_truth_calls_scores_one_per_episode(
    tmp_path, qwen_tiny_dir, records, monkeypatch, prompt_format, render_calls
):
    def policy(record: dict) -> list[str]:
        return ground_truth_replies(record, render_calls)

    script_generation(monkeypatch, records, policy)
    trainer, tokenizer = build_trainer(tmp_path, qwen_tiny_dir, records, prompt_format=prompt_format)
    rewards, batches = spy(trainer, "_calculate_rewards"), spy(trainer, "compute_loss")
    trainer.train()
    (reward,) = rewards
    assert reward[:, 0].tolist() == [1.0] * 4
    assert trainer.state.log_history[0]["episodes/turns_passed"] == 1.0
    (batch,) = batches
    mask, tool_mask = batch["completion_mask"], batch["tool_mask"]
    by_prompt = {trainer.prompt_spec.render(tokenizer, record): record for record in records}
    seen, env_texts = [], {}
    for row in range(4):  # TRL shuffles the rows: each is told by its prompt
        prompt = tokenizer.decode(batch["prompt_ids"][row][batch["prompt_mask"][row].bool()])
        record = by_prompt[prompt]
        ids = batch["completion_ids"][row]
        model_text = tokenizer.decode(ids[(mask[row] * tool_mask[row]).bool()])
        env_text = tokenizer.decode(ids[(mask[row] * (1 - tool_mask[row])).bool()])
        # The loss sees exactly the replies the policy wrote; results and user turns are masked out.
        assert model_text == "".join(reply + tokenizer.eos_token for reply in policy(record))
        assert "<tool_response>" in env_text and "<tool_response>" not in model_text
        env_texts[record["id"]] = env_text
        assert record["turns"][1][0]["content"] in env_text
        seen.append(record["id"])
    assert sorted(seen) == sorted(KEPT_ITEMS * 2)
    # The first turn's first call (ls) comes back as a tool turn, out of the loss.
    assert '{"current_directory_content": ["workspace"]}' in env_texts[records[0]["id"]]


@pytest.mark.parametrize(
    ("episode_reward", "expected"), [("all_turns", [0.0, 0.0]), ("turn_share", [0.25, 0.5])]
)
def test_a_policy_that_stops_after_the_first_turn_scores_zero(
    tmp_path, tiny_model_dir, records, monkeypatch, episode_reward, expected
):
    script_generation(monkeypatch, records, first_turn_only_replies)
    trainer, _ = build_trainer(tmp_path, tiny_model_dir, records, episode_reward=episode_reward)
    rewards = spy(trainer, "_calculate_rewards")
    trainer.train()
    (reward,) = rewards
    assert reward[:, 0].tolist() == [expected[0]] * 2 + [expected[1]] * 2


def test_hard_episodes_are_posed_again_after_a_demonstration_episode(
    tmp_path, tiny_model_dir, records, monkeypatch
):
    prompts = script_generation(monkeypatch, records, never_calls)
    trainer, tokenizer = build_trainer(
        tmp_path,
        tiny_model_dir,
        records,
        mode="hard_sampling_only",
        reroll_all_fail=True,
        demo_rollouts_per_group=1,
        carry_over="swap",
    )
    batches = spy(trainer, "compute_loss")
    trainer.train()
    ledger = [json.loads(line) for line in (tmp_path / "hard_samples.jsonl").read_text().splitlines()]
    # All-fail groups (first visits with one demonstration slot) are re-rolled with more shots.
    assert [(row["round"], row["shots"], row["demo_rollouts"]) for row in ledger] == [(0, 1, 1)] * 2 + [
        (1, 2, 1)
    ] * 2
    # Posed with the other item's gold episode first: its user turns and its calls' results.
    other = {records[0]["id"]: records[1], records[1]["id"]: records[0]}
    for record in records:
        own = record["turns"][0][0]["content"]
        demo = other[record["id"]]["turns"][0][0]["content"]
        first_steps = [p for p in prompts if p.endswith(own + "<|im_end|>\n" + ASSISTANT)]
        with_demo = [p for p in first_steps if demo in p]
        assert with_demo and all("<tool_response>" in p.split(own)[0] for p in with_demo)
    # Carry-over trains every row under its bare episode prompt.
    (batch,) = batches
    texts = [tokenizer.decode(ids[m.bool()]) for ids, m in zip(batch["prompt_ids"], batch["prompt_mask"])]
    assert set(texts) == {trainer.prompt_spec.render(tokenizer, record) for record in records}
    assert batch["swapped"].any()


def test_an_episode_run_refuses_mixed_records_and_tools_added_mid_episode(records):
    from toolexpander.tasks.suite import build_suite
    from toolexpander.trainer.episodes import is_episode_run

    assert is_episode_run(records) and not is_episode_run(build_suite()["train"][:2])
    with pytest.raises(ValueError, match="not both"):
        is_episode_run([*records, build_suite()["train"][0]])
    added = [{**records[0], "added_tools": [[], [records[0]["tools"][0]], [], []]}]
    with pytest.raises(ValueError, match="miss_func"):
        is_episode_run(added)


def test_toolexpander_train_runs_the_tiny_model_through_episodes(tmp_path, tiny_model_dir, small_data):
    from toolexpander.cli import main

    out = tmp_path / "run"
    argv = [
        "train",
        "--config",
        str(RECIPE),
        "--model_name_or_path",
        tiny_model_dir,
        "--build_tiny_model",
        "false",
    ]
    argv += ["--dataset", str(small_data / BASE), "--mode", "hard_sampling_only", "--output_dir", str(out)]
    argv += ["--num_generations", "2", "--per_device_train_batch_size", "4", "--max_completion_length", "8"]
    assert main([*argv, "--max_steps", "1"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (row,) = [row for row in rows if "episodes/turns_passed" in row]
    # A random model writes no call (and rarely ends a reply in 8 tokens): every turn fails.
    assert row["episodes/turns_passed"] == 0.0 and row["reward/correct"] == 0.0


def test_the_self_exemplify_bonus_is_refused_for_episodes(tmp_path, tiny_model_dir, records):
    with pytest.raises(ValueError, match="self-exemplify bonus scores one reply"):
        build_trainer(tmp_path, tiny_model_dir, records, mode="toolexpander")
