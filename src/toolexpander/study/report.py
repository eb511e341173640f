"""The tables of a comparison study: ``results.json`` (stable keys), ``results.md`` and plots.

``results.json``::

    {"seeds": [...], "reference": "sft", "splits": {SPLIT: items per seed},
     "arms": {ARM: {"per_seed": {SEED: {SPLIT: accuracy}}, "mean": {SPLIT: accuracy},
                    "pooled": {SPLIT: {"accuracy", "interval"}}, "vs_reference": {SPLIT: {"difference", "interval"}},
                    "breakdown": {SEED: {SPLIT: ...}}, "stability": {SEED: ...}, "train_seconds": {SEED: s},
                    "hard_sampling": `toolexpander.study.breakdown.visit_tally` of all seeds' ledgers,
                    "identical_replies": {SPLIT: items whose reply is the reference's, to the character},
                    ...}}}

Pooled figures put every seed's items together; their 95 % intervals resample (seed, tool) pairs
(an item that calls nothing: (seed, tools offered), `breakdown.resampling_cluster`), or tools alone
for BFCL, whose items are the same on every seed.
"""

from __future__ import annotations

from pathlib import Path

from toolexpander.files import dumps_json, write_file
from toolexpander.study.arms import SFT_START
from toolexpander.study.breakdown import cluster_interval, paired_difference, visit_tally

BREAKDOWN_KEYS = ("well_formed", "right_tool", "right_arguments_given_right_tool", "no_call_accuracy")


# Splits whose items are the same on every suite seed (`compare.study_splits`): only the training
# items change, so the seeds' replies to one item are not independent draws and pool by tool alone.
SAME_ITEMS_ON_EVERY_SEED = ("bfcl_non_live",)


def _verdicts(run: dict, split: str, seed: int) -> tuple[list[bool], list[str]]:
    rows = run["splits"][split]["verdicts"]
    prefix = "" if split in SAME_ITEMS_ON_EVERY_SEED else f"{seed}/"
    return [valid for _, _, valid in rows], [prefix + tool for _, tool, _ in rows]


def collapsed(curve: list[dict], start: dict | None) -> bool:
    """The collapse check: the held-out share of well-formed zero-shot replies ends below half its
    best, the model the run started from (``start``, a curve point; None where unknown) included,
    so a run that breaks the format before its first held-out point counts too."""
    points = ([start] if start else []) + curve
    well_formed = [point["zero_shot_well_formed"] for point in points if "zero_shot_well_formed" in point]
    return bool(well_formed) and well_formed[-1] < max(well_formed) / 2


def _start_point(spec, specs, runs: dict, seed: int) -> dict | None:
    """The held-out point of the model ``spec`` trains from: the `sft` run's last for the sft_then_*
    arms, the study's base run's step 0 for the others; None where the study has no such run."""
    if spec.kind == "sft_then_rl":
        source, index = SFT_START, -1
    else:
        source, index = next((s.name for s in specs if s.kind == "base"), None), 0
    curve = runs[source][seed]["curve"] if source in runs else []
    return curve[index] if curve else None


def summarise(study, specs, runs: dict[str, dict[int, dict]]) -> dict:
    """results.json from every (arm, seed) run's arm.json (`toolexpander.study.compare.run_arm`)."""
    seeds = list(study.seeds)
    splits = list(study.splits)
    reference = runs.get(study.reference)
    results = {
        "seeds": seeds,
        "preset": study.preset,
        "model": study.model,
        "reference": study.reference,
        "splits": {
            split: {seed: len(runs[specs[0].name][seed]["splits"][split]["verdicts"]) for seed in seeds}
            for split in splits
        },
        "arms": {},
    }
    for spec in specs:
        arm_runs = runs[spec.name]
        entry = {
            "arm": spec.arm,
            "overrides": spec.overrides,
            "per_seed": {
                seed: {split: arm_runs[seed]["splits"][split]["accuracy"] for split in splits}
                for seed in seeds
            },
            "breakdown": {
                seed: {split: arm_runs[seed]["splits"][split]["breakdown"] for split in splits}
                for seed in seeds
            },
            "stability": {
                seed: arm_runs[seed]["stability"]
                | {"collapsed": collapsed(arm_runs[seed]["curve"], _start_point(spec, specs, runs, seed))}
                for seed in seeds
            },
            "train_seconds": {seed: arm_runs[seed]["train_seconds"] for seed in seeds},
            "eval_seconds": {seed: arm_runs[seed]["eval_seconds"] for seed in seeds},
            "num_tokens": {seed: arm_runs[seed]["num_tokens"] for seed in seeds},
            "mean": {},
            "pooled": {},
            "vs_reference": {},
        }
        for split in splits:
            entry["mean"][split] = sum(entry["per_seed"][seed][split] for seed in seeds) / len(seeds)
            valid, clusters, reference_valid = [], [], []
            for seed in seeds:
                v, c = _verdicts(arm_runs[seed], split, seed)
                valid += v
                clusters += c
                if reference is not None:
                    reference_valid += _verdicts(reference[seed], split, seed)[0]
            entry["pooled"][split] = {
                "accuracy": sum(valid) / len(valid),
                "interval": cluster_interval([float(v) for v in valid], clusters),
            }
            if reference is not None and spec.name != study.reference:
                entry["vs_reference"][split] = paired_difference(valid, reference_valid, clusters)
                if all(split in run.get("replies", {}) for run in (*arm_runs.values(), *reference.values())):
                    # An ablation that changes nothing shows here before any interval does.
                    same = 0
                    for seed in seeds:
                        mine, theirs = arm_runs[seed]["replies"][split], reference[seed]["replies"][split]
                        same += sum(a == b for a, b in zip(mine, theirs))
                    entry.setdefault("identical_replies", {})[split] = same
        if "bfcl_non_live" in splits:
            entry["bfcl"] = _bfcl(arm_runs, seeds)
        ledger = [row for seed in seeds for row in arm_runs[seed].get("ledger", [])]
        if ledger:  # all seeds' groups together
            entry["hard_sampling"] = visit_tally(ledger)
        results["arms"][spec.name] = entry
    return results


