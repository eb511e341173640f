"""Batched generation of chat completions with Hugging Face ``generate`` (CPU or GPU) or vLLM.

Shared by evaluation, the demo and the benchmarks (the trainer generates through TRL). Prompts are
text the chat template rendered (`toolexpander.prompts.PromptSpec.render`), padded on the left with
an attention mask, so one batch holds prompts of different lengths. Prompts are sorted by length before batching (less padding, and an
out-of-memory error shows on the first batch) and the completions come back in input order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from toolexpander.errors import UserError


@contextlib.contextmanager
def progress_bar(total: int, label: str | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with ETA on stderr (``advance(n)``); silent when ``label`` is None."""
    if label is None:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        "ETA",
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _sampling_kwargs(temperature: float) -> dict:
    """Greedy at temperature 0; the other sampling knobs are cleared so a model's own
    generation config (top_p, top_k) neither applies nor warns."""
    if temperature > 0:
        return {"do_sample": True, "temperature": temperature}
    return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    temperature: float = 0.0,
    *,
    reply_prefill: str = "",
    progress_label: str | None = None,
) -> list[str]:
    """One completion per rendered prompt in ``prompts``, with HF ``generate``.

    Greedy by default; ``temperature > 0`` samples. The text is the reply: ``reply_prefill`` (what
    the prompt already opened the reply with, `PromptSpec.reply_prefill`), then the new tokens,
    special tokens removed. ``progress_label`` shows a progress bar with ETA.
    """
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    completions = [""] * len(prompts)
    padding_side, was_training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"
    model.eval()
    try:
        with progress_bar(len(prompts), progress_label) as advance, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                # The chat template already holds any BOS token.
                inputs = tokenizer(
                    [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(model.device)
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **_sampling_kwargs(temperature),
                )
                texts = tokenizer.batch_decode(
                    output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
                )
                for index, text in zip(batch, texts, strict=True):
                    completions[index] = reply_prefill + text
                advance(len(batch))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return completions


def load_vllm(name_or_path: str, **kwargs):
    """A ``vllm.LLM`` for a hub id or a local folder (vLLM is an optional dependency)."""
    try:
        from vllm import LLM
    except ImportError as error:
        raise UserError("--backend vllm needs vLLM: pip install 'toolexpander[vllm]'") from error
    try:
        return LLM(model=name_or_path, **kwargs)
    except (OSError, ValueError) as error:
        raise UserError(f"vLLM cannot load model {name_or_path!r}: {error}") from error


def generate_completions_vllm(
    llm,
    prompts: Sequence[str],
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    *,
    reply_prefill: str = "",
) -> list[str]:
    """One reply per rendered prompt with vLLM's ``LLM.generate`` (its own batching; greedy at 0), as
    `generate_completions` returns them. The prompts go as token ids, so no second BOS is added."""
    from vllm import SamplingParams

    tokenizer = llm.get_tokenizer()
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    outputs = llm.generate([{"prompt_token_ids": row} for row in ids], params, use_tqdm=True)
    return [reply_prefill + output.outputs[0].text for output in outputs]
