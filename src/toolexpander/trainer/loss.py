"""How TRL 1.16's `GRPOTrainer._compute_loss` turns a per-token loss into the scalar it back-propagates.

`aggregate` reproduces it for every ``loss_type`` TRL 1.16 has (`LOSS_TYPES`); the trainer uses it for
its own loss terms (the carry-over term of swapped rows), so they weigh what TRL's term weighs, and
`row_share` for the weight of a loss computed over some rows only (rows with advantage 0 left out).
`tests/test_loss.py` checks both against TRL's own `_compute_loss`; `tests/test_trl_canary.py` fails
when TRL's rules change.

Per ``loss_type`` (``masked = per_token_loss * mask``; train mode, ``accumulation`` micro-batches per
optimizer step; TRL's eval mode is ``accumulation=1, steps_per_generation=1``):
- ``grpo``, ``sapo``: the mean over rows of each row's token mean, over ``accumulation``;
- ``bnpo``: the mean over the batch's tokens, over ``accumulation``;
- ``dr_grpo``: the sum over rows times ``max_completion_length``, over ``accumulation``;
- ``luspo``: the mean over rows of each row's token sum, over ``accumulation``;
- ``dapo``, ``cispo``, ``vespo``: the sum over the tokens of the generation batch on all processes
  (``num_items_in_batch``), rescaled to one accumulation window:
  ``sum / (num_items_in_batch / num_processes * accumulation / steps_per_generation)``.
"""

from __future__ import annotations

import torch

ROW_MEAN_LOSS_TYPES = ("grpo", "sapo")
BATCH_TOKEN_LOSS_TYPES = ("dapo", "cispo", "vespo")  # normalised by the generation batch's tokens
LOSS_TYPES = (*ROW_MEAN_LOSS_TYPES, "bnpo", "dr_grpo", *BATCH_TOKEN_LOSS_TYPES, "luspo")


def aggregate(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    *,
    num_items_in_batch: torch.Tensor | float | None = None,
    num_processes: int = 1,
    accumulation: int = 1,
    steps_per_generation: int = 1,
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """The loss TRL back-propagates for ``per_token_loss`` ((B, T), or (B, 1) broadcast over the
    tokens) on the tokens of ``mask`` (B, T), as `GRPOTrainer._compute_loss` aggregates ``loss_type``
    (module docstring). ``num_items_in_batch`` (the loss tokens of the whole generation batch, over
    all processes) is needed by dapo, cispo and vespo; ``max_completion_length`` by dr_grpo.

    >>> import torch
    >>> loss, mask = torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([[1, 1], [1, 0]])
    >>> [aggregate(loss, mask, kind).item() for kind in ("grpo", "bnpo", "luspo")]
    [2.0, 2.0, 3.0]
    >>> aggregate(loss, mask, "dapo", num_items_in_batch=6, accumulation=2, steps_per_generation=2).item()
    1.0
    """
    masked = per_token_loss * mask
    if loss_type in ROW_MEAN_LOSS_TYPES:
        loss = (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = masked.sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type dr_grpo needs max_completion_length")
        loss = masked.sum() / (masked.size(0) * max_completion_length)
    elif loss_type in BATCH_TOKEN_LOSS_TYPES:
        if num_items_in_batch is None:
            raise ValueError(f"loss_type {loss_type} needs num_items_in_batch")
        if not torch.is_tensor(num_items_in_batch):
            num_items_in_batch = torch.tensor(float(num_items_in_batch))
        normaliser = num_items_in_batch.clamp(min=1.0) / num_processes
        normaliser = normaliser * accumulation / steps_per_generation
        return masked.sum() / normaliser
    elif loss_type == "luspo":
        loss = masked.sum(-1).mean()
    else:
        raise ValueError(f"unknown loss_type {loss_type!r} (TRL 1.16 has {', '.join(LOSS_TYPES)})")
    return loss / accumulation


def row_share(rows: torch.Tensor, mask: torch.Tensor, loss_type: str) -> float | torch.Tensor:
    """What `aggregate` over the rows ``rows`` (a bool mask) alone weighs in `aggregate` over the whole
    batch, when the other rows' per-token loss is 0: ``aggregate(all) == row_share * aggregate(rows)``.

    >>> import torch
    >>> rows, mask = torch.tensor([True, False]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    >>> [float(row_share(rows, mask, kind)) for kind in ("grpo", "bnpo", "dapo")]
    [0.5, 0.75, 1.0]
    """
    if loss_type in BATCH_TOKEN_LOSS_TYPES:  # normalised by the generation batch's tokens: sums add up
        return 1.0
    if loss_type == "bnpo":
        return mask[rows].sum() / mask.sum().clamp(min=1)
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r} (TRL 1.16 has {', '.join(LOSS_TYPES)})")
    return rows.sum() / len(rows)  # means over rows
