"""BFCL scoring through the official checker, and the leaderboard's aggregates (SPEC §3).

The verdict on an AST item is ``bfcl_eval.eval_checker.ast_eval.ast_checker`` applied to the
decoded calls ``[{name: {arg: value}}]``, exactly as BFCL's own runner does for function-calling
models. ``bfcl-eval`` is installed without its dependencies (``pip install --no-deps
bfcl-eval``); the checker imports ``bfcl_eval.constants.model_config``, which would pull in every
model handler and their SDKs, so a stand-in module is registered first whose mapping answers
``underscore_to_dot=False`` for any model (function names are compared as written, dots
included). ``BFCL_PROJECT_ROOT`` points to a temporary folder before the import, since the
package creates ``result/`` and ``score/`` folders under it.

Irrelevance categories are correct iff the answer holds no call (no ``<tool_call>`` block, an
unparsable one, or ``[]``), ``live_relevance`` iff it holds at least one, as in BFCL's runner.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import sys
import tempfile
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from toolexpander.data.benchmarks import (
    BFCL_IRRELEVANCE,
    BFCL_LIVE_AST,
    BFCL_NON_LIVE_AST,
    BFCL_RELEVANCE,
    bfcl_category,
    load_bfcl,
)
from toolexpander.data.schema import LoadResult
from toolexpander.errors import UserError

# The AST categories of SPEC §3 plus the irrelevance ones: what ``--bench bfcl`` runs.
DEFAULT_CATEGORIES = BFCL_NON_LIVE_AST + BFCL_LIVE_AST + BFCL_IRRELEVANCE
SIMPLE = ("simple_python", "simple_java", "simple_javascript")
MODEL_NAME = "toolexpander"  # the checker asks its model config whether to rewrite dots in names
_INSTALL_HINT = "BFCL scoring needs the bfcl-eval package: pip install --no-deps bfcl-eval==2026.3.23"


def _prepare_import() -> None:
    """Register the ``model_config`` stand-in and a scratch project root (see the module doc)."""
    os.environ.setdefault("BFCL_PROJECT_ROOT", str(Path(tempfile.gettempdir()) / "toolexpander-bfcl"))
    if "bfcl_eval.constants.model_config" not in sys.modules:
        stand_in = types.ModuleType("bfcl_eval.constants.model_config")
        stand_in.MODEL_CONFIG_MAPPING = defaultdict(lambda: types.SimpleNamespace(underscore_to_dot=False))
        sys.modules["bfcl_eval.constants.model_config"] = stand_in


class Official(NamedTuple):
    """The pieces of ``bfcl_eval`` we use."""

    ast_checker: Callable[..., dict]
    language: type  # bfcl_eval.constants.enums.Language
    add_language_hint: Callable[[list[dict]], list[dict]]


@functools.cache
def official() -> Official:
    """Import BFCL's checker and helpers once (after `_prepare_import`)."""
    _prepare_import()
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.utils import add_language_specific_hint_to_function_doc
    except ImportError as error:
        raise UserError(f"{_INSTALL_HINT} ({error})") from error
    return Official(ast_checker, Language, add_language_specific_hint_to_function_doc)


