"""The real `ToolExpanderTrainer` on a tiny random model, on CPU: every mode, the hard-sample
wiring (escalation, fading, re-roll), the files a run writes, bad configs, and SIGKILL + resume."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from toolexpander.cli import main
from toolexpander.errors import UserError
from toolexpander.trainer.trainer import Handoff, truncate_jsonl_after_step

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tiny-cpu.yaml")
HARD_METRICS = ("hard/ratio", "hard/solved_ratio", "hard/demo_share", "hard/mean_shots", "hard/unsolved")


def train_argv(model_dir: str, out: Path, *overrides: str) -> list[str]:
    """``toolexpander train`` arguments for the tiny recipe on an already built model."""
    return [
        "train",
        "--config",
        RECIPE,
        "--model_name_or_path",
        model_dir,
        "--build_tiny_model",
        "false",
        "--output_dir",
        str(out),
        *overrides,
    ]


def train(tmp_path, tiny_model_dir, *overrides: str) -> Path:
    out = tmp_path / "run"
    assert main(train_argv(tiny_model_dir, out, "--max_steps", "2", "--save_strategy", "no", *overrides)) == 0
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "mode", ["toolexpander", "grpo", "dapo_filter", "hard_sampling_only", "self_exemplify_only"]
)
def test_every_mode_trains_two_steps_and_logs_its_metrics(tmp_path, tiny_model_dir, mode):
    # Every answer wrong: every group is hard, so demonstrations appear on step 2 where the mode uses them.
    out = train(
        tmp_path,
        tiny_model_dir,
        "--mode",
        mode,
        "--max_train_items",
        "2",
        "--correctness_reward",
        "tests.scripted_rewards:never_correct",
    )
    metrics = read_jsonl(out / "metrics.jsonl")
    train_rows = [m for m in metrics if "hard/ratio" in m]
    assert [m["step"] for m in train_rows] == [1, 2]
    for row in train_rows:
        for name in (*HARD_METRICS, "reward/correct", "lr", "reward"):
            assert name in row, name
        assert ("reward/bonus" in row) == (mode in ("toolexpander", "self_exemplify_only"))
    assert train_rows[1]["lr"] < train_rows[0]["lr"]  # exponential decay per step
    ledger = read_jsonl(out / "hard_samples.jsonl")
    assert all(set(row) >= {"id", "step", "round", "shots", "successes"} for row in ledger)
    shots = int(mode in ("toolexpander", "hard_sampling_only"))
    assert [(row["step"], row["shots"]) for row in ledger] == [(1, 0), (1, 0), (2, shots), (2, shots)]
    if mode == "dapo_filter":  # every group flat: a fill round regenerated the batch with fresh prompts
        assert train_rows[0]["rollouts/generated"] == 8 and train_rows[0]["hard/ratio"] == 1.0


@pytest.mark.parametrize(
    "mode", ["toolexpander", "grpo", "dapo_filter", "hard_sampling_only", "self_exemplify_only"]
)
def test_every_mode_moves_the_weights_when_rewards_vary(tmp_path, tiny_model_dir, mode):
    from safetensors.torch import load_file

    out = train(
        tmp_path, tiny_model_dir, "--mode", mode, "--max_steps", "1", "--correctness_reward",
        "tests.scripted_rewards:every_other_correct",
    )
    before, after = load_file(Path(tiny_model_dir, "model.safetensors")), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[name], after[name]) for name in before), f"{mode}: no weight changed"


def test_hard_items_escalate_to_the_cap(tmp_path, tiny_model_dir):
    out = train(
        tmp_path,
        tiny_model_dir,
        "--max_steps",
        "5",
        "--max_train_items",
        "2",
        "--correctness_reward",
        "tests.scripted_rewards:never_correct",
        "--shots_cap",
        "3",
    )
    ledger = read_jsonl(out / "hard_samples.jsonl")
    for item in {row["id"] for row in ledger}:
        assert [row["shots"] for row in ledger if row["id"] == item] == [0, 1, 2, 3, 3]
        assert [row["round"] for row in ledger if row["id"] == item] == [0, 1, 2, 3, 4]
    last = read_jsonl(out / "metrics.jsonl")[-2]  # the last training row (the final one is the summary)
    assert last["hard/ratio"] == 1.0 and last["hard/unsolved"] == 2 and last["hard/demo_share"] == 1.0


def test_solved_items_fade_back_to_zero_shot(tmp_path, tiny_model_dir):
    # Correct exactly when demonstrations are shown: 0 shots fails -> 1 shot solves -> back to 0.
    out = train(
        tmp_path,
        tiny_model_dir,
        "--max_steps",
        "4",
        "--max_train_items",
        "2",
        "--correctness_reward",
        "tests.scripted_rewards:correct_with_demos",
    )
    ledger = read_jsonl(out / "hard_samples.jsonl")
    for item in {row["id"] for row in ledger}:
        rows = [row for row in ledger if row["id"] == item]
        assert [row["shots"] for row in rows] == [0, 1, 0, 1]
        assert [row["successes"] for row in rows] == [0, 4, 0, 4]


def test_reroll_poses_all_fail_groups_again_in_the_same_step(tmp_path, tiny_model_dir):
    out = train(
        tmp_path,
        tiny_model_dir,
        "--max_steps",
        "1",
        "--max_train_items",
        "2",
        "--reroll_all_fail",
        "true",
        "--correctness_reward",
        "tests.scripted_rewards:correct_with_demos",
    )
    ledger = read_jsonl(out / "hard_samples.jsonl")
    assert sorted((row["shots"], row["successes"]) for row in ledger) == [(0, 0), (0, 0), (1, 4), (1, 4)]
    metrics = read_jsonl(out / "metrics.jsonl")[0]
    assert metrics["rollouts/rerolled_groups"] == 2
    assert metrics["rollouts/generated"] == 8  # the mean over both passes of 8 rollouts each


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--no_such_field", "1"], "no_such_field"),
        (["--num_generations", "3"], "num_generations"),
        (["--mode", "nonsense"], "mode must be one of"),
        (["--dataset", "missing/file.jsonl"], "does not exist"),
    ],
)
def test_bad_configs_exit_2_with_a_clear_message(tmp_path, tiny_model_dir, capsys, overrides, message):
    assert exit_code(train_argv(tiny_model_dir, tmp_path / "x", *overrides)) == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out


def test_missing_model_path_exits_2(tmp_path, capsys):
    assert exit_code(train_argv("./no/such/model", tmp_path / "x")) == 2
    assert "does not exist" in capsys.readouterr().err


def exit_code(argv: list[str]) -> int:
    """What the shell would see: `main`'s return value, or the status argparse exits with."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def _train_subprocess(out: Path, tiny_model_dir: str, *extra: str) -> subprocess.Popen:
    argv = train_argv(
        tiny_model_dir,
        out,
        "--max_steps",
        "6",
        "--save_steps",
        "2",
        "--max_train_items",
        "4",
        "--correctness_reward",
        "tests.scripted_rewards:correct_with_demos",
        # The carry-over state too: mixed groups, swapped prompts, the annealed NLL coefficient.
        "--carry_over",
        "swap_nll",
        "--demo_rollouts_per_group",
        "2",
        *extra,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (out.parent / f"{out.name}.log").open("a")  # a file, not a pipe nobody reads: that could block
    return subprocess.Popen(
        [sys.executable, "-m", "toolexpander", *argv], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_model_dir):
    reference = tmp_path / "reference"
    assert _train_subprocess(reference, tiny_model_dir).wait(timeout=300) == 0

    killed = tmp_path / "killed"
    process = _train_subprocess(killed, tiny_model_dir)
    ledger = killed / "hard_samples.jsonl"
    deadline = time.time() + 300
    # Kill once a checkpoint exists and the ledger already holds rows of the step after it.
    while time.time() < deadline and process.poll() is None:
        checkpoints = sorted(int(p.name.split("-")[1]) for p in killed.glob("checkpoint-*"))
        if checkpoints and ledger.is_file() and any(r["step"] > checkpoints[-1] for r in read_jsonl(ledger)):
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert (
        _train_subprocess(killed, tiny_model_dir, "--resume_from_checkpoint", "true").wait(timeout=300) == 0
    )

    assert read_jsonl(killed / "hard_samples.jsonl") == read_jsonl(reference / "hard_samples.jsonl")
    final = "checkpoint-6/toolexpander_state.json"
    assert json.loads((killed / final).read_text()) == json.loads((reference / final).read_text())
    steps = [m["step"] for m in read_jsonl(killed / "metrics.jsonl") if "hard/ratio" in m]
    assert steps == [1, 2, 3, 4, 5, 6]


def _run_killed_during_step_2(tmp_path, tiny_model_dir) -> tuple[Path, list[dict]]:
    """A 2-step run saved at each step, rolled back to checkpoint-1 as if killed during step 2 (whose
    rows its logs already hold); also the ledger the whole run wrote."""
    out = tmp_path / "run"
    assert main(train_argv(tiny_model_dir, out, "--max_steps", "2", "--save_steps", "1")) == 0
    shutil.rmtree(out / "checkpoint-2")
    return out, read_jsonl(out / "hard_samples.jsonl")


def _resume(out: Path, tiny_model_dir: str, *overrides: str) -> int:
    return exit_code(
        train_argv(tiny_model_dir, out, "--max_steps", "2", "--resume_from_checkpoint", "true", *overrides)
    )


def _train_steps(out: Path) -> list[int]:
    return [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "hard/ratio" in m]


def test_resume_drops_a_torn_last_line_with_a_warning(tmp_path, tiny_model_dir):
    out, ledger = _run_killed_during_step_2(tmp_path, tiny_model_dir)
    torn = []
    for name in ("hard_samples.jsonl", "metrics.jsonl"):
        torn.append(f"{out / name}:{len(read_jsonl(out / name)) + 1}: dropped the torn last line")
        with (out / name).open("ab") as handle:  # a kill in the middle of an append, even of a character
            handle.write('{"step": 2, "id": "é'.encode()[:-1])
    with pytest.warns(UserWarning) as caught:
        assert _resume(out, tiny_model_dir) == 0
    assert [str(w.message) for w in caught if "torn" in str(w.message)] == [
        f"{line} of a run killed while writing it" for line in torn
    ]
    assert read_jsonl(out / "hard_samples.jsonl") == ledger  # step 2's rows once, written anew
    assert _train_steps(out) == [1, 2]


def test_resume_refuses_a_checkpoint_without_our_state_unless_told(tmp_path, tiny_model_dir, capsys):
    out, ledger = _run_killed_during_step_2(tmp_path, tiny_model_dir)
    (out / "checkpoint-1" / "toolexpander_state.json").unlink()
    assert _resume(out, tiny_model_dir) == 2
    err = capsys.readouterr().err
    assert f"error: {out / 'checkpoint-1'} holds no toolexpander_state.json" in err
    assert "--resume_without_hard_sampling_state true" in err
    assert read_jsonl(out / "hard_samples.jsonl") == ledger  # refused before touching the logs
    with pytest.warns(UserWarning, match="hard sampling restarts from scratch"):
        assert _resume(out, tiny_model_dir, "--resume_without_hard_sampling_state", "true") == 0
    assert [row["step"] for row in read_jsonl(out / "hard_samples.jsonl")] == [row["step"] for row in ledger]
    assert _train_steps(out) == [1, 2]


ROWS = '{"step": 1, "id": "é\\ud800"}\n{"step": 2}\n\n{"step": 1}\n'


@pytest.mark.parametrize(
    "tail, torn_line",
    [
        ("", None),
        ('{"step": 1, "id": "c', 5),
        ('{"step": 1, "id": "c\n\n', 5),  # blank lines after it: still the last line
        ("{", 5),
    ],
)
def test_truncate_keeps_rows_up_to_the_step_and_drops_a_torn_last_line(tmp_path, tail, torn_line):
    path = tmp_path / "hard_samples.jsonl"
    path.write_text(ROWS + tail, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        truncate_jsonl_after_step(path, 1)
    assert [str(w.message) for w in caught] == (
        [f"{path}:{torn_line}: dropped the torn last line of a run killed while writing it"] if torn_line else []
    )
    assert read_jsonl(path) == [{"step": 1, "id": "é\ud800"}, {"step": 1}]


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"step": 1}\n{"step": 1, "id"\n{"step": 2}\n', "2: broken JSON: Expecting ':' delimiter"),
        ('{"step": 1}\n{"id": "a"}\n', "2: a row without an integer 'step'"),
        ('{"step": 1}\n["step", 1]\n{"step": 2}\n', "2: a row without an integer 'step'"),
    ],
)
def test_truncate_refuses_a_damaged_line_that_is_not_torn(tmp_path, text, reason):
    path = tmp_path / "metrics.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=re.escape(f"{path}:{reason}; resuming needs this line mended or deleted")):
        truncate_jsonl_after_step(path, 1)
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("scale_rewards, low, high", [("group", 1.0, 2.0), ("none", 0.005, 0.01)])
def test_bonus_advantage_depends_on_scale_rewards(
    tmp_path, tiny_model_dir, monkeypatch, scale_rewards, low, high
):
    """Documents SPEC §1's arithmetic: in a group where every answer is wrong, a 0.01 bonus on one
    rollout becomes an advantage of about 1.5 with std scaling ("group"), 0.0075 without ("none")."""
    from tests import scripted_rewards
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.tasks.suite import build_suite
    from toolexpander.trainer import trainer as trainer_module
    from toolexpander.trainer.config import ToolExpanderConfig

    rewards = {
        "tool_n1": scripted_rewards.never_correct,
        "self_exemplify": scripted_rewards.bonus_on_first_of_group,
    }
    monkeypatch.setattr(trainer_module, "get_reward", rewards.__getitem__)
    config = ToolExpanderConfig(
        output_dir=str(tmp_path),
        mode="self_exemplify_only",
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=1,
        scale_rewards=scale_rewards,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
    )
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    trainer = trainer_module.ToolExpanderTrainer(
        model, config, build_suite()["train"][:2], processing_class=tokenizer
    )
    trainer.train()
    advantages = list(trainer._logs["advantages"])
    assert len(advantages) == 8
    for group in (advantages[:4], advantages[4:]):
        assert low <= group[0] <= high  # the rollout with the bonus
        assert all(-high / 3 <= a < 0 for a in group[1:])


