"""``toolexpander eval --predictions``: outputs, missing predictions, and bad input (exit 2)."""

import json
import os

import pytest

from toolexpander.cli import main
from toolexpander.evaluation.runner import load_benchmark
from toolexpander.evaluation.scoring import evaluate_records, markdown_table
from toolexpander.prompts import render_answer


def _write_predictions(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def bfcl_dir(shared_data):
    return str(shared_data / "bfcl")


def test_predictions_scored_with_outputs(tmp_path, bfcl_dir, capsys):
    records = load_benchmark("bfcl:simple_python,irrelevance", bfcl_dir).records()
    gold = {r["id"]: render_answer(r["answer"]) for r in records}
    rows = [{"id": i, "completion": c} for i, c in gold.items() if not i.endswith(("_1", "_2"))]
    rows[0]["completion"] = "no call here"  # simple_python_0 wrong
    predictions = _write_predictions(tmp_path / "p.jsonl", rows)
    out = tmp_path / "out"
    status = main(
        [
            "eval",
            "--bench",
            "bfcl:simple_python,irrelevance",
            "--data-dir",
            bfcl_dir,
            "--predictions",
            str(predictions),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert results["categories"]["simple_python"] == {"accuracy": 397 / 400, "correct": 397, "n": 400}
    assert results["categories"]["irrelevance"] == {"accuracy": 238 / 240, "correct": 238, "n": 240}
    assert results["missing_predictions"] == 4
    assert "non_live" not in results and "overall" not in results
    assert any(n.startswith("non_live left out") for n in results["notes"])
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 640
    assert set(items[0]) == {"id", "task", "category", "completion", "calls", "valid", "error_type", "error"}
    by_id = {item["id"]: item for item in items}
    assert by_id["simple_python_0"]["error_type"] == "ast_decoder:decoder_failed"
    assert (
        by_id["simple_python_1"]["error_type"] == "missing_prediction"
        and by_id["simple_python_1"]["completion"] is None
    )
    assert by_id["simple_python_3"]["calls"] == records[3]["answer"]
    assert "| simple_python | 400 | 99.25 |" in capsys.readouterr().out


def test_limit_takes_first_items_per_category(tmp_path, bfcl_dir):
    predictions = _write_predictions(tmp_path / "p.jsonl", [{"id": "live_simple_0-0-0", "completion": "x"}])
    out = tmp_path / "out"
    main(
        [
            "eval",
            "--bench",
            "bfcl:simple_python,live_simple",
            "--data-dir",
            bfcl_dir,
            "--limit",
            "3",
            "--predictions",
            str(predictions),
            "--out",
            str(out),
        ]
    )
    ids = [json.loads(line)["id"] for line in (out / "items.jsonl").read_text().splitlines()]
    assert ids == [
        "simple_python_0",
        "simple_python_1",
        "simple_python_2",
        "live_simple_0-0-0",
        "live_simple_1-1-0",
        "live_simple_2-2-0",
    ]


@pytest.mark.parametrize(
    ("skip", "limit", "expected"),
    [("2", "3", [2, 3, 4]), ("398", None, [398, 399]), ("0", "1", [0])],
)
def test_skip_leaves_out_the_first_items_per_category(tmp_path, skip, limit, expected):
    """BFCL as the bfcl-eval wheel ships it: --skip N scores what a run holding out items N... left."""
    pytest.importorskip("bfcl_eval", reason="needs the bfcl-eval wheel (its data)")
    predictions = _write_predictions(tmp_path / "p.jsonl", [{"id": "simple_python_2", "completion": "x"}])
    out = tmp_path / "out"
    argv = ["eval", "--bench", "bfcl:simple_python", "--skip", skip, "--predictions", str(predictions)]
    assert main([*argv, *(["--limit", limit] if limit else []), "--out", str(out)]) == 0
    ids = [json.loads(line)["id"] for line in (out / "items.jsonl").read_text().splitlines()]
    assert ids == [f"simple_python_{i}" for i in expected]
    notes = json.loads((out / "results.json").read_text())["notes"]
    assert any(note.startswith(f"--skip {skip}:") for note in notes) == (skip != "0")


def test_skip_past_every_item_is_a_clear_error(capsys):
    pytest.importorskip("bfcl_eval", reason="needs the bfcl-eval wheel (its data)")
    assert main(["eval", "--bench", "bfcl:simple_python", "--skip", "400", "--predictions", "P"]) == 2
    assert "no usable records after the first 400 of each category" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"id": "nope", "completion": "x"}], "not in bfcl:simple_python: 'nope'"),
        ([{"id": "simple_python_0", "completion": "x"}] * 2, "duplicate prediction for id 'simple_python_0'"),
        (["{broken"], "p.jsonl:1: broken JSON"),
        ([{"id": "simple_python_0"}], "needs a string 'id' and a string 'completion'"),
    ],
)
def test_bad_predictions_exit_2(tmp_path, bfcl_dir, capsys, rows, message):
    predictions = _write_predictions(tmp_path / "p.jsonl", rows)
    status = main(
        ["eval", "--bench", "bfcl:simple_python", "--data-dir", bfcl_dir, "--predictions", str(predictions)]
    )
    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--bench", "bfcl:simple_rust", "--predictions", "P"], "unknown BFCL category simple_rust"),
        (
            ["--bench", "bfcl:simple_python", "--data-dir", "/nonexistent", "--predictions", "P"],
            "no BFCL file",
        ),
        (["--bench", "apibank", "--predictions", "P"], "needs --data-dir"),
        (["--bench", "apibank:l7", "--data-dir", "D", "--predictions", "P"], "unknown API-Bank level l7"),
        (["--bench", "no_such_bench", "--predictions", "P"], "unknown benchmark 'no_such_bench'"),
        (["--bench", "bfcl:simple_python", "--predictions", "/nonexistent.jsonl"], "does not exist"),
        (["--bench", "bfcl:simple_python"], "exactly one of --model and --predictions"),
        (["--bench", "bfcl:simple_python", "--model", "/nonexistent/model"], "does not exist"),
        (["--bench", "bfcl:simple_python", "--model", "m", "--predictions", "P"], "exactly one of"),
        (
            ["--bench", "bfcl:simple_python", "--predictions", "P", "--limit", "0"],
            "--limit must be at least 1",
        ),
        (["--bench", "bfcl:simple_python", "--predictions", "P", "--skip", "-1"], "--skip must be at least 0"),
    ],
)
def test_bad_input_exits_2(shared_data, capsys, arguments, message):
    arguments = [a.replace("D", str(shared_data / "api_bank")) if a == "D" else a for a in arguments]
    if "--data-dir" not in arguments and arguments[1].startswith("bfcl"):
        arguments += ["--data-dir", str(shared_data / "bfcl")]
    assert main(["eval", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_dataset_in_our_schema_scored_with_tool_n1(tmp_path, capsys):
    records = [
        {
            "id": "a",
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [{"name": "w", "parameters": {"type": "object"}}],
            "answer": [{"name": "w", "arguments": {"city": "Oslo"}}],
        },
        {"id": "b", "messages": [{"role": "user", "content": "Hi"}], "tools": [], "answer": []},
        {"id": "c", "messages": [{"role": "user", "content": "Hi"}], "tools": [], "answer": []},
    ]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    predictions = _write_predictions(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "completion": render_answer(records[0]["answer"])},
            {"id": "b", "completion": "<tool_call>[]</tool_call>"},  # right calls, but no think block
        ],
    )
    assert (
        main(["eval", "--bench", str(data), "--predictions", str(predictions), "--out", str(tmp_path / "o")])
        == 0
    )
    items = [json.loads(line) for line in (tmp_path / "o" / "items.jsonl").read_text().splitlines()]
    assert [(i["category"], i["valid"], i["error_type"]) for i in items] == [
        ("mine", True, None),
        ("mine", False, "format:no_think"),
        ("mine", False, "missing_prediction"),
    ]


