"""The demo's report: ``report.md`` with the accuracy table, the held-out curves (zero-shot and
2-shot accuracy during training, per arm), and PNG plots from each arm's ``metrics.jsonl``
(reward, hard ratio, demonstrations in use) and the before/after accuracies."""

from __future__ import annotations

from pathlib import Path

from toolexpander.files import read_jsonl, write_file

PLOTS = {
    "reward.png": ("reward/correct", "share of correct rollouts"),
    "hard_ratio.png": ("hard/ratio", "share of all-fail groups (hard)"),
    "demo_share.png": ("hard/demo_share", "share of prompts posed with demonstrations"),
    "zero_shot_rollouts.png": ("rollouts/correct_zero_shot", "correct rate of the rollouts posed zero-shot"),
}


def _training_rows(run_dir: Path) -> list[dict]:
    return [row for row in read_jsonl(run_dir / "metrics.jsonl") if "hard/ratio" in row]


def write_plots(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    written = []
    for filename, (metric, title) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for arm in results["arms"]:
            rows = _training_rows(out / arm)
            rows = [r for r in rows if metric in r]
            ax.plot([r["step"] for r in rows], [r[metric] for r in rows], marker="o", label=arm)
        ax.set(title=title, xlabel="step", ylim=(-0.02, 1.02))
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / filename, dpi=100)
        plt.close(fig)
        written.append(filename)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, (key, title) in zip(
        axes, (("zero_shot", "zero-shot"), ("two_shot", "2-shot, oracle demonstrations"))
    ):
        for arm, stats in results["arms"].items():
            curve = stats["curve"]
            ax.plot([p["step"] for p in curve], [100 * p[key] for p in curve], marker="o", label=arm)
        ax.set(title=f"{title} accuracy on held-out items (%)", xlabel="step", ylim=(-2, 102))
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    written.append("curves.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    arms = list(results["arms"])
    for offset, key in ((-0.2, "accuracy_before"), (0.2, "accuracy_after")):
        ax.bar(
            [i + offset for i in range(len(arms))],
            [100 * results["arms"][a][key] for a in arms],
            width=0.4,
            label=key.replace("accuracy_", ""),
        )
    ax.set_xticks(range(len(arms)), arms)
    ax.set(title="zero-shot accuracy on the test split (%)", ylim=(0, 100))
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    return [*written, "accuracy.png"]


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def wilson_interval(accuracy: float, items: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of an accuracy measured on ``items`` items: on the demo's
    splits (6 to 120 items) a few items move the figure by several points.

    >>> [round(100 * bound, 1) for bound in wilson_interval(22 / 120, 120)]
    [12.4, 26.2]
    """
    from scipy.stats import binomtest

    interval = binomtest(round(accuracy * items), items).proportion_ci(method="wilson")
    return float(interval.low), float(interval.high)


def write_report(results: dict, out: Path) -> None:
    plots = write_plots(results, out)
    preset = results["preset"]
    splits = list(next(iter(results["arms"].values()))["splits_after"])
    headers = [f"{split} ({results['split_items'][split]})" for split in splits]
    lines = [
        "# toolexpander demo",
        "",
        f"Model: {results['model']}. Preset `{preset['name']}`: {preset['what_it_shows']}.",
        (
            f"Each arm: {preset['steps']} steps x {preset['prompts_per_step']} prompts x "
            f"{preset['num_generations']} rollouts = {results['rollouts_per_arm']} rollouts "
            f"on {preset['train_items']} training items of the suite's `{preset['suite_level']}` level. "
            f"Wall time in all: {results['total_seconds'] / 60:.1f} min."
        ),
        "",
        (
            "Zero-shot accuracy (%), greedy, before -> after training (items per split in brackets; after "
            "each after-figure, its 95 % Wilson interval):"
        ),
        "",
        "| arm | " + " | ".join(headers) + " | correct rollouts zero-shot / with demos | train s |",
        "|---|" + "---:|" * len(splits) + "---:|---:|",
    ]
    for arm, stats in results["arms"].items():
        cells = []
        for split in splits:
            after, items = stats["splits_after"][split], results["split_items"][split]
            low, high = wilson_interval(after, items)
            cells.append(
                f"{_pct(stats['splits_before'][split])} -> {_pct(after)} [{_pct(low)}, {_pct(high)}]"
            )
        rates = f"{_pct(stats['correct_zero_shot_rollouts'])} / {_pct(stats['correct_demo_rollouts'])} %"
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {rates} | {stats['train_seconds']:.0f} |")
    lines += [
        "",
        (
            f"Held-out curves ({preset['dev_items']} training items never trained on nor shown; greedy), "
            "zero-shot / 2-shot accuracy (%) by step. The 2-shot figures are an oracle's: their demonstrations "
            "are chosen by the item's gold tool, which a model at evaluation does not know:"
        ),
        "",
    ]
    for arm, stats in results["arms"].items():
        points = ", ".join(
            f"{p['step']}: {_pct(p['zero_shot'])} / {_pct(p['two_shot'])}" for p in stats["curve"]
        )
        lines.append(f"- {arm}: {points}")
    lines += ["", "Hard ratio (share of all-fail groups) per round (visit of an item):", ""]
    for arm, stats in results["arms"].items():
        per_round = ", ".join(f"round {r}: {_pct(v)} %" for r, v in stats["hard_ratio_per_round"].items())
        swapped = f"; rows trained under a swapped prompt: {_pct(stats['swapped_share'])} %"
        lines.append(f"- {arm}: {per_round or 'no groups'}{swapped if stats['swapped_share'] else ''}")
    lines += ["", *(f"![{name}]({name})" for name in plots), ""]
    write_file(out / "report.md", "\n".join(lines))
