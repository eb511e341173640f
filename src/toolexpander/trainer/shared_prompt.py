"""Encode each group's prompt once, in the loss and in generation (SPEC §11, issue 23).

All G rollouts of a GRPO group share their prompt, yet the plain loss path runs the full
``[prompt, completion]`` sequence of every row through the model, so the prompt is encoded G times
in each forward and backward. Here the distinct prompts of a batch (all but their last token) are
encoded once, with gradient; their keys and values (a transformers ``DynamicCache``) are expanded to
one copy per row (``index_select``, whose backward sums the rows' gradients back onto the shared
prompt), and each row's last prompt token and completion run in one forward against that cache,
with position ids continued from each prompt's true (unpadded) length; that forward alone scores
every completion token, so a model patched with TRL's fused LM head is scored by it, as TRL's own
loss path scores it (no ``[B, C, V]`` logits). The result equals the plain path's per-token
log-probs, entropies and gradients up to float rounding.

Generation (`shared_prompt_cache`) prefills the distinct prompts the same way, without gradient,
and hands the expanded cache to transformers' own ``generate``, which decodes every row from it.

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

__all__ = ["group_rows", "shared_prompt_cache", "shared_prompt_logps_and_entropies"]


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


def shared_prompt_logps_and_entropies(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
    compute_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs ``[B, C]`` of ``completion_ids`` given their (left-padded) prompts, and
    the entropies ``[B, C]`` of the distributions they are drawn from (None unless
    ``compute_entropy``), each distinct prompt encoded once.

    One forward over all but the last token of the ``U`` distinct prompts fills a KV cache, which
    is expanded to the ``B`` rows; then one forward over each row's last prompt token and its
    completion but the last token (whose logits score nothing), whose ``C`` outputs score the ``C``
    completion tokens. Gradients reach the parameters through the shared keys and values (their
    expansion's backward sums the rows); the entropies carry gradient too, as TRL's do.

    The scoring head is the model's:
    - a model patched with TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``, as
      `GRPOTrainer` patches its policy and reference model) is scored by that head, as TRL's loss
      path scores it (``shift_labels``, ``fused_lm_head=True``): no ``[B, C, V]`` logits, the same
      kernel and precision, the temperature it was patched with (pass that one), and entropies
      only where it was patched to compute them;
    - any other model through its logits: divided by ``temperature``, log-softmax in float32.
    Both give 0 (log-prob and entropy) where ``completion_mask`` is 0, as TRL's fused head does.

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
        empty = torch.zeros(batch, completion_length, device=completion_ids.device)
        return empty, (empty.clone() if compute_entropy else None)
    _check_left_padded(prompt_mask)
    cache_kwarg, keeps_logits = _check_model(model)
    fused = _has_fused_lm_head(model)

    unique_index, row_to_unique = group_rows(prompt_ids, prompt_mask)
    # 1. The distinct prompts but their last token, once, with gradient; 2. expanded to the rows.
    cache = _prefill_rows(
        model, prompt_ids, prompt_mask, unique_index, row_to_unique, cache_kwarg, keeps_logits
    )
    # Left-padded: every row's last column is its last prompt token, which the second forward takes.
    row_head_mask = prompt_mask[:, :-1].long()  # [B, P-1]: a row's mask is its distinct prompt's
    inputs = torch.cat([prompt_ids[:, -1:], completion_ids[:, :-1]], dim=1)  # [B, C]
    attention_mask = torch.cat(
        [row_head_mask, prompt_mask[:, -1:].long(), completion_mask[:, :-1].long()], dim=1
    )
    positions = row_head_mask.sum(-1, keepdim=True) + torch.arange(completion_length, device=inputs.device)
    scored = completion_mask.bool()
    if fused:
        out = model(
            input_ids=inputs,
            attention_mask=attention_mask,
            position_ids=positions,
            **{cache_kwarg: cache},
            shift_labels=completion_ids.masked_fill(~scored, -100),
            fused_lm_head=True,
        )
        logps, entropies = out.log_probs, (out.entropy if compute_entropy else None)
        if compute_entropy and entropies is None:
            raise ValueError(
                "the model's fused LM head was patched without entropies (outputs lacks 'entropy')"
            )
        return logps, entropies
    out = model(
        input_ids=inputs,
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        **{cache_kwarg: cache},
    )
    logits = out.logits.float() / temperature  # [B, C, V]
    log_norm = torch.logsumexp(logits, dim=-1)
    logps = logits.gather(-1, completion_ids.long().unsqueeze(-1)).squeeze(-1) - log_norm
    entropies = None
    if compute_entropy:  # TRL's entropy_from_logits: -sum p log p
        log_probs = logits - log_norm.unsqueeze(-1)
        entropies = -(log_probs.exp() * log_probs).sum(-1).masked_fill(~scored, 0.0)
    return logps.masked_fill(~scored, 0.0), entropies


def shared_prompt_cache(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, **generate_kwargs
) -> dict:
    """The keyword arguments that make ``model.generate(input_ids=input_ids,
    attention_mask=attention_mask, **generate_kwargs)`` prefill each distinct prompt once.

    One forward (no gradient) over all but the last token of the ``U`` distinct (left-padded)
    prompts fills a ``DynamicCache``, expanded to one copy per row; returned as ``{name: cache}``
    under the name ``generate`` takes it by (``cache`` from transformers 5.2x, ``past_key_values``
    before). Handed that cache, transformers' ``generate`` runs only the tokens the cache lacks (each
    row's last prompt token) in its first step, whose logits give the first new token from the whole
    prompt, then decodes all rows together as usual. Positions are the mask's cumsum, as ``generate``
    makes them, so greedy decoding gives the plain call's tokens and sampling the same distribution
    (logits equal up to float rounding); the prefill draws no random numbers, so one seed draws the
    same tokens unless rounding tips a draw.

    ``{}`` (the plain call) where nothing is shared: prompts all distinct, or one column wide. Raises
    ``ValueError``, before generating anything, for what it cannot serve: what the loss path refuses
    (see the module's docstring), beam search or several sequences per prompt (``generate`` would
    expand the rows again), a ``cache_implementation`` (``generate`` builds its own cache), no cache
    (``use_cache`` false), assisted decoding, and inputs beyond the ids and mask (multimodal).
    """
    config = generate_kwargs.get("generation_config") or getattr(_innermost(model), "generation_config", None)

    def setting(name: str):
        return generate_kwargs.get(name, getattr(config, name, None))

    extra = sorted(name for name, value in generate_kwargs.items() if isinstance(value, torch.Tensor))
    if extra:
        raise ValueError(f"inputs beyond the prompt ids and mask ({', '.join(extra)}) are not shared")
    if (setting("num_beams") or 1) > 1 or (setting("num_return_sequences") or 1) > 1:
        raise ValueError("beam search and num_return_sequences > 1 expand the rows inside generate")
    if (implementation := setting("cache_implementation")) is not None:
        raise ValueError(f"cache_implementation={implementation!r}: generate builds its own cache")
    if setting("use_cache") is False:
        raise ValueError("use_cache is false: generate keeps no cache to start from")
    if generate_kwargs.get("assistant_model") is not None:
        raise ValueError("assisted decoding runs its own prefill")
    _check_left_padded(attention_mask)
    cache_kwarg, keeps_logits = _check_model(model)
    unique_index, row_to_unique = group_rows(input_ids, attention_mask)
    if len(unique_index) == len(input_ids) or input_ids.shape[1] == 1:
        return {}
    with torch.no_grad():
        cache = _prefill_rows(
            model, input_ids, attention_mask, unique_index, row_to_unique, cache_kwarg, keeps_logits
        )
    return {cache_kwarg: cache}


def _prefill_rows(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    unique_index: torch.Tensor,
    row_to_unique: torch.Tensor,
    cache_kwarg: str,
    keeps_logits: bool,
):
    """A ``DynamicCache`` of every row's prompt but its last token, each distinct prompt
    (``group_rows``) encoded once and its keys and values then copied to its rows
    (``index_select``: a backward sums the rows' gradients back onto the one encoding). None for
    prompts one column wide (nothing before the last token)."""
    if prompt_ids.shape[1] == 1:
        return None
    from transformers import DynamicCache

    head_ids = prompt_ids[:, :-1].index_select(0, unique_index)
    head_mask = prompt_mask[:, :-1].long().index_select(0, unique_index)
    cache = DynamicCache(config=_innermost(model).config)
    # Positions as HF generate makes them: the mask's cumsum, so pads are skipped (a pad's own
    # position, 1, is of no matter: nothing attends to it).
    model(
        input_ids=head_ids,
        attention_mask=head_mask,
        position_ids=(head_mask.cumsum(-1) - 1).masked_fill(head_mask == 0, 1),
        use_cache=True,
        **{cache_kwarg: cache},
        **({"logits_to_keep": 1} if keeps_logits else {}),  # logits unused: the least the head allows
    )
    _check_cache(cache, head_ids.shape[1])
    cache.reorder_cache(row_to_unique)
    return cache


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


def _has_fused_lm_head(model: nn.Module) -> bool:
    """Whether the transformers model under the wrappers carries TRL's fused LM head
    (``add_fused_lm_head`` sets an instance ``forward`` taking ``fused_lm_head``)."""
    forward = vars(_innermost(model)).get("forward")
    if forward is None:
        return False
    try:
        params = inspect.signature(forward, follow_wrapped=False).parameters
    except (TypeError, ValueError):
        return False
    return "fused_lm_head" in params and "shift_labels" in params


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
            "the shared prompt cannot be used with it (turn gradient checkpointing off to share the prompt)"
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
