"""How hard the built-in tool suite is for the demo's base model, zero-shot and with two demonstrations.

The suite is meant to sit where ToolExpander helps (SPEC §5): the weak model solves almost nothing
zero-shot and a fair share with two demonstrations. This poses ``--n`` items to the model twice,
greedy: alone, and with two gold demonstrations from the train split chosen as training chooses
them (`toolexpander.hard_sampling.demo_bank.DemoBank`: same tool first, then BM25). Those are chosen
by the item's gold tool, so the 2-shot figure is an oracle's: it measures the suite, not a model
that must pick its own demonstrations. The items are the train split's last ``--n`` (``--split dev``,
the default: never a demonstration here), or the first ``--n`` of ``test`` / ``test_unseen_tools``,
which nothing should be tuned on. It scores with Tool-N1's binary reward and prints one JSON line::

    {"zero_shot_accuracy", "two_shot_accuracy", "zero_shot_well_formed", "two_shot_well_formed", "n", ...}

Well-formed: a think block and a parsable call list. ``--prompt-style self_exemplify`` poses the
paper's prompt instead of the plain one. Run: ``python benchmarks/suite_difficulty.py``
(greedy; bfloat16 by default, which CPUs with AMX/AVX512-BF16 run about twice as fast as
float32).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from toolexpander.evaluation.generation import generate_completions
from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.models import SMOLLM2_HUB_ID, load_model_and_tokenizer
from toolexpander.prompts import PROMPT_STYLES, PromptSpec
from toolexpander.rewards import extract_tool_calls, tool_n1_score
from toolexpander.rewards.parsing import has_think_tags
from toolexpander.tasks.suite import build_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=SMOLLM2_HUB_ID, help="hub id, folder or .gguf file")
    parser.add_argument("--n", type=int, default=24, help="items to pose")
    parser.add_argument(
        "--split",
        choices=("dev", "test", "test_unseen_tools"),
        default="dev",
        help="dev: the train split's last --n items, held out of the demonstrations (default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="suite seed")
    parser.add_argument("--level", default="full", help="suite level: full or easy (toolexpander.tasks.suite.LEVELS)")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="bfloat16", help="bfloat16 halves the CPU time of float32")
    parser.add_argument(
        "--think-prefill",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="open each reply with <think>, as the demo does (toolexpander.prompts.PromptSpec)",
    )
    parser.add_argument(
        "--prompt-style",
        choices=PROMPT_STYLES,
        default="plain",
        help="self_exemplify: the paper's prompt, which asks for a self-made example inside <think>",
    )
    parser.add_argument("--show", action="store_true", help="also print each completion")
    args = parser.parse_args()

    suite = build_suite(args.seed, level=args.level)
    if args.split == "dev":
        tasks, pool = suite["train"][-args.n :], suite["train"][: -args.n]
    else:
        tasks, pool = suite[args.split][: args.n], suite["train"]
    bank = DemoBank(pool, sources=("gold",), seed=args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model, dtype=getattr(torch, args.dtype))
    spec = PromptSpec(args.prompt_style, think_prefill=args.think_prefill)

    result: dict[str, float | int] = {}
    started = time.perf_counter()
    for shots, label in ((0, "zero_shot"), (2, "two_shot")):
        prompts = [spec.render(tokenizer, t, bank.select(t, shots) if shots else ()) for t in tasks]
        completions = generate_completions(
            model,
            tokenizer,
            prompts,
            args.max_new_tokens,
            args.batch_size,
            reply_prefill=spec.reply_prefill(tokenizer),
        )
        scores = [tool_n1_score(text, task["answer"]) for text, task in zip(completions, tasks, strict=True)]
        formed = [has_think_tags(text) and extract_tool_calls(text) is not None for text in completions]
        result[f"{label}_accuracy"] = round(sum(scores) / len(tasks), 4)
        result[f"{label}_well_formed"] = round(sum(formed) / len(tasks), 4)
        for kind in ("single", "parallel", "no_call"):
            of_kind = [s for s, t in zip(scores, tasks, strict=True) if t["kind"] == kind]
            result[f"{label}_{kind}"] = f"{int(sum(of_kind))}/{len(of_kind)}"
        if args.show:
            for task, text, score in zip(tasks, completions, scores, strict=True):
                print(
                    json.dumps(
                        {
                            "shots": shots,
                            "id": task["id"],
                            "score": score,
                            "gold": task["answer"],
                            "completion": text,
                        },
                        ensure_ascii=False,
                    )
                )
    result["n"] = len(tasks)
    result["level"] = args.level
    result["split"] = args.split
    result["think_prefill"] = args.think_prefill
    result["prompt_style"] = args.prompt_style
    result["seed"] = args.seed
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
