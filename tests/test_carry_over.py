"""Carry-over (SPEC §8, issue 9): rows made with demonstrations are trained under the zero-shot
prompt; mixed groups; only the groups that need it are generated again; rows with nothing to
learn cost no forward. The real trainer on a tiny random model, with scripted rewards."""

import json
from pathlib import Path

import pytest
import torch

from tests import scripted_rewards
from toolexpander.cli import main
from toolexpander.hard_sampling.policy import HardSampleTracker, ShotSchedule
from toolexpander.hard_sampling.sampler import HardSampler, group_slots
from toolexpander.prompts import build_messages
from toolexpander.tasks.suite import build_suite
from toolexpander.trainer.trainer import carry_over_per_token_loss

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tiny-cpu.yaml")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def build_trainer(tmp_path, tiny_model_dir, monkeypatch, reward, peft_config=None, **fields):
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.trainer import trainer as trainer_module
    from toolexpander.trainer.config import ToolExpanderConfig

    monkeypatch.setattr(trainer_module, "get_reward", lambda name: reward)
    settings = {
        "output_dir": str(tmp_path),
        "mode": "hard_sampling_only",
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 8,
        "max_steps": 1,
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "reroll_all_fail": True,
        "demo_rollouts_per_group": 2,
    }
    settings.update(fields)
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    tasks = build_suite()["train"][:2]
    trainer = trainer_module.ToolExpanderTrainer(
        model, ToolExpanderConfig(**settings), tasks, processing_class=tokenizer, peft_config=peft_config
    )
    return trainer, tokenizer, tasks


def capture_loss_batches(trainer) -> list[dict]:
    """Every training batch `compute_loss` sees, cloned before the step changes anything."""
    batches = []
    original = trainer.compute_loss

    def spy(model, inputs, *args, **kwargs):
        batches.append({k: v.clone() if torch.is_tensor(v) else v for k, v in inputs.items()})
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = spy
    return batches


def completion_logp(model, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
    """log p(completion | prompt) per row."""
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention = torch.cat([prompt_mask, completion_mask], dim=1)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention).logits
    width = completion_ids.shape[1]
    logps = torch.log_softmax(logits[:, -width - 1 : -1].float(), dim=-1)
    token_logps = logps.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion_mask).sum(-1)


def count_generated_rows(monkeypatch) -> list[int]:
    """The rows of every generation pass TRL makes (a list that fills as the trainer runs)."""
    from trl import GRPOTrainer

    generated = []
    original = GRPOTrainer._generate_and_score_completions

    def count(self, inputs):
        generated.append(len(inputs))
        return original(self, inputs)

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", count)
    return generated


def prompt_texts(tokenizer, batch: dict) -> list[str]:
    return [
        tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(batch["prompt_ids"], batch["prompt_mask"])
    ]


