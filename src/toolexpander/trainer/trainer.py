"""`ToolExpanderTrainer`: TRL's `GRPOTrainer` with Dynamic Multi-Round Hard Sampling.

This is the only module that touches TRL internals. It overrides these private methods, whose
signatures `tests/test_trl_canary.py` pins:
- `_generate_and_score_completions(inputs)`: re-renders the prompt of each drawn item with its
  current demonstrations before generation (all G rollouts, or the first m of a mixed group);
  optionally re-rolls all-fail groups with demonstrations (`reroll_all_fail`) or refills
  zero-variance groups with fresh prompts (`mode=dapo_filter`) by a second pass over only those
  groups, whose rows replace the failed ones; with `carry_over`, swaps the prompt of every row
  made with demonstrations for the item's zero-shot prompt (tokenised by `_tokenize_prompts`);
- `compute_loss`: rows with advantage 0 are left out (a batch with none left is skipped); TRL's
  `_compute_loss` runs on the rest, and with `carry_over` the swapped rows' own term
  (`carry_over_loss`) reuses the log-probs of that one forward, which our override of
  `_get_per_token_logps_and_entropies` hands over (`Handoff`: exactly one per loss, or it raises);
- `_get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, batch_size,
  compute_entropy, compute_aux_loss, ...)`: the loss forward, and TRL's old and reference log-prob
  passes, which all go through it; with `shared_prompt_loss` it splits TRL's ``[prompt,
  completion]`` back and encodes each distinct prompt of a chunk once
  (`trainer.shared_prompt`, SPEC §11; TRL's fused LM head scores, as on TRL's path); what that
  cannot serve (gradient checkpointing, sliding windows, multimodal inputs, an MoE aux loss, ...)
  falls back to TRL's plain path with one warning per run;
- `_generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)`:
  on TRL's transformers path, shadows `generate` on the unwrapped model for that call, which times it
  (prefill, decode) and, with `shared_prompt_generation`, prefills each distinct prompt once and
  hands transformers' `generate` the expanded KV cache (`trainer.shared_prompt.shared_prompt_cache`);
- `training_step(model, inputs, num_items_in_batch)` and `_prepare_inputs(generation_batch)`: where a
  step's time goes (`STEP_PARTS`, logged as ``time/<part>_s`` next to TRL's ``step_time``);
- `_tokenize_prompts(prompts)`: every prompt is text the run's `PromptSpec` rendered (chat template
  and any think prefill, BOS included), so it is tokenised without adding special tokens;
- `_calculate_rewards(...)`: the rewards score each reply with the opening its prompt prefilled
  (`think_prefill`); TRL returns them gathered over all processes; we gather ids, completions and
  the input columns ``shots`` and ``origin`` (set when the rows are posed) the same way: the pass's
  groups, handed to the generation step that called TRL (`Handoff`: exactly one per pass, or it
  raises), which gives them whole to the `HardSampler`;
- `_save`: the saved model records the prompt it was trained with (`PromptSpec.save`);
- `_save_checkpoint` / `_load_optimizer_and_scheduler`: the hard-sampling state travels with
  every checkpoint (the same hooks TRL uses for its own entropy-controller state); a checkpoint
  without it is refused unless `resume_without_hard_sampling_state`;
- `_get_train_sampler`: TRL's sampler draws each epoch's order from one running generator,
  which a resumed run restarts; we seed it per epoch so a resumed run sees the same order.
A run on BFCL multi-turn records plays each rollout as a whole episode through TRL's public
``rollout_func`` (`_rollout_episodes`, `toolexpander.trainer.episodes`), with the rows `_pose` posed.
`metrics.jsonl` is written by a plain `TrainerCallback` (`MetricsFile`). The policy itself (which
item gets how many demonstrations) lives in `toolexpander.hard_sampling`.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import trl
from accelerate.utils import gather_object
from torch.optim.lr_scheduler import LambdaLR
from transformers import StoppingCriteria, StoppingCriteriaList, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer
from trl.trainer.utils import pad

from toolexpander.data.schema import jsonl_rows
from toolexpander.errors import UserError
from toolexpander.files import append_jsonl, dumps_json, jsonl_text, write_file
from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.hard_sampling.policy import (
    LEDGER_FILE,
    HardSampleTracker,
    ShotSchedule,
    exponential_lr_factor,
)
from toolexpander.hard_sampling.sampler import HardSampler, group_slots
from toolexpander.hard_sampling.selection import (
    NOT_NEEDED,
    group_successes,
    has_variance,
    kept_targets,
    plan_regeneration,
    regeneration_rows,
    reroll_groups,
    zero_variance_groups,
)
from toolexpander.prompts import PromptSpec
from toolexpander.rewards import completion_text, get_reward, with_prefill
from toolexpander.trainer.config import ToolExpanderConfig
from toolexpander.trainer.episodes import EPISODE_REWARDS, EpisodeDemoBank, EpisodeRunner, is_episode_run
from toolexpander.trainer.loss import aggregate, row_share
from toolexpander.trainer.shared_prompt import (
    group_rows,
    shared_prompt_cache,
    shared_prompt_logps_and_entropies,
)
from toolexpander.trainer.step_clock import StepClock

STATE_FILE = "toolexpander_state.json"
METRICS_FILE = "metrics.jsonl"
# Where a step's time goes, logged as time/<part>_s (see `ToolExpanderTrainer.training_step`).
STEP_PARTS = ("prefill", "decode", "logprob_forward", "backward", "reward", "bookkeeping", "trl_other")
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


def tasks_to_dataset(tasks: list[dict], spec: PromptSpec, tokenizer):
    """A `datasets.Dataset` TRL can sample: the zero-shot prompt as text (`PromptSpec.render`), the
    id, the answer as JSON text (Arrow cannot hold per-item argument schemas)."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [spec.render(tokenizer, t) for t in tasks],
            "id": [task["id"] for task in tasks],
            "answer": [json.dumps(task["answer"]) for task in tasks],
        }
    )


