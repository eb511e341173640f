"""`toolexpander.files`: JSON that survives any string, whole files replaced all or nothing."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.data.schema import jsonl_rows
from toolexpander.files import append_jsonl, dumps_json, jsonl_text, read_jsonl, write_file, write_files

# Any string a JSON input can hold: lone surrogates (from "\ud800" escapes) and the line separators
# str.splitlines() honours included. Read through json, as our inputs are, so that a high and a low
# surrogate side by side are one character, as JSON makes them.
json_strings = st.text(
    st.characters() | st.characters(categories=["Cs"]) | st.sampled_from("\n\r\x0b\x1c\x85\u2028\u2029")
).map(lambda text: json.loads(json.dumps(text)))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | json_strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_strings, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(json_values, max_size=4))
def test_jsonl_text_is_utf8_and_our_reader_reads_the_rows_back(rows):
    text = jsonl_text(rows)
    decoded = text.encode("utf-8").decode("utf-8")  # raises on a lone surrogate
    assert [row for _, row, _ in jsonl_rows(decoded)] == rows
    assert len(decoded.splitlines()) == len(rows)


def test_dumps_json_keeps_plain_unicode_readable():
    assert dumps_json({"città": "Zürich ☀", "odd": "\ud800"}) == '{"città": "Zürich ☀", "odd": "\\ud800"}'


def existing_file(tmp_path, text="old content\n"):
    path = tmp_path / "out.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_write_file_replaces_the_content(tmp_path):
    path = existing_file(tmp_path)
    write_file(path, "new ☀\n")
    assert path.read_text(encoding="utf-8") == "new ☀\n"
    assert os.listdir(tmp_path) == ["out.json"]


def _raise(*args, **kwargs):
    raise OSError("disk full")


@pytest.mark.parametrize("failing", ["os.fsync", "os.replace"])
def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path, monkeypatch, failing):
    path = existing_file(tmp_path)
    monkeypatch.setattr(failing, _raise)
    with pytest.raises(OSError, match="disk full"):
        write_file(path, "new content\n")
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert os.listdir(tmp_path) == ["out.json"]


def test_text_utf8_cannot_hold_fails_before_anything_is_written(tmp_path):
    path = existing_file(tmp_path)
    with pytest.raises(UnicodeEncodeError):
        write_file(path, "lone \ud800")
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_files_replaces_none_when_a_later_file_fails(tmp_path, monkeypatch):
    first, second = tmp_path / "items.jsonl", tmp_path / "results.json"
    first.write_text("old items\n")
    second.write_text("old results\n")
    real_fsync, calls = os.fsync, []

    def fsync_failing_the_second_time(descriptor):
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError("disk full")
        real_fsync(descriptor)

    monkeypatch.setattr("os.fsync", fsync_failing_the_second_time)
    with pytest.raises(OSError, match="disk full"):
        write_files({first: "new items\n", second: "new results\n"})
    assert (first.read_text(), second.read_text()) == ("old items\n", "old results\n")
    assert sorted(os.listdir(tmp_path)) == ["items.jsonl", "results.json"]


def test_append_jsonl_appends_rows_utf8_holds(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}])
    append_jsonl(path, [{"step": 2, "id": "\ud800"}, {"step": 2, "id": "é\u2028"}])
    rows = [row for _, row, _ in jsonl_rows(path.read_bytes().decode("utf-8"))]
    assert rows == [{"step": 1}, {"step": 2, "id": "\ud800"}, {"step": 2, "id": "é\u2028"}]


def test_read_jsonl_reads_what_append_jsonl_wrote_and_nothing_for_a_missing_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_jsonl(path) == []  # a run that has not logged yet
    append_jsonl(path, [{"step": 1}, {"step": 2, "text": "é"}])
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n  \n")  # blank lines are skipped
    assert read_jsonl(path) == [{"step": 1}, {"step": 2, "text": "é"}]