def zero_shot_text(tokenizer, task: dict) -> str:
    ids = tokenizer.apply_chat_template(build_messages(task), add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    return tokenizer.decode(ids)


@pytest.mark.parametrize("carry_over", ["none", "swap", "swap_nll", "nll"])
def test_rows_made_with_demonstrations_are_trained_under_the_zero_shot_prompt(
    tmp_path, tiny_model_dir, monkeypatch, carry_over
):
    trainer, tokenizer, tasks = build_trainer(
        tmp_path, tiny_model_dir, monkeypatch, scripted_rewards.correct_with_demos, carry_over=carry_over
    )
    batches = capture_loss_batches(trainer)
    trainer.train()
    (batch,) = batches
    zero_shot = {zero_shot_text(tokenizer, task) for task in tasks}
    texts = prompt_texts(tokenizer, batch)
    # The re-rolled groups are mixed: 2 of 4 rollouts posed with demonstrations, rewarded 1.
    with_demos = batch["advantages"] > 0
    assert with_demos.sum() == 4
    if carry_over == "none":
        assert "swapped" not in batch
        assert all(text not in zero_shot for text, d in zip(texts, with_demos) if d)
    else:
        assert batch["swapped"].tolist() == with_demos.tolist()
        assert all(text in zero_shot for text in texts)  # every row: the zero-shot prompt
    assert all(text in zero_shot for text, d in zip(texts, with_demos) if not d)


@pytest.mark.parametrize("carry_over", ["swap", "swap_nll", "nll"])
def test_one_step_raises_log_p_of_the_rewarded_answer_given_the_zero_shot_prompt(
    tmp_path, tiny_model_dir, monkeypatch, carry_over
):
    trainer, _, _ = build_trainer(
        tmp_path,
        tiny_model_dir,
        monkeypatch,
        scripted_rewards.correct_with_demos,
        carry_over=carry_over,
        learning_rate=1e-3,
    )
    batches = capture_loss_batches(trainer)
    trainer.train()
    (batch,) = batches
    rows = batch["swapped"]
    tensors = [batch[k][rows] for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")]
    # The model before the step: reload the same tiny weights.
    from toolexpander.models import load_model_and_tokenizer

    before_model, _ = load_model_and_tokenizer(tiny_model_dir)
    before = completion_logp(before_model, *tensors)
    after = completion_logp(trainer.model, *tensors)
    assert (after > before).all(), (before, after)
    log = trainer.state.log_history[0]
    assert 0 < log["carry_over/importance_weight"] < 1
    assert log["carry_over/swapped_share"] == 0.5
    assert ("carry_over/nll_coef" in log) == (carry_over in ("swap_nll", "nll"))


def test_nll_keeps_only_the_log_likelihood_term():
    logps, advantages = torch.log(torch.tensor([[0.1, 0.5]])), torch.tensor([[2.0], [-1.0]])
    loss, _ = carry_over_per_token_loss(logps.expand(2, 2), advantages, 0.1, 3.0, policy_term=False)
    # Positive advantage: -lambda * A * log pi; negative advantage: nothing at all.
    assert torch.allclose(loss[0], -3.0 * 2.0 * logps[0])
    assert torch.equal(loss[1], torch.zeros(2))


def test_only_the_groups_that_need_it_are_generated_again(tmp_path, tiny_model_dir, monkeypatch):
    # Item 0001 has variance on its first visit, the other item fails: only its group is re-rolled.
    trainer, _, _ = build_trainer(
        tmp_path, tiny_model_dir, monkeypatch, scripted_rewards.varied_for_first_item, carry_over="swap"
    )
    generated = count_generated_rows(monkeypatch)
    trainer.train()
    assert generated == [8, 4]
    ledger = read_jsonl(tmp_path / "hard_samples.jsonl")
    rerolled = [row for row in ledger if row["round"] == 1]
    assert len(rerolled) == 1 and rerolled[0]["demo_rollouts"] == 2 and rerolled[0]["demo_successes"] == 2
    assert trainer.state.log_history[0]["rollouts/rerolled_groups"] == 1


def test_dapo_fill_regenerates_only_the_flat_groups(tmp_path, tiny_model_dir, monkeypatch):
    trainer, _, _ = build_trainer(
        tmp_path,
        tiny_model_dir,
        monkeypatch,
        scripted_rewards.varied_for_first_item,
        mode="dapo_filter",
        reroll_all_fail=False,
        demo_rollouts_per_group=None,
    )
    generated = count_generated_rows(monkeypatch)
    trainer.train()
    assert generated == [8, 4]


def test_a_batch_with_nothing_to_learn_skips_forward_and_backward(tmp_path, tiny_model_dir, monkeypatch):
    trainer, _, _ = build_trainer(
        tmp_path, tiny_model_dir, monkeypatch, scripted_rewards.never_correct, reroll_all_fail=False
    )
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    from trl import GRPOTrainer

    calls = []
    original = GRPOTrainer._compute_loss
    monkeypatch.setattr(GRPOTrainer, "_compute_loss", lambda *a: calls.append(1) or original(*a))
    trainer.train()
    assert calls == []
    assert all(torch.equal(before[name], p) for name, p in trainer.model.named_parameters())
    assert trainer.state.log_history[0]["skipped_zero_advantage_batches"] == 1.0


@pytest.mark.parametrize(
    "process_index, n_local, slots",
    [(0, 4, [0, 1, 2, 3]), (1, 4, [0, 1, 2, 3]), (0, 2, [0, 1]), (1, 2, [2, 3]), (1, 6, [2, 3, 0, 1, 2, 3])],
)
def test_group_slots_follow_the_global_layout(process_index, n_local, slots):
    assert group_slots(process_index, n_local, 4) == slots


def test_mixed_groups_pose_demonstrations_in_the_first_slots_only_across_two_processes():
    tracker = HardSampleTracker(ShotSchedule(start=2, cap=2))
    sampler = HardSampler([], tracker, None, demo_rollouts=1)
    tracker.record("a", 0, 4, step=1, shots=0)
    # Group "a" split over two processes, two rows each: only process 0's first row has demonstrations.
    shots = [[sampler.shots_for("a", slot) for slot in group_slots(rank, 2, 4)] for rank in (0, 1)]
    assert shots == [[2, 0], [0, 0]]


def test_mixed_group_metrics_separate_zero_shot_and_demo_rows():
    tracker = HardSampleTracker(ShotSchedule(start=2, cap=2))
    sampler = HardSampler([], tracker, _NoBank(), demo_rollouts=2)
    assert [sampler.shots_for("a", slot) for slot in range(4)] == [2, 2, 0, 0]  # posed mixed at once
    rows, metrics = sampler.observe(["a"] * 4, [2, 2, 0, 0], [1.0, 0.0, 0.0, 0.0], ["x"] * 4, 4, step=1)
    assert (rows[0]["demo_rollouts"], rows[0]["demo_successes"], rows[0]["shots"]) == (2, 1, 2)
    # Judged on its zero-shot rollouts: still hard, although a rollout with demonstrations was right.
    assert rows[0]["hard"] and (rows[0]["successes"], rows[0]["num_generations"]) == (1, 4)
    _, _ = sampler.observe(["a"] * 4, [2, 2, 0, 0], [0.0, 0.0, 1.0, 0.0], ["x"] * 4, 4, step=2)
    assert sampler.shots_for("a", 0) == 1  # a zero-shot success: one demonstration fewer
    assert metrics["rollouts/correct_with_demos"] == 0.5 and metrics["rollouts/correct_zero_shot"] == 0.0


class _NoBank:
    def add_rollout(self, item_id, completion):
        pass


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--carry_over", "sideways"], "carry_over must be one of"),
        (["--demo_rollouts_per_group", "5"], "demo_rollouts_per_group must be in"),
        (["--carry_over", "swap", "--beta", "0.1"], "carry_over needs beta 0"),
    ],
)
def test_bad_carry_over_configs_exit_2(tmp_path, tiny_model_dir, capsys, overrides, message):
    argv = ["train", "--config", RECIPE, "--model_name_or_path", tiny_model_dir, "--build_tiny_model", "false"]
    assert main([*argv, "--output_dir", str(tmp_path), *overrides]) == 2
    assert message in capsys.readouterr().err
