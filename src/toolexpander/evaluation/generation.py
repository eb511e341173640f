"""Batched generation of chat completions with Hugging Face ``generate`` (CPU or GPU) or vLLM.

Shared by evaluation, the demo and the benchmarks (the trainer generates through TRL). Prompts are rendered with the
tokenizer's chat template and padded on the left with an attention mask, so one batch holds
prompts of different lengths. Prompts are sorted by length before batching (less padding, and an
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
    messages_list: Sequence[list[dict] | str],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    temperature: float = 0.0,
    *,
    progress_label: str | None = None,
) -> list[str]:
    """One completion per chat in ``messages_list``, with HF ``generate``. A chat is a message list
    or the text its template already rendered (`toolexpander.prompts.native_prompt`).

    Greedy by default; ``temperature > 0`` samples. The text is the reply: the new tokens, special
    tokens removed, after what the template itself opened it with (``<think>`` when prefilled,
    `toolexpander.prompts.generation_prefill`). ``progress_label`` shows a progress bar with ETA.
    """
    import torch

    from toolexpander.prompts import generation_prefill

    prefill = generation_prefill(tokenizer)  # the reply's opening the template wrote: part of the answer
    prompts = [
        m if isinstance(m, str) else tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        for m in messages_list
    ]
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
                    completions[index] = prefill + text
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
    messages_list: Sequence[list[dict] | str],
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    *,
    think_prefill: bool = False,
) -> list[str]:
    """One reply per chat with vLLM's ``LLM.chat`` (its own batching; greedy at 0), as
    `generate_completions` returns them; ``think_prefill`` opens each reply with ``<think>``.
    Chats already rendered to text (native prompts) go to ``LLM.generate`` as token ids, so no
    second BOS is added."""
    from vllm import SamplingParams

    from toolexpander.prompts import generation_prefill, prefill_think

    tokenizer = llm.get_tokenizer()
    if think_prefill:
        prefill_think(tokenizer)
    prefill = generation_prefill(tokenizer)
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature)
    if messages_list and isinstance(messages_list[0], str):
        token_prompts = [{"prompt_token_ids": tokenizer(m, add_special_tokens=False)["input_ids"]} for m in messages_list]
        outputs = llm.generate(token_prompts, params, use_tqdm=True)
    else:
        outputs = llm.chat(list(messages_list), params, use_tqdm=True, chat_template=tokenizer.chat_template)
    return [prefill + output.outputs[0].text for output in outputs]
