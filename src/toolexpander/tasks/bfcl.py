"""The BFCL task (SPEC §3): loading its files, the function docs as BFCL shows them, the verdict
of the official checker, and the leaderboard's aggregates.

Loading (`load_bfcl`, the ``bfcl`` format): one question file ``BFCL_v4_<category>.json`` (JSON
Lines) with its ground truth in the sibling ``possible_answer/<same name>``, matched by ``id``.
Records keep BFCL's ``id``, its function docs as ``tools`` (BFCL type names such as ``dict`` and
``float``: the official checker reads them) and its allowed-values lists untouched under
``ground_truth``, and get a ``category``. ``answer`` is one gold answer derived from the allowed
values: for each argument its first allowed value other than ``""``; an argument whose only
allowed value is ``""`` (optional, may be omitted) is left out, unless the function doc requires
it (a few live items), where it gets ``""``. ``dict`` arguments and lists of dicts are derived
key by key the same way. In the Java and JavaScript categories every argument is passed as a
string in the language's own syntax (``"true"``, ``"42L"``, ``"new int[]{1, 2}"``), because that
is what the official checker parses. Irrelevance categories have ``answer`` ``[]`` (correct iff
no call); ``live_relevance`` has ``None`` (correct iff some call). Only single-turn categories load.

Scoring: the verdict on an AST item is ``bfcl_eval.eval_checker.ast_eval.ast_checker`` applied to the
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
import re
import sys
import tempfile
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from toolexpander.data import formats
from toolexpander.data.schema import LoadResult, make_record, shown
from toolexpander.errors import UserError
from toolexpander.tasks.base import CORRECT, Task, Verdict

NAME = "bfcl"
NON_LIVE_AST = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
)
LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
IRRELEVANCE = ("irrelevance", "live_irrelevance")
RELEVANCE = ("live_relevance",)
CATEGORIES = NON_LIVE_AST + LIVE_AST + IRRELEVANCE + RELEVANCE

# The AST categories of SPEC §3 plus the irrelevance ones: what ``--bench bfcl`` runs.
DEFAULT_CATEGORIES = NON_LIVE_AST + LIVE_AST + IRRELEVANCE
SIMPLE = ("simple_python", "simple_java", "simple_javascript")
MODEL_NAME = "toolexpander"  # the checker asks its model config whether to rewrite dots in names
INSTALL_HINT = "BFCL scoring needs the bfcl-eval package: pip install --no-deps bfcl-eval==2026.3.23"
_BFCL_FILE = re.compile(r"BFCL_v\d+_(?P<category>\w+)\.json")


# ------------------------------------------------------------------------------------- loading


def bfcl_category(path: str | Path, first_id: str | None = None) -> str | None:
    """The BFCL category a file holds: from its name, else from an item id (``simple_java_3``)."""
    match = _BFCL_FILE.fullmatch(Path(path).name)
    if match:
        return match["category"]
    return first_id.rsplit("_", 1)[0] if first_id else None


_SKIP = object()


def _first_allowed(values: list) -> Any:
    """The first allowed value other than ``""`` (which marks an optional argument), or `_SKIP`."""
    return next((value for value in values if value != ""), _SKIP)


def _derive_dict(allowed: dict) -> dict:
    """One level of BFCL's dict answers: each key maps to its own allowed-values list."""
    return {key: value for key, values in allowed.items() if (value := _first_allowed(values)) is not _SKIP}


def _derive_value(value: Any, schema: dict) -> Any:
    """Undo the allowed-values nesting that BFCL uses inside dict and list-of-dict arguments."""
    kind = schema.get("type")
    if isinstance(value, dict) and kind in ("dict", "HashMap"):
        return _derive_dict(value)
    if isinstance(value, list) and schema.get("items", {}).get("type") == "dict":
        return [_derive_dict(item) if isinstance(item, dict) else item for item in value]
    return value


_JAVA_ELEMENT = {"integer": "int", "any": "Object"}


