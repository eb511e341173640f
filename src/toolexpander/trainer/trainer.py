"""`ToolExpanderTrainer`: TRL's `GRPOTrainer` with Dynamic Multi-Round Hard Sampling.

This is the only module that touches TRL internals. It overrides these private methods, whose
signatures `tests/test_trl_canary.py` pins:
- `_generate_and_score_completions(inputs)`: re-renders the prompt of each drawn item with its
  current demonstrations before generation; optionally re-rolls all-fail groups with
  demonstrations (`reroll_all_fail`) or refills zero-variance groups with fresh prompts
  (`mode=dapo_filter`) by a second pass whose rows replace the failed ones;
- `_calculate_rewards(...)`: TRL returns the rewards gathered over all processes; we gather ids,
  shots and completions the same way and hand whole groups to the `HardSampler`;
- `_save_checkpoint` / `_load_optimizer_and_scheduler`: the hard-sampling state travels with
  every checkpoint (the same hooks TRL uses for its own entropy-controller state);
- `_get_train_sampler`: TRL's sampler draws each epoch's order from one running generator,
  which a resumed run restarts; we seed it per epoch so a resumed run sees the same order.
The policy itself (which item gets how many demonstrations) lives in `toolexpander.hard_sampling`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate.utils import gather_object
from torch.optim.lr_scheduler import LambdaLR
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.hard_sampling.policy import HardSampleTracker, ShotSchedule, exponential_lr_factor
from toolexpander.hard_sampling.sampler import HardSampler
from toolexpander.prompts import build_messages
from toolexpander.rewards import completion_text, get_reward
from toolexpander.trainer.config import ToolExpanderConfig

STATE_FILE = "toolexpander_state.json"
LEDGER_FILE = "hard_samples.jsonl"
METRICS_FILE = "metrics.jsonl"
# Row tensors of a generation batch and the side they are padded on.
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
_RIGHT_PADDED = (
    "completion_ids",
    "completion_mask",
    "old_per_token_logps",
    "sampling_per_token_logps",
    "ref_per_token_logps",
    "importance_sampling_ratio",
    "tool_mask",
)


def tasks_to_dataset(tasks: list[dict], style: str):
    """A `datasets.Dataset` TRL can sample: the zero-shot prompt, the id, the answer as JSON text
    (Arrow cannot hold per-item argument schemas)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [build_messages(task, style=style) for task in tasks],
            "id": [task["id"] for task in tasks],
            "answer": [json.dumps(task["answer"]) for task in tasks],
        }
    )


def build_reward_funcs(args: ToolExpanderConfig) -> list:
    """The correctness reward first (hardness reads column 0), then the bonus when the mode uses it."""
    funcs = [get_reward(args.correctness_reward)]
    if args.uses_self_exemplify:
        bonus = functools.partial(
            get_reward("self_exemplify"),
            bonus=args.self_exemplify_bonus,
            requires_correct=args.bonus_requires_correct,
        )
        bonus.__name__ = "self_exemplify"
        funcs.append(bonus)
    return funcs


def replace_rows(base: dict, other: dict, take_other: list[bool]) -> dict:
    """Rows of ``other`` where ``take_other`` holds, rows of ``base`` elsewhere; pads to fit."""
    if not any(take_other):
        return base
    mask = torch.tensor(take_other, device=base["advantages"].device)
    merged = dict(base)
    for key in (*_LEFT_PADDED, *_RIGHT_PADDED, "advantages"):
        if base.get(key) is None:
            continue
        a, b = base[key], other[key]
        if a.dim() == 2 and a.shape[1] != b.shape[1]:
            side = "left" if key in _LEFT_PADDED else "right"
            value = 0.0 if a.is_floating_point() else 0
            a, b = _pad_pair(a, b, side, value)
        shape = (-1,) + (1,) * (a.dim() - 1)
        merged[key] = torch.where(mask.view(shape), b, a)
    return merged


def _pad_pair(a: torch.Tensor, b: torch.Tensor, side: str, value) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(a.shape[1], b.shape[1])

    def widen(t):
        extra = width - t.shape[1]
        filler = torch.full((t.shape[0], extra), value, dtype=t.dtype, device=t.device)
        return torch.cat([filler, t] if side == "left" else [t, filler], dim=1)

    return widen(a), widen(b)


