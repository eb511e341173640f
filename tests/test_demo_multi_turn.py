"""`toolexpander demo --multi-turn` end to end on the tiny model: evaluate, train on BFCL episodes,
evaluate, with the held-out split the recipe uses (issue 25, item 7)."""

import importlib.util
import json

import pytest

from tests.bfcl_episodes import trimmed_bfcl
from toolexpander.cli import main
from toolexpander.demo.multi_turn import MultiTurnPreset, run_multi_turn_demo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bfcl_eval") is None,
    reason="needs the bfcl-eval wheel (its multi-turn data and simulators)",
)


# Two GorillaFileSystem items to train on, then two to score, with three functions' docs (seconds
# on the tiny model; BFCL's whole docs take it minutes).
TRAIN_ITEMS, SCORED_ITEMS = (
    ("multi_turn_base_1", "multi_turn_base_3"),
    ("multi_turn_base_6", "multi_turn_base_9"),
)


def test_the_multi_turn_demo_evaluates_trains_and_evaluates(tmp_path):
    data = trimmed_bfcl(tmp_path / "bfcl", TRAIN_ITEMS + SCORED_ITEMS)
    preset = MultiTurnPreset(held_out_after=2, max_completion_length=8)
    out = tmp_path / "demo"
    results = run_multi_turn_demo(str(out), preset=preset, data_dir=str(data))
    assert (out / "tiny-model" / "config.json").is_file()  # no model given: the tiny one
    # Scored: the items after the held-out boundary, base model and trained model alike, each
    # episode with a reply at least (the tiny model's episode budget fits the prompts).
    for name in ("eval_base", "eval_trained"):
        items = [json.loads(line) for line in (out / name / "items.jsonl").read_text().splitlines()]
        assert tuple(item["id"] for item in items) == SCORED_ITEMS, name
        assert all(item["replies"] and item["replies"][0] for item in items), name
    for name in ("before", "after"):
        figures = results[name]
        assert figures["episodes"] == 2 and 0.0 <= figures["accuracy"] <= figures["turns_passed"] <= 1.0
        assert sum(figures["stopped"].values()) == 2
    # Trained: the first two items, every step logged with its episodes' turns; the saved model scored.
    ledger = [json.loads(line) for line in (out / "run" / "hard_samples.jsonl").read_text().splitlines()]
    assert {row["id"] for row in ledger} == set(TRAIN_ITEMS)
    assert [row["step"] for row in results["training"]] == [1, 2]
    assert all("episodes/turns_passed" in row for row in results["training"])
    assert (out / "run" / "config.json").is_file()
    # A random model fails every episode: rollouts are posed after a demonstration episode.
    assert any(row["demo_rollouts"] > 0 for row in ledger)
    assert any(f"--model {out / 'run'}" in command for command in results["commands"])
    assert "--held_out_after 2" in results["commands"][1] and "--skip 2" in results["commands"][0]
    report = (out / "report.md").read_text()
    assert "| before | 2 |" in report and "| after | 2 |" in report
    # Run again into the same folder: the demo starts its run over.
    again = run_multi_turn_demo(str(out), preset=preset, data_dir=str(data))
    assert again["before"] == results["before"]


def test_the_demo_flag_runs_the_multi_turn_path(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "toolexpander.demo.multi_turn.run_multi_turn_demo",
        lambda *args, **kwargs: calls.append((args, kwargs)),
    )
    assert main(["demo", "--multi-turn", "--model", "some/model", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert calls == [((str(tmp_path), "some/model"), {"seed": 3})]
    assert main(["demo", "--multi-turn", "--out", str(tmp_path)]) == 0
    assert calls[1] == ((str(tmp_path), None), {"seed": 0})  # None: the tiny model
