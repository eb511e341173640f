"""API-Bank level-1 ("Call") and level-2 ("Retrieve+Call") call accuracy, the protocol ToolRL
and Hammer report: an answer is correct iff its calls equal the gold ones by API name and
argument dict (order-free, compared as Tool-N1 does: ``"5"`` ≠ ``5``).

API-Bank has no pip package: clone it (github AlibabaResearch/DAMO-ConvAI, folder ``api-bank``)
and pass that folder as ``--data-dir``. The official ``test-data/level-{1,2}-api.json``,
Hammer's ``data/test/original/apibank_l{1,2}.json`` and ToolRL's
``benchmarks/API-Bank/level-{1,2,3}-api_processed.json`` layouts are all found under it
(or directly in it). The official API-Bank protocol instead executes the call on its
simulated APIs; exact match is what papers report.
"""

from __future__ import annotations

from pathlib import Path

from toolexpander.data.benchmarks import LOADERS, detect_benchmark_format
from toolexpander.data.schema import LoadResult
from toolexpander.errors import UserError
from toolexpander.rewards.rewards import call_multiset

LEVELS = ("l1", "l2", "l3")
DEFAULT_LEVELS = ("l1", "l2")
CLONE_HINT = (
    "API-Bank has no pip package: clone https://github.com/AlibabaResearch/DAMO-ConvAI and pass "
    "--data-dir DAMO-ConvAI/api-bank (Hammer's and ToolRL's conversions work too)"
)

# Where each layout keeps a level's file, relative to --data-dir; the first that exists wins.
_CANDIDATES = (
    "test-data/level-{n}-api.json",
    "level-{n}-api.json",
    "data/test/original/apibank_l{n}.json",
    "apibank_l{n}.json",
    "benchmarks/API-Bank/level-{n}-api_processed.json",
    "level-{n}-api_processed.json",
)


def category(level: str) -> str:
    """The record category of a level: ``l1`` -> ``apibank_l1``."""
    return f"apibank_{level}"


def find_level_file(data_dir: str | Path, level: str) -> Path:
    """The file of ``level`` (``l1``, ``l2``, ``l3``) under ``data_dir`` in any known layout."""
    if level not in LEVELS:
        raise UserError(f"unknown API-Bank level {level!r}; choose from {', '.join(LEVELS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"API-Bank data folder {data_dir} does not exist. {CLONE_HINT}")
    for pattern in _CANDIDATES:
        path = data_dir / pattern.format(n=level[1:])
        if path.is_file():
            return path
    raise UserError(
        f"no API-Bank {level} file under {data_dir} (looked for {', '.join(_CANDIDATES)} with N={level[1:]})"
    )


def load_level(data_dir: str | Path, level: str) -> LoadResult:
    """The records of one level, from whichever layout `find_level_file` finds."""
    path = find_level_file(data_dir, level)
    layout = detect_benchmark_format(path)
    if layout not in ("apibank", "hammer", "toolrl_apibank"):
        raise UserError(f"{path} is not in a known API-Bank layout")
    return LOADERS[layout](path)


def check(record: dict, calls: list[dict] | None) -> dict:
    """Exact-match verdict: ``{"valid": bool, "error_type": str | None, "error": [...]}``."""
    if calls is None:
        return {"valid": False, "error_type": "decoder_failed", "error": ["no decodable call list"]}
    got, want = call_multiset(calls), call_multiset(record["answer"])
    if got is not None and got == want:
        return {"valid": True, "error_type": None, "error": []}
    if len(calls) != len(record["answer"]):
        error_type = "wrong_count"
    elif sorted(str(c.get("name")) for c in calls) != sorted(c["name"] for c in record["answer"]):
        error_type = "wrong_name"
    else:
        error_type = "wrong_arguments"
    return {"valid": False, "error_type": error_type, "error": [f"expected {record['answer']}"]}