def test_evaluate_records_in_process_and_table(shared_data):
    records = load_benchmark("apibank:l1", str(shared_data / "api_bank")).records()[:4]
    completions = {r["id"]: render_answer(r["answer"]) for r in records[:3]}
    items, results = evaluate_records(records, completions)
    assert [i["valid"] for i in items] == [True, True, True, False]
    assert results["categories"] == {"apibank_l1": {"accuracy": 0.75, "correct": 3, "n": 4}}
    assert results["overall"] == 0.75 and results["missing_predictions"] == 1
    table = markdown_table(results)
    assert "| apibank_l1 | 4 | 75.00 |" in table and "| **overall** | | **75.00** |" in table
    assert "- 1 items had no prediction and count as wrong" in table


def test_apibank_rejected_inputs_are_reported(tmp_path, shared_data, capsys):
    predictions = _write_predictions(tmp_path / "p.jsonl", [])
    main(
        [
            "eval",
            "--bench",
            "apibank:l2",
            "--data-dir",
            str(shared_data / "api_bank"),
            "--predictions",
            str(predictions),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert len(results["rejected_inputs"]) == 14 and results["categories"]["apibank_l2"]["n"] == 121
    assert capsys.readouterr().err.count("rejected input: ") == 14


def _our_schema_run(tmp_path, completion: str) -> list[str]:
    """``eval`` arguments scoring one item of our schema with ``completion``."""
    record = {
        "id": "a",
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"name": "w", "parameters": {"type": "object"}}],
        "answer": [{"name": "w", "arguments": {"city": "Oslo"}}],
    }
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps(record) + "\n")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": "a", "completion": completion}) + "\n")  # "\ud800" stays an escape
    return ["eval", "--bench", str(data), "--predictions", str(predictions), "--out", str(tmp_path / "o")]


