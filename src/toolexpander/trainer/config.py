"""Configuration of a ToolExpander run: TRL's `GRPOConfig` plus the ToolExpander fields.

Fields by purpose:
- method: `mode` (which arm of the comparison), `prompt_style`, `prompt_format`;
- Dynamic Multi-Round Hard Sampling: `hard_max_correct`, `shots_start`, `shots_step`, `shots_cap`,
  `fading`, `fade_min_successes`, `demo_sources`, `reroll_all_fail`, `demo_rollouts_per_group`;
- carry-over to zero-shot (SPEC §8): `carry_over`, `carry_over_gamma`, `carry_over_nll_coef`,
  `carry_over_nll_anneal_steps`;
- cost: `skip_zero_advantage_rows`, `shared_prompt_loss`, `shared_prompt_generation`;
- Self-Exemplifying Thinking: `self_exemplify_bonus`, `bonus_requires_correct`;
- schedule: `lr_decay_gamma`, `lr_decay_steps`, `lr_decay_unit`;
- DAPO-style filtering baseline: `dapo_max_fill_rounds`;
- resume: `resume_without_hard_sampling_state`;
- multi-turn episodes (`toolexpander.trainer.episodes`): `episode_reward`, `max_episode_tokens`;
- run folder: `overwrite_output_dir` (a folder holding a run is refused without it or a resume).
TRL defaults changed to the paper's (SPEC §1): `num_generations=10`, `beta=0.0`, `epsilon=0.2`,
`epsilon_high=0.28`. The paper's token-level loss is TRL's own default (`loss_type="dapo"`), left as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import GRPOConfig

from toolexpander.prompts import PROMPT_FORMATS, PromptSpec
from toolexpander.tasks.suite import LEVELS, SPLITS

MODES = ("toolexpander", "grpo", "dapo_filter", "hard_sampling_only", "self_exemplify_only")
# Which of the two ideas each mode switches on: (hard sampling with demonstrations, self-exemplifying).
CARRY_OVER = ("none", "swap", "swap_nll", "nll")
# Loss types the carry-over term is defined for (its aggregation: trainer.loss.aggregate, as TRL aggregates).
CARRY_OVER_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")
MODE_FEATURES = {
    "toolexpander": (True, True),
    "grpo": (False, False),
    "dapo_filter": (False, False),
    "hard_sampling_only": (True, False),
    "self_exemplify_only": (False, True),
}
# Fields only a mode with hard sampling uses: the rollouts it poses with demonstrations.
DEMO_FIELDS = ("carry_over", "demo_rollouts_per_group", "reroll_all_fail")


def default_prompt_style(mode: str) -> str:
    """The prompt a mode trains and evaluates with: self_exemplify where it uses that idea."""
    return "self_exemplify" if MODE_FEATURES[mode][1] else "plain"


@dataclass
class ToolExpanderScriptArguments:
    """What to train on: the dataset and how to read it."""

    dataset: str = field(
        default="suite",
        metadata={
            "help": "Training data: a JSONL/JSON file, a hub dataset id, or 'suite' for the built-in tool suite."
        },
    )
    dataset_format: str = field(
        default="auto",
        metadata={"help": "Format of `dataset` (auto, toolexpander, glaive, toolace, xlam, toolrl, ...)."},
    )
    suite_level: str = field(
        default="full",
        metadata={"help": "Level of the built-in suite: full, or easy (single calls, one distractor)."},
    )
    dataset_split: str = field(
        default="train", metadata={"help": "Split to read from a hub dataset or the suite."}
    )
    max_train_items: int | None = field(
        default=None, metadata={"help": "Use only the first N valid items (quick runs)."}
    )
    held_out_after: int | None = field(
        default=None,
        metadata={
            "help": "Only the first N usable records are trained on or shown as demonstrations; those "
            "after them stay unseen, to be scored with `toolexpander eval --skip N` (e.g. BFCL's "
            "multi-turn categories, whose item i of each category shares its scenario with the others' i)."
        },
    )
    skip_invalid: bool = field(
        default=False,
        metadata={"help": "Skip invalid records (reported) instead of stopping with the list of problems."},
    )
    build_tiny_model: bool = field(
        default=False,
        metadata={
            "help": "Build a tiny random model at `model_name_or_path` first (tests and the tiny-cpu recipe)."
        },
    )

    def __post_init__(self):
        problems = []
        if self.dataset == "suite" and self.suite_level not in LEVELS:
            problems.append(f"suite_level must be one of {', '.join(LEVELS)}, got {self.suite_level!r}")
        if self.dataset == "suite" and self.dataset_split not in SPLITS:
            splits = ", ".join(SPLITS)
            problems.append(f"the suite has splits {splits}; got dataset_split {self.dataset_split!r}")
        if self.max_train_items is not None and self.max_train_items < 1:
            problems.append(f"max_train_items must be >= 1 (or unset: all), got {self.max_train_items}")
        if self.held_out_after is not None and self.held_out_after < 1:
            problems.append(f"held_out_after must be >= 1 (or unset: every record), got {self.held_out_after}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class ToolExpanderConfig(GRPOConfig):
    """`GRPOConfig` with Dynamic Multi-Round Hard Sampling and Self-Exemplifying Thinking.

    See the module docstring for the fields grouped by purpose, and SPEC §1 for why each default.
    """

    mode: str = field(
        default="toolexpander",
        metadata={"help": f"Training arm: one of {', '.join(MODES)}. All share the same rollout budget."},
    )
    prompt_style: str | None = field(
        default=None,
        metadata={
            "help": "plain or self_exemplify; default follows `mode` (self_exemplify when the mode uses it)."
        },
    )
    prompt_format: str = field(
        default="tooln1",
        metadata={
            "help": "tooln1: tools as JSON lines in our system text, calls as one JSON list in <tool_call> "
            "(Tool-N1's format; any chat template, paper-faithful). native: the tokenizer's chat template "
            "renders each item's tools and the model calls in the template's own syntax (Qwen: Hermes "
            "<tool_call> blocks; Llama 3.x: JSON), as vLLM serves it with --tool-call-parser. Saved with the run."
        },
    )
    think_prefill: bool = field(
        default=False,
        metadata={
            "help": "End the generation prompt with <think>, so every reply starts inside the think block "
            "the reward asks for (saved with the run; evaluation and serving prefill alike). Helps "
            "small models that skip <think> (SmolLM2-135M: easy-level 2-shot accuracy 25 -> 50 percent, "
            "README)."
        },
    )
    correctness_reward: str = field(
        default="tool_n1",
        metadata={
            "help": "Binary reward that defines a correct answer (hardness is judged on it, never on bonuses)."
        },
    )
    episode_reward: str = field(
        default="all_turns",
        metadata={
            "help": "Multi-turn episodes: all_turns (1 iff every turn passes BFCL's per-turn check) or "
            "turn_share (ours: the share of passed turns; 1 still only for a fully correct episode)."
        },
    )
    max_episode_tokens: int = field(
        default=16384,
        metadata={
            "help": "Multi-turn episodes: the episode stops (judged on its calls so far) before a step "
            "whose prompt, episode so far and max_completion_length would pass this many tokens."
        },
    )
    hard_max_correct: int = field(
        default=0,
        metadata={"help": "A group with at most this many correct answers is hard (paper: 0 of G)."},
    )
    shots_start: int = field(
        default=1, metadata={"help": "Demonstrations given the first time an item is hard."}
    )
    shots_step: int = field(
        default=1, metadata={"help": "Demonstrations added on each later visit while still hard."}
    )
    shots_cap: int = field(default=3, metadata={"help": "Most demonstrations an item is ever posed with."})
    fading: bool = field(
        default=True,
        metadata={
            "help": "Once solved with k demonstrations, pose it with k-1 next time, down to zero-shot."
        },
    )
    fade_min_successes: int = field(
        default=1, metadata={"help": "Correct answers out of G needed before an item steps down one shot."}
    )
    demo_sources: str = field(
        default="gold,rollouts",
        metadata={
            "help": "Comma list of demonstration sources: gold (training answers), rollouts (own correct ones)."
        },
    )
    reroll_all_fail: bool = field(
        default=False,
        metadata={
            "help": "Regenerate the step's batch once with demonstrations for groups that all failed, so a first "
            "visit is not wasted (costs a second generation on such steps; logged in rollouts/generated)."
        },
    )
    demo_rollouts_per_group: int | None = field(
        default=None,
        metadata={
            "help": "Mixed groups: only the first m of a hard item's G rollouts are posed with demonstrations, "
            "the other G-m zero-shot, so the group keeps a zero-shot baseline (ICPO: 1 of 8). None: all G."
        },
    )
    carry_over: str = field(
        default="none",
        metadata={
            "help": "How rollouts made with demonstrations are trained. none: under the prompt they were made "
            "with (the paper as we read it). swap: under the item's zero-shot prompt, with the shaped weight "
            "pi/(pi+gamma), unclipped (LUFFY/ICPO). swap_nll: swap, plus -lambda*A*log pi(y|q) on swapped "
            "rows with positive advantage (lambda annealed). nll: only that log-likelihood term, no policy "
            "term on swapped rows (the ablation that is close to SFT on self-made answers)."
        },
    )
    carry_over_gamma: float = field(
        default=0.1, metadata={"help": "gamma of the shaped weight pi/(pi+gamma) on swapped rows (LUFFY: 0.1)."}
    )
    carry_over_nll_coef: float = field(
        default=1.0, metadata={"help": "swap_nll and nll: lambda at step 0 of the log-likelihood term."}
    )
    carry_over_nll_anneal_steps: int | None = field(
        default=None,
        metadata={
            "help": "swap_nll and nll: lambda falls linearly to 0 over this many steps (None: max_steps; 0: constant)."
        },
    )
    skip_zero_advantage_rows: bool = field(
        default=True,
        metadata={
            "help": "Leave rows whose advantage is 0 out of the forward and backward (beta 0, no entropy "
            "bonus): their loss and gradient are exactly 0, so the update is unchanged; TRL's entropy and "
            "clip metrics then cover the other rows. A batch with no such row is skipped: Adam then skips "
            "the step for every weight (grad None), so no momentum-carried update happens and its step "
            "count does not advance; the LR schedule still does. Off under DeepSpeed and FSDP."
        },
    )
    shared_prompt_loss: bool = field(
        default=True,
        metadata={
            "help": "Encode each distinct prompt of a batch once in the loss forward and backward, and in "
            "TRL's old and reference log-prob passes (its keys and values shared by the G rollouts, SPEC "
            "11): the same log-probs and gradients up to float rounding, the prompt's cost paid once "
            "instead of G times. On by default where supported: a model or setting it cannot serve "
            "(gradient checkpointing in the loss forward, sliding-window or other non-full-attention "
            "caches, encoder-decoder models, multimodal inputs, an MoE aux loss) falls back to TRL's plain "
            "path with one warning per run naming why. Batches whose prompts are all distinct take the "
            "plain path (nothing to save). A loss forward it serves logs shared_prompt/rows_per_prompt."
        },
    )
    shared_prompt_generation: bool = field(
        default=True,
        metadata={
            "help": "In generation with transformers' generate (use_vllm false), prefill each distinct prompt "
            "of a batch once and start every row's decoding from a copy of its keys and values (SPEC 11): "
            "greedy decoding gives the same tokens, sampling the same distribution (logits equal up to float "
            "rounding), the prompt's prefill paid once instead of G times. On by default where supported: "
            "vLLM and continuous batching (which generate by their own means), a cache_implementation, beam "
            "search, multimodal inputs, or a model or cache the shared prompt cannot serve (see "
            "shared_prompt_loss) fall back to the plain generate with one warning per run naming why."
        },
    )
    self_exemplify_bonus: float = field(
        default=0.01, metadata={"help": "Reward bonus for a well-formed self-made example inside <think>."}
    )
    bonus_requires_correct: bool = field(
        default=False, metadata={"help": "Grant the self-exemplify bonus only to correct answers."}
    )
    lr_decay_gamma: float = field(
        default=0.5, metadata={"help": "Exponential decay: lr_t = lr_0 * gamma^(t / lr_decay_steps)."}
    )
    lr_decay_steps: float = field(
        default=100.0,
        metadata={"help": "Steps (or rounds) over which the learning rate is multiplied by gamma."},
    )
    lr_decay_unit: str = field(
        default="step",
        metadata={"help": "step: decay every optimizer step; round: decay once per pass over the data."},
    )
    dapo_max_fill_rounds: int = field(
        default=1,
        metadata={
            "help": "dapo_filter: extra generation rounds to replace zero-variance groups with fresh prompts."
        },
    )
    resume_without_hard_sampling_state: bool = field(
        default=False,
        metadata={
            "help": "Resume from a checkpoint that lacks toolexpander_state.json (one not saved by "
            "toolexpander), restarting hard sampling from scratch: every item zero-shot, its history lost."
        },
    )
    # transformers 5 dropped TrainingArguments' field of this name; `toolexpander train` reads ours.
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output_dir that holds an earlier run: its metrics.jsonl, "
            "hard_samples.jsonl and checkpoint-* are deleted first (its saved model is replaced at the "
            "end). Without it (or --resume_from_checkpoint) such a folder is refused."
        },
    )
    # TRL fields whose defaults change (SPEC §1).
    num_generations: int | None = field(
        default=10, metadata={"help": "Rollouts per prompt G (the paper uses 10)."}
    )
    beta: float = field(default=0.0, metadata={"help": "KL coefficient; 0 means no reference model (paper)."})
    epsilon: float = field(default=0.2, metadata={"help": "Lower clipping bound of the ratio."})
    epsilon_high: float | None = field(default=0.28, metadata={"help": "Upper clipping bound (clip-higher)."})
    per_device_train_batch_size: int = field(
        default=10, metadata={"help": "Completions per device and step (prompts x num_generations)."}
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision; default: on with a CUDA GPU, off on CPU."}
    )

    def __post_init__(self):
        if self.bf16 is None and not self.fp16:  # TRL defaults to bf16, which a CPU-only run rejects
            self.bf16 = torch.cuda.is_available()
        super().__post_init__()
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.prompt_style not in (None, "plain", "self_exemplify"):
            problems.append(f"prompt_style must be plain or self_exemplify, got {self.prompt_style!r}")
        if self.prompt_format not in PROMPT_FORMATS:
            problems.append(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}, got {self.prompt_format!r}")
        if self.lr_decay_unit not in ("step", "round"):
            problems.append(f"lr_decay_unit must be step or round, got {self.lr_decay_unit!r}")
        if not 0 < self.lr_decay_gamma <= 1 or self.lr_decay_steps <= 0:
            problems.append("need 0 < lr_decay_gamma <= 1 and lr_decay_steps > 0")
        unknown = set(self.demo_source_list) - {"gold", "rollouts"}
        if unknown or not self.demo_source_list:
            problems.append(f"demo_sources must be a comma list of gold, rollouts; got {self.demo_sources!r}")
        if self.carry_over not in CARRY_OVER:
            problems.append(f"carry_over must be one of {', '.join(CARRY_OVER)}, got {self.carry_over!r}")
        elif self.carry_over != "none" and self.loss_type not in CARRY_OVER_LOSS_TYPES:
            problems.append(f"carry_over needs loss_type in {', '.join(CARRY_OVER_LOSS_TYPES)}, got {self.loss_type!r}")
        elif self.carry_over != "none" and self.beta != 0.0:
            # The reference log-probs were taken under the demonstration prompt: a KL term would be wrong.
            problems.append("carry_over needs beta 0 (no reference model), as the paper trains")
        if self.episode_reward not in ("all_turns", "turn_share"):
            problems.append(f"episode_reward must be all_turns or turn_share, got {self.episode_reward!r}")
        if self.carry_over_gamma <= 0:
            problems.append(f"carry_over_gamma must be > 0, got {self.carry_over_gamma}")
        if self.demo_rollouts_per_group is not None and not (
            1 <= self.demo_rollouts_per_group <= (self.num_generations or 1)
        ):
            problems.append(
                f"demo_rollouts_per_group must be in [1, num_generations={self.num_generations}], "
                f"got {self.demo_rollouts_per_group}"
            )
        if self.mode in MODES and not self.uses_hard_sampling:
            # A mode that never poses demonstrations would ignore these without a word.
            defaults = self.__dataclass_fields__
            ignored = [name for name in DEMO_FIELDS if getattr(self, name) != defaults[name].default]
            if ignored:
                hard_modes = ", ".join(mode for mode, (hard, _) in MODE_FEATURES.items() if hard)
                problems.append(
                    f"mode {self.mode} poses no demonstrations, so it would ignore {', '.join(ignored)}; "
                    f"use a mode with hard sampling ({hard_modes})"
                )
        generations = self.num_generations
        if generations is not None and self.hard_max_correct >= generations:  # every group would be hard
            problems.append(
                f"hard_max_correct must be < num_generations={generations}, got {self.hard_max_correct}"
            )
        if generations is not None and self.fade_min_successes > generations:  # no item could ever fade
            problems.append(
                f"fade_min_successes must be <= num_generations={generations}, got {self.fade_min_successes}"
            )
        if self.learning_rate < 0:
            problems.append(f"learning_rate must be >= 0, got {self.learning_rate}")
        # transformers reads any max_steps <= 0 as "train num_train_epochs": 0 would run a whole epoch.
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(f"max_steps must be >= 1, or -1 to train num_train_epochs; got {self.max_steps}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def uses_hard_sampling(self) -> bool:
        return MODE_FEATURES[self.mode][0]

    @property
    def uses_self_exemplify(self) -> bool:
        return MODE_FEATURES[self.mode][1]

    @property
    def prompt_spec(self) -> PromptSpec:
        """How this run poses its tasks: the prompt style (default: the mode's), format and prefill."""
        style = self.prompt_style or default_prompt_style(self.mode)
        return PromptSpec(style, self.prompt_format, self.think_prefill)

    @property
    def demo_source_list(self) -> list[str]:
        return [s.strip() for s in self.demo_sources.split(",") if s.strip()]