def default_data_dir() -> Path:
    """The data folder inside the installed ``bfcl_eval`` package (found without importing it)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{_INSTALL_HINT}, or pass --data-dir with a copy of BFCL's data folder")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_categories(data_dir: str | Path, categories: tuple[str, ...] | list[str]) -> dict[str, LoadResult]:
    """``BFCL_v4_<category>.json`` of each category under ``data_dir``, loaded by `load_bfcl`."""
    data_dir = Path(data_dir)
    loaded = {}
    for category in categories:
        matches = sorted(p for p in data_dir.glob("BFCL_v*.json") if bfcl_category(p) == category)
        if not matches:
            raise UserError(
                f"no BFCL file for category {category!r} in {data_dir} (expected BFCL_v4_{category}.json)"
            )
        loaded[category] = load_bfcl(matches[-1])
    return loaded


def prompt_tools(record: dict) -> list[dict]:
    """The function docs as BFCL shows them to every model: with its language hint ("Note that
    the provided function is in Python 3 syntax.") and, for Java and JavaScript, every
    parameter typed as a string in that language's syntax. The checker reads the raw docs."""
    return official().add_language_hint([{"id": record["id"], "function": copy.deepcopy(record["tools"])}])[
        0
    ]["function"]


def decoded_calls(calls: list[dict] | None) -> list[dict] | None:
    """Our parsed calls ``[{"name", "arguments"}]`` as BFCL's decoded form ``[{name: arguments}]``;
    None when there are none to decode or an item has no string name or no argument object."""
    if calls is None:
        return None
    if not all(isinstance(c.get("name"), str) and isinstance(c.get("arguments"), dict) for c in calls):
        return None
    return [{call["name"]: call["arguments"]} for call in calls]


def language(category: str):
    """The checker's ``Language`` for a category."""
    language = official().language
    return {"simple_java": language.JAVA, "simple_javascript": language.JAVASCRIPT}.get(
        category, language.PYTHON
    )


def check(record: dict, decoded: list[dict] | None) -> dict:
    """BFCL's verdict on one item: ``{"valid": bool, "error_type": str | None, "error": [...]}``."""
    category = record["category"]
    if category in BFCL_IRRELEVANCE + BFCL_RELEVANCE:
        has_call = bool(decoded)
        if (category in BFCL_IRRELEVANCE) != has_call:
            return {"valid": True, "error_type": None, "error": []}
        if has_call:
            return {
                "valid": False,
                "error_type": "irrelevance_error:decoder_success",
                "error": ["made a call"],
            }
        return {"valid": False, "error_type": "relevance_error:decoder_failed", "error": ["made no call"]}
    if decoded is None:
        return {
            "valid": False,
            "error_type": "ast_decoder:decoder_failed",
            "error": ["no decodable call list"],
        }
    try:
        verdict = official().ast_checker(
            record["tools"], decoded, record["ground_truth"], language(category), category, MODEL_NAME
        )
    except Exception as error:  # noqa: BLE001 - it trips on odd values (Java Set...): a wrong answer
        return {"valid": False, "error_type": "checker_error", "error": [f"{type(error).__name__}: {error}"]}
    return {
        "valid": bool(verdict["valid"]),
        "error_type": None if verdict["valid"] else verdict.get("error_type"),
        "error": verdict.get("error", []),
    }


def aggregates(categories: dict[str, dict]) -> tuple[dict[str, float], list[str]]:
    """The leaderboard's summary numbers from per-category ``{"correct", "n", "accuracy"}``.

    Non-live: unweighted mean of simple (itself the mean of its three languages), multiple,
    parallel and parallel_multiple. Live: accuracy over all items of the four live AST
    categories. Overall: mean of the two. An aggregate whose categories were not all run is
    left out, with a note saying why.
    """
    summary, notes = {}, []
    missing = [c for c in BFCL_NON_LIVE_AST if c not in categories]
    if missing:
        notes.append(f"non_live left out: not run: {', '.join(missing)}")
    else:
        simple = sum(categories[c]["accuracy"] for c in SIMPLE) / len(SIMPLE)
        others = [categories[c]["accuracy"] for c in ("multiple", "parallel", "parallel_multiple")]
        summary["non_live"] = (simple + sum(others)) / 4
    missing = [c for c in BFCL_LIVE_AST if c not in categories]
    if missing:
        notes.append(f"live left out: not run: {', '.join(missing)}")
    else:
        n = sum(categories[c]["n"] for c in BFCL_LIVE_AST)
        summary["live"] = sum(categories[c]["correct"] for c in BFCL_LIVE_AST) / n if n else 0.0
    if "non_live" in summary and "live" in summary:
        summary["overall"] = (summary["non_live"] + summary["live"]) / 2
    else:
        notes.append("overall left out: needs both non_live and live")
    return summary, notes
