"""``toolexpander data validate`` and ``data export-suite``, run in-process."""

import json
from pathlib import Path

import pytest

from toolexpander.cli import main

GOOD = {
    "id": "a",
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
    "tools": [{"name": "get_weather", "parameters": {"type": "object"}}],
    "answer": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
}
XLAM = str(Path(__file__).parent / "fixtures" / "xlam_sample.json")


def write_jsonl(path: Path, lines: list) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


@pytest.fixture
def bad_file(tmp_path) -> str:
    return write_jsonl(
        tmp_path / "bad.jsonl",
        [
            GOOD,
            '{"id": "b", "messages": ',
            {**GOOD, "id": "c", "messages": []},
            {**GOOD, "id": "d", "answer": {"name": "get_weather"}},
            {**GOOD, "id": "e", "tools": [{"name": "f", "parameters": "x"}, {"name": "f"}], "answer": []},
            {**GOOD, "id": "g", "answer": [{"name": "get_time", "arguments": []}]},
            {**GOOD, "id": "h", "answer": [{"name": "get_time", "arguments": {}}]},
            GOOD,
        ],
    )


def test_a_clean_file(tmp_path, capsys):
    path = write_jsonl(tmp_path / "clean.jsonl", [GOOD, {**GOOD, "id": "b", "answer": []}])
    assert main(["data", "validate", path]) == 0
    assert capsys.readouterr().out == "2 records\n"


def test_a_bad_file_lists_every_bad_record(bad_file, capsys):
    assert main(["data", "validate", bad_file]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{bad_file}:2: broken JSON: Expecting value",
        f"{bad_file}:3: 'messages' is empty",
        f"{bad_file}:4: 'answer' must be a list, got dict",
        f"{bad_file}:5: tools[0].parameters must be an object; duplicate tool name 'f'",
        (
            f"{bad_file}:6: answer[0] calls 'get_time', which is not among the offered tools; "
            "answer[0].arguments must be an object"
        ),
        f"{bad_file}:7: answer[0] calls 'get_time', which is not among the offered tools",
        f"{bad_file}:8: duplicate id 'a', first at line 1",
    ]
    assert captured.err == "7 invalid, 1 valid (--skip-invalid skips the invalid ones)\n"


def test_skip_invalid_counts_the_reasons(bad_file, capsys):
    assert main(["data", "validate", bad_file, "--skip-invalid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 valid, 7 skipped"
    counts = {line.split(None, 1)[1]: int(line.split(None, 1)[0]) for line in lines[1:]}
    assert counts["answer[N] calls '…', which is not among the offered tools"] == 1
    assert counts["duplicate id '…', first at line N"] == 1
    assert sum(counts.values()) == 7


def test_skip_invalid_groups_alike_reasons(tmp_path, capsys):
    lines = [{**GOOD, "id": str(i), "answer": [{"name": f"tool_{i}", "arguments": {}}]} for i in range(3)]
    path = write_jsonl(tmp_path / "three.jsonl", [GOOD, *lines])
    assert main(["data", "validate", path, "--skip-invalid"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1 valid, 3 skipped",
        "       3  answer[N] calls '…', which is not among the offered tools",
    ]


def test_a_named_format(capsys):
    assert main(["data", "validate", XLAM, "--format", "xlam"]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{XLAM}:5: broken answers JSON: Expecting ',' delimiter",
        f"{XLAM}:6: answer[0] calls 'is_palindrome', which is not among the offered tools",
    ]
    assert main(["data", "validate", XLAM, "--format", "xlam", "--skip-invalid"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "4 valid, 2 skipped"


def test_a_missing_file_exits_2(tmp_path, capsys):
    missing = str(tmp_path / "missing.jsonl")
    assert main(["data", "validate", missing]) == 2
    assert capsys.readouterr().err == f"error: {missing} does not exist\n"


def test_an_unknown_format_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "validate", XLAM, "--format", "sharegpt"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sharegpt'" in capsys.readouterr().err


def test_export_suite_writes_splits_that_validate(tmp_path, capsys):
    out = tmp_path / "suite"
    assert main(["data", "export-suite", str(out), "--seed", "3"]) == 0
    written = capsys.readouterr().out.splitlines()
    splits = sorted(out.glob("*.jsonl"))
    assert len(written) == len(splits) > 0
    for split in splits:
        count = sum(1 for _ in split.open())
        assert f"wrote {count} records to {split}" in written
        assert main(["data", "validate", str(split)]) == 0
        assert capsys.readouterr().out == f"{count} records\n"
