"""``toolexpander compare --config STUDY.yaml``: arms x seeds at an equal budget, one results table.

Each (seed, arm) run trains from the same base model on the same items (a demo preset's budget,
`toolexpander.demo.run.PRESETS`), is evaluated zero-shot greedy on every split of the study, and
writes its own folder ``OUT/seed{S}/{ARM}/``: the training logs, ``eval/{split}/items.jsonl`` (every
prediction, scored) and ``results.json``, and ``arm.json`` last. A folder with ``arm.json`` is done:
rerunning the command resumes where it stopped. At the end ``results.json``, ``results.md`` and
plots in ``OUT`` compare every arm with the reference arm (``sft``) on intervals that resample
tools (`toolexpander.study.breakdown`). ``--export DIR`` copies the finished runs without their
model weights, with those tables, to a folder small enough to commit or share.

A study file (YAML)::

    model: HuggingFaceTB/SmolLM2-135M-Instruct
    preset: cpu                   # the budget: items, steps, prompts per step, rollouts
    seeds: [10, 11, 12]           # suite seeds: which items are train, dev and test
    splits: [easy_test, full_test, bfcl_non_live]
    arms:
      - sft
      - carry_over
      - {name: sft_lr1e-4, arm: sft, learning_rate: 1.0e-4}   # a variant: any field on top

Splits: ``dev`` (the preset's held-out training items), ``{level}_test`` and
``{level}_test_unseen_tools`` (the preset's suite level), ``full_test`` (the full suite's test split,
whole), ``bfcl_non_live`` (``bfcl_items`` of each of ``bfcl_categories``, BFCL's official checker).
A split's accuracy is the share of its items answered right; for ``bfcl_non_live`` the leaderboard's
non-live AST aggregate (a mean over categories) is kept beside it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from toolexpander.errors import UserError, yaml_error
from toolexpander.files import dumps_json, read_jsonl, write_file
from toolexpander.models import SMOLLM2_HUB_ID
from toolexpander.study.arms import ARMS, SFT_START
from toolexpander.tasks.bfcl import NON_LIVE_AST


@dataclass(frozen=True)
class ArmSpec:
    """An arm of a study: a registry arm under a name, with fields set on top of it."""

    name: str
    arm: str
    overrides: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return ARMS[self.arm].kind


@dataclass
class StudyConfig:
    """What a study runs."""

    arms: list = field(metadata={"help": "arm names (toolexpander.study.arms) or {name, arm, FIELD: value}"})
    seeds: list = field(metadata={"help": "suite seeds; one run of every arm per seed"})
    output_dir: str = field(default="runs/study", metadata={"help": "where each run and the tables go"})
    model: str = field(default=SMOLLM2_HUB_ID, metadata={"help": "base model: hub id, folder or .gguf"})
    preset: str = field(default="cpu", metadata={"help": "the budget, a demo preset: quick, cpu or gpu"})
    preset_fields: dict = field(
        default_factory=dict,
        metadata={
            "help": "fields of the preset set otherwise (`toolexpander.demo.run.DemoPreset`), e.g. "
            "{max_completion_length: 128}"
        },
    )
    splits: list = field(default_factory=lambda: ["dev"], metadata={"help": "evaluation splits (module doc)"})
    reference: str = field(default="sft", metadata={"help": "the arm every other arm is compared with"})
    curve_every: int | None = field(
        default=None,
        metadata={
            "help": "steps between two points of the held-out (dev) curve; each costs a zero- and a 2-shot "
            "evaluation of the dev items (None: the preset's; the last step is always measured)"
        },
    )
    split_items: int | None = field(
        default=None, metadata={"help": "at most this many items of each suite split (None: whole splits)"}
    )
    bfcl_items: int = field(default=100, metadata={"help": "items of each BFCL category in bfcl_non_live"})
    bfcl_categories: list = field(
        default_factory=lambda: [*NON_LIVE_AST, "irrelevance"],
        metadata={"help": "BFCL categories of bfcl_non_live (the leaderboard's non-live AST set by default)"},
    )

    def budget(self):
        """The demo preset this study trains at, with the study's `curve_every`."""
        from dataclasses import replace

        from toolexpander.demo.run import PRESETS

        curve = {} if self.curve_every is None else {"curve_every": self.curve_every}
        return replace(PRESETS[self.preset], **self.preset_fields, **curve)

    def only(self, names: list[str]) -> list:
        """The entries of `arms` named ``names`` (UserError for a name the study does not have)."""
        entries = {spec.name: entry for spec, entry in zip(self.arm_specs(), self.arms)}
        unknown = [name for name in names if name not in entries]
        if unknown:
            raise UserError(f"the study has no arm {', '.join(unknown)}; it has {', '.join(entries)}")
        return [entry for name, entry in entries.items() if name in names]

    def run_order(self) -> list[ArmSpec]:
        """The arms in the order they train: ``sft`` first (the sft_then_* arms start from its
        model), then as the study lists them."""
        return sorted(self.arm_specs(), key=lambda spec: spec.name != SFT_START)

    def arm_specs(self) -> list[ArmSpec]:
        specs = []
        for entry in self.arms:
            entry = {"name": entry, "arm": entry} if isinstance(entry, str) else dict(entry)
            name, arm = entry.pop("name", None), entry.pop("arm", None)
            if not name or arm not in ARMS:
                raise UserError(f"arm {name!r}: `arm` must be one of {', '.join(ARMS)}, got {arm!r}")
            if ARMS[arm].kind in ("base", "sft", "sdft") and set(entry) - {"learning_rate"}:
                raise UserError(
                    f"arm {name!r}: a {ARMS[arm].kind} arm takes only learning_rate, got {sorted(entry)}"
                )
            specs.append(ArmSpec(name, arm, entry))
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise UserError(f"arm names must differ: {names}")
        if any(spec.kind == "sft_then_rl" for spec in specs) and SFT_START not in names:
            raise UserError("an sft_then_* arm starts from the study's `sft` arm: add `sft` to the arms")
        return specs


