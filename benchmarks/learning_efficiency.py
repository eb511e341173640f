"""Learning efficiency at an equal rollout budget: GRPO, DAPO-filter, ToolExpander and ToolExpander
with carry-over, several seeds.

Each arm trains the same base model with the same steps x prompts x rollouts and data as the demo
(a demo preset), then is evaluated zero-shot on the suite's test split of the preset's level. One JSON line per arm: held-out accuracy
(mean and spread over seeds), hard ratio per round and wasted rollouts (all-fail groups / groups).

    python benchmarks/learning_efficiency.py --preset cpu --seeds 0 1 2       # SmolLM2, hours on CPU
    python benchmarks/learning_efficiency.py --preset gpu --seeds 0 1 2       # one GPU
    python benchmarks/learning_efficiency.py --preset quick --model /path/to/tiny --seeds 0   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

from toolexpander.demo.run import PRESETS, arm_statistics, demo_data, evaluate_final, train_arm
from toolexpander.models import SMOLLM2_HUB_ID

ARMS = ("grpo", "dapo_filter", "toolexpander", "toolexpander_carry_over")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--model", default=SMOLLM2_HUB_ID)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    preset = PRESETS[args.preset]
    out = Path(tempfile.mkdtemp(prefix="learning-efficiency-"))
    for arm in ARMS:
        accuracies, wasted, per_round = [], [], {}
        for seed in args.seeds:
            data = demo_data(preset, seed)
            data.final = {"test": data.final["test"]}
            run_dir = out / f"seed{seed}"
            with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the JSON lines
                model, tokenizer, style, _ = train_arm(arm, args.model, data, preset, run_dir, seed)
                accuracies.append(evaluate_final(model, tokenizer, data, style, preset, arm)["test"])
            stats = arm_statistics(run_dir / arm)
            wasted.append(stats["wasted_rollouts"])
            for round_, ratio in stats["hard_ratio_per_round"].items():
                per_round.setdefault(round_, []).append(ratio)
        print(
            json.dumps(
                {
                    "benchmark": "learning_efficiency",
                    "arm": arm,
                    "preset": preset.name,
                    "model": args.model,
                    "seeds": args.seeds,
                    "rollouts_per_run": preset.steps * preset.prompts_per_step * preset.num_generations,
                    "test_accuracy_mean": statistics.mean(accuracies),
                    "test_accuracy_stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                    "hard_ratio_per_round": {r: statistics.mean(v) for r, v in sorted(per_round.items())},
                    "wasted_rollouts_mean": statistics.mean(wasted),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
