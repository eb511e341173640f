"""Reward throughput: completions scored per second on one core, on a realistic mix.

The mix imitates GRPO batches: 1000 tasks x 10 rollouts, the answer stored as JSON text (as the
trainer does), rollouts drawn from: correct single and parallel calls (shuffled order), wrong
values or names, malformed JSON, no think block, prose without a block, long reasoning, an
empty call list, and self-made examples. Prints one JSON line; the target is
``tool_n1_per_s >= 100000``. It also times one degenerate native reply of 32,000 ``<tool_call>``
blocks scored with ``--call_format hermes`` and ``native`` (transformers' response parser alone
took 41 s on it); the target is under a second each.

    python benchmarks/reward_throughput.py [--tasks 1000] [--repeats 5] [--many_calls 32000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from toolexpander.prompts import render_answer, render_calls
from toolexpander.rewards import self_exemplify, tool_n1, toolrl

CITIES = ["Paris", "Oslo", "Lima", "Tokyo", "Cairo", "Quito", "Perth", "Dakar"]


def random_call(rng: random.Random) -> dict:
    kind = rng.randrange(3)
    if kind == 0:
        return {
            "name": "get_weather",
            "arguments": {"city": rng.choice(CITIES), "unit": rng.choice(["C", "F"])},
        }
    if kind == 1:
        return {
            "name": "convert_currency",
            "arguments": {
                "amount": rng.randint(1, 999),
                "from": "EUR",
                "to": rng.choice(["USD", "JPY", "GBP"]),
            },
        }
    return {
        "name": "set_timer",
        "arguments": {"minutes": rng.randint(1, 90), "label": f"tea {rng.randint(1, 9)}"},
    }


def rollout(rng: random.Random, answer: list[dict]) -> str:
    """One completion of a kind drawn at random, answering (or not) ``answer``."""
    kind = rng.choice(
        [
            "correct",
            "correct",
            "shuffled",
            "wrong_value",
            "wrong_name",
            "malformed",
            "no_think",
            "prose",
            "long_think",
            "example",
        ]
    )
    calls = [dict(c, arguments=dict(c["arguments"])) for c in answer]
    if kind == "shuffled":
        rng.shuffle(calls)
    if kind == "wrong_value" and calls:
        key = next(iter(calls[0]["arguments"]))
        calls[0]["arguments"][key] = str(calls[0]["arguments"][key])
    if kind == "wrong_name" and calls:
        calls[0]["name"] = "get_time"
    if kind == "malformed":
        return render_answer(calls)[:-15]
    if kind == "no_think":
        return render_calls(calls)
    if kind == "prose":
        return "I think the weather in Paris is nice today, no tool is needed."
    if kind == "long_think":
        return render_answer(calls, think="Let me look at the request and the tools. " * 60)
    if kind == "example":
        example = f"<example>Query: Weather in Oslo?\nCall: {json.dumps([random_call(rng)])}</example>"
        return render_answer(calls, think=f"{example} The example shows the pattern to follow.")
    return render_answer(calls)


def batch(tasks: int, group: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    completions, answers = [], []
    for _ in range(tasks):
        answer = [random_call(rng) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
        text = json.dumps(answer)
        for _ in range(group):
            completions.append(rollout(rng, answer))
            answers.append(text)
    return completions, answers


def per_second(reward, completions: list[str], answers: list[str], repeats: int) -> float:
    """Best of ``repeats`` passes over the batch, in CPU time (robust on a shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        reward(completions, answers)
        best = min(best, time.process_time() - start)
    return len(completions) / best


def many_calls_seconds(call_format: str, count: int, repeats: int) -> float:
    """Best CPU seconds of ``repeats`` to score one reply of ``count`` hermes ``<tool_call>`` blocks."""
    rng = random.Random(0)
    calls = [random_call(rng) for _ in range(count)]
    reply = "<think>.</think>" + "".join(f"\n<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        tool_n1([reply], [json.dumps(calls)], call_format=call_format)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--group", type=int, default=10, help="rollouts per task")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--many_calls", type=int, default=32_000, help="blocks in the degenerate reply")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, whatever the machine
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    completions, answers = batch(args.tasks, args.group, args.seed)
    result = {
        "clock": "process CPU time, one core",
        "completions": len(completions),
        "mean_chars": round(sum(map(len, completions)) / len(completions)),
        "correct_fraction": round(sum(tool_n1(completions, answers)) / len(completions), 3),
        "tool_n1_per_s": round(per_second(tool_n1, completions, answers, args.repeats)),
        "toolrl_per_s": round(per_second(toolrl, completions, answers, args.repeats)),
        "self_exemplify_per_s": round(per_second(self_exemplify, completions, answers, args.repeats)),
    }
    for call_format in ("hermes", "native"):
        seconds = many_calls_seconds(call_format, args.many_calls, args.repeats)
        result[f"{call_format}_{args.many_calls}_calls_s"] = round(seconds, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
