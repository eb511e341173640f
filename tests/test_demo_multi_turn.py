"""`toolexpander demo --multi-turn` end to end on the tiny model: evaluate, train on BFCL episodes,
evaluate, with the held-out split the recipe uses (issue 25, item 7)."""

import importlib.util
import json

import pytest

from toolexpander.cli import main
from toolexpander.demo.multi_turn import MultiTurnPreset, run_multi_turn_demo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bfcl_eval") is None,
    reason="needs the bfcl-eval wheel (its multi-turn data and simulators)",
)


def test_the_multi_turn_demo_evaluates_trains_and_evaluates(tmp_path, tiny_model_dir):
    preset = MultiTurnPreset(max_completion_length=8, steps=2)
    results = run_multi_turn_demo(str(tmp_path), tiny_model_dir, preset=preset)
    # Scored: the items after the held-out boundary, base model and trained model alike.
    for name in ("eval_base", "eval_trained"):
        items = [json.loads(line) for line in (tmp_path / name / "items.jsonl").read_text().splitlines()]
        assert [item["id"] for item in items] == ["multi_turn_base_100", "multi_turn_base_101"], name
    for name in ("before", "after"):
        figures = results[name]
        assert figures["episodes"] == 2 and 0.0 <= figures["accuracy"] <= figures["turns_passed"] <= 1.0
        assert sum(figures["stopped"].values()) == 2
    # Trained: the first two items, every step logged with its episodes' turns; the saved model scored.
    ledger = [json.loads(line) for line in (tmp_path / "run" / "hard_samples.jsonl").read_text().splitlines()]
    assert {row["id"] for row in ledger} == {"multi_turn_base_0", "multi_turn_base_1"}
    assert [row["step"] for row in results["training"]] == [1, 2]
    assert all("episodes/turns_passed" in row for row in results["training"])
    assert (tmp_path / "run" / "config.json").is_file()
    # A random model fails every episode: rollouts are posed after a demonstration episode.
    assert any(row["demo_rollouts"] > 0 for row in ledger)
    assert any(f"--model {tmp_path / 'run'}" in command for command in results["commands"])
    assert "--held_out_after 100" in results["commands"][1] and "--skip 100" in results["commands"][0]
    report = (tmp_path / "report.md").read_text()
    assert "| before | 2 |" in report and "| after | 2 |" in report


def test_the_demo_flag_runs_the_multi_turn_path(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "toolexpander.demo.multi_turn.run_multi_turn_demo",
        lambda *args, **kwargs: calls.append((args, kwargs)),
    )
    assert main(["demo", "--multi-turn", "--model", "some/model", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert calls == [((str(tmp_path), "some/model"), {"seed": 3})]