def _java_scalar(value: Any, kind: str | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and kind == "long":
        return f"{value}L"
    if isinstance(value, (int, float)) and kind == "float":
        return f"{value}f"
    return str(value)


def _java_quoted(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else _java_scalar(value, None)


def _java_literal(value: Any, schema: dict) -> str:
    """A value in the Java syntax BFCL's checker parses (``java_type_converter``)."""
    kind, item_kind = schema.get("type"), schema.get("items", {}).get("type")
    if isinstance(value, list) and kind == "Array":
        items = ", ".join(_java_scalar(item, item_kind) for item in value)
        return f"new {_JAVA_ELEMENT.get(item_kind, item_kind or 'Object')}[]{{{items}}}"
    if isinstance(value, list) and kind == "ArrayList":
        render = (
            _java_quoted if item_kind in (None, "String", "char") else (lambda v: _java_scalar(v, item_kind))
        )
        return f"new ArrayList<>(Arrays.asList({', '.join(render(item) for item in value)}))"
    if isinstance(value, dict) and kind == "HashMap":
        puts = " ".join(f'put("{key}", {_java_quoted(item)});' for key, item in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return _java_scalar(value, kind)


def _js_scalar(value: Any, kind: str | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and kind == "Bigint":
        return f"{value}n"
    if isinstance(value, int) and kind == "float":
        return str(float(value))
    return str(value)


def _js_element(value: Any, kind: str | None) -> str:
    """An element inside a JS array or object literal: strings quoted unless ``any``."""
    if isinstance(value, str):
        return value if kind == "any" else f'"{value}"'
    if isinstance(value, list):
        return f"[{', '.join(_js_element(item, None) for item in value)}]"
    return _js_scalar(value, kind)


def _js_literal(value: Any, schema: dict) -> str:
    """A value in the JavaScript syntax BFCL's checker parses (``js_type_converter``)."""
    kind, item_kind = schema.get("type"), schema.get("items", {}).get("type")
    if isinstance(value, list) and kind == "array":
        return f"[{', '.join(_js_element(item, item_kind) for item in value)}]"
    if isinstance(value, dict) and kind == "dict":
        return "{" + ", ".join(f"{key}: {_js_element(item, None)}" for key, item in value.items()) + "}"
    return _js_scalar(value, kind)


def _bfcl_gold(functions: list[dict], ground_truth: list[dict], category: str) -> list[dict]:
    """One gold call list from BFCL's allowed values (see the module docstring)."""
    docs = {function["name"]: function for function in functions}
    literal = {"simple_java": _java_literal, "simple_javascript": _js_literal}.get(category)
    calls = []
    for entry in ground_truth:
        ((name, allowed),) = entry.items()
        parameters = docs.get(name, {}).get("parameters", {})
        properties, required = parameters.get("properties", {}), parameters.get("required", [])
        arguments = {}
        for parameter, values in allowed.items():
            value = _first_allowed(values)
            if value is _SKIP:
                if parameter not in required or "" not in values:
                    continue
                value = ""  # required by the doc yet only "" allowed: "" is what the checker accepts
            schema = properties.get(parameter, {})
            value = _derive_value(value, schema)
            arguments[parameter] = literal(value, schema) if literal else value
        calls.append({"name": name, "arguments": arguments})
    return calls


def _context(path: Path, first: Any) -> dict:
    """The category of a question file and, for AST categories, the ground truth of its sibling
    ``possible_answer`` file by id."""
    first_id = first.get("id") if isinstance(first, dict) else None
    category = bfcl_category(path, first_id if isinstance(first_id, str) else None)
    if category not in CATEGORIES:
        raise UserError(
            f"{path}: BFCL category {category!r} is not supported; single-turn categories are "
            f"{', '.join(CATEGORIES)}"
        )
    truths: dict[str, dict] = {}
    if category not in IRRELEVANCE + RELEVANCE:
        answer_path = path.parent / "possible_answer" / path.name
        if not answer_path.is_file():
            raise UserError(f"BFCL ground truth {answer_path} does not exist (needed for {path.name})")
        truths = {
            row["id"]: row
            for _, row, _ in formats.read_rows(answer_path)
            if isinstance(row, dict) and isinstance(row.get("id"), str)
        }
    return {"truths": truths, "category": category}


def _convert(entry: dict, index: int, *, truths: dict[str, dict], category: str) -> Iterator[dict]:
    messages = [{"role": m["role"], "content": m["content"]} for turn in entry["question"] for m in turn]
    extra: dict[str, Any] = {"category": category}
    if category in IRRELEVANCE:
        answer: list[dict] | None = []
    elif category in RELEVANCE:
        answer = None
    else:
        if entry["id"] not in truths:
            raise ValueError(f"no ground truth for id {shown(entry['id'])} in possible_answer")
        extra["ground_truth"] = truths[entry["id"]].get("ground_truth")
        try:
            answer = _bfcl_gold(entry["function"], extra["ground_truth"], category)
        except (ValueError, LookupError, TypeError, AttributeError):  # a layout _bfcl_gold does not know
            raise ValueError(
                f"no gold answer for id {shown(entry['id'])}: its ground truth or its functions' "
                "parameters are not in BFCL's layout"
            ) from None
    yield make_record(entry["id"], messages, entry["function"], answer, task=NAME, **extra)


FORMAT = formats.Format(
    NAME,
    _convert,
    formats.has_keys("id", "question", "function"),
    context=_context,
    shape={"id": str, "question": [[{"role": str, "content": str}]], "function": [{"name": str}]},
)


def load_bfcl(path: str | Path) -> LoadResult:
    """Load one single-turn BFCL question file and its ``possible_answer`` sibling."""
    return formats.load(str(path), NAME, {NAME: FORMAT})


# ------------------------------------------------------------------------------------- scoring


def prepare_import() -> None:
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
    """Import BFCL's checker and helpers once (after `prepare_import`)."""
    prepare_import()
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.utils import add_language_specific_hint_to_function_doc
    except ImportError as error:
        raise UserError(f"{INSTALL_HINT} ({error})") from error
    return Official(ast_checker, Language, add_language_specific_hint_to_function_doc)


def default_data_dir() -> Path:
    """The data folder inside the installed ``bfcl_eval`` package (found without importing it)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{INSTALL_HINT}, or pass --data-dir with a copy of BFCL's data folder")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_categories(
    data_dir: str | Path,
    categories: tuple[str, ...] | list[str],
    load: Callable[[Path], LoadResult] = load_bfcl,
) -> dict[str, LoadResult]:
    """``BFCL_v4_<category>.json`` of each category under ``data_dir``, read by ``load``
    (`load_bfcl`; the multi-turn categories pass theirs)."""
    data_dir = Path(data_dir)
    loaded = {}
    for category in categories:
        matches = sorted(p for p in data_dir.glob("BFCL_v*.json") if bfcl_category(p) == category)
        if not matches:
            raise UserError(
                f"no BFCL file for category {category!r} in {data_dir} (expected BFCL_v4_{category}.json)"
            )
        loaded[category] = load(matches[-1])
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


def check(record: dict, calls: list[dict] | None) -> Verdict:
    """BFCL's verdict on one item, from the calls parsed out of the answer (None: none decodable)."""
    decoded = decoded_calls(calls)
    category = record["category"]
    if category in IRRELEVANCE + RELEVANCE:
        has_call = bool(decoded)
        if (category in IRRELEVANCE) != has_call:
            return CORRECT
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
    missing = [c for c in NON_LIVE_AST if c not in categories]
    if missing:
        notes.append(f"non_live left out: not run: {', '.join(missing)}")
    else:
        simple = sum(categories[c]["accuracy"] for c in SIMPLE) / len(SIMPLE)
        others = [categories[c]["accuracy"] for c in ("multiple", "parallel", "parallel_multiple")]
        summary["non_live"] = (simple + sum(others)) / 4
    missing = [c for c in LIVE_AST if c not in categories]
    if missing:
        notes.append(f"live left out: not run: {', '.join(missing)}")
    else:
        n = sum(categories[c]["n"] for c in LIVE_AST)
        summary["live"] = sum(categories[c]["correct"] for c in LIVE_AST) / n if n else 0.0
    if "non_live" in summary and "live" in summary:
        summary["overall"] = (summary["non_live"] + summary["live"]) / 2
    else:
        notes.append("overall left out: needs both non_live and live")
    return summary, notes


TASK = Task(NAME, check, prompt_tools=prompt_tools, aggregate=aggregates)