def _named_partial(func, **options):
    bound = functools.partial(func, **options)
    bound.__name__ = func.__name__  # the name TRL logs the reward under
    return bound


def build_reward_funcs(args: ToolExpanderConfig, call_format: str = "tooln1") -> list:
    """The correctness reward first (hardness reads column 0), then the bonus when the mode uses it.
    A native run binds ``call_format`` (its chat template's) to both; tooln1 passes them as they are."""
    correctness = get_reward(args.correctness_reward)
    funcs = [correctness if call_format == "tooln1" else _named_partial(correctness, call_format=call_format)]
    if args.uses_self_exemplify:
        options = {"bonus": args.self_exemplify_bonus, "requires_correct": args.bonus_requires_correct}
        funcs.append(_named_partial(get_reward("self_exemplify"), **options, call_format=call_format))
    return funcs


def replace_rows(base: dict, other: dict, targets: list[int | None]) -> dict:
    """``base`` with row ``targets[j]`` replaced by row ``j`` of ``other`` (None: row j is dropped);
    pads the two to one width first. ``other`` may hold fewer rows than ``base``."""
    pairs = [(t, j) for j, t in enumerate(targets) if t is not None]
    if not pairs:
        return base
    device = base["advantages"].device
    into = torch.tensor([t for t, _ in pairs], device=device)
    take = torch.tensor([j for _, j in pairs], device=device)
    merged = dict(base)
    for key in (*_LEFT_PADDED, *_RIGHT_PADDED, "advantages"):
        if base.get(key) is None:
            continue
        a, b = base[key], other[key]
        if a.dim() == 2 and a.shape[1] != b.shape[1]:
            side = "left" if key in _LEFT_PADDED else "right"
            value = 0.0 if a.is_floating_point() else 0
            a, b = _pad_pair(a, b, side, value)
        a = a.clone()
        a[into] = b[take]
        merged[key] = a
    return merged


def subset_rows(inputs: dict, rows: torch.Tensor) -> dict:
    """The rows ``rows`` (a bool mask) of every per-row tensor of a training batch."""
    n = len(rows)
    return {
        key: value[rows] if isinstance(value, torch.Tensor) and value.dim() > 0 and len(value) == n else value
        for key, value in inputs.items()
    }


