"""``toolexpander eval``: load a benchmark, get completions (from a model or a predictions file),
score them, write ``items.jsonl`` and ``results.json``, and print a Markdown table.

A benchmark spec (``--bench``) is one of:

- ``bfcl`` (the AST categories of SPEC §3 plus irrelevance and live_irrelevance) or
  ``bfcl:cat1,cat2`` (any single-turn category, live_relevance included; or multi-turn
  categories, not mixed with single-turn ones). Data come from the installed ``bfcl_eval``
  package unless ``--data-dir`` names a copy of its data folder;
- ``apibank`` (levels l1 and l2) or ``apibank:l1,l2,l3``; ``--data-dir`` is required (see
  `toolexpander.tasks.apibank`);
- a data file: our JSONL records or any format `toolexpander.tasks.load_records` reads
  (a BFCL or API-Bank file is recognised, and its records name their task).

Multi-turn benchmarks (`toolexpander.tasks.bfcl_multi_turn`) are judged turn by turn on the calls
made in each turn, executed on the item's simulators. With ``--model`` the model runs BFCL's
per-turn protocol (`toolexpander.episodes.turns`: generate, read, execute, append the
results, until it answers without a call; then the next user turn); with ``--predictions`` the
calls come from a file, one JSON object a line, ``{"id": ..., "turns": [[{"name": ...,
"arguments": {...}}, ...], ...]}``, in execution order.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolexpander.data.schema import LoadResult, Problem, jsonl_rows
from toolexpander.errors import UserError
from toolexpander.evaluation.scoring import evaluate_episodes, evaluate_records, markdown_table
from toolexpander.files import dumps_json, jsonl_text, write_files
from toolexpander.prompts import PROMPT_FORMATS, PROMPT_STYLES, PromptSpec
from toolexpander.tasks import apibank, bfcl, bfcl_multi_turn, load_records, task_of

BACKENDS = ("hf", "vllm")


@dataclass
class EvalConfig:
    """Options of ``toolexpander eval``. Give exactly one of ``model`` and ``predictions``.

    What to score: ``bench``, ``data_dir``, ``skip``, ``limit``. Where completions come from: ``model``
    (with ``backend``, ``prompt``, ``prompt_format``, ``think_prefill``, ``max_new_tokens``, ``batch_size``,
    ``temperature``, ``device``, ``dtype``) or ``predictions``. Where results go: ``out``.
    """

    bench: str = field(metadata={"help": "bfcl, bfcl:CAT,CAT..., apibank, apibank:l1,l2, or a data file"})
    model: str | None = field(
        default=None, metadata={"help": "hub id, local folder or .gguf file to generate with"}
    )
    predictions: str | None = field(
        default=None,
        metadata={
            "help": "JSONL of {id, completion} produced elsewhere, scored instead of a model (multi-turn "
            "benchmarks: {id, turns}, the calls made in each turn)"
        },
    )
    out: str | None = field(default=None, metadata={"help": "folder for items.jsonl and results.json"})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "benchmark data folder (BFCL: default the bfcl_eval package's data; API-Bank: required)"
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "score only the first N items of each category (after --skip)"}
    )
    skip: int = field(
        default=0,
        metadata={
            "help": "leave out the first N items of each category, e.g. those a run trained on or took "
            "demonstrations from (`toolexpander train --held_out_items`)"
        },
    )
    prompt: str | None = field(
        default=None,
        metadata={
            "help": f"prompt style: {' or '.join(PROMPT_STYLES)} (default: the one a run of ours was "
            "trained with, read from its folder; else plain)",
            "choices": PROMPT_STYLES,
        },
    )
    prompt_format: str | None = field(
        default=None,
        metadata={
            "help": "tooln1 (our format) or native (the model's chat template renders the tools and the "
            "model calls in its own syntax, as served; default: the run's, read from its folder; else tooln1)",
            "choices": PROMPT_FORMATS,
        },
    )
    think_prefill: bool | None = field(
        default=None,
        metadata={
            "help": "end the generation prompt with <think> (default: as the run was trained, read from "
            "its folder; else off)"
        },
    )
    backend: str = field(
        default="hf", metadata={"help": "hf (transformers generate) or vllm", "choices": BACKENDS}
    )
    max_new_tokens: int = field(default=512, metadata={"help": "generation budget per answer"})
    max_episode_tokens: int = field(
        default=32768,
        metadata={
            "help": "multi-turn: an episode ends (judged on its calls so far) when a prompt plus "
            "max_new_tokens would pass this many tokens"
        },
    )
    batch_size: int = field(default=8, metadata={"help": "prompts per generate call (hf backend)"})
    temperature: float = field(default=0.0, metadata={"help": "0 is greedy decoding"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda when available)"})
    dtype: str | None = field(
        default=None, metadata={"help": "model dtype, e.g. bfloat16 (default: the checkpoint's)"}
    )


@dataclass
class Benchmark:
    """The records of a benchmark run, by category in run order, and the inputs rejected."""

    name: str
    categories: dict[str, list[dict]]
    problems: list[Problem]

    def records(self) -> list[dict]:
        return [record for records in self.categories.values() for record in records]


def _split_spec(spec: str) -> tuple[str, list[str]]:
    name, _, parts = spec.partition(":")
    return name, [part.strip() for part in parts.split(",") if part.strip()]


def _group(result: LoadResult, default_category: str) -> dict[str, list[dict]]:
    """Records by category; those without one get ``default_category``."""
    groups: dict[str, list[dict]] = {}
    for record in result.records:
        if not record.get("category"):
            record = {**record, "category": default_category}
        groups.setdefault(record["category"], []).append(record)
    return groups


def load_benchmark(spec: str, data_dir: str | None = None) -> Benchmark:
    """All records a ``--bench`` spec names (see the module docstring)."""
    name, parts = _split_spec(spec)
    if name == "bfcl":
        known = bfcl.CATEGORIES + bfcl_multi_turn.CATEGORIES
        unknown = [c for c in parts if c not in known]
        if unknown:
            raise UserError(f"unknown BFCL category {', '.join(unknown)}; choose from {', '.join(known)}")
        multi_turn = [c for c in parts if c in bfcl_multi_turn.CATEGORIES]
        if multi_turn and len(multi_turn) < len(parts):
            raise UserError(
                "BFCL's multi-turn categories are scored apart: do not mix them with single-turn ones"
            )
        data = data_dir or bfcl.default_data_dir()
        if multi_turn:
            loaded = bfcl_multi_turn.load_categories(data, parts)
        else:
            loaded = bfcl.load_categories(data, parts or bfcl.DEFAULT_CATEGORIES)
        problems = [p for result in loaded.values() for p in result.problems]
        return Benchmark("bfcl", {c: result.records for c, result in loaded.items()}, problems)
    if name == "apibank":
        if data_dir is None:
            raise UserError(f"--bench apibank needs --data-dir. {apibank.CLONE_HINT}")
        unknown = [level for level in parts if level not in apibank.LEVELS]
        if unknown:
            raise UserError(
                f"unknown API-Bank level {', '.join(unknown)}; choose from {', '.join(apibank.LEVELS)}"
            )
        loaded = {level: apibank.load_level(data_dir, level) for level in parts or apibank.DEFAULT_LEVELS}
        problems = [p for result in loaded.values() for p in result.problems]
        return Benchmark("apibank", {apibank.category(lv): r.records for lv, r in loaded.items()}, problems)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"unknown benchmark {spec!r}: not bfcl[:...], apibank[:...] or an existing data file")
    result = load_records(str(path))
    return Benchmark(path.stem, _group(result, path.stem), result.problems)


def prompt_text(record: dict, spec: PromptSpec, tokenizer) -> str:
    """The zero-shot prompt that poses ``record`` (`PromptSpec.render`), with the tools as its task
    shows them (BFCL's docs as BFCL does)."""
    return spec.render(tokenizer, {**record, "tools": task_of(record).prompt_tools(record)})


# What a predictions line holds besides its id: the field, its check and its description.
PREDICTION_FIELDS = {
    "completion": (lambda value: isinstance(value, str), "a string 'completion'"),
    "turns": (bfcl_multi_turn.is_turn_list, "'turns', a list of call lists (one per turn)"),
}


def read_predictions(
    path: str | Path, known_ids: set[str], bench: str = "the benchmark", field: str = "completion"
) -> dict[str, Any]:
    """``{id: completion}`` from a JSONL file (``field`` "turns": ``{id: turns}``, the calls
    made in each turn); unknown or duplicate ids are errors, and so is a line without a valid
    ``field`` (the calls inside turns are checked when executed, one by one)."""
    is_valid, wanted = PREDICTION_FIELDS[field]
    path = Path(path)
    if not path.is_file():
        raise UserError(f"predictions file {path} does not exist")
    predictions: dict[str, Any] = {}
    for number, row, reason in jsonl_rows(path.read_text(encoding="utf-8")):
        if reason is not None:
            raise UserError(f"{path}:{number}: {reason}")
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not is_valid(row.get(field)):
            raise UserError(f"{path}:{number}: each line needs a string 'id' and {wanted}")
        if row["id"] in predictions:
            raise UserError(f"{path}:{number}: duplicate prediction for id {row['id']!r}")
        predictions[row["id"]] = row[field]
    unknown = [i for i in predictions if i not in known_ids]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5])
        raise UserError(
            f"{path}: {len(unknown)} predictions have ids that are not in {bench}: {shown} "
            "(--bench must name every category the predictions belong to)"
        )
    return predictions