class EpochSeededSampler:
    """TRL's `RepeatSampler` with its shuffle reseeded to ``seed + epoch`` at every pass."""

    def __init__(self, sampler, seed: int, epoch: Callable[[], int]):
        self.sampler, self.seed, self.epoch = sampler, seed, epoch

    def __iter__(self):
        if getattr(self.sampler, "generator", None) is not None:
            self.sampler.generator.manual_seed(self.seed + self.epoch())
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class ToolExpanderTrainer(GRPOTrainer):
    """GRPO with Dynamic Multi-Round Hard Sampling and Self-Exemplifying Thinking.

    ``train_tasks`` are records of our schema (`toolexpander.data.schema`); the trainer builds
    the dataset, the rewards, the demonstration bank and the learning-rate decay from ``args``.
    """

    def __init__(self, model, args: ToolExpanderConfig, train_tasks: list[dict], **kwargs):
        style = args.effective_prompt_style
        super().__init__(
            model=model,
            reward_funcs=build_reward_funcs(args),
            args=args,
            train_dataset=tasks_to_dataset(train_tasks, style),
            **kwargs,
        )
        schedule = ShotSchedule(
            start=args.shots_start,
            step=args.shots_step,
            cap=args.shots_cap,
            fading=args.fading,
            fade_min_successes=args.fade_min_successes,
            hard_max_correct=args.hard_max_correct,
        )
        bank = DemoBank(train_tasks, sources=args.demo_source_list, seed=args.seed)
        self.hard_sampler = HardSampler(
            train_tasks, HardSampleTracker(schedule), bank, style=style, use_demos=args.uses_hard_sampling
        )
        self._batch_shots: list[int] = []
        self._pass: tuple[list, list, list, list] = ([], [], [], [])  # ids, shots, correct, texts
        self._fresh_rng = random.Random(args.seed)

    def _get_train_sampler(self, dataset=None):
        # The epoch a pass starts in; rounding guards against 0.9999... from float step fractions.
        return EpochSeededSampler(
            super()._get_train_sampler(dataset),
            self.args.seed,
            lambda: math.floor(round(self.state.epoch or 0, 6)),
        )

    # -- learning rate: exponential decay per step or per round (pass over the data) ----------
    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            args = self.args
            prompts_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            prompts_per_step = prompts_per_step * self.accelerator.num_processes / self.num_generations
            steps_per_round = max(1, round(len(self.train_dataset) / prompts_per_step))

            def factor(step: int) -> float:
                t = step // steps_per_round if args.lr_decay_unit == "round" else step
                return exponential_lr_factor(t, args.lr_decay_gamma, args.lr_decay_steps)

            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, factor)
        return self.lr_scheduler

    # -- generation: demonstrations in, hard groups observed -----------------------------------
    def _pose(self, inputs: list[dict], shots: list[int]) -> list[dict]:
        self._batch_shots = shots
        return [
            {**x, "prompt": self.hard_sampler.prompt_for(x["id"], k)} if k else x
            for x, k in zip(inputs, shots)
        ]

    def _local_groups(self, n_local: int) -> list[int]:
        """Global group index of each local row (TRL lays groups out contiguously across ranks)."""
        offset = self.accelerator.process_index * n_local
        return [(offset + i) // self.num_generations for i in range(n_local)]

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        sampler = self.hard_sampler
        shots = [sampler.shots_for(x["id"]) for x in inputs]
        output = super()._generate_and_score_completions(self._pose(inputs, shots))
        successes = self._observe_pass()
        groups = self._local_groups(len(inputs))
        if self.args.reroll_all_fail and self.args.uses_hard_sampling:
            # Items just found hard now have (more) demonstrations: pose them again at once.
            ids = self._pass[0][:: self.num_generations]
            first_shots = self._pass[1][:: self.num_generations]
            hard = [sampler.shots_for(i) > k for i, k in zip(ids, first_shots)]
            if any(hard):
                retry = [
                    sampler.shots_for(x["id"]) if hard[g] else k for x, g, k in zip(inputs, groups, shots)
                ]
                second = super()._generate_and_score_completions(self._pose(inputs, retry))
                self._observe_pass(keep=hard)  # the other groups of this pass are discarded
                output = self._merge(output, second, [hard[g] for g in groups])
                self._metrics["train"]["rollouts/rerolled_groups"].append(float(sum(hard)))
        elif self.args.mode == "dapo_filter":
            output = self._dapo_fill(groups, successes, output)
        return output

    def _merge(self, output: dict, second: dict, take_second: list[bool]) -> dict:
        """`replace_rows`, then the token count the loss is normalised by, over all ranks."""
        merged = replace_rows(output, second, take_second)
        loss_mask = merged["completion_mask"]
        if merged.get("tool_mask") is not None:
            loss_mask = loss_mask * merged["tool_mask"]
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        return merged

    def _dapo_fill(self, groups: list[int], successes: list[int], output: dict) -> dict:
        """DAPO dynamic sampling: replace zero-variance groups by groups of fresh prompts."""
        flat = [s in (0, self.num_generations) for s in successes]
        for _ in range(self.args.dapo_max_fill_rounds):
            if not any(flat):
                break
            # Every rank draws the same fresh item for a global group: the RNG is seeded alike.
            fresh_ids = [self._fresh_rng.randrange(len(self.train_dataset)) for _ in flat]
            fresh = [self.train_dataset[fresh_ids[g]] for g in groups]
            second = super()._generate_and_score_completions(self._pose(fresh, [0] * len(fresh)))
            fresh_successes = self._pass_successes()
            useful = [f and s not in (0, self.num_generations) for f, s in zip(flat, fresh_successes)]
            self._observe_pass(keep=useful)
            output = self._merge(output, second, [useful[g] for g in groups])
            flat = [f and not u for f, u in zip(flat, useful)]
        return output

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if not self.model.training:
            return rewards_per_func
        # Rewards come back gathered over all ranks; gather the rest alike so groups are whole.
        correct = rewards_per_func[:, 0].tolist()
        self._pass = (
            gather_object([x["id"] for x in inputs]),
            gather_object(list(self._batch_shots)),
            correct,
            gather_object([completion_text(c) for c in completions]),
        )
        self._metrics["train"]["reward/correct"].append(sum(correct) / len(correct))
        if rewards_per_func.shape[1] > 1:
            self._metrics["train"]["reward/bonus"].append(rewards_per_func[:, 1].mean().item())
        self._metrics["train"]["rollouts/generated"].append(float(len(correct)))
        return rewards_per_func

    def _pass_successes(self) -> list[int]:
        """Correct rollouts of each group of the last generation pass."""
        correct, size = self._pass[2], self.num_generations
        return [sum(c >= 1.0 for c in correct[i : i + size]) for i in range(0, len(correct), size)]

    def _observe_pass(self, keep: list[bool] | None = None) -> list[int]:
        """Hand the groups of the last pass (all, or those ``keep`` marks) to the hard sampler;
        log its metrics and ledger rows. Returns every group's successes."""
        ids, shots, correct, texts = self._pass
        size = self.num_generations
        rollouts = [
            i
            for g in range(len(ids) // size)
            if keep is None or keep[g]
            for i in range(g * size, (g + 1) * size)
        ]
        if rollouts:
            rows, metrics = self.hard_sampler.observe(
                [ids[i] for i in rollouts],
                [shots[i] for i in rollouts],
                [correct[i] for i in rollouts],
                [texts[i] for i in rollouts],
                size,
                self.state.global_step + 1,
            )
            for name, value in metrics.items():
                self._metrics["train"][name].append(value)
            if self.accelerator.is_main_process:
                self._append_jsonl(LEDGER_FILE, rows)
        return self._pass_successes()

    # -- logging: TRL's own, plus metrics.jsonl ------------------------------------------------
    def _append_jsonl(self, name: str, rows: list[dict]) -> None:
        os.makedirs(self.args.output_dir, exist_ok=True)
        with open(os.path.join(self.args.output_dir, name), "a") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "learning_rate" in logs:
            logs["lr"] = logs["learning_rate"]
        super().log(logs, start_time)
        if self.accelerator.is_main_process and self.model.training:
            self._append_jsonl(METRICS_FILE, [{"step": self.state.global_step, **logs}])

    # -- resume: the hard-sampling state is part of every checkpoint ---------------------------
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            # The DAPO fill draws its fresh prompts from its own RNG: it resumes where it stood.
            version, internal, gauss = self._fresh_rng.getstate()
            state = {
                "hard_sampler": self.hard_sampler.state_dict(),
                "fresh_rng": [version, list(internal), gauss],
            }
            Path(folder, STATE_FILE).write_text(json.dumps(state))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        state_path = Path(checkpoint, STATE_FILE)
        if state_path.is_file():
            state = json.loads(state_path.read_text())
            self.hard_sampler.load_state_dict(state["hard_sampler"])
            version, internal, gauss = state["fresh_rng"]
            self._fresh_rng.setstate((version, tuple(internal), gauss))
        # Rows written after the checkpoint (a run killed between checkpoints) would count twice.
        if self.accelerator.is_main_process:
            step = json.loads(Path(checkpoint, "trainer_state.json").read_text())["global_step"]
            for name in (LEDGER_FILE, METRICS_FILE):
                truncate_jsonl_after_step(Path(self.args.output_dir, name), step)


def truncate_jsonl_after_step(path: Path, step: int) -> None:
    """Keep the rows of ``path`` whose ``step`` is at most ``step``."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
