"""Evaluation throughput: items per second for scoring alone and for generation plus scoring.

Scoring: gold answers for every single-turn BFCL item (3,641), scored by the official checker
through `toolexpander.evaluation.scoring.evaluate_records`. Generation: the first ``--n`` BFCL
simple_python items answered by a tiny random Qwen2 model (`toolexpander.models.build_tiny_model`)
with batched HF ``generate``, greedy, then scored. Prints one JSON line::

    {"scoring_items", "scoring_items_per_s", "generation_items", "generation_items_per_s", ...}

Run: ``python benchmarks/eval_throughput.py [--data-dir DIR] [--n 16] [--device cuda]``
(BFCL data default to the installed bfcl_eval package's copy).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from toolexpander.evaluation.generation import generate_completions
from toolexpander.evaluation.runner import load_benchmark, prompt_text
from toolexpander.evaluation.scoring import evaluate_records
from toolexpander.models import build_tiny_model, load_model_and_tokenizer
from toolexpander.prompts import PromptSpec, render_answer
from toolexpander.tasks import bfcl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir", default=None, help="BFCL data folder (default: the bfcl_eval package's)"
    )
    parser.add_argument("--n", type=int, default=16, help="items to generate for")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    records = load_benchmark(f"bfcl:{','.join(bfcl.CATEGORIES)}", args.data_dir).records()
    # live_relevance has no gold answer (None): any call is right
    any_call = [{"name": "f", "arguments": {}}]
    gold = {r["id"]: render_answer(any_call if r["answer"] is None else r["answer"]) for r in records}
    start = time.perf_counter()
    _, results = evaluate_records(records, gold)
    scoring_seconds = time.perf_counter() - start

    subset = [r for r in records if r["category"] == "simple_python"][: args.n]
    with tempfile.TemporaryDirectory() as folder:
        model, tokenizer = load_model_and_tokenizer(build_tiny_model(folder), device=args.device)
        start = time.perf_counter()
        prompts = [prompt_text(record, PromptSpec(), tokenizer) for record in subset]
        texts = generate_completions(model, tokenizer, prompts, args.max_new_tokens, args.batch_size)
        evaluate_records(subset, {r["id"]: t for r, t in zip(subset, texts, strict=True)})
        generation_seconds = time.perf_counter() - start

    print(
        json.dumps(
            {
                "scoring_items": len(records),
                "scoring_seconds": round(scoring_seconds, 3),
                "scoring_items_per_s": round(len(records) / scoring_seconds, 1),
                "gold_accuracy": round(
                    sum(s["correct"] for s in results["categories"].values()) / len(records), 4
                ),
                "generation_items": len(subset),
                "generation_seconds": round(generation_seconds, 3),
                "generation_items_per_s": round(len(subset) / generation_seconds, 2),
                "max_new_tokens": args.max_new_tokens,
                "batch_size": args.batch_size,
                "device": args.device,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
