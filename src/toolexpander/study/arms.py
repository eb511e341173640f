"""The arms of the comparison study and of the demo: named recipes, each a few settings on top of
a run's budget (items, optimizer steps, rollouts), so every arm gets the same items and the same
number of optimizer steps (SPEC §9).

Kinds:

- ``base``: the model as loaded (the reference row; nothing is trained);
- ``sft``: TRL's ``SFTTrainer`` on the training items' gold answers, rendered by
  `toolexpander.prompts` under the zero-shot prompt the RL arms are evaluated with, loss on the
  answer tokens only; as many optimizer steps as the RL arms, batches of as many items as an RL
  step poses (so each item is seen as often as an RL arm visits it);
- ``rl``: our GRPO trainer with the arm's `ToolExpanderConfig` fields;
- ``sdft``: TRL's ``SDFTTrainer`` (`toolexpander.study.sdft`): the student samples under the
  zero-shot prompt and is distilled towards the same model reading its replies under the prompt
  with two gold demonstrations; the RL arms' steps, items per step and rollouts per item;
- ``sft_then_rl``: the ``sft`` model as the start of an ``rl`` arm (Tool-N1's and ToolRL's
  recipe). It trains twice the optimizer steps of the others, which is why ``sft_long`` (SFT for
  that many steps) is its control. ``sft_then_carry_over`` and ``sft_then_paper``.

Pure Python: importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("base", "sft", "rl", "sdft", "sft_then_rl")
# The study arm whose trained model the sft_then_* arms start from (a study must name its SFT arm so).
SFT_START = "sft"


@dataclass(frozen=True)
class Arm:
    """One arm: what it trains and why it is in the comparison."""

    name: str
    kind: str
    what: str
    sft_steps_factor: int = 1  # sft_long: SFT for the steps sft_then_rl trains in all


ARMS = {
    arm.name: arm
    for arm in (
        Arm("base", "base", "the model before training"),
        Arm("sft", "sft", "SFT on the training items' gold answers (the control)"),
        Arm("sft_long", "sft", "SFT for as many optimizer steps as sft_then_carry_over", sft_steps_factor=2),
        Arm("grpo", "rl", "plain GRPO: an all-fail group has no gradient"),
        Arm("dapo_filter", "rl", "GRPO that regenerates zero-variance groups (DAPO's dynamic sampling)"),
        Arm(
            "hard_sampling", "rl", "all-fail items re-posed with demonstrations and trained under that prompt"
        ),
        Arm(
            "toolexpander_paper",
            "rl",
            "the paper: self-exemplifying prompt and 0.01 bonus, 1 -> 2 -> 3 shots while hard, fading",
        ),
        Arm(
            "carry_over", "rl", "hard sampling in mixed groups trained under the zero-shot prompt (swap_nll)"
        ),
        Arm("carry_over_swap", "rl", "carry_over without the log-likelihood term (swap)"),
        Arm(
            "carry_over_nll",
            "rl",
            "carry_over's log-likelihood term alone on correct demonstration rows (nll)",
        ),
        Arm(
            "sdft",
            "sdft",
            "self-distillation (TRL's SDFT): the zero-shot student learns from itself shown 2 demonstrations",
        ),
        Arm("sft_then_carry_over", "sft_then_rl", "sft, then carry_over from the sft model"),
        Arm(
            "sft_then_paper",
            "sft_then_rl",
            "sft, then the paper's schedule (toolexpander_paper) from the sft model",
        ),
    )
}


def rl_fields(arm: str, *, shots: int, demo_rollouts: int, nll_coef: float) -> dict:
    """The `ToolExpanderConfig` fields that make ``arm`` what it is; {} for arms without RL.

    ``shots``: the fixed number of demonstrations of the hard-sampling arms; ``demo_rollouts``:
    m of G rollouts posed with demonstrations in mixed groups; ``nll_coef``: swap_nll's lambda.

    >>> rl_fields("carry_over_swap", shots=2, demo_rollouts=2, nll_coef=3.0)["carry_over"]
    'swap'
    """
    # Items keep their demonstrations: the carry-over arms' groups keep a zero-shot baseline
    # anyway, and withdrawing them after one success made items oscillate (SPEC §5).
    hard = {"mode": "hard_sampling_only", "shots_start": shots, "shots_cap": shots, "fading": False}
    carry = hard | {
        "carry_over": "swap_nll",
        "demo_rollouts_per_group": demo_rollouts,
        "carry_over_nll_coef": nll_coef,
    }
    table = {
        "grpo": {"mode": "grpo"},
        "dapo_filter": {"mode": "dapo_filter"},
        "hard_sampling": hard,
        "toolexpander_paper": {"mode": "toolexpander"},  # the config's defaults are the paper's schedule
        "carry_over": carry,
        "carry_over_swap": carry | {"carry_over": "swap"},
        "carry_over_nll": carry | {"carry_over": "nll"},
        "sft_then_carry_over": carry,
        "sft_then_paper": {"mode": "toolexpander"},
    }
    if arm not in ARMS:
        raise KeyError(f"unknown arm {arm!r}; choose one of {', '.join(ARMS)}")
    return dict(table.get(arm, {}))
