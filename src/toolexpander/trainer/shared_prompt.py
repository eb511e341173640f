"""Encode each group's prompt once for the loss (SPEC §11, issue 23).

All G rollouts of a GRPO group share their prompt, yet the plain loss path runs the full
``[prompt, completion]`` sequence of every row through the model, so the prompt is encoded G times
in each forward and backward. Here the distinct prompts of a batch are encoded once, with gradient;
their keys and values (a transformers ``DynamicCache``) are expanded to one copy per row
(``index_select``, whose backward sums the rows' gradients back onto the shared prompt), and the
completions of all rows run in one forward against that cache, with position ids continued from each
prompt's true (unpadded) length. The result equals the plain path's per-token log-probs and
gradients up to float rounding.

Positions are those HF ``generate`` gives (the attention mask's cumsum: pads skipped). TRL's plain
loss forward passes no position ids, so its positions count the left pads too; with rotary
position embeddings (Qwen2, Llama, ...) only position differences enter attention, and every real
token of a row is shifted by the same pad count, so both give the same result. A model with absolute
position embeddings would differ from TRL's plain path there (it would match generation instead).

What cannot be served raises ``ValueError`` (the caller falls back to the plain path): a model whose
forward takes no cache, gradient checkpointing while gradients are recorded, cache layers other than
plain full-attention ``DynamicLayer`` (sliding windows, linear attention, quantized caches),
encoder-decoder models, prompts that are not left-padded.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

__all__ = ["group_rows", "shared_prompt_logps"]


def group_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct prompts of a batch: ``(unique_index, row_to_unique)``.

    Two rows hold the same prompt when their token ids under the mask (the real tokens, in order)
    are identical; padding, its amount and the pad ids are ignored. ``unique_index[u]`` is the first
    row holding distinct prompt ``u`` (prompts numbered by first appearance) and
    ``row_to_unique[b]`` the distinct prompt of row ``b``, so
    ``unique_index[row_to_unique[b]]`` holds row ``b``'s prompt. Nothing assumes groups of G
    consecutive rows. Both are ``long`` tensors on ``prompt_ids``' device.

    >>> ids = torch.tensor([[0, 5, 6], [9, 5, 6], [7, 8, 6], [0, 5, 6]])
    >>> mask = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [0, 1, 1]])
    >>> group_rows(ids, mask)
    (tensor([0, 2]), tensor([0, 0, 1, 0]))
    """
    if prompt_ids.shape != prompt_mask.shape or prompt_ids.dim() != 2:
        raise ValueError(
            f"prompt_ids {tuple(prompt_ids.shape)} and prompt_mask {tuple(prompt_mask.shape)} "
            "must be two [batch, length] tensors of one shape"
        )
    ids = prompt_ids.detach().cpu().tolist()
    keep = prompt_mask.detach().cpu().bool().tolist()
    first_row: dict[tuple[int, ...], int] = {}
    unique_index: list[int] = []
    row_to_unique: list[int] = []
    for row, (row_ids, row_keep) in enumerate(zip(ids, keep)):
        key = tuple(token for token, kept in zip(row_ids, row_keep) if kept)
        if key not in first_row:
            first_row[key] = len(unique_index)
            unique_index.append(row)
        row_to_unique.append(first_row[key])
    device = prompt_ids.device
    return (
        torch.tensor(unique_index, dtype=torch.long, device=device),
        torch.tensor(row_to_unique, dtype=torch.long, device=device),
    )