def load_study(path: str | Path) -> StudyConfig:
    """A `StudyConfig` from YAML; unknown keys, missing keys and bad values are one-line errors."""
    import yaml

    from toolexpander.demo.run import PRESETS, DemoPreset

    try:
        with open(path, encoding="utf-8") as stream:  # a stream: PyYAML's errors then name the file
            raw = yaml.safe_load(stream)
    except OSError as error:
        raise UserError(f"cannot read the study {path}: {error}") from error
    except yaml.YAMLError as error:
        raise yaml_error(error, str(path)) from error
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a study is a YAML mapping")
    known = {f.name for f in fields(StudyConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{path}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        study = StudyConfig(**raw)
    except TypeError as error:
        raise UserError(f"{path}: {error}") from error
    if study.preset not in PRESETS:
        raise UserError(f"{path}: preset must be one of {', '.join(PRESETS)}, got {study.preset!r}")
    preset_keys = {f.name for f in fields(DemoPreset)} - {"name", "what_it_shows"}
    if not isinstance(study.preset_fields, dict) or set(study.preset_fields) - preset_keys:
        raise UserError(f"{path}: preset_fields takes a mapping of {', '.join(sorted(preset_keys))}")
    if study.curve_every is not None and (not isinstance(study.curve_every, int) or study.curve_every < 1):
        raise UserError(
            f"{path}: curve_every must be an integer >= 1 (or left out), got {study.curve_every!r}"
        )
    if not study.seeds or not all(isinstance(s, int) for s in study.seeds):
        raise UserError(f"{path}: seeds must be a list of integers")
    check_rl_fields(study.arm_specs(), str(path))
    unknown_splits = sorted(set(study.splits) - set(split_names(study.budget().suite_level)))
    if unknown_splits:
        choices = ", ".join(split_names(study.budget().suite_level))
        raise UserError(f"{path}: unknown splits {', '.join(unknown_splits)}; choose from {choices}")
    return study


def check_rl_fields(specs: list[ArmSpec], path: str) -> None:
    """A field an RL arm sets must be a `ToolExpanderConfig` field: a misspelt one would otherwise
    fail only when that arm starts, perhaps hours into the study."""
    from toolexpander.trainer.config import ToolExpanderConfig

    known = {f.name for f in fields(ToolExpanderConfig)}
    for spec in specs:
        unknown = sorted(set(spec.overrides) - known)
        if unknown:
            raise UserError(f"{path}: arm {spec.name!r} sets {', '.join(unknown)}: not ToolExpanderConfig fields")


def split_names(level: str) -> list[str]:
    names = ["dev", f"{level}_test", f"{level}_test_unseen_tools", "full_test", "bfcl_non_live"]
    return list(dict.fromkeys(names))  # level "full": full_test once


def study_splits(study: StudyConfig, seed: int, data) -> dict[str, list[dict]]:
    """The records of every split the study evaluates, for one suite seed."""
    from toolexpander.evaluation.runner import load_benchmark
    from toolexpander.tasks.suite import build_suite

    level = study.budget().suite_level
    suite = build_suite(seed, level=level)
    available = {
        "dev": lambda: data.dev,
        f"{level}_test": lambda: suite["test"],
        f"{level}_test_unseen_tools": lambda: suite["test_unseen_tools"],
        "full_test": lambda: build_suite(seed)["test"],
        "bfcl_non_live": lambda: [
            record
            for records in load_benchmark("bfcl:" + ",".join(study.bfcl_categories)).categories.values()
            for record in records[: study.bfcl_items]
        ],
    }
    splits = {split: available[split]() for split in study.splits}
    return {split: r if split == "bfcl_non_live" else r[: study.split_items] for split, r in splits.items()}


def stability(log_rows: list[dict], curve: list[dict]) -> dict:
    """Stability of one run (SPEC §9, what the paper leaves open): per-step loss, gradient norm
    and reward (mean and spread over steps), the share of zero-advantage groups, convergence (the
    step where the held-out zero-shot accuracy peaked). The collapse check needs the start model's
    point too, which another run holds: the report makes it (`toolexpander.study.report.collapsed`)."""

    def series(key: str) -> list[float]:
        return [row[key] for row in log_rows if isinstance(row.get(key), (int, float))]

    def mean_std(values: list[float]) -> list[float] | None:
        if not values:
            return None
        mean = sum(values) / len(values)
        return [mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5]

    best_point = max(curve, key=lambda point: point["zero_shot"], default=None)
    zero_std = series("frac_reward_zero_std")
    return {
        "steps": len(series("loss")),
        "loss": mean_std(series("loss")),
        "grad_norm": mean_std(series("grad_norm")),
        "reward": mean_std(series("reward")),
        "zero_advantage_groups": sum(zero_std) / len(zero_std) if zero_std else None,
        "best_dev_step": best_point["step"] if best_point else None,
    }


def run_arm(spec: ArmSpec, study: StudyConfig, seed: int, data, splits: dict, seed_dir: Path) -> dict:
    """Train and evaluate one arm for one seed into ``seed_dir/NAME``; what ``arm.json`` holds.
    A run whose ``arm.json`` exists is read back, not repeated."""
    from toolexpander.demo.run import accuracy, evaluate_splits, train_arm
    from toolexpander.evaluation.runner import write_outputs
    from toolexpander.evaluation.scoring import summarize
    from toolexpander.study.breakdown import breakdown, leaked_ids, resampling_cluster

    arm_dir = seed_dir / spec.name
    done = arm_dir / "arm.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    preset = study.budget()
    arm_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    start = str(seed_dir / SFT_START / "model") if spec.kind == "sft_then_rl" else study.model
    model, tokenizer, prompt_spec, curve = train_arm(
        spec.arm, start, data, preset, arm_dir, seed, spec.overrides, save_model=spec.name == SFT_START
    )
    train_seconds = time.time() - started
    started = time.time()
    seen = data.train + data.demo_pool
    result = {"arm": spec.arm, "overrides": spec.overrides, "prompt_style": prompt_spec.style, "splits": {}}
    model.eval()
    answered = evaluate_splits(model, tokenizer, prompt_spec, splits, preset, f"seed {seed} {spec.name}")
    for split, items in answered.items():
        records = splits[split]
        summary = summarize(items)
        write_outputs(arm_dir / "eval" / split, items, summary)
        leaked = leaked_ids(records, seen) if split != "bfcl_non_live" else set()
        result["splits"][split] = {
            "accuracy": accuracy(items),
            "breakdown": breakdown(records, items, leaked),
            "verdicts": [
                [item["id"], resampling_cluster(record), bool(item["valid"])]
                for item, record in zip(items, records)
            ],
        }
        if split == "bfcl_non_live":  # and the leaderboard's aggregate, where its categories all ran
            result["splits"][split] |= {
                "categories": summary["categories"],
                "leaderboard_non_live": summary.get("non_live"),
            }
    metrics = read_jsonl(arm_dir / "metrics.jsonl")
    result |= {
        "curve": curve,
        "stability": stability(metrics, curve),
        # TRL's count of tokens trained on; None where the trainer counts none (base; SDFTTrainer).
        "num_tokens": max((row["num_tokens"] for row in metrics if "num_tokens" in row), default=None),
        "train_seconds": train_seconds,
        "eval_seconds": time.time() - started,
    }
    write_file(done, dumps_json(result, indent=2) + "\n")
    return result


def run_study(study: StudyConfig, report: bool = True) -> dict | None:
    """Every arm for every seed (resuming finished runs), then the tables; returns results.json
    (None with ``report=False``: the runs alone, for `run_parallel`'s workers)."""
    from rich.console import Console

    from toolexpander.demo.run import demo_data

    console = Console()
    out = Path(study.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_file(out / "study.json", dumps_json(asdict(study), indent=2) + "\n")
    specs = study.arm_specs()
    started = time.time()
    total, done = len(specs) * len(study.seeds), 0
    for seed in study.seeds:
        data = demo_data(study.budget(), seed)
        splits = study_splits(study, seed, data)
        for spec in study.run_order():
            console.rule(
                f"[bold]seed {seed}, arm {spec.name}[/] ({done}/{total} done, {(time.time() - started) / 60:.1f} min)"
            )
            run_arm(spec, study, seed, data, splits, out / f"seed{seed}")
            done += 1
    return write_report(study, time.time() - started) if report else None


def finished_runs(study: StudyConfig) -> dict[str, dict[int, dict]]:
    """``{arm name: {seed: arm.json}}`` of the runs on disk that finished, each with its hard-sample
    ``ledger`` (empty for an arm without hard sampling) and its ``replies`` per split (the saved
    completions, in the split's order; a split whose predictions are not on disk is left out)."""
    from toolexpander.hard_sampling.policy import LEDGER_FILE

    out = Path(study.output_dir)
    runs: dict[str, dict[int, dict]] = {}
    for spec in study.arm_specs():
        for seed in study.seeds:
            done = out / f"seed{seed}" / spec.name / "arm.json"
            if done.is_file():
                run = runs.setdefault(spec.name, {})[seed] = json.loads(done.read_text(encoding="utf-8"))
                run["ledger"] = read_jsonl(done.parent / LEDGER_FILE)
                run["replies"] = {
                    split: [item["completion"] for item in read_jsonl(path)]
                    for split in run["splits"]
                    if (path := done.parent / "eval" / split / "items.jsonl").is_file()
                }
    return runs


def write_report(study: StudyConfig, wall_seconds: float | None = None) -> dict:
    """results.json, results.md and the plots from the finished runs. An arm that has not finished
    on every seed is left out of the tables (and named); UserError when no arm has."""
    from rich.console import Console

    from toolexpander.study.report import summarise, write_study_report

    runs = finished_runs(study)
    complete = [spec for spec in study.arm_specs() if len(runs.get(spec.name, {})) == len(study.seeds)]
    missing = [spec.name for spec in study.arm_specs() if spec not in complete]
    if not complete:
        raise UserError(f"no arm of {study.output_dir} has finished on every seed of {study.seeds}")
    if study.reference not in [spec.name for spec in complete]:
        study = StudyConfig(**{**asdict(study), "reference": complete[0].name})
    results = summarise(study, complete, runs)
    results["unfinished_arms"] = missing
    results["wall_seconds_this_call"] = wall_seconds
    write_study_report(results, Path(study.output_dir))
    Console().print(
        f"[bold green]done[/]: {Path(study.output_dir) / 'results.md'}"
        + (f" (not finished on every seed, left out: {', '.join(missing)})" if missing else "")
    )
    return results


# Model weights and trainer checkpoints: what an exported study leaves behind.
_WEIGHTS = ("model", "checkpoint-*", "*.safetensors", "*.bin", "*.pt", "*.gguf")


def export_study(study: StudyConfig, folder: str | Path) -> dict:
    """Copy every finished run of ``study`` (its ``arm.json``, logs, ledger and saved predictions;
    no model weights) and ``study.json`` into ``folder``, then write the tables there from the
    copies, so they are checked to be enough; returns results.json. Unfinished runs stay behind."""
    source, target = Path(study.output_dir), Path(folder)
    if target.resolve() == source.resolve():
        raise UserError(f"--export needs a folder other than the study's own ({source})")
    for spec in study.arm_specs():
        for seed in study.seeds:
            run = source / f"seed{seed}" / spec.name
            if not (run / "arm.json").is_file():
                continue
            copy = target / f"seed{seed}" / spec.name
            shutil.copytree(run, copy, ignore=shutil.ignore_patterns(*_WEIGHTS), dirs_exist_ok=True)
            log = run.parent / f"{spec.name}.log"  # a parallel run's own log
            if log.is_file():
                shutil.copy2(log, copy.parent / log.name)
    if (source / "study.json").is_file():
        shutil.copy2(source / "study.json", target / "study.json")
    return write_report(replace(study, output_dir=str(target)))


def run_parallel(study: StudyConfig, config_path: str, jobs: int) -> dict:
    """Every (seed, arm) run as its own `toolexpander compare` process, ``jobs`` at a time (one GPU
    serves several runs of a small model at once: each is bound by kernel launches, not by the
    GPU), runs in the order of the study's arms, ``sft`` first; an ``sft_then_*`` run waits for its
    seed's ``sft``. Each run logs to ``OUT/seed{S}/{ARM}.log``; then the tables."""
    import subprocess
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from rich.console import Console

    console = Console()
    out = Path(study.output_dir)
    specs = study.run_order()
    todo = [(seed, spec) for spec in specs for seed in study.seeds]
    sft_done = {seed: threading.Event() for seed in study.seeds}
    sft_failed: set[int] = set()
    started, finished, failed = time.time(), [], []

    def run_one(seed: int, spec: ArmSpec) -> None:
        if spec.kind == "sft_then_rl":
            sft_done[seed].wait()
            if seed in sft_failed:
                failed.append(f"seed {seed} {spec.name} (its sft failed)")
                return
        arms = [SFT_START, spec.name] if spec.kind == "sft_then_rl" else [spec.name]
        command = [
            sys.executable,
            "-m",
            "toolexpander",
            "compare",
            "--config",
            config_path,
            "--out",
            str(out),
        ]
        command += ["--seeds", str(seed), "--arms", *arms, "--no-report"]
        log = out / f"seed{seed}" / f"{spec.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as stream:
            code = subprocess.run(command, check=False, stdout=stream, stderr=subprocess.STDOUT).returncode
        (finished if code == 0 else failed).append(f"seed {seed} {spec.name}")
        if spec.name == SFT_START:
            if code != 0:
                sft_failed.add(seed)
            sft_done[seed].set()
        elapsed = time.time() - started
        eta = elapsed / (len(finished) + len(failed)) * (len(todo) - len(finished) - len(failed))
        status = "[green]done[/]" if code == 0 else f"[red]failed ({code}), see {log}[/]"
        console.print(
            f"seed {seed} {spec.name}: {status} ({len(finished) + len(failed)}/{len(todo)}, "
            f"{elapsed / 60:.1f} min, about {eta / 60:.1f} min left)"
        )

    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(run_one, seed, spec) for seed, spec in todo]:
            future.result()
    results = write_report(study, time.time() - started)
    if failed:
        raise UserError(
            f"{len(failed)} runs failed: {', '.join(failed)} (their logs are beside their folders)"
        )
    return results
