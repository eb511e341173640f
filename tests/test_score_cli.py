"""``toolexpander score``, run in-process."""

import json

import pytest

from toolexpander.cli import main
from toolexpander.prompts import render_answer

CALL = {"name": "get_weather", "arguments": {"city": "Oslo"}}
RIGHT = render_answer([CALL])
WRONG = render_answer([{"name": "get_weather", "arguments": {"city": "Lima"}}])


def write_lines(path, lines):
    path.write_text(
        "".join(line if isinstance(line, str) else json.dumps(line) for line in lines), encoding="utf-8"
    )
    return path


def scored(text):
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def good_file(tmp_path):
    return write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "completion": RIGHT, "answer": [CALL], "extra": {"kept": True}},
            "\n",
            {"id": 7, "completion": WRONG, "answer": json.dumps([CALL])},
            "\n\n",
            {"completion": [{"role": "assistant", "content": RIGHT}], "answer": [CALL]},
            "\n",
            {"completion": "no answer", "answer": None},
            "\n",
        ],
    )


def test_scores_every_line_in_order_to_stdout(good_file, capsys):
    assert main(["score", "--reward", "tool_n1", str(good_file)]) == 0
    out = scored(capsys.readouterr().out)
    assert [line["reward"] for line in out] == [1.0, 0.0, 1.0, 0.0]
    assert out[0] == {
        "id": "a",
        "completion": RIGHT,
        "answer": [CALL],
        "extra": {"kept": True},
        "reward": 1.0,
    }
    assert out[1]["id"] == 7


@pytest.mark.parametrize(
    "reward, expected", [("toolrl", [4.0, 2.0, 4.0, -3.0]), ("self_exemplify", [0.0] * 4)]
)
def test_other_rewards(good_file, capsys, reward, expected):
    assert main(["score", "--reward", reward, str(good_file)]) == 0
    assert [line["reward"] for line in scored(capsys.readouterr().out)] == pytest.approx(expected)