def test_replace_rows_pads_each_side_and_takes_the_marked_rows():
    import torch

    from toolexpander.trainer.trainer import replace_rows

    base = {
        "prompt_ids": torch.tensor([[1, 2], [3, 4]]),
        "prompt_mask": torch.ones(2, 2, dtype=torch.long),
        "completion_ids": torch.tensor([[5], [6]]),
        "completion_mask": torch.ones(2, 1, dtype=torch.long),
        "advantages": torch.tensor([0.0, 0.0]),
        "old_per_token_logps": None,
    }
    other = {
        "prompt_ids": torch.tensor([[7, 8, 9], [10, 11, 12]]),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.tensor([[13, 14], [15, 16]]),
        "completion_mask": torch.ones(2, 2, dtype=torch.long),
        "advantages": torch.tensor([1.0, -1.0]),
    }
    merged = replace_rows(base, other, [None, 1])  # other's row 0 dropped, its row 1 replaces base's row 1
    assert merged["prompt_ids"].tolist() == [[0, 1, 2], [10, 11, 12]]  # prompts padded on the left
    assert merged["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    assert merged["completion_ids"].tolist() == [[5, 0], [15, 16]]  # completions on the right
    assert merged["completion_mask"].tolist() == [[1, 0], [1, 1]]
    assert merged["advantages"].tolist() == [0.0, -1.0]
    assert merged["old_per_token_logps"] is None
    assert replace_rows(base, other, [None, None]) is base
    # A second pass over fewer rows than the batch (only the groups that needed it).
    one = {key: value[1:] for key, value in other.items()}
    assert replace_rows(base, one, [0])["advantages"].tolist() == [-1.0, 0.0]


def test_a_handoff_hands_the_one_value_its_hook_put_during_the_call():
    handoff = Handoff("log-probs")
    handoff.put("stale")  # outside a call (TRL's other passes run the hook too): dropped
    assert handoff.through(lambda: handoff.put("fresh") or "result") == ("result", "fresh")
    assert handoff.through(lambda: handoff.put("next") or 2) == (2, "next")  # nothing left over


@pytest.mark.parametrize("puts", [0, 2])
def test_a_handoff_fails_loudly_when_the_hook_did_not_run_exactly_once(puts):
    handoff = Handoff("a generation pass's rewards")

    def call():
        for i in range(puts):
            handoff.put(i)

    with pytest.raises(RuntimeError, match=f"rewards: TRL ran the hook {puts} times in one call"):
        handoff.through(call)
    assert handoff.through(lambda: handoff.put("after") or 0) == (0, "after")  # closed and reusable


def test_a_handoff_closes_when_the_call_raises():
    handoff = Handoff("x")
    with pytest.raises(KeyError):
        handoff.through(lambda: {}["missing"])
    handoff.put("outside")  # dropped: no call is open
    assert handoff.through(lambda: handoff.put(1) or None) == (None, 1)