def carry_over_per_token_loss(
    logps: torch.Tensor, advantages: torch.Tensor, gamma: float, nll_coef: float, policy_term: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of rows made with demonstrations, scored under the zero-shot prompt (SPEC §8).

    ``-A * w`` per token with ``w = pi/(pi+gamma)``, unclipped (LUFFY/ICPO): ``grad w = gamma/(pi+gamma)**2
    * grad pi``, 1/gamma times the plain ratio's ``grad pi`` on tokens zero-shot finds unlikely, where
    that would vanish; as ``w*(1-w) * grad log pi`` it is at most a quarter of the log-likelihood's
    (at pi = gamma) (left out when not ``policy_term``: carry_over nll). Plus
    ``-nll_coef * max(A, 0) * log pi`` (swap_nll, nll). Returns the per-token loss and the weight
    (detached, for logging).

    >>> import torch
    >>> loss, w = carry_over_per_token_loss(torch.log(torch.tensor([[0.1]])), torch.tensor([[2.0]]), 0.1, 0.0)
    >>> round(w.item(), 3), round(loss.item(), 3)
    (0.5, -1.0)
    """
    prob = logps.exp()
    weight = prob / (prob + gamma)
    per_token = -advantages * weight if policy_term else torch.zeros_like(logps)
    if nll_coef:
        per_token = per_token - nll_coef * advantages.clamp(min=0) * logps
    return per_token, weight.detach()


def _pad_pair(a: torch.Tensor, b: torch.Tensor, side: str, value) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(a.shape[1], b.shape[1])

    def widen(t):
        extra = width - t.shape[1]
        filler = torch.full((t.shape[0], extra), value, dtype=t.dtype, device=t.device)
        return torch.cat([filler, t] if side == "left" else [t, filler], dim=1)

    return widen(a), widen(b)


class Handoff:
    """A value one of TRL's hooks computes inside a call of TRL's that does not return it (a generation
    pass's rewards, the loss forward's log-probs), handed to the code that made the call:
    ``result, value = handoff.through(call)``. The hook `put`s; a put outside `through` is dropped
    (TRL runs the same hooks elsewhere: evaluation, the old and reference log-prob passes). Exactly
    one put per call is required: a TRL whose call order changed fails loudly here instead of
    pairing a value with the wrong pass."""

    def __init__(self, name: str):
        self.name = name
        self._values: list | None = None  # open while a call runs through

    def put(self, value) -> None:
        if self._values is not None:
            self._values.append(value)

    def through(self, call: Callable[[], object]) -> tuple:
        self._values = []
        try:
            result = call()
        finally:
            values, self._values = self._values, None
        if len(values) != 1:
            raise RuntimeError(
                f"{self.name}: TRL ran the hook {len(values)} times in one call where ToolExpanderTrainer "
                f"expects exactly once; the TRL version ({trl.__version__}) is not one this release supports "
                "(tests/test_trl_canary.py pins what it relies on)"
            )
        return result, values[0]


@dataclass
class _Pass:
    """One generation pass, gathered over all processes: a row per rollout, G rows per group.
    ``origin`` is the global group of the step's batch a row stands for (-1: padding)."""

    ids: list = field(default_factory=list)
    shots: list = field(default_factory=list)
    correct: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    origin: list = field(default_factory=list)


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
    Demonstrations come from ``demo_pool`` (default: the training items); pass the whole training
    set when training on a few items, so that the bank covers their tools (SPEC §5).
    """

    def __init__(
        self,
        model,
        args: ToolExpanderConfig,
        train_tasks: list[dict],
        demo_pool: list[dict] | None = None,
        **kwargs,
    ):
        tokenizer = kwargs.get("processing_class")
        if tokenizer is None:
            raise ValueError("ToolExpanderTrainer needs processing_class: its chat template renders prompts")
        self.prompt_spec = args.prompt_spec
        call_format = self.prompt_spec.call_format(tokenizer)
        self._episodes = is_episode_run(train_tasks)
        self._posed: list[dict] | None = None  # the rows of the pass being generated, for `_rollout_episodes`
        if self._episodes:
            if args.uses_self_exemplify:
                raise ValueError(
                    f"mode {args.mode}: the self-exemplify bonus scores one reply, not an episode; "
                    "train episodes with mode hard_sampling_only or grpo"
                )
            self._episode_runner = EpisodeRunner(
                self.prompt_spec,
                tokenizer,
                max_reply_tokens=args.max_completion_length,
                max_episode_tokens=args.max_episode_tokens,
            )
            rewards = [EPISODE_REWARDS[args.episode_reward]]
        else:
            rewards = build_reward_funcs(args, call_format)
        super().__init__(
            model=model,
            reward_funcs=rewards,
            args=args,
            train_dataset=tasks_to_dataset(train_tasks, self.prompt_spec, tokenizer),
            rollout_func=self._rollout_episodes if self._episodes else None,
            **kwargs,
        )
        self.add_callback(MetricsFile())
        # What each prompt writes of its reply (<think> when prefilled): the rewards score it too.
        self._prefill = self.prompt_spec.reply_prefill(tokenizer)
        schedule = ShotSchedule(
            start=args.shots_start,
            step=args.shots_step,
            cap=args.shots_cap,
            fading=args.fading,
            fade_min_successes=args.fade_min_successes,
            hard_max_correct=args.hard_max_correct,
        )
        pool = train_tasks if demo_pool is None else demo_pool
        if self._episodes:
            bank = EpisodeDemoBank(pool, call_format=call_format, seed=args.seed)
        else:
            bank = DemoBank(pool, sources=args.demo_source_list, seed=args.seed)
        self.hard_sampler = HardSampler(
            train_tasks,
            HardSampleTracker(schedule),
            bank,
            spec=self.prompt_spec,
            tokenizer=tokenizer,
            use_demos=args.uses_hard_sampling,
            demo_rollouts=args.demo_rollouts_per_group,
        )
        # What TRL's hooks compute and TRL's callers do not return, handed to our code that called TRL.
        self._loss_logps = Handoff("the loss forward's log-probs (`_get_per_token_logps_and_entropies`)")
        self._generated = Handoff("a generation pass's groups and rewards (`_calculate_rewards`)")
        # (model, gradients recorded) the shared prompt cannot serve, and why: the plain path serves them.
        self._shared_prompt_off: dict[tuple[int, bool], str] = {}
        self._shared_generation_off: str | None = None  # why generate prefills every row, if it must
        on_cuda = self.accelerator.device.type == "cuda"
        self._clock = StepClock(STEP_PARTS, sync=torch.cuda.synchronize if on_cuda else None)
        self._fresh_rng = random.Random(args.seed)
        # Skipping a backward is safe where gradients are reduced by DDP hooks or not at all.
        self._may_skip = args.skip_zero_advantage_rows and args.beta == 0.0 and not args.entropy_coef
        self._may_skip = self._may_skip and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)

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

    # -- where a step's time goes ---------------------------------------------------------------
    def training_step(self, model, inputs, num_items_in_batch):
        """TRL's step, its time split into `STEP_PARTS`, logged as ``time/<part>_s`` whenever TRL logs
        its ``step_time`` (once per optimizer step; the parts add up to it): ``prefill`` (generate up
        to the first new token: the prompt's encoding), ``decode`` (the other tokens; all of vLLM's
        generation), ``logprob_forward`` (the loss forward and TRL's old and reference log-prob
        passes), ``backward`` (what no other part claims: the backward pass), ``reward`` (the reward
        functions), ``bookkeeping`` (ours: posing demonstrations, hard sampling, re-rolls, swaps, the
        ledger), ``trl_other`` (the rest of TRL's work: tokenising, advantages, loss arithmetic)."""
        logged = len(self._metrics["train"]["step_time"])
        with self._clock.step("backward"):
            loss = super().training_step(model, inputs, num_items_in_batch)
        if len(self._metrics["train"]["step_time"]) > logged:  # TRL closed an optimizer step: so do we
            for part, seconds in self._clock.flush().items():
                self._metrics["train"][f"time/{part}_s"].append(seconds)
        return loss

    def _prepare_inputs(self, generation_batch):
        with self._clock.part("trl_other"):  # TRL's shuffling and splitting of the generation batch
            return super()._prepare_inputs(generation_batch)

    # -- generation: demonstrations in, hard groups observed -----------------------------------
    def _pose(self, inputs: list[dict], shots: list[int], origin: list[int]) -> list[dict]:
        """The rows TRL generates from: each with its prompt (with ``shots`` demonstrations) and the
        columns ``shots`` and ``origin`` (the global group it stands for, -1: padding), which TRL hands
        to `_calculate_rewards` with the rest of the row (and to the reward functions, as keywords).
        An episode keeps its zero-shot prompt text: `_rollout_episodes` poses its demonstrations."""
        with_demos = not self._episodes
        self._posed = [
            {
                **x,
                "prompt": self.hard_sampler.prompt_for(x["id"], k) if k and with_demos else x["prompt"],
                "shots": k,
                "origin": o,
            }
            for x, k, o in zip(inputs, shots, origin, strict=True)
        ]
        return self._posed

    def _rollout_episodes(self, prompts: list, trainer) -> dict:
        """TRL's ``rollout_func`` in an episode run (`toolexpander.trainer.episodes`): each row `_pose`
        posed for this pass is played as one episode, after its shots' demonstration episodes;
        ``env_mask`` (TRL's ``tool_mask``) keeps tool results and user turns out of the loss."""
        rows, self._posed = self._posed, None
        if rows is None or len(rows) != len(prompts):  # TRL's evaluation loop poses rows of its own
            raise RuntimeError(
                "episodes are rolled out in training only; evaluate them with `toolexpander eval`"
            )
        records = [self.hard_sampler.tasks[x["id"]] for x in rows]
        demos = [self.hard_sampler.bank.select(r, x["shots"]) for r, x in zip(records, rows, strict=True)]
        outputs = self._episode_runner.run(
            records,
            [[message for demo in episode_demos for message in demo] for episode_demos in demos],
            lambda prompt_ids: self._generate_single_turn(prompt_ids, None, {}, 1),
            set(self.eos_token_ids),
        )
        turns = [valid for out in outputs for valid in out.turns_valid]
        self._metrics["train"]["episodes/turns_passed"].append(sum(turns) / max(len(turns), 1))
        sampled = any(lp is not None for out in outputs for lp in out.logprobs)
        return {
            "prompt_ids": [out.prompt_ids for out in outputs],
            "completion_ids": [out.completion_ids for out in outputs],
            "logprobs": [out.logprobs for out in outputs] if sampled else None,
            "env_mask": [out.env_mask for out in outputs],
            "turns_valid": [out.turns_valid for out in outputs],
        }

    def _local_groups(self, n_local: int) -> list[int]:
        """Global group index of each local row (TRL lays groups out contiguously across ranks)."""
        offset = self.accelerator.process_index * n_local
        return [(offset + i) // self.num_generations for i in range(n_local)]

    def _row_shots(self, inputs: list[dict]) -> list[int]:
        """Shots of each local row: its item's, in the slots of its group that take demonstrations."""
        slots = group_slots(self.accelerator.process_index, len(inputs), self.num_generations)
        return [self.hard_sampler.shots_for(x["id"], slot) for x, slot in zip(inputs, slots)]

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        with self._clock.part("bookkeeping"):
            return self._generate_step(inputs)

    def _trl_generate_and_score(self, inputs: list[dict]) -> tuple[dict, _Pass]:
        """One of TRL's generation passes (its own work there is timed as trl_other), and its groups
        gathered over all processes, which our `_calculate_rewards` hands over from within the pass."""
        with self._clock.part("trl_other"):
            return self._generated.through(functools.partial(super()._generate_and_score_completions, inputs))

    def _generate_step(self, inputs):
        groups = self._local_groups(len(inputs))
        shots = self._row_shots(inputs)
        output, first = self._trl_generate_and_score(self._pose(inputs, shots, groups))
        self._observe_pass(first)
        successes = group_successes(first.correct, self.num_generations)
        if self.args.reroll_all_fail and self.args.uses_hard_sampling:
            # Items just found hard now have (more) demonstrations: pose them again at once.
            heads = range(0, len(first.ids), self.num_generations)  # the first row of each group
            hard = reroll_groups(
                [first.origin[i] for i in heads],
                [first.shots[i] for i in heads],
                [self.hard_sampler.shots_for(first.ids[i]) for i in heads],
            )
            if hard:
                retry = self._row_shots(inputs)
                second, rerolled, targets = self._regenerate(inputs, retry, groups, hard)
                kept = self._observe_pass(rerolled, keep=lambda origin, successes: origin != NOT_NEEDED)
                output = self._merge(output, second, targets)
                replaced = {t for t in targets if t is not None}
                shots = [retry[i] if i in replaced else k for i, k in enumerate(shots)]
                self._metrics["train"]["rollouts/rerolled_groups"].append(float(len(kept)))
        elif self.args.mode == "dapo_filter":
            output = self._dapo_fill(inputs, groups, successes, output)
        if self.args.carry_over != "none":
            output = self._swap_to_zero_shot(output, inputs, shots)
        # Prompt tokens are most of a CPU step's cost (prefill and the loss forward): keep them in view.
        self._metrics["train"]["tokens/prompt_mean"].append(output["prompt_mask"].sum(1).float().mean().item())
        return output

    def _regenerate(self, inputs: list[dict], shots: list[int], groups: list[int], needed: set[int]):
        """A second generation pass over only the local rows of the global groups in ``needed``, padded
        so that every process generates as many rows (`plan_regeneration`). Returns the pass's output,
        its gathered groups, and, per row of it, the local row it replaces (or None).
        """
        size = self.num_generations
        width = len(regeneration_rows(groups, needed, size))
        if len(groups) % size == 0:  # rows of whole groups: as many as the process that needs most
            width = max(gather_object([width]))
        plan = plan_regeneration(groups, needed, size, width)
        second, generated = self._trl_generate_and_score(
            self._pose([inputs[i] for i in plan.rows], [shots[i] for i in plan.rows], plan.origin)
        )
        return second, generated, plan.targets

    def _merge(self, output: dict, second: dict, targets: list[int | None]) -> dict:
        """`replace_rows`, then the token count the loss is normalised by, over all ranks."""
        merged = replace_rows(output, second, targets)
        merged["num_items_in_batch"] = self.accelerator.gather(self._loss_mask(merged).sum()).sum()
        return merged

    def _dapo_fill(self, inputs: list[dict], groups: list[int], successes: list[int], output: dict) -> dict:
        """DAPO dynamic sampling: replace zero-variance groups by groups of fresh prompts."""
        flat = zero_variance_groups(successes, self.num_generations)
        for _ in range(self.args.dapo_max_fill_rounds):
            if not flat:
                break
            # Every rank draws the same fresh items (the RNG is seeded alike); only flat groups use theirs.
            fresh_ids = [self._fresh_rng.randrange(len(self.train_dataset)) for _ in successes]
            fresh = [self.train_dataset[fresh_ids[g]] for g in groups]
            second, filled, targets = self._regenerate(fresh, [0] * len(fresh), groups, flat)
            useful = self._observe_pass(
                filled, keep=lambda origin, s: origin != NOT_NEEDED and has_variance(s, self.num_generations)
            )
            targets = kept_targets(targets, groups, useful)
            output = self._merge(output, second, targets)
            flat -= useful
        return output

    def _swap_to_zero_shot(self, output: dict, inputs: list[dict], shots: list[int]) -> dict:
        """Rows made with demonstrations take their item's zero-shot prompt; the completion stays.

        The loss of those rows is then computed on p(completion | zero-shot prompt), the
        probability evaluation measures (`carry_over_per_token_loss`); the prompt is also shorter.
        """
        swapped = [k > 0 for k in shots]
        device = output["prompt_ids"].device
        output["swapped"] = torch.tensor(swapped, device=device)
        rate = self.accelerator.gather(output["swapped"].float().mean().reshape(1)).mean().item()
        self._metrics["train"]["carry_over/swapped_share"].append(rate)
        if not any(swapped):
            return output
        zero_shot = iter(self._tokenize_prompts([x["prompt"] for x, s in zip(inputs, swapped) if s])[0])
        prompts = [
            torch.tensor(next(zero_shot), device=device) if s else ids[mask.bool()]
            for s, ids, mask in zip(swapped, output["prompt_ids"], output["prompt_mask"])
        ]
        output["prompt_ids"] = pad(prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left")
        output["prompt_mask"] = pad(
            [torch.ones_like(p) for p in prompts], padding_value=0, padding_side="left"
        )
        if output.get("importance_sampling_ratio") is not None:  # vLLM's correction: not for swapped rows
            output["importance_sampling_ratio"][output["swapped"]] = 1.0
        return output

    def _tokenize_prompts(self, prompts: list):
        # Text the chat template rendered (`PromptSpec.render`): it holds any BOS token already.
        return self.processing_class(text=prompts, add_special_tokens=False)["input_ids"], None, {}

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        turn = (prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        if self.use_vllm or self.use_transformers_continuous_batching:
            if self.args.shared_prompt_generation:
                self._shared_generation_unavailable("vLLM and continuous batching prefill by their own means")
            with self._clock.part("decode"):  # their prefill cannot be told apart
                return super()._generate_single_turn(*turn)
        # TRL calls `generate` on this very object (what `unwrap_model_for_generation` yields): shadow
        # the method for this call only, restoring whatever instance attribute stood there before.
        model = self.accelerator.unwrap_model(self.model_wrapped)
        before = vars(model).get("generate")
        model.generate = functools.partial(self._timed_generate, model, model.generate)
        try:
            return super()._generate_single_turn(*turn)
        finally:
            del model.generate
            if before is not None:
                model.generate = before

    def _timed_generate(self, model, generate, **inputs):
        """``generate(**inputs)`` as TRL calls it, timed as ``prefill`` (up to the first new token) and
        ``decode`` (the rest), and with `shared_prompt_generation` each distinct prompt prefilled once
        (`shared_prompt_cache`, SPEC §11). What that cannot serve leaves it to the plain call for the
        rest of the run, with one warning naming why."""
        first_token = _FirstTokenTime(self._clock.sync)
        criteria = [*(inputs.get("stopping_criteria") or []), first_token]
        inputs["stopping_criteria"] = StoppingCriteriaList(criteria)
        with self._clock.part("decode"):
            started = time.perf_counter()
            shared = {}
            if self.args.shared_prompt_generation and self._shared_generation_off is None:
                try:
                    shared = shared_prompt_cache(model, **inputs)
                except ValueError as error:
                    self._shared_generation_unavailable(str(error))
            output = generate(**inputs, **shared)
            if first_token.seen is not None:
                self._clock.charge("prefill", first_token.seen - started)
        return output

    def _shared_generation_unavailable(self, reason: str) -> None:
        if self._shared_generation_off is None:
            warnings.warn(
                f"shared_prompt_generation: {reason}; generation prefills every row's prompt instead "
                "(this warning is shown once per run)",
                stacklevel=3,
            )
        self._shared_generation_off = reason

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        with self._clock.part("bookkeeping"):
            return self._rewards_and_pass(inputs, prompts, completions, completion_ids_list)

    def _rewards_and_pass(self, inputs, prompts, completions, completion_ids_list):
        completions = [with_prefill(c, self._prefill) for c in completions]
        with self._clock.part("reward"):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if not self.model.training:
            return rewards_per_func
        # Rewards come back gathered over all ranks; gather the rest alike so groups are whole.
        correct = rewards_per_func[:, 0].tolist()
        self._generated.put(
            _Pass(
                ids=gather_object([x["id"] for x in inputs]),
                shots=gather_object([x["shots"] for x in inputs]),
                correct=correct,
                texts=gather_object([completion_text(c) for c in completions]),
                origin=gather_object([x["origin"] for x in inputs]),
            )
        )
        self._metrics["train"]["reward/correct"].append(sum(correct) / len(correct))
        if rewards_per_func.shape[1] > 1:
            self._metrics["train"]["reward/bonus"].append(rewards_per_func[:, 1].mean().item())
        self._metrics["train"]["rollouts/generated"].append(float(len(correct)))
        return rewards_per_func

    def _observe_pass(self, p: _Pass, keep: Callable[[int, int], bool] | None = None) -> set[int]:
        """Hand the groups of the pass ``p`` (all, or those ``keep(origin, successes)`` accepts) to the
        hard sampler; log its metrics and ledger rows. Returns the origins of the groups handed over."""
        size = self.num_generations
        successes = group_successes(p.correct, size)
        groups = [g for g in range(len(successes)) if keep is None or keep(p.origin[g * size], successes[g])]
        rollouts = [i for g in groups for i in range(g * size, (g + 1) * size)]
        if rollouts:
            rows, metrics = self.hard_sampler.observe(
                [p.ids[i] for i in rollouts],
                [p.shots[i] for i in rollouts],
                [p.correct[i] for i in rollouts],
                [p.texts[i] for i in rollouts],
                size,
                self.state.global_step + 1,
            )
            for name, value in metrics.items():
                self._metrics["train"][name].append(value)
            if self.accelerator.is_main_process:
                self._append_jsonl(LEDGER_FILE, rows)
        return {p.origin[g * size] for g in groups}

    # -- loss: only rows that teach something; carry-over rows under the zero-shot prompt ------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with self._clock.part("bookkeeping"):
            return self._active_loss(model, inputs)

    def _active_loss(self, model, inputs) -> torch.Tensor:
        advantages = inputs["advantages"]
        active = advantages != 0 if self._may_skip else torch.ones_like(advantages, dtype=torch.bool)
        if not self.accelerator.gather(active.any().float().reshape(1)).any():
            # Every process agrees, so no DDP reduction is left waiting. A leaf, not the model's graph:
            # backward touches no weight, their grads stay None and the optimizer skips them.
            self._metrics["train"]["skipped_zero_advantage_batches"].append(1.0)
            return torch.zeros((), device=advantages.device, requires_grad=True)
        if not active.any():  # another process learns from its rows: this one must join the backward
            active = torch.ones_like(active)
        self._metrics["train"]["loss_rows_share"].append(active.float().mean().item())
        if active.all():  # nothing to leave out: no copy
            share, part = 1.0, dict(inputs)
        else:
            share = row_share(active, self._loss_mask(inputs), self.loss_type)
            part = subset_rows(inputs, active)
        return self._active_rows_loss(model, part) * share

    def _trl_loss(self, model, part: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """TRL's loss (its own arithmetic timed as trl_other, its log-prob forward apart) and the
        per-token log-probs of that forward."""
        with self._clock.part("trl_other"):
            return self._loss_logps.through(functools.partial(super()._compute_loss, model, part))

    def _active_rows_loss(self, model, part: dict) -> torch.Tensor:
        swapped = part.get("swapped")
        if swapped is None or not swapped.any():
            return self._trl_loss(model, part)[0]
        # One forward for all rows (DDP allows one per backward): TRL's loss sees the swapped rows with
        # advantage 0, and their own term reuses the log-probs of that forward.
        carry_advantages = part["advantages"] * swapped
        part["advantages"] = part["advantages"] * ~swapped
        loss, logps = self._trl_loss(model, part)
        return loss + self.carry_over_loss(logps, part, carry_advantages)

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **inputs,
    ):
        options = {"batch_size": batch_size, "compute_entropy": compute_entropy}
        options.update(compute_aux_loss=compute_aux_loss, **inputs)
        output = None
        with self._clock.part("logprob_forward"):
            if self.args.shared_prompt_loss:
                output = self._shared_prompt_pass(model, input_ids, attention_mask, logits_to_keep, **options)
            if output is None:
                plain = super()._get_per_token_logps_and_entropies
                output = plain(model, input_ids, attention_mask, logits_to_keep, **options)
        self._loss_logps.put(output[0])  # `_trl_loss` takes the loss forward's
        return output

    def _shared_prompt_pass(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size,
        compute_entropy,
        compute_aux_loss,
        **inputs,
    ) -> tuple | None:
        """TRL's ``(logps, entropies, aux_loss)`` with each distinct prompt of a chunk encoded once
        (`shared_prompt_logps_and_entropies`, SPEC §11), or None where the plain path must serve.

        TRL hands ``[prompt, completion]`` with ``logits_to_keep`` the completion's width: split back.
        Chunks of ``batch_size`` rows, as TRL's (``batch_size`` bounds the memory of a pass; rows
        of a group cut by a chunk boundary cost their prompt once more, still exact). A chunk whose
        prompts are all distinct takes TRL's path (nothing to save). What the shared path cannot
        serve (gradient checkpointing, sliding windows, multimodal inputs, an MoE aux loss, ...)
        leaves it to the plain path for the rest of the run, for that model and gradient mode (the
        no-grad generation passes may still share under gradient checkpointing), with one warning
        per run naming why. A loss forward it serves logs ``shared_prompt/rows_per_prompt`` (rows
        over prompts encoded; 1 where no chunk shared): a run without it trained on the plain path."""
        key = (id(model), torch.is_grad_enabled())
        if key in self._shared_prompt_off:
            return None
        given = sorted(name for name, value in inputs.items() if value is not None)
        reason = None
        if compute_aux_loss:
            reason = "the MoE load-balancing loss (output_router_logits) needs the plain forward"
        elif given:
            reason = f"multimodal inputs ({', '.join(given)}) go with the plain forward"
        if reason is not None:
            self._shared_prompt_unavailable(key, reason)
            return None
        split = input_ids.shape[1] - logits_to_keep
        if logits_to_keep <= 0 or split <= 0:
            return None
        rows = input_ids.shape[0]
        size = batch_size or rows
        logps, entropies, encoded = [], [], 0
        for start in range(0, rows, size):
            chunk = slice(start, start + size)
            prompt_ids, prompt_mask = input_ids[chunk, :split], attention_mask[chunk, :split]
            distinct = len(group_rows(prompt_ids, prompt_mask)[0])
            encoded += distinct
            if distinct == prompt_ids.shape[0]:  # nothing repeats
                plain = super()._get_per_token_logps_and_entropies
                ids, mask = input_ids[chunk], attention_mask[chunk]
                chunk_logps, chunk_entropies, _ = plain(
                    model, ids, mask, logits_to_keep, compute_entropy=compute_entropy
                )
            else:
                try:
                    with self.accelerator.autocast():
                        chunk_logps, chunk_entropies = shared_prompt_logps_and_entropies(
                            model,
                            prompt_ids,
                            prompt_mask,
                            input_ids[chunk, split:],
                            attention_mask[chunk, split:],
                            temperature=self.temperature,
                            compute_entropy=compute_entropy,
                        )
                except ValueError as error:
                    self._shared_prompt_unavailable(key, str(error))
                    return None
            logps.append(chunk_logps)
            entropies.append(chunk_entropies)
        if torch.is_grad_enabled():  # the loss forward: how many rows each encoded prompt served
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["shared_prompt/rows_per_prompt"].append(rows / max(encoded, 1))
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def _shared_prompt_unavailable(self, key: tuple, reason: str) -> None:
        if not self._shared_prompt_off:
            warnings.warn(
                f"shared_prompt_loss: {reason}; TRL's plain path encodes every row's prompt instead "
                "(this warning is shown once per run)",
                stacklevel=3,
            )
        self._shared_prompt_off[key] = reason

    @staticmethod
    def _loss_mask(inputs: dict) -> torch.Tensor:
        mask = inputs["completion_mask"]
        return mask * inputs["tool_mask"] if inputs.get("tool_mask") is not None else mask

    def carry_over_loss(self, logps: torch.Tensor, inputs: dict, advantages: torch.Tensor) -> torch.Tensor:
        """The term of swapped rows (``advantages`` is 0 on the others), from the log-probs of the
        completions under the zero-shot prompt, aggregated as TRL aggregates ``loss_type``."""
        mask = self._loss_mask(inputs)
        per_token, weight = carry_over_per_token_loss(
            logps,
            advantages.unsqueeze(1),
            self.args.carry_over_gamma,
            self._nll_coef(),
            policy_term=self.args.carry_over != "nll",
        )
        swapped_mask = mask * inputs["swapped"].unsqueeze(1)
        self._metrics["train"]["carry_over/importance_weight"].append(
            ((weight * swapped_mask).sum() / swapped_mask.sum().clamp(min=1)).item()
        )
        return aggregate(
            per_token,
            mask,
            self.loss_type,
            num_items_in_batch=inputs.get("num_items_in_batch"),
            num_processes=self.accelerator.num_processes,
            accumulation=self.current_gradient_accumulation_steps,
            steps_per_generation=self.args.steps_per_generation,
            max_completion_length=self.max_completion_length,
        )

    def _nll_coef(self) -> float:
        """lambda of swap_nll / nll at this step: linear from `carry_over_nll_coef` to 0."""
        if self.args.carry_over not in ("swap_nll", "nll"):
            return 0.0
        horizon = self.args.carry_over_nll_anneal_steps
        horizon = self.args.max_steps if horizon is None else horizon
        coef = self.args.carry_over_nll_coef
        if horizon > 0:  # 0: constant
            coef *= max(0.0, 1.0 - self.state.global_step / horizon)
        self._metrics["train"]["carry_over/nll_coef"].append(coef)
        return coef

    def _append_jsonl(self, name: str, rows: list[dict]) -> None:
        append_jsonl(Path(self.args.output_dir, name), rows)

    def _save(self, output_dir: str | None = None, state_dict=None):
        super()._save(output_dir, state_dict)
        if self.args.should_save:  # `toolexpander eval --model RUN_DIR` reads how the model was prompted
            self.prompt_spec.save(output_dir or self.args.output_dir, self.processing_class)

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
            write_file(Path(folder, STATE_FILE), dumps_json(state))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        state_path = Path(checkpoint, STATE_FILE)
        if state_path.is_file():
            state = json.loads(state_path.read_text(encoding="utf-8"))
            self.hard_sampler.load_state_dict(state["hard_sampler"])
            version, internal, gauss = state["fresh_rng"]
            self._fresh_rng.setstate((version, tuple(internal), gauss))
        elif self.args.resume_without_hard_sampling_state:
            warnings.warn(f"{checkpoint} holds no {STATE_FILE}: hard sampling restarts from scratch")
        else:  # a UserError, not a ValueError: this runs inside train(), past commands.py's wrapping
            raise UserError(
                f"{checkpoint} holds no {STATE_FILE} (not saved by toolexpander?): resuming from it would "
                "restart hard sampling from scratch; pass --resume_without_hard_sampling_state true to do so"
            )
        # Rows written after the checkpoint (a run killed between checkpoints) would count twice.
        if self.accelerator.is_main_process:
            step = json.loads(Path(checkpoint, "trainer_state.json").read_text())["global_step"]
            for name in (LEDGER_FILE, METRICS_FILE):
                truncate_jsonl_after_step(Path(self.args.output_dir, name), step)


class _FirstTokenTime(StoppingCriteria):
    """Stops nothing; notes when ``generate`` has its first new token (after ``sync``, if any)."""

    def __init__(self, sync: Callable[[], None] | None):
        self.sync, self.seen = sync, None

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        if self.seen is None:
            if self.sync is not None:
                self.sync()
            self.seen = time.perf_counter()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class MetricsFile(TrainerCallback):
    """Writes every training log (TRL's metrics and ours) as one line of ``output_dir/metrics.jsonl``,
    with its ``step`` and the learning rate also as ``lr``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or any(key.startswith("eval_") for key in logs):
            return
        row = {"step": state.global_step, **logs}
        if "learning_rate" in logs:
            row["lr"] = logs["learning_rate"]
        append_jsonl(Path(args.output_dir, METRICS_FILE), [row])


def truncate_jsonl_after_step(path: Path, step: int) -> None:
    """Keep the rows of ``path`` whose ``step`` is at most ``step``. Its last line may be torn (a run
    killed while appending): it is dropped with a warning. A broken line before it is a UserError."""
    if not path.is_file():
        return
    # surrogateescape: a kill can cut the last line inside a UTF-8 character.
    rows = list(jsonl_rows(path.read_text(encoding="utf-8", errors="surrogateescape")))
    kept = []
    for position, (number, row, reason) in enumerate(rows, 1):
        if reason is not None and position == len(rows):
            warnings.warn(f"{path}:{number}: dropped the torn last line of a run killed while writing it")
            continue
        if reason is None and not (isinstance(row, dict) and isinstance(row.get("step"), int)):
            reason = "a row without an integer 'step'"
        if reason is not None:
            raise UserError(f"{path}:{number}: {reason}; resuming needs this line mended or deleted")
        if row["step"] <= step:
            kept.append(row)
    write_file(path, jsonl_text(kept))