def test_out_file(good_file, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(good_file), "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert [line["reward"] for line in scored(out.read_text(encoding="utf-8"))] == [1.0, 0.0, 1.0, 0.0]


def test_malformed_lines_are_all_reported_and_nothing_is_written(tmp_path, capsys):
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            {"completion": RIGHT, "answer": [CALL]},
            "\n{not json\n",
            {"answer": [CALL]},
            "\n",
            {"completion": 3, "answer": [CALL]},
            "\n",
            {"completion": RIGHT, "answer": {"name": "f"}},
            "\n[1, 2]\n",
            {"completion": RIGHT, "answer": [], "id": [1]},
            "\n",
        ],
    )
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    for line, reason in [
        (2, "broken JSON"),
        (3, "missing field 'completion'"),
        (4, "'completion' must be"),
        (5, "'answer' must be"),
        (6, "a line must be a JSON object, got list"),
        (7, "'id' must be"),
    ]:
        assert f"{path}:{line}: {reason}" in err
    assert f"{path}:1:" not in err
    assert "error: 6 malformed line(s)" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([1, 2], "answer[0] must be an object; answer[1] must be an object"),
        ([{"name": "f"}], "answer[0].arguments must be an object"),
        ([{"arguments": {}}], "answer[0] has no name"),
        ("[1, 2]", "answer[0] must be an object; answer[1] must be an object"),
        ("not json", "'answer' is a string but not the JSON text of a call list"),
        (json.dumps(CALL), "'answer' is a string but not the JSON text of a call list"),
        ("null", "'answer' is a string but not the JSON text of a call list"),
        ("[" * 100_000 + "]" * 100_000, "'answer' is a string but not the JSON text of a call list"),
    ],
)
def test_a_malformed_answer_is_a_malformed_line(tmp_path, capsys, answer, reason):
    path = write_lines(
        tmp_path / "in.jsonl",
        [{"completion": RIGHT, "answer": [CALL]}, "\n", {"completion": RIGHT, "answer": answer}],
    )
    assert main(["score", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:2: {reason}",
        f"error: 1 malformed line(s) in {path}; nothing was scored",
    ]


@pytest.mark.parametrize("answer", [[], "[]", json.dumps([CALL]), json.dumps(json.dumps([CALL])), None])
def test_every_form_of_a_well_formed_answer_is_scored(tmp_path, capsys, answer):
    path = write_lines(tmp_path / "in.jsonl", [{"completion": RIGHT, "answer": answer}])
    assert main(["score", str(path)]) == 0
    assert len(scored(capsys.readouterr().out)) == 1


def test_unknown_reward_exits_2(good_file, capsys):
    assert main(["score", "--reward", "nope", str(good_file)]) == 2
    assert "unknown reward 'nope'" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["score", str(tmp_path / "absent.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_user_reward_by_import_path(good_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_rewards.py").write_text(
        "def length(completions, answer, **kwargs):\n    return [float(len(str(c))) for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["score", "--reward", "my_rewards:length", str(good_file)]) == 0
    assert [line["reward"] for line in scored(capsys.readouterr().out)][1] == float(len(WRONG))


def test_native_completions_are_scored_in_their_call_format(tmp_path, capsys):
    lima = {"name": "get_weather", "arguments": {"city": "Lima"}}
    hermes = "<think>.</think>" + "".join(f"\n<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in (CALL, lima))
    path = write_lines(tmp_path / "native.jsonl", [{"completion": hermes, "answer": [lima, CALL]}, "\n"])
    assert main(["score", str(path), "--call_format", "hermes"]) == 0
    assert [row["reward"] for row in scored(capsys.readouterr().out)] == [1.0]
    assert main(["score", str(path)]) == 0  # read as our format: only the last block counts
    assert [row["reward"] for row in scored(capsys.readouterr().out)] == [0.0]


# A JSON "\ud800" escape: the completion holds a lone surrogate, which UTF-8 cannot encode.
SURROGATE_LINE = '{"id": "s", "completion": "odd \\ud800 é\\u2028", "answer": null}\n'


def test_a_lone_surrogate_is_written_as_valid_utf8_json_that_reads_back(tmp_path, capsys):
    path = write_lines(tmp_path / "odd.jsonl", [SURROGATE_LINE])
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(path), "--out", str(out)]) == 0
    [row] = scored(out.read_bytes().decode("utf-8"))
    assert row == {"id": "s", "completion": "odd \ud800 é\u2028", "answer": None, "reward": 0.0}
    assert main(["score", str(path)]) == 0  # stdout too
    assert scored(capsys.readouterr().out) == [row]
    assert main(["score", str(out), "--out", str(tmp_path / "again.jsonl")]) == 0  # our output is valid input


def test_out_may_be_the_input_file(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [SURROGATE_LINE, {"completion": RIGHT, "answer": [CALL]}, "\n"])
    assert main(["score", str(path), "--out", str(path)]) == 0
    assert [row["reward"] for row in scored(path.read_text(encoding="utf-8"))] == [0.0, 1.0]


def _reward_that_raises(completions, answer, **kwargs):
    raise RuntimeError("reward failed")


def _reward_not_json(completions, answer, **kwargs):
    return [0.0] + [object()] * (len(completions) - 1)  # the text fails at its second line


@pytest.mark.parametrize("reward, error", [("_reward_that_raises", RuntimeError), ("_reward_not_json", TypeError)])
def test_a_failed_run_leaves_the_input_it_was_to_overwrite(good_file, reward, error):
    before = good_file.read_bytes()
    with pytest.raises(error):
        main(["score", str(good_file), "--out", str(good_file), "--reward", f"{__name__}:{reward}"])
    assert good_file.read_bytes() == before


def test_a_failed_write_exits_2_and_leaves_the_input_and_no_temporary_file(good_file, monkeypatch, capsys):
    before = good_file.read_bytes()

    def replace_failing(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", replace_failing)
    assert main(["score", str(good_file), "--out", str(good_file)]) == 2
    assert f"error: cannot write {good_file}: disk full" in capsys.readouterr().err
    assert good_file.read_bytes() == before
    assert [path.name for path in good_file.parent.iterdir()] == [good_file.name]
