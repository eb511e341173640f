"""``toolexpander demo``: a real weak LLM learns to call tools, plain GRPO against ToolExpander.

The same base model (SmolLM2-135M-Instruct, SPEC §4) is trained twice at the same rollout
budget (same steps, prompts per step, rollouts per prompt): once with plain GRPO, once with
ToolExpander. Both are evaluated zero-shot before and after, on the built-in suite's test
splits and a small BFCL subset, because zero-shot is what evaluation measures. The run writes
``report.md``, ``results.json`` and PNG plots into ``--out``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from toolexpander.errors import UserError
from toolexpander.models import SMOLLM2_HUB_ID

console = Console()
ARMS = ("grpo", "toolexpander")


@dataclass(frozen=True)
class DemoPreset:
    """How big a demo run is. Per arm: ``steps`` x ``prompts_per_step`` x ``num_generations`` rollouts."""

    name: str
    train_items: int
    steps: int
    prompts_per_step: int
    num_generations: int
    max_completion_length: int
    learning_rate: float
    eval_items: int  # per split, for the suite's test and test_unseen_tools splits
    bfcl_items: int  # BFCL simple_python items
    eval_max_new_tokens: int
    eval_batch_size: int
    temperature: float = 0.8
    shots_start: int = 2  # SPEC §4/§5: the 135M model follows two turn demonstrations
    what_it_shows: str = ""


PRESETS = {
    "quick": DemoPreset(
        "quick",
        train_items=8,
        steps=1,
        prompts_per_step=2,
        num_generations=4,
        max_completion_length=32,
        learning_rate=5e-5,
        eval_items=4,
        bfcl_items=2,
        eval_max_new_tokens=48,
        eval_batch_size=4,
        what_it_shows="a smoke test of the whole pipeline (one step per arm): it shows nothing about learning",
    ),
    "cpu": DemoPreset(
        "cpu",
        train_items=8,
        steps=12,
        prompts_per_step=2,
        num_generations=4,
        max_completion_length=96,
        learning_rate=5e-5,
        eval_items=24,
        bfcl_items=12,
        eval_max_new_tokens=96,
        eval_batch_size=8,
        what_it_shows="whether hard sampling turns all-fail groups into a learning signal (hard ratio, reward) "
        "within a dozen steps; too few steps to expect zero-shot accuracy to move",
    ),
    "gpu": DemoPreset(
        "gpu",
        train_items=300,
        steps=300,
        prompts_per_step=16,
        num_generations=8,
        max_completion_length=128,
        learning_rate=5e-5,
        eval_items=120,
        bfcl_items=100,
        eval_max_new_tokens=128,
        eval_batch_size=64,
        what_it_shows="the real comparison: whether ToolExpander carries few-shot competence over to zero-shot",
    ),
}


class Clock:
    """Elapsed time and a rough ETA for the phases of the demo."""

    def __init__(self, phases: int):
        self.start, self.phases, self.done = time.time(), phases, 0

    def phase(self, title: str) -> None:
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.phases - self.done) if self.done else None
        eta_text = f", ETA {eta / 60:.1f} min" if eta is not None else ""
        console.rule(f"[bold]{title}[/] ({self.done}/{self.phases} done, {elapsed / 60:.1f} min{eta_text})")
        self.done += 1


def eval_sets(preset: DemoPreset, seed: int) -> dict[str, list[dict]]:
    """The zero-shot evaluation splits: suite test, unseen tools, and BFCL simple_python."""
    from toolexpander.data.suite import build_suite
    from toolexpander.evaluation.runner import load_benchmark

    suite = build_suite(seed)
    sets = {
        "test": suite["test"][: preset.eval_items],
        "test_unseen_tools": suite["test_unseen_tools"][: preset.eval_items],
    }
    try:
        sets["bfcl_simple_python"] = load_benchmark("bfcl:simple_python").records()[: preset.bfcl_items]
    except (
        UserError,
        ImportError,
    ) as error:  # bfcl-eval or its data missing: the suite still tells the story
        console.print(f"[yellow]BFCL subset skipped: {error}[/]")
    return sets


def evaluate(
    model, tokenizer, sets: dict[str, list[dict]], style: str, preset: DemoPreset, label: str
) -> dict:
    """Zero-shot greedy accuracy per split (Tool-N1 exact match; BFCL's official checker)."""
    from toolexpander.evaluation.generation import generate_completions
    from toolexpander.evaluation.runner import prompt_messages
    from toolexpander.evaluation.scoring import evaluate_records

    accuracies = {}
    for split, records in sets.items():
        messages = [prompt_messages(record, style) for record in records]
        texts = generate_completions(
            model,
            tokenizer,
            messages,
            preset.eval_max_new_tokens,
            preset.eval_batch_size,
            progress_label=f"{label}: {split}",
        )
        items, _ = evaluate_records(records, {r["id"]: t for r, t in zip(records, texts)})
        accuracies[split] = sum(item["valid"] for item in items) / len(items)
    return accuracies


def train_arm(arm: str, model_name: str, tasks: list[dict], preset: DemoPreset, out: Path, seed: int):
    import torch

    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.trainer.config import ToolExpanderConfig
    from toolexpander.trainer.trainer import ToolExpanderTrainer

    cuda = torch.cuda.is_available()
    model, tokenizer = load_model_and_tokenizer(model_name, dtype=torch.bfloat16 if cuda else torch.float32)
    config = ToolExpanderConfig(
        output_dir=str(out / arm),
        mode=arm,
        num_generations=preset.num_generations,
        per_device_train_batch_size=preset.prompts_per_step * preset.num_generations,
        max_completion_length=preset.max_completion_length,
        max_steps=preset.steps,
        learning_rate=preset.learning_rate,
        lr_decay_steps=max(preset.steps, 1),
        temperature=preset.temperature,
        shots_start=preset.shots_start,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        seed=seed,
    )
    trainer = ToolExpanderTrainer(model, config, tasks, processing_class=tokenizer)
    trainer.train()
    return trainer.model, tokenizer, config.effective_prompt_style


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def arm_statistics(run_dir: Path) -> dict:
    """Hard ratio per round and wasted rollouts (all-fail groups / all groups) from the ledger."""
    ledger = read_jsonl(run_dir / "hard_samples.jsonl")
    rounds: dict[int, list[bool]] = {}
    for row in ledger:
        rounds.setdefault(row["round"], []).append(row["successes"] == 0)
    return {
        "hard_ratio_per_round": {str(r): sum(v) / len(v) for r, v in sorted(rounds.items())},
        "wasted_rollouts": sum(row["successes"] == 0 for row in ledger) / len(ledger) if ledger else None,
        "groups": len(ledger),
    }


def run_demo(preset_name: str, out_dir: str, model_name: str = SMOLLM2_HUB_ID, seed: int = 0) -> dict:
    """Run the whole demo; returns what ``results.json`` holds."""
    from toolexpander.data.suite import build_suite
    from toolexpander.demo.report import write_report
    from toolexpander.models import load_model_and_tokenizer, model_description

    preset = PRESETS[preset_name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(phases=2 + 2 * len(ARMS))
    console.print(f"model: {model_description(model_name)}\npreset {preset.name}: {preset.what_it_shows}")
    tasks = build_suite(seed)["train"][: preset.train_items]
    sets = eval_sets(preset, seed)

    clock.phase("evaluating the base model zero-shot")
    started = time.time()
    base, tokenizer = load_model_and_tokenizer(model_name)
    before = {
        style: evaluate(base, tokenizer, sets, style, preset, f"base/{style}")
        for style in ("plain", "self_exemplify")
    }
    del base
    results = {
        "model": model_description(model_name),
        "preset": asdict(preset),
        "seed": seed,
        "rollouts_per_arm": preset.steps * preset.prompts_per_step * preset.num_generations,
        "base_eval_seconds": time.time() - started,
        "arms": {},
    }
    for arm in ARMS:
        clock.phase(f"training arm {arm}")
        started = time.time()
        model, tokenizer, style = train_arm(arm, model_name, tasks, preset, out, seed)
        train_seconds = time.time() - started
        clock.phase(f"evaluating arm {arm} zero-shot")
        started = time.time()
        after = evaluate(model, tokenizer, sets, style, preset, f"{arm}/after")
        results["arms"][arm] = {
            "prompt_style": style,
            "accuracy_before": before[style]["test"],
            "accuracy_after": after["test"],
            "splits_before": before[style],
            "splits_after": after,
            **arm_statistics(out / arm),
            "train_seconds": train_seconds,
            "eval_seconds": time.time() - started,
        }
        del model
    clock.phase("writing the report")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, out)
    console.print(f"[bold green]done[/]: {out / 'report.md'}")
    return results