def test_a_lone_surrogate_in_a_prediction_is_written_to_both_files(tmp_path, capsys):
    completion = "<think>\ud800</think>" + render_answer([{"name": "w", "arguments": {"city": "Oslo"}}])
    assert main(_our_schema_run(tmp_path, completion)) == 0
    [item] = [json.loads(line) for line in (tmp_path / "o" / "items.jsonl").read_bytes().decode().splitlines()]
    assert item["completion"] == completion
    results = json.loads((tmp_path / "o" / "results.json").read_bytes().decode())
    assert results["categories"]["mine"] == {"accuracy": 1.0, "correct": 1, "n": 1}


def _failing_the_second_time(real):
    calls = []

    def call(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args)

    return call


@pytest.mark.parametrize("failing, left", [("os.fsync", "earlier pair"), ("os.replace", "new items alone")])
def test_a_failed_write_never_leaves_new_items_beside_stale_results(tmp_path, monkeypatch, capsys, failing, left):
    """fsync: results.json's text fails before anything is replaced; replace: its rename fails after
    items.jsonl's (the one gap atomic renames leave), and the stale results.json goes."""
    argv = _our_schema_run(tmp_path, render_answer([]))
    assert main(argv) == 0
    out = tmp_path / "o"
    earlier = {path.name: path.read_bytes() for path in out.iterdir()}
    argv[argv.index("--predictions") + 1] = str(_write_predictions(tmp_path / "q.jsonl", []))
    monkeypatch.setattr(failing, _failing_the_second_time(getattr(os, failing.removeprefix("os."))))
    assert main(argv) == 2
    assert f"error: cannot write to {out}: disk full" in capsys.readouterr().err
    now = {path.name: path.read_bytes() for path in out.iterdir()}
    if left == "earlier pair":
        assert now == earlier
    else:
        assert list(now) == ["items.jsonl"]
        assert json.loads(now["items.jsonl"])["error_type"] == "missing_prediction"