def run_prompt(config: EvalConfig) -> PromptSpec:
    """How to pose ``config.model``: the flags where given, else what the run's folder recorded
    (`PromptSpec.save`), else plain, tooln1, no prefill."""
    saved = PromptSpec.load(config.model) if config.model and Path(config.model).is_dir() else None
    saved = saved or PromptSpec()
    return PromptSpec(
        style=config.prompt or saved.style,
        prompt_format=config.prompt_format or saved.prompt_format,
        think_prefill=saved.think_prefill if config.think_prefill is None else config.think_prefill,
    )


def load_generator(config: EvalConfig, spec: PromptSpec) -> tuple[Callable[..., list[str]], Any]:
    """``(generate, tokenizer)`` for ``config.model``: ``generate(prompts, label=None)`` gives one
    reply per rendered prompt with the config's backend and sampling, opened with the reply
    prefill ``spec`` writes into the prompt (`PromptSpec.reply_prefill`)."""
    if config.backend == "vllm":
        from toolexpander.evaluation.generation import generate_completions_vllm, load_vllm

        llm = load_vllm(config.model, **({"dtype": config.dtype} if config.dtype else {}))
        tokenizer = llm.get_tokenizer()

        def generate(prompts: list[str], label: str | None = None) -> list[str]:
            return generate_completions_vllm(
                llm, prompts, config.max_new_tokens, config.temperature, reply_prefill=prefill
            )

    else:
        import torch

        from toolexpander.evaluation.generation import generate_completions
        from toolexpander.models import load_model_and_tokenizer

        device = config.device or ("cuda" if torch.cuda.is_available() else None)
        try:
            model, tokenizer = load_model_and_tokenizer(config.model, dtype=config.dtype, device=device)
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load model {config.model!r}: {error}") from error

        def generate(prompts: list[str], label: str | None = None) -> list[str]:
            return generate_completions(
                model,
                tokenizer,
                prompts,
                config.max_new_tokens,
                config.batch_size,
                config.temperature,
                reply_prefill=prefill,
                progress_label=label,
            )

    prefill = spec.reply_prefill(tokenizer)
    return generate, tokenizer


