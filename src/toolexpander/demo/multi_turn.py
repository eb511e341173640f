"""``toolexpander demo --multi-turn``: the multi-turn path end to end in a few CPU minutes (issue
25, SPEC §10). BFCL multi-turn episodes (the bfcl-eval wheel's ``multi_turn_base``) are played on
their simulators, trained with hard sampling and carry-over, and scored zero-shot with BFCL's
per-turn verdict before and after. Each part is the code a user runs by hand, and the demo prints
it as that command:

1. ``toolexpander eval --bench bfcl:multi_turn_base --skip H --limit E`` on the base model;
2. ``toolexpander train`` on ``BFCL_v4_multi_turn_base.json`` with ``--held_out_after H``: items
   0..H-1 are the training items and the demonstration episodes, so the scored items H.. (whose
   scenarios the other three categories reuse under the same index) are never seen;
3. the same evaluation of the trained model.

A smoke test of the pipeline (two episodes, two steps): it shows that every part runs, nothing
about learning. By default on a tiny random model built on the spot (1.0 min on 2 CPU cores);
``--model`` runs a real one at a real model's cost: every BFCL multi-turn prompt holds 4-8k tokens
of function docs, so on a CPU one step of SmolLM2-135M takes minutes. A hard episode is posed again
after a demonstration episode (another training item's ground truth on the same simulators), as
`recipes/qwen2.5-1.5b-gpu-multi-turn.yaml` does at scale.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console

from toolexpander.files import dumps_json, read_jsonl, write_file

console = Console()
CATEGORY = "multi_turn_base"


@dataclass(frozen=True)
class MultiTurnPreset:
    """How big the multi-turn demo is: ``steps`` x ``prompts_per_step`` episodes x ``num_generations``."""

    train_items: int = 2
    held_out_after: int = 100  # of BFCL's 200 items: the first 100 train and demonstrate, the rest are scored
    eval_items: int = 2
    steps: int = 2
    prompts_per_step: int = 2
    num_generations: int = 2
    demo_rollouts: int = 1  # m of G rollouts posed after a demonstration episode while an item is hard
    max_completion_length: int = 64  # per reply; a reply cut off ends its episode
    max_episode_tokens: int = 8192  # SmolLM2-135M's context
    learning_rate: float = 3e-5
    temperature: float = 0.8


QUICK = MultiTurnPreset()


def as_argv(fields: dict) -> list[str]:
    return [text for name, value in fields.items() for text in (f"--{name}", str(value))]


def train_argv(
    model_name: str, data_file: Path, output_dir: Path, preset: MultiTurnPreset, seed: int
) -> list[str]:
    """The ``toolexpander train`` arguments of the demo's training run."""
    import torch

    return as_argv(
        {
            "model_name_or_path": model_name,
            "dataset": data_file,
            "held_out_after": preset.held_out_after,
            "max_train_items": preset.train_items,
            "output_dir": output_dir,
            "overwrite_output_dir": "true",  # the demo's own folder: a second demo starts it over
            "mode": "hard_sampling_only",  # the self-exemplify bonus scores one reply, not an episode
            "carry_over": "swap_nll",
            "demo_rollouts_per_group": preset.demo_rollouts,
            "episode_reward": "turn_share",
            "max_episode_tokens": preset.max_episode_tokens,
            "think_prefill": "true",
            "num_generations": preset.num_generations,
            "per_device_train_batch_size": preset.prompts_per_step * preset.num_generations,
            "max_completion_length": preset.max_completion_length,
            "temperature": preset.temperature,
            "max_steps": preset.steps,
            "learning_rate": preset.learning_rate,
            "lr_decay_steps": preset.steps,
            "gradient_checkpointing": "false",
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "seed": seed,
            "use_cpu": str(not torch.cuda.is_available()).lower(),
            "bf16": "true",  # on the CPU: autocast (SPEC §5)
        }
    )


def eval_argv(model: str | Path, out: Path, data_dir: Path, preset: MultiTurnPreset) -> list[str]:
    """The ``toolexpander eval`` arguments that score ``model`` zero-shot on the held-out items."""
    return as_argv(
        {
            "bench": f"bfcl:{CATEGORY}",
            "data_dir": data_dir,
            "model": model,
            "skip": preset.held_out_after,
            "limit": preset.eval_items,
            "think_prefill": "true",
            "max_new_tokens": preset.max_completion_length,
            "max_episode_tokens": preset.max_episode_tokens,
            "batch_size": preset.eval_items,
            "out": out,
        }
    )