def shared_prompt_logps(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token log-probs ``[B, C]`` of ``completion_ids`` given their (left-padded) prompts.

    The same numbers as the plain path (``model(cat([prompt, completion]))``, logits of the
    ``C`` positions before each completion token divided by ``temperature``, log-softmax, gather),
    with each distinct prompt encoded once: one forward over the ``U`` distinct prompts filling a
    KV cache, which is expanded to the ``B`` rows, then one forward over the completions (but their
    last token, whose logits score nothing). The first completion token is scored by the prompt's
    last logits. Gradients reach the parameters through the shared keys and values (their
    expansion's backward sums the rows). Positions under ``completion_mask == 0`` get finite
    numbers of no meaning; mask them as the plain path's are. Log-softmax runs in float32.

    Raises ``ValueError`` for what it cannot serve (see the module's docstring).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if prompt_ids.dim() != 2 or prompt_ids.shape != prompt_mask.shape:
        raise ValueError("prompt_ids and prompt_mask must be two [batch, prompt_length] tensors of one shape")
    if completion_ids.dim() != 2 or completion_ids.shape != completion_mask.shape:
        raise ValueError(
            "completion_ids and completion_mask must be two [batch, completion_length] tensors of one shape"
        )
    if prompt_ids.shape[0] != completion_ids.shape[0]:
        raise ValueError(f"{prompt_ids.shape[0]} prompts for {completion_ids.shape[0]} completions")
    batch, completion_length = completion_ids.shape
    if batch == 0 or completion_length == 0:
        return torch.zeros(batch, completion_length, device=completion_ids.device)
    _check_left_padded(prompt_mask)
    cache_kwarg, keeps_logits = _check_model(model)

    from transformers import DynamicCache

    unique_index, row_to_unique = group_rows(prompt_ids, prompt_mask)
    unique_ids = prompt_ids.index_select(0, unique_index)
    unique_mask = prompt_mask.index_select(0, unique_index).long()

    # 1. The distinct prompts, once, with gradient. Positions as HF generate makes them: the mask's
    # cumsum, so pads are skipped (their own position is 1, of no matter: nothing attends to them).
    prompt_positions = (unique_mask.cumsum(-1) - 1).masked_fill(unique_mask == 0, 1)
    cache = DynamicCache(config=_innermost(model).config)
    extra = {"logits_to_keep": 1} if keeps_logits else {}
    prompt_out = model(
        input_ids=unique_ids,
        attention_mask=unique_mask,
        position_ids=prompt_positions,
        use_cache=True,
        **{cache_kwarg: cache},
        **extra,
    )
    _check_cache(cache, unique_ids.shape[1])
    last_logits = prompt_out.logits[:, -1, :].float() / temperature  # [U, V]: scores each row's first token
    first_logps = (
        last_logits.index_select(0, row_to_unique).gather(-1, completion_ids[:, :1].long())
        - torch.logsumexp(last_logits, dim=-1).index_select(0, row_to_unique)[:, None]
    )  # [B, 1]
    if completion_length == 1:
        return first_logps

    # 2. One copy of its prompt's keys and values per row (index_select: the backward sums the rows).
    cache.reorder_cache(row_to_unique)
    row_prompt_mask = unique_mask.index_select(0, row_to_unique)
    prompt_lengths = row_prompt_mask.sum(-1, keepdim=True)  # [B, 1]
    inputs = completion_ids[:, :-1]  # the last token's logits score nothing
    positions = prompt_lengths + torch.arange(completion_length - 1, device=inputs.device)[None, :]
    attention_mask = torch.cat([row_prompt_mask, completion_mask[:, :-1].long()], dim=1)
    out = model(
        input_ids=inputs,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        **{cache_kwarg: cache},
    )
    logits = out.logits.float() / temperature  # [B, C-1, V]
    targets = completion_ids[:, 1:].long().unsqueeze(-1)
    rest_logps = logits.gather(-1, targets).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return torch.cat([first_logps, rest_logps], dim=1)


def _check_left_padded(prompt_mask: torch.Tensor) -> None:
    """Every row must be pads then at least one real token: the shared cache's last position must
    be each prompt's last token, as the plain path's logit at ``-C-1`` is."""
    mask = prompt_mask.long()
    if prompt_mask.shape[1] == 0:
        raise ValueError("empty prompts: nothing to share")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("prompt_mask must hold 0 and 1 only")
    if not bool((mask[:, -1] == 1).all()) or not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        raise ValueError("prompts must be left-padded (pads, then at least one token, no gaps)")


def _innermost(model: nn.Module) -> nn.Module:
    """The transformers model under PEFT, DDP or accelerate wrappers."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "get_base_model") and callable(model.get_base_model):
            inner = model.get_base_model()
        elif isinstance(getattr(model, "module", None), nn.Module):
            inner = model.module
        else:
            return model
        if inner is model:
            return model
        model = inner
    return model


def _check_model(model: nn.Module) -> tuple[str, bool]:
    """The name the model's forward takes its cache by (``cache`` from transformers 5.2x,
    ``past_key_values`` before) and whether it takes ``logits_to_keep``; ValueError if it cannot
    be served."""
    inner = _innermost(model)
    config = getattr(inner, "config", None)
    if config is None:
        raise ValueError(f"{type(inner).__name__} has no config: not a transformers model")
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"{type(inner).__name__} is an encoder-decoder model: its prompts cannot be shared")
    try:
        params = inspect.signature(inner.forward).parameters
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot read the forward signature of {type(inner).__name__}: {error}") from error
    if "cache" in params:
        cache_kwarg = "cache"
    elif "past_key_values" in params:
        cache_kwarg = "past_key_values"
    else:
        raise ValueError(
            f"{type(inner).__name__}.forward takes no KV cache (neither `cache` nor `past_key_values`)"
        )
    # Checkpointed layers in training mode drop the cache (transformers 5.25 only while recording
    # gradients, 5.17 always: `_check_cache` catches that after the prompt forward).
    if torch.is_grad_enabled() and any(
        getattr(module, "gradient_checkpointing", False) and module.training for module in model.modules()
    ):
        raise ValueError(
            "gradient checkpointing drops the KV cache in training (and its replay would write it twice): "
            "the shared prompt cannot be used with it"
        )
    return cache_kwarg, "logits_to_keep" in params


def _check_cache(cache, prompt_length: int) -> None:
    """After the prompt forward: one full-attention DynamicLayer per layer, each holding the prompt."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers:
        raise ValueError("the model's forward filled no KV cache")
    for index, layer in enumerate(layers):
        if type(layer) is not DynamicLayer:
            raise ValueError(
                f"cache layer {index} is a {type(layer).__name__}: only full-attention DynamicLayer "
                "caches (no sliding window, linear attention or quantization) can be shared"
            )
        if layer.get_seq_length() != prompt_length:
            raise ValueError(
                f"cache layer {index} holds {layer.get_seq_length()} positions after a prompt of {prompt_length} "
                "(gradient checkpointing in training mode drops the cache even without gradients in some "
                "transformers versions: use eval mode there)"
            )
