"""Writing our output files: JSON that holds any string the input held, and whole files replaced
atomically, so that a failed run leaves the previous file (or none), never an empty or half one."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

# Characters `json.dumps(ensure_ascii=False)` writes raw that would break the output: a lone
# surrogate (UTF-8 cannot encode it; a "\ud800" escape in the input gives one) and the line
# separators `str.splitlines()` honours, which would split a JSONL line for our own reader.
_UNSAFE = re.compile("[\x85\u2028\u2029\ud800-\udfff]")


def dumps_json(value, **options) -> str:
    """``json.dumps(value, ensure_ascii=False, **options)`` with the characters above written as
    ``\\uXXXX`` escapes: valid UTF-8 that `json.loads` reads back to ``value``.

    >>> dumps_json({"text": "é\\ud800"})
    '{"text": "é\\\\ud800"}'
    """
    text = json.dumps(value, ensure_ascii=False, **options)
    # Outside strings JSON is ASCII, so every match is a character inside a string.
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def jsonl_text(rows: Iterable, **options) -> str:
    """The JSON Lines text of ``rows``: one `dumps_json` line each."""
    return "".join(dumps_json(row, **options) + "\n" for row in rows)


def write_files(contents: Mapping[str | Path, str]) -> None:
    """Replace each file of ``contents`` with its UTF-8 text; never leave old files beside new ones.

    Every text goes to a temporary file beside its target, flushed to disk; only once all are
    written do they replace their targets (`os.replace`, atomic), in the order given. A failure
    before that leaves every target as it was and no temporary file behind. Should a replace fail
    after others succeeded, the targets not yet replaced are removed: a set is all old, or the new
    files written so far.
    """
    # Encoded before anything is opened: a text that cannot be written fails here.
    data = {Path(path): text.encode("utf-8") for path, text in contents.items()}
    temporaries: dict[Path, Path] = {}
    try:
        for path, payload in data.items():
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            # Created by os.open with 0o666 so the umask applies as it would to a plain write.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            temporaries[path] = temporary
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        targets = list(temporaries)
        for done, path in enumerate(targets):
            try:
                os.replace(temporaries[path], path)
            except OSError:
                if done:  # some targets are new already: the old rest would not match them
                    for stale in targets[done:]:
                        with contextlib.suppress(OSError):
                            stale.unlink(missing_ok=True)
                raise
    finally:
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)


def write_file(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (`write_files`)."""
    write_files({path: text})


def read_jsonl(path: str | Path) -> list:
    """The rows of the JSON Lines file ``path``, blank lines skipped; [] when there is no such file
    (a run that has not written it yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: str | Path, rows: list) -> None:
    """Append ``rows`` to the JSON Lines file ``path`` in one write call (a kill can tear at most
    the last line, which resuming drops)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = jsonl_text(rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