def _call_format(spec: PromptSpec, tokenizer) -> str:
    """The call format replies are read in (native: the one the model's chat template writes)."""
    try:
        return spec.call_format(tokenizer)
    except ValueError as error:  # a template that writes no tool calls
        raise UserError(str(error)) from error


def generate_for(records: list[dict], config: EvalConfig, spec: PromptSpec) -> tuple[dict[str, str], str]:
    """Completions of ``config.model`` posed as ``spec`` says for ``records``, keyed by id, and the
    call format they are read in."""
    generate, tokenizer = load_generator(config, spec)
    call_format = _call_format(spec, tokenizer)
    prompts = [prompt_text(record, spec, tokenizer) for record in records]
    texts = generate(prompts, f"generating ({len(records)} items)")
    return {record["id"]: text for record, text in zip(records, texts, strict=True)}, call_format


def generate_episodes(
    records: list[dict], config: EvalConfig, spec: PromptSpec
) -> tuple[dict[str, dict], str]:
    """The episodes of ``config.model`` on multi-turn ``records`` (`toolexpander.episodes.turns.
    run_episodes`), keyed by id, and the call format its replies were read in."""
    from toolexpander.episodes.turns import run_episodes

    generate, tokenizer = load_generator(config, spec)
    call_format = _call_format(spec, tokenizer)

    def render(record: dict) -> str:
        return prompt_text(record, spec, tokenizer)

    def fits(prompt: str) -> bool:
        length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return length + config.max_new_tokens <= config.max_episode_tokens

    def generate_step(prompts: list[str]) -> list[str]:
        return generate(prompts, f"episode steps ({len(prompts)} episodes)")

    return run_episodes(records, generate_step, render, fits, call_format), call_format