def episode_figures(eval_dir: Path) -> dict:
    """Accuracy (every turn passed), share of turns passed, and why episodes stopped, from an
    evaluation's ``items.jsonl`` and ``results.json``."""
    items = read_jsonl(eval_dir / "items.jsonl")
    results = json.loads((eval_dir / "results.json").read_text())
    turns = sum(len(item["turns_valid"]) for item in items)
    stopped: dict[str, int] = {}
    for item in items:
        reason = item.get("stopped") or "finished"
        stopped[reason] = stopped.get(reason, 0) + 1
    return {
        "accuracy": results["categories"][CATEGORY]["accuracy"],
        "episodes": len(items),
        "turns_passed": sum(sum(item["turns_valid"]) for item in items) / turns if turns else 0.0,
        "stopped": stopped,
    }


def training_figures(run_dir: Path) -> list[dict]:
    """Per logged step: reward, share of turns passed, all-fail groups and demonstration share."""
    keys = ("step", "reward/correct", "episodes/turns_passed", "hard/ratio", "hard/demo_share")
    rows = read_jsonl(run_dir / "metrics.jsonl")
    return [{k: row[k] for k in keys if k in row} for row in rows if "episodes/turns_passed" in row]


def run_multi_turn_demo(
    out_dir: str,
    model_name: str | None = None,
    seed: int = 0,
    preset: MultiTurnPreset = QUICK,
    data_dir: str | None = None,
) -> dict:
    """Evaluate, train, evaluate ``model_name`` (default: a tiny random model; see the module
    docstring) on BFCL's data in ``data_dir`` (default: the bfcl-eval wheel's); returns what
    ``results.json`` holds."""
    from toolexpander.evaluation.commands import parse_eval_args
    from toolexpander.evaluation.runner import run_eval
    from toolexpander.models import model_description
    from toolexpander.tasks import bfcl
    from toolexpander.trainer.commands import run_train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if model_name is None:
        from toolexpander.models import build_tiny_model

        model_name = build_tiny_model(str(out / "tiny-model"), seed=seed)
        # Its byte-level tokenizer writes ~1.6 characters a token: BFCL's docs alone take 9-17k.
        preset = replace(preset, max_episode_tokens=65536)
    run_dir = out / "run"
    data = Path(data_dir) if data_dir else bfcl.default_data_dir()
    data_file = data / f"BFCL_v4_{CATEGORY}.json"
    parts = (
        ("evaluating the base model", "eval", eval_argv(model_name, out / "eval_base", data, preset)),
        ("training", "train", train_argv(model_name, data_file, run_dir, preset, seed)),
        ("evaluating the trained model", "eval", eval_argv(run_dir, out / "eval_trained", data, preset)),
    )
    for title, command, argv in parts:
        console.rule(f"[bold]multi-turn demo: {title}[/] ({(time.time() - started) / 60:.1f} min)")
        console.print(
            shlex.join(["toolexpander", command, *argv]), markup=False, highlight=False, soft_wrap=True
        )
        if command == "eval":
            run_eval(parse_eval_args(argv))
        else:
            run_train(None, argv)
    results = {
        "model": model_description(model_name),
        "preset": asdict(preset),
        "seed": seed,
        "commands": [shlex.join(["toolexpander", command, *argv]) for _, command, argv in parts],
        "before": episode_figures(out / "eval_base"),
        "after": episode_figures(out / "eval_trained"),
        "training": training_figures(run_dir),
        "total_seconds": time.time() - started,
    }
    write_file(out / "results.json", dumps_json(results, indent=2) + "\n")
    write_file(out / "report.md", report_text(results))
    console.print(f"[bold green]done[/] in {results['total_seconds'] / 60:.1f} min: {out / 'report.md'}")
    return results


def report_text(results: dict) -> str:
    preset = results["preset"]
    lines = [
        "# toolexpander demo --multi-turn",
        "",
        (
            f"Model: {results['model']}. BFCL `{CATEGORY}` (the bfcl-eval wheel's): trained on its first "
            f"{preset['train_items']} items ({preset['steps']} steps x {preset['prompts_per_step']} episodes x "
            f"{preset['num_generations']} rollouts), demonstration episodes from its first "
            f"{preset['held_out_after']}, scored zero-shot on the {preset['eval_items']} items after them. "
            "A smoke test of the pipeline: it shows nothing about learning. "
            f"Wall time: {results['total_seconds'] / 60:.1f} min."
        ),
        "",
        "| | episodes | accuracy (every turn passed, %) | turns passed (%) | how episodes ended |",
        "|---|---:|---:|---:|---|",
    ]
    for name in ("before", "after"):
        figures = results[name]
        ended = ", ".join(f"{reason}: {count}" for reason, count in sorted(figures["stopped"].items()))
        lines.append(
            f"| {name} | {figures['episodes']} | {100 * figures['accuracy']:.1f} | "
            f"{100 * figures['turns_passed']:.1f} | {ended} |"
        )
    lines += ["", "Training, per step:", ""]
    for row in results["training"]:
        lines.append("- " + ", ".join(f"{key} {value:g}" for key, value in row.items()))
    lines += ["", "What ran:", "", "```bash", *results["commands"], "```", ""]
    return "\n".join(lines)
