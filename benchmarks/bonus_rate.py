"""How often the demo's base model earns the self-exemplifying bonus, by completion budget.

The paper arm's 0.01 bonus (`toolexpander.rewards.self_exemplify_score`) never fired in the CPU
study (128-token completions), so its ablation there was identical run for run (docs/study §3).
This asks whether a longer budget would change that, before anyone pays for such a study: it
samples ``--rollouts`` replies per item as training does (temperature 1, the paper's
self-exemplifying prompt, the reply opened with ``<think>``), with 0 and more demonstrations chosen
as training chooses them (`toolexpander.hard_sampling.demo_bank.DemoBank`, gold answers), at the
largest ``--budgets`` value, then cuts each reply to every smaller budget (the first B tokens of a
sampled reply are a sample of a B-token reply; cut by re-tokenizing the text, so within a token
of the generated ids). Items: the suite's dev items (the train split's last ``--n``), never a
demonstration here. One JSON line per (shots, budget)::

    {"shots", "budget", "think_closed", "example_opened", "example_well_formed", "bonus",
     "items_with_bonus", "correct", "clipped", "rollouts", ...}

Rates are over rollouts; ``items_with_bonus`` counts items with at least one rollout that earns
the bonus (only those groups can give it an advantage); ``clipped``: replies still unfinished at
the budget. Run: ``python benchmarks/bonus_rate.py`` (about 15 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from toolexpander.evaluation.generation import generate_completions
from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.models import SMOLLM2_HUB_ID, load_model_and_tokenizer
from toolexpander.prompts import PromptSpec
from toolexpander.rewards import tool_n1_score
from toolexpander.rewards.parsing import THINK_CLOSE, extract_examples, has_think_tags
from toolexpander.rewards.rewards import self_exemplify_score
from toolexpander.tasks.suite import build_suite


def comma_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def rate(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=SMOLLM2_HUB_ID, help="hub id, folder or .gguf file")
    parser.add_argument("--n", type=int, default=16, help="dev items to pose")
    parser.add_argument("--seed", type=int, default=0, help="suite seed")
    parser.add_argument("--level", default="easy", help="suite level: easy (the study's) or full")
    parser.add_argument("--rollouts", type=int, default=4, help="sampled replies per item and shot count")
    parser.add_argument("--shots", type=comma_ints, default=[0, 1], help="demonstration counts, e.g. 0,1,2")
    parser.add_argument(
        "--budgets", type=comma_ints, default=[128, 256, 512], help="completion budgets in tokens"
    )
    parser.add_argument("--temperature", type=float, default=1.0, help="training's sampling temperature")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16", help="bfloat16 halves the CPU time of float32")
    parser.add_argument("--show", action="store_true", help="also print each reply (at the largest budget)")
    args = parser.parse_args()

    suite = build_suite(args.seed, level=args.level)
    tasks, pool = suite["train"][-args.n :], suite["train"][: -args.n]
    bank = DemoBank(pool, sources=("gold",), seed=args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model, dtype=getattr(torch, args.dtype))
    spec = PromptSpec("self_exemplify", think_prefill=True)
    prefill = spec.reply_prefill(tokenizer)
    budgets = sorted(args.budgets)
    torch.manual_seed(args.seed)
    posed = [task for task in tasks for _ in range(args.rollouts)]

    for shots in args.shots:
        started = time.perf_counter()
        rendered = [spec.render(tokenizer, task, bank.select(task, shots)) for task in tasks]
        replies = generate_completions(
            model,
            tokenizer,
            [prompt for prompt in rendered for _ in range(args.rollouts)],
            budgets[-1],
            args.batch_size,
            args.temperature,
            reply_prefill=prefill,
            progress_label=f"{shots}-shot",
        )
        seconds = round(time.perf_counter() - started, 1)
        if args.show:
            for task, reply in zip(posed, replies, strict=True):
                print(json.dumps({"shots": shots, "id": task["id"], "reply": reply}, ensure_ascii=False))
        new_ids = [tokenizer(r[len(prefill) :], add_special_tokens=False)["input_ids"] for r in replies]
        for budget in budgets:
            cut = [prefill + tokenizer.decode(ids[:budget]) for ids in new_ids]
            bonus = [
                self_exemplify_score(text, task["answer"]) > 0 for text, task in zip(cut, posed, strict=True)
            ]
            result = {
                "shots": shots,
                "budget": budget,
                "think_closed": rate([has_think_tags(text) for text in cut]),
                "example_opened": rate(["<example>" in text.split(THINK_CLOSE)[0] for text in cut]),
                "example_well_formed": rate([bool(extract_examples(text)) for text in cut]),
                "bonus": rate(bonus),
                "items_with_bonus": len({task["id"] for task, b in zip(posed, bonus, strict=True) if b}),
                "correct": rate(
                    [
                        tool_n1_score(text, task["answer"]) == 1.0
                        for text, task in zip(cut, posed, strict=True)
                    ]
                ),
                "clipped": rate([len(ids) >= budget for ids in new_ids]),  # filled the budget: not ended
                "rollouts": len(posed),
                "items": len(tasks),
                "seed": args.seed,
                "level": args.level,
                "temperature": args.temperature,
                "generation_seconds": seconds,
            }
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