def _validate(config: EvalConfig) -> None:
    if (config.model is None) == (config.predictions is None):
        raise UserError("give exactly one of --model and --predictions")
    if config.prompt not in (None, *PROMPT_STYLES):
        raise UserError(f"unknown prompt style {config.prompt!r}; choose one of {', '.join(PROMPT_STYLES)}")
    if config.prompt_format not in (None, *PROMPT_FORMATS):
        raise UserError(
            f"unknown prompt format {config.prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)}"
        )
    if config.backend not in BACKENDS:
        raise UserError(f"unknown backend {config.backend!r}; choose one of {', '.join(BACKENDS)}")
    if config.limit is not None and config.limit < 1:
        raise UserError("--limit must be at least 1")
    if config.skip < 0:
        raise UserError("--skip must be at least 0")


def write_outputs(out: str | Path, items: list[dict], results: dict) -> None:
    """``items.jsonl`` (one line per item) and ``results.json`` in ``out``. Both are written in full
    before either replaces an earlier run's, results.json last (`toolexpander.files.write_files`): a
    failed write leaves the earlier pair as it was (or, should the last rename fail, the new
    items.jsonl alone), never new items beside stale results."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_files(
            {
                out / "items.jsonl": jsonl_text(items, default=str),
                out / "results.json": dumps_json(results, indent=2) + "\n",
            }
        )
    except OSError as error:
        raise UserError(f"cannot write to {out}: {error}") from error


def _score_multi_turn(
    config: EvalConfig, records: list[dict], known_ids: set[str], spec: PromptSpec | None
) -> tuple[list[dict], dict, str | None]:
    """Items, results and call format of a multi-turn benchmark, from the model's episodes or the
    predictions file (whose calls come structured: no call format)."""
    if not all(task_of(record).multi_turn for record in records):
        raise UserError(f"{config.bench} mixes multi-turn records with single-turn ones: score them apart")
    if config.predictions is not None:
        predictions = read_predictions(config.predictions, known_ids, config.bench, field="turns")
        return (*evaluate_episodes(records, predictions), None)
    if not all(record["task"] == bfcl_multi_turn.NAME for record in records):
        raise UserError(
            "only BFCL's multi-turn episodes run with a model (their tools are simulated); score other "
            "episodes with --predictions"
        )
    episodes, call_format = generate_episodes(records, config, spec)
    items, results = evaluate_episodes(records, {i: episode["turns"] for i, episode in episodes.items()})
    for item in items:
        episode = episodes[item["id"]]
        item.update(replies=episode["replies"], stopped=episode["stopped"])
    stopped = Counter(episode["stopped"] for episode in episodes.values() if episode["stopped"])
    results["notes"] += [f"{count} episodes stopped early: {reason}" for reason, count in stopped.items()]
    return items, results, call_format


def run_eval(config: EvalConfig) -> dict:
    """Run one evaluation end to end; returns the results (also written to ``config.out``)."""
    _validate(config)
    benchmark = load_benchmark(config.bench, config.data_dir)
    known_ids = {record["id"] for record in benchmark.records()}
    end = None if config.limit is None else config.skip + config.limit
    categories = {c: records[config.skip : end] for c, records in benchmark.categories.items()}
    records = [record for records in categories.values() for record in records]
    if not records:
        skipped = f" after the first {config.skip} of each category" if config.skip else ""
        raise UserError(f"{config.bench} holds no usable records{skipped}")
    spec = run_prompt(config) if config.model is not None else None
    if any(task_of(record).multi_turn for record in records):
        items, results, call_format = _score_multi_turn(config, records, known_ids, spec)
    else:
        if config.predictions is not None:
            completions = read_predictions(config.predictions, known_ids, config.bench)
            # Predictions made elsewhere: a native reply's family is told by the reply itself.
            call_format = PromptSpec(prompt_format=config.prompt_format or "tooln1").call_format()
        else:
            completions, call_format = generate_for(records, config, spec)
        items, results = evaluate_records(records, completions, call_format)
    if config.skip:
        results["notes"].append(f"--skip {config.skip}: the first {config.skip} items of each category left out")
    if config.limit is not None:
        results["notes"].append(
            f"--limit {config.limit}: only the first {config.limit} items of each category"
            + (f" after the {config.skip} skipped" if config.skip else "")
        )
    if benchmark.problems:
        results["notes"].append(
            f"{len(benchmark.problems)} input items rejected, not scored: see rejected_inputs"
        )
    results["rejected_inputs"] = [str(problem) for problem in benchmark.problems]
    results["config"] = dataclasses.asdict(config)
    if spec is not None:
        results["config"].update(
            prompt=spec.style, think_prefill=spec.think_prefill, prompt_format=spec.prompt_format
        )
    results["config"]["call_format"] = call_format
    for problem in benchmark.problems:
        print(f"rejected input: {problem}", file=sys.stderr)
    if config.out:
        write_outputs(config.out, items, results)
    print(markdown_table(results))
    return results