def _bfcl(arm_runs: dict, seeds: list[int]) -> dict:
    """Per BFCL category: accuracy over all seeds' items; the leaderboard's non-live aggregate, mean
    over seeds (None where a category it needs did not run)."""
    categories: dict[str, list[int]] = {}
    for seed in seeds:
        for name, stats in arm_runs[seed]["splits"]["bfcl_non_live"]["categories"].items():
            pair = categories.setdefault(name, [0, 0])
            pair[0] += stats["correct"]
            pair[1] += stats["n"]
    board = [arm_runs[seed]["splits"]["bfcl_non_live"]["leaderboard_non_live"] for seed in seeds]
    return {
        "categories": {name: correct / n for name, (correct, n) in categories.items()},
        "leaderboard_non_live": None if None in board else sum(board) / len(board),
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _interval(interval: list[float]) -> str:
    return f"[{_pct(interval[0])}, {_pct(interval[1])}]"


def markdown(results: dict) -> str:
    """results.md: accuracy, difference from the reference, breakdown, stability, per seed."""
    splits = list(results["splits"])
    arms = results["arms"]
    seeds = results["seeds"]
    n = {split: sum(per_seed.values()) for split, per_seed in results["splits"].items()}
    lines = [
        f"# Comparison study: preset `{results['preset']}`, suite seeds {', '.join(map(str, seeds))}",
        "",
        (
            f"Model: {results['model']}. Zero-shot greedy accuracy (%) over items, all seeds' items pooled, "
            "95 % interval resampling (seed, tool) pairs (an item that should call nothing: "
            "(seed, tools it offers); BFCL, whose items are the same on every seed: tools alone)."
        ),
        "",
        "| arm | " + " | ".join(f"{split} (n={n[split]})" for split in splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for name, entry in arms.items():
        cells = [
            f"{_pct(entry['pooled'][s]['accuracy'])} {_interval(entry['pooled'][s]['interval'])}"
            for s in splits
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    reference = results["reference"]
    # One more column where the predictions were on disk: how many replies are the reference's own.
    identical = any("identical_replies" in entry for entry in arms.values())
    columns = splits + (["replies identical to the reference's"] if identical else [])
    lines += [
        "",
        f"## Difference from `{reference}` (percentage points, paired, same tool resampling)",
        "",
        "| arm | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, entry in arms.items():
        if entry["vs_reference"]:
            cells = [
                f"{100 * entry['vs_reference'][s]['difference']:+.1f} {_interval(entry['vs_reference'][s]['interval'])}"
                for s in splits
            ]
            if identical:
                same = entry.get("identical_replies", {})
                counted = len(same) == len(splits)
                cells.append(f"{sum(same.values())} of {sum(n.values())}" if counted else "–")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    bfcl = {name: entry["bfcl"] for name, entry in arms.items() if "bfcl" in entry}
    if bfcl:
        categories = list(next(iter(bfcl.values()))["categories"])
        lines += [
            "",
            "## BFCL per category (%, all seeds' items; leaderboard non-live AST aggregate, mean over seeds)",
            "",
            "| arm | " + " | ".join(categories) + " | non-live (leaderboard) |",
            "|---|" + "---:|" * (len(categories) + 1),
        ]
        for name, entry in bfcl.items():
            cells = [_pct(entry["categories"][c]) for c in categories] + [_pct(entry["leaderboard_non_live"])]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    hard = {name: entry["hard_sampling"] for name, entry in arms.items() if "hard_sampling" in entry}
    if hard:
        lines += [
            "",
            "## Hard sampling per visit (all seeds' groups; solved: at least one correct rollout)",
            "",
            "| arm | visit | demonstrations | groups | solved | correct zero-shot rollouts | correct rollouts with demonstrations |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]

        def share(correct: int, rollouts: int) -> str:
            return f"{correct}/{rollouts} ({_pct(correct / rollouts)} %)" if rollouts else "–"

        for name, tally in hard.items():
            for c in tally:
                lines.append(
                    f"| {name} | {c['round'] + 1} | {c['shots']} | {c['groups']} | {c['solved']} | "
                    f"{share(c['zero_shot_correct'], c['zero_shot_rollouts'])} | "
                    f"{share(c['demo_correct'], c['demo_rollouts'])} |"
                )
    lines += ["", "## What was learned (mean over seeds, %)", ""]
    for split in splits:
        lines += [
            f"### {split}",
            "",
            (
                "| arm | well-formed | right tool | right arguments given right tool | no-call accuracy | "
                "accuracy without leaked items (leaked) |"
            ),
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, entry in arms.items():
            per_seed = [entry["breakdown"][seed][split] for seed in seeds]

            def mean(key, per_seed=per_seed):
                values = [b[key] for b in per_seed if b[key] is not None]
                return sum(values) / len(values) if values else None

            leaked = sum(b["leaked"] for b in per_seed)
            cells = [_pct(mean(key)) for key in BREAKDOWN_KEYS]
            lines.append(
                f"| {name} | "
                + " | ".join(cells)
                + f" | {_pct(mean('accuracy_without_leaked'))} ({leaked}) |"
            )
        lines.append("")
    lines += [
        "## Stability (per seed: mean ± std over steps)",
        "",
        (
            "Collapsed: the held-out share of well-formed zero-shot replies ends below half its best, the start "
            "model's counted (the base run's step 0; `sft`'s last point for the sft_then_* arms)."
        ),
        "",
        "| arm | seed | loss | grad norm | reward | zero-advantage groups | best dev step | collapsed | train s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]

    def pair(value):
        return "–" if value is None else f"{value[0]:.3g} ± {value[1]:.2g}"

    for name, entry in arms.items():
        for seed in seeds:
            s = entry["stability"][seed]
            zero = "–" if s["zero_advantage_groups"] is None else f"{100 * s['zero_advantage_groups']:.0f} %"
            lines.append(
                f"| {name} | {seed} | {pair(s['loss'])} | {pair(s['grad_norm'])} | {pair(s['reward'])} | {zero} | "
                f"{s['best_dev_step']} | {'yes' if s['collapsed'] else 'no'} | {entry['train_seconds'][seed]:.0f} |"
            )
    lines += [
        "",
        "## Per seed (%)",
        "",
        "| arm | seed | " + " | ".join(splits) + " |",
        "|---|---:|" + "---:|" * len(splits),
    ]
    for name, entry in arms.items():
        for seed in seeds:
            lines.append(
                f"| {name} | {seed} | " + " | ".join(_pct(entry["per_seed"][seed][s]) for s in splits) + " |"
            )
    return "\n".join(lines) + "\n"


def write_plots(results: dict, out: Path) -> None:
    """accuracy.png: pooled accuracy per split and arm with its interval; curves.png: held-out
    zero-shot accuracy during training, mean over seeds."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results["arms"])
    splits = list(results["splits"])
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(splits) * max(len(arms), 1) / 3, 4))
    width = 0.8 / max(len(arms), 1)
    for i, name in enumerate(arms):
        pooled = results["arms"][name]["pooled"]
        values = [100 * pooled[s]["accuracy"] for s in splits]
        errors = [
            [v - 100 * pooled[s]["interval"][0] for v, s in zip(values, splits)],
            [100 * pooled[s]["interval"][1] - v for v, s in zip(values, splits)],
        ]
        ax.bar([j + i * width for j in range(len(splits))], values, width, yerr=errors, capsize=2, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(splits))], splits)
    ax.set(ylabel="zero-shot accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in arms:
        by_step: dict[int, list[float]] = {}
        for seed in results["seeds"]:
            run = json.loads((out / f"seed{seed}" / name / "arm.json").read_text(encoding="utf-8"))
            for point in run["curve"]:
                by_step.setdefault(point["step"], []).append(point["zero_shot"])
        steps = sorted(by_step)
        ax.plot(steps, [100 * sum(by_step[s]) / len(by_step[s]) for s in steps], marker="o", label=name)
    ax.set(title="held-out (dev) zero-shot accuracy, mean over seeds (%)", xlabel="step", ylim=(-2, 102))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


def write_study_report(results: dict, out: Path) -> None:
    write_file(out / "results.json", dumps_json(results, indent=2) + "\n")
    write_file(out / "results.md", markdown(results) + "\n![accuracy](accuracy.png)\n![curves](curves.png)\n")
    write_plots(results, out)
