"""Scaling paths of `ToolExpanderTrainer` on CPU: two processes (gloo) against one, LoRA, and the
prompts handed to generation (the same whichever backend generates, vLLM included)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from trl import GRPOTrainer

from toolexpander.cli import main
from toolexpander.prompts import PromptSpec

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tiny-cpu.yaml")
LEDGER_KEYS = ("id", "step", "round", "shots", "successes")
CORRECT_WITH_DEMOS = "tests.scripted_rewards:correct_with_demos"
ALTERNATING = "tests.scripted_rewards:every_other_correct"
ACCELERATE_2PROC = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE_2PROC += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_argv(model_dir: str, out: Path, *overrides: str) -> list[str]:
    argv = ["train", "--config", RECIPE, "--model_name_or_path", model_dir, "--output_dir", str(out)]
    return [*argv, "--build_tiny_model", "false", "--save_strategy", "no", *overrides]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alternating_reward(completions, **kwargs):
    """Every other rollout correct: every group has reward variance, so the policy gets a gradient."""
    return [float(i % 2 == 0) for i in range(len(completions))]


MIXED = ["--carry_over", "swap_nll", "--demo_rollouts_per_group", "1"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "per_device_2proc, per_device_1proc, items, extra",
    [(4, 8, 4, []), (2, 4, 2, []), (2, 4, 2, MIXED)],
    ids=["whole-groups-per-rank", "groups-split-across-ranks", "mixed-groups-split-across-ranks"],
)
def test_two_processes_write_the_same_ledger_as_one(
    tmp_path, tiny_model_dir, per_device_2proc, per_device_1proc, items, extra
):
    # `accelerate launch --cpu` ignores --num_processes (one process); --multi_gpu with the recipe's
    # use_cpu: true starts 2 CPU processes on gloo. Mixed groups: the one rollout with demonstrations
    # of each group lies on the first process (slot 0), the carry-over loss runs on both.
    common = ["--max_steps", "3", "--max_train_items", str(items), "--correctness_reward", CORRECT_WITH_DEMOS]
    common += extra
    two = tmp_path / "two"
    port = ["--main_process_port", str(free_port())]
    argv = train_argv(tiny_model_dir, two, *common, "--per_device_train_batch_size", str(per_device_2proc))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [*ACCELERATE_2PROC, *port, "-m", "toolexpander", *argv]
    done = subprocess.run(
        command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training items") == 2  # really two processes

    one = tmp_path / "one"
    argv = train_argv(tiny_model_dir, one, *common, "--per_device_train_batch_size", str(per_device_1proc))
    assert main(argv) == 0

    ledgers = {}
    for name, out in (("two", two), ("one", one)):
        ledger = read_jsonl(out / "hard_samples.jsonl")
        ledgers[name] = [tuple(row[k] for k in LEDGER_KEYS) for row in ledger]
        # Written once: one row per group per step, each group whole (G rollouts counted together).
        assert len({(row["id"], row["step"]) for row in ledger}) == len(ledger)
        prompts_per_step = per_device_1proc // 4
        assert [row["step"] for row in ledger] == [s for s in (1, 2, 3) for _ in range(prompts_per_step)]
        demo_rollouts = 1 if extra else 4  # correct_with_demos: exactly the rows posed with demonstrations
        assert all(row["num_generations"] == 4 and row["successes"] in (0, demo_rollouts) for row in ledger)
        assert all(row["demo_rollouts"] in (0, demo_rollouts) for row in ledger)
        steps = [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "hard/ratio" in m]
        assert steps == [1, 2, 3]
    assert ledgers["two"] == ledgers["one"]
    assert any(shots > 0 for _, _, _, shots, _ in ledgers["two"])  # the demonstrations path ran


@pytest.mark.slow
def test_two_processes_train_the_same_weights_with_the_shared_prompt_as_without(tmp_path, tiny_model_dir):
    """DDP (gloo): the shared-prompt loss makes two forwards (prompts, then completions) before one
    backward; the gradients DDP reduces, and so the weights, equal the plain path's."""
    from safetensors.torch import load_file

    weights = {}
    for shared in ("true", "false"):
        out = tmp_path / shared
        argv = train_argv(tiny_model_dir, out, "--max_steps", "2", "--max_train_items", "4", "--mode", "grpo")
        argv += ["--per_device_train_batch_size", "4", "--correctness_reward", ALTERNATING]
        # TRL's default gradient checkpointing would leave both runs on the plain path.
        argv += ["--gradient_checkpointing", "false", "--shared_prompt_loss", shared]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        command = [*ACCELERATE_2PROC, "--main_process_port", str(free_port()), "-m", "toolexpander", *argv]
        done = subprocess.run(
            command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("training items") == 2  # really two processes
        assert "shared_prompt_loss:" not in done.stderr  # no fallback
        logged = [m for m in read_jsonl(out / "metrics.jsonl") if "shared_prompt/rows_per_prompt" in m]
        assert len(logged) == (2 if shared == "true" else 0)  # one group of 4 rows per process and step
        assert all(m["shared_prompt/rows_per_prompt"] == 4.0 for m in logged)
        weights[shared] = load_file(out / "model.safetensors")
    start = load_file(Path(tiny_model_dir, "model.safetensors"))
    moved = max((weights["false"][name] - start[name]).abs().max().item() for name in start)
    diff = max((weights["true"][name] - weights["false"][name]).abs().max().item() for name in start)
    assert moved > 1e-5 and diff <= 1e-6, (diff, moved)


# Run under `accelerate launch`: train through the CLI, then list the gloo threads still alive, in a
# file per rank (two ranks printing at once can share a line of stdout).
GLOO_THREADS_AFTER_MAIN = """
import json, os, sys
from toolexpander.cli import main
report, argv = sys.argv[1], sys.argv[2:]
code = main(argv)
names = [open(f"/proc/self/task/{tid}/comm").read().strip() for tid in os.listdir("/proc/self/task")]
gloo = sorted(n for n in names if "gloo" in n)
with open(f"{report}-{os.environ['RANK']}.json", "w") as handle:
    json.dump({"rank": os.environ["RANK"], "code": code, "gloo": gloo}, handle)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through /proc (Linux)")
def test_a_two_process_run_tears_gloo_down_before_the_interpreter_exits(tmp_path, tiny_model_dir):
    """The exit abort ("terminate called without an active exception", SIGABRT on one rank after a
    good run) came from the gloo process group dying during interpreter finalization: the trainer is
    a reference cycle, so its DDP model, which holds the group, was collected only then. `train` now
    frees it and destroys the group before returning, so no gloo thread outlives `main`."""
    script = tmp_path / "train_then_list_threads.py"
    script.write_text(GLOO_THREADS_AFTER_MAIN)
    argv = train_argv(tiny_model_dir, tmp_path / "run", "--max_steps", "2", "--max_train_items", "2")
    argv += ["--per_device_train_batch_size", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    report = tmp_path / "threads"
    command = [*ACCELERATE_2PROC, "--main_process_port", str(free_port()), str(script), str(report), *argv]
    done = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("threads-*.json"))]
    assert sorted(r["rank"] for r in reports) == ["0", "1"]
    assert all(r["code"] == 0 and r["gloo"] == [] for r in reports), reports


def test_lora_trains_and_saves_an_adapter(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    out = tmp_path / "lora"
    lora = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8"]
    lora += ["--lora_target_modules", "q_proj", "v_proj"]
    reward = ["--correctness_reward", "tests.test_scale:alternating_reward"]
    argv = train_argv(tiny_model_dir, out, "--max_steps", "2", "--max_train_items", "2", *reward, *lora)
    assert main(argv) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = {name: w for name, w in weights.items() if "lora_B" in name}
    # PEFT starts every lora_B at zero: a non-zero one means the optimizer updated the adapter.
    assert lora_b and any(w.abs().sum() > 0 for w in lora_b.values())
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl") if "hard/ratio" in m] == [1, 2]
    assert {row["step"] for row in read_jsonl(out / "hard_samples.jsonl")} == {1, 2}


def test_generation_receives_demonstrations_for_hard_items_whichever_backend(tmp_path, tiny_model_dir):
    """Prompts are rendered before TRL's generation (HF generate or vLLM alike): patching TRL's
    `_generate_and_score_completions` shows exactly what any backend would be asked to complete."""
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.tasks.suite import build_suite
    from toolexpander.trainer.config import ToolExpanderConfig
    from toolexpander.trainer.trainer import ToolExpanderTrainer, _Pass

    tasks = build_suite()["train"][:2]
    config = ToolExpanderConfig(
        output_dir=str(tmp_path),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=8,
        max_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        prompt_style="plain",
    )
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    trainer = ToolExpanderTrainer(model, config, tasks, processing_class=tokenizer)
    trainer.model.train()
    hard, easy = tasks
    trainer.hard_sampler.tracker.record(hard["id"], 0, 4, step=1, shots=0)
    inputs = [trainer.train_dataset[i] for i in (0, 1) for _ in range(4)]

    batch = {"prompt_mask": torch.ones(8, 3, dtype=torch.long)}  # all our code reads of the output here

    def trl_pass(posed):  # as TRL's pass does through our `_calculate_rewards`: hand over its groups
        trainer._generated.put(_Pass())
        return batch

    with mock.patch.object(GRPOTrainer, "_generate_and_score_completions", side_effect=trl_pass) as generate:
        trainer._generate_and_score_completions(inputs)
    (posed,), _ = generate.call_args
    demos = trainer.hard_sampler.bank.select(hard, 1)
    assert len(demos) == 1 and demos[0]["source_id"] != hard["id"]
    spec = PromptSpec()
    with_demo = spec.render(tokenizer, hard, demos)
    assert [x["prompt"] for x in posed] == [with_demo] * 4 + [spec.render(tokenizer, easy)] * 4
    assert posed[0]["prompt"].count("<|im_start|>user") == 2
    assert [x["id"] for x in posed] == [hard["id"]] * 4 + [easy["id"]] * 4
