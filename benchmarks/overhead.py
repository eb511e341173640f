"""CPU seconds per step of `ToolExpanderTrainer` against TRL's plain `GRPOTrainer`: same tiny model,
data, seed and batch, runs alternated so machine load hits both alike.

Two ratios, one JSON line each:
- ``grpo_bookkeeping``: our trainer in ``mode=grpo`` (hardness tracking, gathers, ledger,
  metrics, no demonstrations) / plain TRL: the cost of our code. Target <= 1.05.
- ``toolexpander``: ``mode=toolexpander`` with the plain prompt / plain TRL: adds what the method
  itself costs (hard items are posed with demonstrations, so prompts are longer).

Every rollout gets a reward with variance within its group (every other one correct), and the
precision and the completion length are pinned alike, so every step does the same work in all
three (our trainer skips the loss of batches with nothing to learn, which would flatter it).
Steady figures: one thread (the two cores are shared), process CPU time, a warm-up step dropped,
per-step medians, runs alternated; ``ratio_per_repeat`` shows how far runs agree.

    python benchmarks/overhead.py [--repeats 3] [--steps 16]

Last figures (2-core box, 2026-12-04, PromptSpec and shared-prompt paths on by default, with the
comparison study's two runs beside it): grpo_bookkeeping 0.995 (per repeat 1.408, 0.873, 0.845),
toolexpander 0.957 (1.092, 0.927, 0.816): at or under the 1.05 target, with that much noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback


def alternating_reward(completions, **kwargs):
    """Every other rollout correct: each group of 4 has variance, so every step has a gradient."""
    return [float(i % 2 == 0) for i in range(len(completions))]


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    # Process CPU time, not wall time: a step the scheduler parks while another tenant runs would
    # count its wait (one thread, so CPU time is the step's own work).
    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.process_time() - self._start)


def run_once(kind: str, model_dir: str, tasks: list[dict], steps: int) -> list[float]:
    from trl import GRPOConfig, GRPOTrainer

    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.prompts import PromptSpec
    from toolexpander.trainer import trainer as trainer_module
    from toolexpander.trainer.config import ToolExpanderConfig
    from toolexpander.trainer.trainer import ToolExpanderTrainer, tasks_to_dataset

    common = {
        "output_dir": tempfile.mkdtemp(),
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 32,
        "max_steps": steps,
        "learning_rate": 1e-4,
        "beta": 0.0,
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": not torch.cuda.is_available(),
        "seed": 0,
        "disable_tqdm": True,
        # GRPOConfig defaults to bf16, ToolExpanderConfig to bf16 only on a GPU: pin it, or the ratio
        # measures autocast rather than our code.
        "bf16": torch.cuda.is_available(),
        # Every completion full length: a random model's EOS comes at random, and lengths that differ
        # between runs would be most of the spread.
        "generation_kwargs": {"min_new_tokens": 32},
    }
    model, tokenizer = load_model_and_tokenizer(model_dir)
    timer = StepTimer()
    if kind == "plain":
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[alternating_reward],
            args=GRPOConfig(**common),
            train_dataset=tasks_to_dataset(tasks, PromptSpec(), tokenizer),
            processing_class=tokenizer,
            callbacks=[timer],
        )
    else:
        mode = "grpo" if kind == "grpo_bookkeeping" else "toolexpander"
        config = ToolExpanderConfig(**common, mode=mode, prompt_style="plain", lr_decay_gamma=1.0)
        trainer_module.get_reward = lambda name: alternating_reward  # the same reward as plain TRL's
        trainer = ToolExpanderTrainer(model, config, tasks, processing_class=tokenizer, callbacks=[timer])
    trainer.remove_callback(PrinterCallback)  # stdout holds only the JSON lines
    trainer.train()
    return timer.times[1:]  # the first step pays one-off warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from toolexpander.models import build_tiny_model
    from toolexpander.tasks.suite import build_suite

    model_dir = build_tiny_model(tempfile.mkdtemp())
    # Sixteen copies of one item: our trainer reseeds the order of items every epoch, TRL does not,
    # and items of other prompt lengths would make the two do different work.
    tasks = [{**build_suite(0)["train"][0], "id": f"item-{i}"} for i in range(16)]
    kinds = ("plain", "grpo_bookkeeping", "toolexpander")
    times: dict[str, list[list[float]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:  # alternate, so drifts in machine load hit every kind
            times[kind].append(run_once(kind, model_dir, tasks, args.steps))
    plain = statistics.median(t for run in times["plain"] for t in run)
    for kind in ("grpo_bookkeeping", "toolexpander"):
        ours = statistics.median(t for run in times[kind] for t in run)
        per_repeat = [
            round(statistics.median(a) / statistics.median(b), 3) for a, b in zip(times[kind], times["plain"])
        ]
        print(
            json.dumps(
                {
                    "benchmark": "overhead",
                    "compared": kind,
                    "plain_cpu_s_per_step": round(plain, 4),
                    "ours_cpu_s_per_step": round(ours, 4),
                    "ratio": round(ours / plain, 3),
                    "ratio_per_repeat": per_repeat,
                    "steps_timed": sum(len(run) for run in times[kind]),
                    "model": "tiny random Qwen2",
                    "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                }
            )
        )


if __name__ == "__main__":
    main()
