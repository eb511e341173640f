"""Two of BFCL's multi-turn items for the episode tests (`test_multi_turn_eval`,
`test_episode_training`), and scripted policies for them.

``small_data`` is a copy of BFCL's data holding two GorillaFileSystem items whose function docs keep
only ``ls``, ``cd`` and ``find``: the prompt shrinks from 10,000 tokens of the tiny tokenizer to about
1,500, so a random model runs on CPU in seconds. Docs are only what the prompt shows; the simulators
still offer every method and the checker is unchanged."""

import json
import shutil
from pathlib import Path

import pytest

from toolexpander.prompts import render_answer
from toolexpander.tasks import bfcl
from toolexpander.tasks import bfcl_multi_turn as mt

BASE = "BFCL_v4_multi_turn_base.json"
KEPT_ITEMS = ("multi_turn_base_1", "multi_turn_base_3")  # GorillaFileSystem only; 4 and 2 turns
KEPT_DOCS = ("ls", "cd", "find")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def trimmed_bfcl(folder: Path, item_ids: tuple[str, ...]) -> Path:
    """A BFCL data folder in ``folder`` whose multi_turn_base holds ``item_ids`` (GorillaFileSystem
    items, in BFCL's order) and whose GorillaFileSystem docs keep only `KEPT_DOCS`."""
    source = bfcl.default_data_dir()
    shutil.copytree(source / mt.FUNC_DOC_DIR, folder / mt.FUNC_DOC_DIR)
    docs = folder / mt.FUNC_DOC_DIR / "gorilla_file_system.json"
    _write(docs, [doc for doc in _lines(docs) if doc["name"] in KEPT_DOCS])
    (folder / "possible_answer").mkdir()
    for name in (BASE, f"possible_answer/{BASE}"):
        _write(folder / name, [row for row in _lines(source / name) if row["id"] in item_ids])
    return folder


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return trimmed_bfcl(tmp_path_factory.mktemp("bfcl"), KEPT_ITEMS)


@pytest.fixture(scope="module")
def records(small_data) -> list[dict]:
    result = mt.load_multi_turn(small_data / BASE)
    assert not result.problems and [r["id"] for r in result.records] == list(KEPT_ITEMS)
    return result.records


def ground_truth_replies(record: dict, render_calls=render_answer) -> list[str]:
    """A policy that makes each turn's ground-truth calls in one reply, then answers without a call
    (which ends the turn)."""
    replies = []
    for calls in record["ground_truth"]:
        replies += [render_calls(calls)] if calls else []
        replies.append(render_calls([]))
    return replies


def hermes_reply(calls: list[dict]) -> str:
    blocks = "".join(f"\n<tool_call>\n{json.dumps(call)}\n</tool_call>" for call in calls)
    return "<think>.</think>" + (blocks or "\nDone.")
