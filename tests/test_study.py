"""The comparison study: its pure parts (arms, breakdown, intervals) by tables and Hypothesis, the
SFT control's data and learning, study files' errors, and `toolexpander compare` end to end on a
tiny model (resumable, every prediction saved, the results.json keys the README promises)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolexpander.cli import main
from toolexpander.study.arms import ARMS, rl_fields
from toolexpander.study.breakdown import (
    NO_CALL,
    breakdown,
    cluster_interval,
    leaked_ids,
    paired_difference,
    resampling_cluster,
    visit_tally,
)

A = {"name": "a", "arguments": {"x": 1, "y": 2}}
B = {"name": "b", "arguments": {"q": "z"}}
REPO = Path(__file__).resolve().parents[1]


def record(id_, answer, offered=("a", "b")):
    return {"id": id_, "answer": answer, "tools": [{"name": name} for name in offered]}


def item(calls, valid, error_type=None):
    return {"calls": calls, "valid": valid, "error_type": error_type}


def test_breakdown_separates_format_tool_and_arguments():
    records = [
        record("1", [A]),
        record("2", [A]),
        record("3", [A]),
        record("4", [B]),
        record("5", []),
        record("6", [B]),
    ]
    items = [
        item([A], True),  # right
        item([{"name": "a", "arguments": {"x": 2}}], False, "mismatch"),  # right tool, wrong arguments
        item(None, False, "decoder_failed"),  # nothing readable
        item([A], False, "mismatch"),  # wrong tool
        item([], True),  # right: no call
        item([B], False, "format:no_think"),  # the call is right but the reply is not well-formed
    ]
    result = breakdown(records, items, leaked={"1"})
    assert result["n"] == 6 and result["accuracy"] == 2 / 6
    assert result["well_formed"] == 4 / 6
    assert result["right_tool"] == 3 / 6  # 1, 2, 5
    assert result["right_arguments_given_right_tool"] == 2 / 3
    assert result["no_call_accuracy"] == 1.0
    assert result["per_tool"] == {
        NO_CALL: {"n": 1, "accuracy": 1.0},
        "a": {"n": 3, "accuracy": 1 / 3},
        "b": {"n": 2, "accuracy": 0.0},
    }
    assert (result["leaked"], result["accuracy_without_leaked"]) == (1, 1 / 5)


@pytest.mark.parametrize(
    ("answer", "offered", "cluster"),
    [
        ([A], ("a", "b"), "a"),
        ([B, A, A], ("a", "b"), "a+b"),
        ([], ("b", "a"), f"{NO_CALL} a+b"),
        ([], ("c",), f"{NO_CALL} c"),
        ([], (), f"{NO_CALL} "),
    ],
)
def test_an_item_that_calls_nothing_is_resampled_with_the_items_offering_its_tools(answer, offered, cluster):
    assert resampling_cluster(record("1", answer, offered)) == cluster


def test_no_call_items_offering_different_tools_are_not_one_cluster():
    # 20 items each call their own tool, wrongly; 20 call nothing, each offering its own tool, rightly.
    # As one cluster the no-call half would be drawn all or nothing, and the interval would reach 0.
    records = [record(f"c{i}", [{"name": f"c{i}", "arguments": {}}]) for i in range(20)]
    records += [record(f"n{i}", [], (f"n{i}",)) for i in range(20)]
    items = [item([B], False, "mismatch")] * 20 + [item([], True)] * 20
    low, high = breakdown(records, items)["interval"]
    assert 0.25 < low < 0.5 < high < 0.75
    one_cluster = [f"c{i}" for i in range(20)] + [NO_CALL] * 20
    assert cluster_interval([0.0] * 20 + [1.0] * 20, one_cluster)[0] == 0.0


def test_a_test_item_is_leaked_when_a_seen_item_has_its_call_in_any_key_or_call_order():
    seen = [record("t", [B, {"name": "a", "arguments": {"y": 2, "x": 1}}])]
    records = [record("1", [A, B]), record("2", [A]), record("3", [B, A])]
    assert leaked_ids(records, seen) == {"1", "3"}


def test_resampling_tools_widens_the_interval_when_a_tool_decides_its_items():
    # 10 tools of 10 items each; a tool's items are all right or all wrong.
    values = [float(tool % 2) for tool in range(10) for _ in range(10)]
    by_tool = [str(tool) for tool in range(10) for _ in range(10)]
    by_item = [str(i) for i in range(100)]
    tool_low, tool_high = cluster_interval(values, by_tool)
    item_low, item_high = cluster_interval(values, by_item)
    assert tool_low <= 0.5 <= tool_high and item_low <= 0.5 <= item_high
    assert tool_high - tool_low > 1.5 * (item_high - item_low)


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.booleans()), min_size=1, max_size=40))
def test_the_interval_holds_values_a_resample_can_take(pairs):
    clusters, values = [c for c, _ in pairs], [float(v) for _, v in pairs]
    low, high = cluster_interval(values, clusters, reps=200)
    assert 0.0 <= low <= high <= 1.0
    if len(set(values)) == 1 or len(set(clusters)) == 1:  # every resample has the same mean
        assert low == high == pytest.approx(sum(values) / len(values))


@given(st.lists(st.tuples(st.sampled_from("abc"), st.booleans(), st.booleans()), min_size=1, max_size=30))
def test_a_paired_difference_is_the_difference_of_accuracies_and_zero_against_itself(rows):
    clusters = [c for c, _, _ in rows]
    a, b = [x for _, x, _ in rows], [y for _, _, y in rows]
    result = paired_difference(a, b, clusters)
    assert result["difference"] == pytest.approx((sum(a) - sum(b)) / len(rows))
    assert paired_difference(a, a, clusters) == {"difference": 0.0, "interval": [0.0, 0.0]}


@pytest.mark.parametrize(
    ("arm", "expected"),
    [
        ("grpo", {"mode": "grpo"}),
        ("hard_sampling", {"mode": "hard_sampling_only", "shots_start": 2, "shots_cap": 2, "fading": False}),
        ("toolexpander_paper", {"mode": "toolexpander"}),
        ("carry_over", {"carry_over": "swap_nll", "demo_rollouts_per_group": 1, "carry_over_nll_coef": 3.0}),
        ("carry_over_swap", {"carry_over": "swap"}),
        ("carry_over_nll", {"carry_over": "nll"}),
        ("sft_then_carry_over", {"carry_over": "swap_nll"}),
        ("sft_then_paper", {"mode": "toolexpander"}),
        ("sft", {}),
        ("sdft", {}),
        ("base", {}),
    ],
)
def test_each_arm_sets_what_makes_it_that_arm(arm, expected):
    fields = rl_fields(arm, shots=2, demo_rollouts=1, nll_coef=3.0)
    assert fields.items() >= expected.items()


@pytest.mark.parametrize("arm", [name for name, arm in ARMS.items() if arm.kind in ("rl", "sft_then_rl")])
def test_every_rl_arm_is_a_valid_training_config(tmp_path, arm):
    from toolexpander.trainer.config import ToolExpanderConfig

    fields = rl_fields(arm, shots=2, demo_rollouts=2, nll_coef=3.0)
    config = ToolExpanderConfig(
        output_dir=str(tmp_path), use_cpu=True, num_generations=4, per_device_train_batch_size=8, **fields
    )
    assert config.mode == fields["mode"]


def test_sft_rows_pose_the_evaluation_prompt_and_train_on_the_gold_reply(tiny_model_dir):
    from toolexpander.evaluation.runner import prompt_text
    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.prompts import PromptSpec, render_answer
    from toolexpander.study.sft import sft_rows
    from toolexpander.tasks.suite import build_suite

    _, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    spec = PromptSpec(think_prefill=True)
    records = build_suite(0, level="easy")["train"][:3]
    for row, rec in zip(sft_rows(records, tokenizer, spec), records):
        posed = prompt_text(rec, spec, tokenizer)
        assert row["prompt"] == posed and posed.endswith("<think>")
        assert "<think>" + row["completion"] == render_answer(rec["answer"])


def test_sft_raises_the_likelihood_of_the_gold_reply(tiny_model_dir, tmp_path):
    import torch

    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.prompts import PromptSpec
    from toolexpander.study.sft import sft_rows, train_sft
    from toolexpander.tasks.suite import build_suite

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    records = build_suite(0, level="easy")["train"][:2]
    (row, _) = sft_rows(records, tokenizer, PromptSpec())

    def gold_logp(model) -> float:
        prompt = tokenizer(row["prompt"], return_tensors="pt").input_ids
        full = tokenizer(row["prompt"] + row["completion"], return_tensors="pt").input_ids
        with torch.no_grad():
            logps = model(full).logits[0, :-1].log_softmax(-1).gather(1, full[0, 1:, None])[:, 0]
        return logps[prompt.shape[1] - 1 :].sum().item()

    before = gold_logp(model)
    trainer = train_sft(
        model,
        tokenizer,
        records,
        output_dir=str(tmp_path),
        steps=4,
        batch_size=2,
        prompt_spec=PromptSpec(),
        learning_rate=1e-3,
        seed=0,
        use_cpu=True,
    )
    assert len([row for row in trainer.state.log_history if "loss" in row]) == 4
    assert gold_logp(trainer.model) > before + 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seeds: [1]\narms: [sft]\nfoo: 1\n", "unknown keys foo"),
        ("seeds: [1]\narms: [nope]\n", "`arm` must be one of"),
        ("seeds: [1]\narms: [sft_then_carry_over]\n", "add `sft` to the arms"),
        ("seeds: [1]\narms: [{name: s, arm: sft, beta: 0.1}]\n", "a sft arm takes only learning_rate"),
        ("seeds: [1]\narms: [{name: s, arm: sdft, beta: 0.1}]\n", "a sdft arm takes only learning_rate"),
        ("seeds: [1]\narms: [{name: g, arm: grpo, max_stpes: 32}]\n", "arm 'g' sets max_stpes: not ToolExpanderConfig"),
        ("seeds: [1]\narms: [sft]\nsplits: [test]\n", "unknown splits test"),
        ("seeds: one\narms: [sft]\n", "seeds must be a list of integers"),
        ("seeds: [1]\narms: [sft]\ncurve_every: 0\n", "curve_every must be an integer >= 1"),
        ("seeds: [1]\narms: [sft]\npreset_fields: {stpes: 3}\n", "preset_fields takes a mapping of"),
        ("arms: [sft]\n", "missing 1 required positional argument: 'seeds'"),
        ("seeds: [1]\narms: [sft, sft]\n", "arm names must differ"),
        ("seeds: [1\n", "study.yaml, line 2 is not valid YAML"),
    ],
)
def test_a_bad_study_file_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    assert main(["compare", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def dev_curve(well_formed: list[float], first_step: int = 0) -> list[dict]:
    return [
        {"step": first_step + 8 * i, "zero_shot": [0.1, 0.3, 0.2][i], "zero_shot_well_formed": w}
        for i, w in enumerate(well_formed)
    ]


@pytest.mark.parametrize(
    ("start", "well_formed", "expected"),
    [
        (None, [0.2, 0.8, 0.5], False),
        (None, [0.2, 0.8, 0.39], True),
        (None, [0.0, 0.0, 0.0], False),
        (None, [], False),
        # One point at the end of training: only the start model's share shows the fall.
        (None, [0.0], False),
        (0.84, [0.0], True),
        (0.84, [0.5], False),
        (0.84, [], False),
    ],
)
def test_a_run_collapsed_when_its_well_formed_share_ends_below_half_its_best_start_included(
    start, well_formed, expected
):
    from toolexpander.study.report import collapsed

    start_point = None if start is None else {"step": 0, "zero_shot": 0.0, "zero_shot_well_formed": start}
    assert collapsed(dev_curve(well_formed, first_step=16), start_point) is expected


@pytest.mark.parametrize("well_formed", [[0.2, 0.8, 0.5], []])
def test_stability_summarises_the_logged_steps(well_formed):
    from toolexpander.study.compare import stability

    rows = [
        {"loss": 1.0, "reward": 0.5, "frac_reward_zero_std": 0.25},
        {"loss": 3.0, "reward": 0.5, "grad_norm": 2.0},
    ]
    result = stability(rows, dev_curve(well_formed))
    assert (
        result["loss"] == [2.0, 1.0] and result["reward"] == [0.5, 0.0] and result["grad_norm"] == [2.0, 0.0]
    )
    assert result["zero_advantage_groups"] == 0.25 and result["steps"] == 2
    assert result["best_dev_step"] == (8 if well_formed else None)


def ledger_row(round_: int, shots: int, successes: int, demo_successes: int = 0) -> dict:
    demo_rollouts = 2 if shots else 0
    return {"round": round_, "shots": shots, "successes": successes, "num_generations": 4} | {
        "demo_rollouts": demo_rollouts,
        "demo_successes": demo_successes,
    }


def test_the_visit_tally_counts_groups_solved_groups_and_correct_rollouts_per_visit_and_shots():
    ledger = [
        ledger_row(1, 1, 2, demo_successes=2),
        ledger_row(0, 0, 0),
        ledger_row(0, 0, 3),
        ledger_row(1, 1, 0),
        ledger_row(1, 0, 1),
    ]
    cells = [(c["round"], c["shots"], c["groups"], c["solved"]) for c in visit_tally(ledger)]
    assert cells == [(0, 0, 2, 1), (1, 0, 1, 1), (1, 1, 2, 1)]
    rollouts = [
        (c["zero_shot_correct"], c["zero_shot_rollouts"], c["demo_correct"], c["demo_rollouts"])
        for c in visit_tally(ledger)
    ]
    assert rollouts == [(3, 8, 0, 0), (1, 4, 0, 0), (0, 4, 2, 4)]
    assert visit_tally([]) == []


def fake_run(verdicts: list[tuple[str, bool]], well_formed: float = 0.9, split: str = "t") -> dict:
    """An arm.json of one seed with one split (``verdicts``: (tool, right) per item) and one
    held-out point (``well_formed``: its share of well-formed replies)."""
    rows = [[f"id{i}", tool, valid] for i, (tool, valid) in enumerate(verdicts)]
    accuracy = sum(v for _, v in verdicts) / len(verdicts)
    return {
        "splits": {split: {"accuracy": accuracy, "breakdown": {}, "verdicts": rows}},
        "curve": [{"step": 16, "zero_shot": accuracy, "zero_shot_well_formed": well_formed}],
        "stability": {},
        "train_seconds": 1.0,
        "eval_seconds": 1.0,
        "num_tokens": 10,
    }


def test_the_summary_pools_seeds_and_pairs_each_arm_with_the_reference():
    from toolexpander.study.compare import StudyConfig
    from toolexpander.study.report import summarise

    study = StudyConfig(arms=["sft", "carry_over"], seeds=[1, 2], splits=["t"])
    runs = {
        "sft": {1: fake_run([("a", True), ("b", False)]), 2: fake_run([("a", False), ("c", False)])},
        "carry_over": {1: fake_run([("a", True), ("b", True)]), 2: fake_run([("a", True), ("c", False)])},
    }
    runs["carry_over"][1]["ledger"] = [ledger_row(0, 0, 0)]
    runs["carry_over"][2]["ledger"] = [ledger_row(0, 0, 2), ledger_row(1, 1, 1)]
    results = summarise(study, study.arm_specs(), runs)
    sft, carry = results["arms"]["sft"], results["arms"]["carry_over"]
    assert results["splits"] == {"t": {1: 2, 2: 2}}
    assert (sft["per_seed"], carry["per_seed"]) == (
        {1: {"t": 0.5}, 2: {"t": 0.0}},
        {1: {"t": 1.0}, 2: {"t": 0.5}},
    )
    assert (sft["mean"]["t"], carry["pooled"]["t"]["accuracy"]) == (0.25, 0.75)
    assert sft["vs_reference"] == {} and carry["vs_reference"]["t"]["difference"] == 0.5
    # The hard-sample ledgers of both seeds are tallied together; an arm without one has no table.
    assert "hard_sampling" not in sft and [(c["round"], c["groups"], c["solved"]) for c in carry["hard_sampling"]] == [
        (0, 2, 1),
        (1, 1, 1),
    ]
    # Four (seed, tool) clusters; carry_over is never behind sft on any of them.
    assert (
        0.0 <= carry["vs_reference"]["t"]["interval"][0] <= 0.5 <= carry["vs_reference"]["t"]["interval"][1]
    )


def test_the_summary_counts_the_replies_an_arm_shares_with_the_reference_character_for_character():
    from toolexpander.study.compare import StudyConfig
    from toolexpander.study.report import summarise

    ablation = {"name": "ablation", "arm": "sft", "learning_rate": 1e-5}
    study = StudyConfig(arms=["sft", ablation], seeds=[1, 2], splits=["t"])
    verdicts = [("a", True), ("b", False)]
    runs = {name: {seed: fake_run(verdicts) for seed in (1, 2)} for name in ("sft", "ablation")}
    for seed, replies in ((1, ["x", "y"]), (2, ["z", "w"])):
        runs["sft"][seed]["replies"] = {"t": replies}
    runs["ablation"][1]["replies"] = {"t": ["x", "y"]}
    runs["ablation"][2]["replies"] = {"t": ["z", "w "]}  # one character apart: not the same reply
    results = summarise(study, study.arm_specs(), runs)
    assert results["arms"]["ablation"]["identical_replies"] == {"t": 3}
    assert "identical_replies" not in results["arms"]["sft"]
    assert results["arms"]["ablation"]["vs_reference"]["t"]["difference"] == 0.0
    # Where a run's predictions are not on disk, nothing is counted.
    del runs["ablation"][2]["replies"]
    assert "identical_replies" not in summarise(study, study.arm_specs(), runs)["arms"]["ablation"]


def test_bfcl_pools_seeds_by_tool_because_its_items_are_the_same_on_every_seed():
    from toolexpander.study.compare import StudyConfig
    from toolexpander.study.report import summarise

    # Ten tools; each seed's run is right on tools 0-4 and wrong on 5-9. Per (seed, tool) there would
    # be 30 clusters for what are ten items, and the interval would be narrower than the ten allow.
    verdicts = [(f"tool{i}", i < 5) for i in range(10)]
    categories = {"simple_python": {"correct": 5, "n": 10}}
    for split, clusters in (("bfcl_non_live", [f"tool{i}" for i in range(10)] * 3), ("t", None)):
        study = StudyConfig(arms=["sft"], seeds=[1, 2, 3], splits=[split])
        runs = {"sft": {seed: fake_run(verdicts, split=split) for seed in (1, 2, 3)}}
        for run in runs["sft"].values():
            run["splits"][split] |= {"categories": categories, "leaderboard_non_live": None}
        pooled = summarise(study, study.arm_specs(), runs)["arms"]["sft"]["pooled"][split]
        if clusters is None:
            clusters = [f"{seed}/tool{i}" for seed in (1, 2, 3) for i in range(10)]
        assert pooled["interval"] == cluster_interval([float(v) for _, v in verdicts] * 3, clusters)
    by_tool = cluster_interval([float(v) for _, v in verdicts] * 3, [f"tool{i}" for i in range(10)] * 3)
    by_seed_and_tool = cluster_interval(
        [float(v) for _, v in verdicts] * 3, [f"{s}/tool{i}" for s in (1, 2, 3) for i in range(10)]
    )
    assert by_tool[1] - by_tool[0] > by_seed_and_tool[1] - by_seed_and_tool[0]


def test_the_summary_checks_collapse_against_the_model_each_arm_started_from():
    from toolexpander.study.compare import StudyConfig
    from toolexpander.study.report import summarise

    arms = ["sft", "base", "sdft", "carry_over", "sft_then_carry_over"]
    study = StudyConfig(arms=arms, seeds=[1, 2], splits=["t"])
    # Held-out well-formed shares per seed: base's start 0.8 on both seeds, sft ends at 0.9 / 0.5.
    shares = {
        "sft": (0.9, 0.5),
        "base": (0.8, 0.8),
        "sdft": (0.0, 0.5),
        "carry_over": (0.39, 0.41),
        "sft_then_carry_over": (0.3, 0.3),
    }
    runs = {arm: {seed: fake_run([("a", True)], shares[arm][i]) for i, seed in enumerate((1, 2))} for arm in arms}
    results = summarise(study, study.arm_specs(), runs)
    verdicts = {arm: [results["arms"][arm]["stability"][seed]["collapsed"] for seed in (1, 2)] for arm in arms}
    assert verdicts == {
        "sft": [False, False],
        "base": [False, False],
        "sdft": [True, False],
        "carry_over": [True, False],
        "sft_then_carry_over": [True, False],  # from sft's 0.9, then from its 0.5
    }
    # Without a base run the arms trained from the base model are judged on their own points only.
    no_base = StudyConfig(arms=["sft", "sdft"], seeds=[1, 2], splits=["t"])
    alone = summarise(no_base, no_base.arm_specs(), {arm: runs[arm] for arm in ("sft", "sdft")})
    assert [alone["arms"]["sdft"]["stability"][seed]["collapsed"] for seed in (1, 2)] == [False, False]


def test_compare_runs_arms_by_seeds_resumes_and_keeps_every_prediction(tiny_model_dir, tmp_path, monkeypatch):
    import toolexpander.demo.run as demo_run

    study = tmp_path / "study.yaml"
    out = tmp_path / "out"
    study.write_text(
        f"model: {tiny_model_dir}\npreset: quick\nseeds: [3]\nsplits: [dev, easy_test, full_test]\n"
        "split_items: 6\narms: [base, sft, sdft, carry_over, sft_then_carry_over]\n"
    )
    starts = []
    real_train_arm = demo_run.train_arm

    def recording_train_arm(arm, model_name, *args, **kwargs):
        starts.append((arm, model_name))
        return real_train_arm(arm, model_name, *args, **kwargs)

    monkeypatch.setattr(demo_run, "train_arm", recording_train_arm)
    assert main(["compare", "--config", str(study), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [3] and list(results["arms"]) == [
        "base",
        "sft",
        "sdft",
        "carry_over",
        "sft_then_carry_over",
    ]
    # The trained arms log every optimizer step: the quick preset's 2.
    for name in ("sft", "sdft"):
        rows = (out / "seed3" / name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(row)["step"] for row in rows] == [1, 2]
    # Tokens trained on, as TRL counts them; SDFTTrainer counts none, and base trains on none.
    tokens = {name: entry["num_tokens"]["3"] for name, entry in results["arms"].items()}
    assert tokens["sft"] > 0 and tokens["carry_over"] > 0 and tokens["sdft"] is tokens["base"] is None
    for name, entry in results["arms"].items():
        assert set(entry["per_seed"]) == {"3"}
        assert all(
            set(per_split) == {"dev", "easy_test", "full_test"} for per_split in entry["per_seed"].values()
        )
        assert ("easy_test" in entry["vs_reference"]) == (name != "sft")
        # Counted from the saved predictions, for every arm but the reference.
        assert (set(entry.get("identical_replies", {})) == set(entry["vs_reference"])) and all(
            0 <= count <= 6 for count in entry.get("identical_replies", {}).values()
        )
        for seed in (3,):
            items = (
                (out / f"seed{seed}" / name / "eval" / "easy_test" / "items.jsonl").read_text().splitlines()
            )
            assert len(items) == 6 and all("completion" in json.loads(line) for line in items)
    # Each verdict keeps its item's resampling cluster (items 0-5 of seed 3's full test hold one
    # that calls nothing: its cluster names the tools it offers).
    from toolexpander.tasks.suite import build_suite

    rows = json.loads((out / "seed3" / "sft" / "arm.json").read_text())["splits"]["full_test"]["verdicts"]
    full = build_suite(3)["test"][:6]
    assert [row[:2] for row in rows] == [[r["id"], resampling_cluster(r)] for r in full]
    assert sum(row[1].startswith(f"{NO_CALL} ") for row in rows) == 1
    # The SFT -> RL arm starts from each seed's SFT model; every other arm from the base model.
    assert sorted(starts) == sorted(
        [(arm, tiny_model_dir) for arm in ("base", "sft", "sdft", "carry_over")]
        + [("sft_then_carry_over", str(out / "seed3" / "sft" / "model"))]
    )
    report = (out / "results.md").read_text()
    assert all(f"| {name} |" in report for name in results["arms"])
    assert "replies identical to the reference's |" in report
    items = sum(sum(per_seed.values()) for per_seed in results["splits"].values())
    for name, entry in results["arms"].items():
        if name != "sft":  # the difference table's last cell, over every split's items
            assert f" | {sum(entry['identical_replies'].values())} of {items} |" in report
    # The hard-sampling arms' ledgers are tallied per visit; sft's run has none.
    ledger = [json.loads(row) for row in (out / "seed3" / "carry_over" / "hard_samples.jsonl").read_text().splitlines()]
    assert ledger and "hard_sampling" not in results["arms"]["sft"]
    for cell in results["arms"]["carry_over"]["hard_sampling"]:
        posed = [r for r in ledger if (r["round"], r["shots"]) == (cell["round"], cell["shots"])]
        assert (cell["groups"], cell["zero_shot_correct"] + cell["demo_correct"]) == (
            len(posed),
            sum(r["successes"] for r in posed),
        )
        assert f"| carry_over | {cell['round'] + 1} | {cell['shots']} | {cell['groups']} | " in report
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    # Finished runs are read back, not repeated; --arms picks some of the study's arms.
    starts.clear()
    assert main(["compare", "--config", str(study), "--out", str(out), "--arms", "sft", "carry_over"]) == 0
    assert starts == []
    again = json.loads((out / "results.json").read_text())["arms"]
    assert again == {name: results["arms"][name] for name in ("sft", "carry_over")}
    assert main(["compare", "--config", str(study), "--arms", "nope"]) == 2
    assert main(["compare", "--config", str(study), "--out", str(out), "--seeds", "3"]) == 0 and starts == []
    assert main(["compare", "--config", str(study), "--seeds", "5"]) == 2


def test_preset_fields_change_the_budget_of_every_run(tmp_path):
    from toolexpander.demo.run import PRESETS
    from toolexpander.study.compare import load_study

    path = tmp_path / "study.yaml"
    path.write_text("seeds: [1]\narms: [sft]\ncurve_every: 4\npreset_fields: {max_completion_length: 128}\n")
    budget = load_study(path).budget()
    assert (budget.max_completion_length, budget.curve_every, budget.steps) == (128, 4, PRESETS["cpu"].steps)


@pytest.mark.parametrize("study_file", sorted(path.name for path in (REPO / "studies").glob("*.yaml")))
def test_every_committed_study_trains_valid_configurations(tmp_path, study_file):
    """A study is committed before it runs: its RL arms' configurations must build then, not when
    the arm starts hours later."""
    from toolexpander.demo.run import rl_config
    from toolexpander.study.compare import load_study

    study = load_study(REPO / "studies" / study_file)
    for spec in study.arm_specs():
        if spec.kind in ("rl", "sft_then_rl"):
            config = rl_config(spec.arm, study.budget(), 0, spec.overrides, tmp_path)
            assert config.max_steps == spec.overrides.get("max_steps", study.budget().steps)


def test_parallel_runs_wait_for_their_sft_and_the_report_leaves_out_unfinished_arms(tiny_model_dir, tmp_path):
    study = tmp_path / "study.yaml"
    out = tmp_path / "out"
    study.write_text(
        f"model: {tiny_model_dir}\npreset: quick\nseeds: [3]\nsplits: [dev]\n"
        "arms: [base, sft, sft_then_carry_over]\n"
    )
    assert main(["compare", "--config", str(study), "--out", str(out), "--jobs", "3"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert (
        list(results["arms"]) == ["base", "sft", "sft_then_carry_over"] and results["unfinished_arms"] == []
    )
    for name in results["arms"]:
        assert f"arm {name}" in (out / "seed3" / f"{name}.log").read_text()  # each run's own log
    # The SFT -> RL run started from the SFT model, so it ran after it.
    assert (out / "seed3" / "sft" / "model").is_dir()
    assert json.loads((out / "seed3" / "sft_then_carry_over" / "arm.json").read_text())["arm"] == (
        "sft_then_carry_over"
    )
    (out / "seed3" / "base" / "arm.json").unlink()
    assert main(["compare", "--config", str(study), "--out", str(out), "--report"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["arms"]) == ["sft", "sft_then_carry_over"] and results["unfinished_arms"] == ["base"]
    assert not (out / "seed3" / "base" / "arm.json").exists()  # --report trains nothing
    # --export: the finished runs without model weights; the tables, rebuilt from the copies alone.
    shared = tmp_path / "shared"
    assert main(["compare", "--config", str(study), "--out", str(out), "--export", str(shared)]) == 0
    assert json.loads((shared / "results.json").read_text())["arms"] == results["arms"]
    assert list(out.rglob("*.safetensors")) and not list(shared.rglob("*.safetensors"))
    assert not (shared / "seed3" / "sft" / "model").exists() and (shared / "study.json").is_file()
    assert (shared / "seed3" / "sft" / "eval" / "dev" / "items.jsonl").is_file()
    assert (shared / "seed3" / "sft.log").is_file() and not (shared / "seed3" / "base").exists()
    assert main(["compare", "--config", str(study), "--out", str(out), "--export", str(out)]) == 2


def test_sdft_rows_show_the_teacher_two_demonstrations_and_the_student_none(tiny_model_dir):
    from transformers import AutoTokenizer

    from toolexpander.evaluation.runner import prompt_text
    from toolexpander.hard_sampling.demo_bank import DemoBank
    from toolexpander.prompts import PromptSpec
    from toolexpander.study.sdft import sdft_rows
    from toolexpander.tasks.suite import build_suite

    tokenizer, spec = AutoTokenizer.from_pretrained(tiny_model_dir), PromptSpec(think_prefill=True)
    train = build_suite(0, level="easy")["train"]
    records, pool = train[:3], train[:40]  # as in the demo, the trained items are in the pool too
    rows = sdft_rows(records, pool, tokenizer, spec)
    bank = DemoBank(pool, sources=("gold",))
    for row, rec in zip(rows, records):
        demos = bank.select(rec, 2)
        assert row["prompt"] == prompt_text(rec, spec, tokenizer)  # the zero-shot prompt evaluation poses
        assert row["privileged_context"] == spec.render(tokenizer, rec, demos)
        assert row["privileged_context"].count("<|im_start|>assistant\n") == 3  # 2 demonstrations + the reply
        assert all(d["completion"] in row["privileged_context"] for d in demos)
        assert rec["id"] not in {d["source_id"] for d in demos}
        assert not any(d["completion"] in row["prompt"] for d in demos)


def test_sdft_samples_under_the_bare_prompt_and_distils_from_the_two_shot_teacher(tiny_model_dir, tmp_path):
    import torch
    from transformers import TrainerCallback

    from toolexpander.models import load_model_and_tokenizer
    from toolexpander.prompts import PromptSpec
    from toolexpander.study.sdft import sdft_rows, train_sdft
    from toolexpander.tasks.suite import build_suite

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    spec = PromptSpec(think_prefill=True)
    train = build_suite(0, level="easy")["train"]
    records, pool = train[:2], train[:40]
    before = [p.detach().clone() for p in model.parameters()]
    batches = []

    class Recorder(TrainerCallback):
        def on_self_distillation_batch_prepared(self, args, state, control, **batch):
            batches.append(batch)

    trainer = train_sdft(
        model,
        tokenizer,
        records,
        pool,
        output_dir=str(tmp_path),
        steps=1,
        batch_size=2,
        num_generations=2,
        max_completion_length=8,
        temperature=1.0,
        prompt_spec=spec,
        learning_rate=1e-2,
        seed=0,
        use_cpu=True,
        callbacks=[Recorder()],
    )
    # The student's prompt of each rollout (left-padded), and the teacher's for the same item.
    teacher_of = {
        row["prompt"]: row["privileged_context"] for row in sdft_rows(records, pool, tokenizer, spec)
    }
    (batch,) = batches
    width = batch["completion_ids"].shape[1]

    def text(ids) -> str:
        return tokenizer.decode(ids).replace(tokenizer.pad_token, "")

    students = [text(ids) for ids in batch["prompt_ids"]]
    assert sorted(students) == sorted(list(teacher_of) * 2)  # 2 items x 2 rollouts, bare prompts
    assert all(student.endswith("<think>") for student in students)  # the prefill, as evaluation poses
    for student, teacher_ids, completion_ids in zip(
        students, batch["teacher_input_ids"], batch["completion_ids"]
    ):
        assert text(teacher_ids[:-width]) == teacher_of[student]  # the same item, with 2 demonstrations
        assert torch.equal(teacher_ids[-width:], completion_ids)  # the teacher reads the student's reply
    assert len([row for row in trainer.state.log_history if "loss" in row]) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
