"""Loaders for the evaluation benchmarks, each into our record schema (`toolexpander.data.schema`).

* **BFCL** (`load_bfcl`): one question file ``BFCL_v4_<category>.json`` (JSON Lines) with its
  ground truth in the sibling ``possible_answer/<same name>``, matched by ``id``. Records keep
  BFCL's ``id``, its function docs as ``tools`` (BFCL type names such as ``dict`` and ``float``:
  the official checker reads them) and its allowed-values lists untouched under
  ``ground_truth``, and get a ``category``. ``answer`` is one gold answer derived from the
  allowed values: for each argument its first allowed value other than ``""``; an argument
  whose only allowed value is ``""`` (optional, may be omitted) is left out, unless the
  function doc requires it (a few live items), where it gets ``""``. ``dict``
  arguments and lists of dicts are derived key by key the same way. In the Java and
  JavaScript categories every argument is passed as a string in the language's own syntax
  (``"true"``, ``"42L"``, ``"new int[]{1, 2}"``), because that is what the official checker
  parses. Irrelevance categories have ``answer`` ``[]`` (correct iff no call);
  ``live_relevance`` has ``None`` (correct iff some call). Only single-turn categories load.
* **API-Bank** level-1/level-2 in three layouts: the official test data
  (`load_apibank`: ``test-data/level-{1,2}-api.json``), Hammer's conversion
  (`load_hammer`: ``data/test/original/apibank_l{1,2}.json``) and ToolRL's
  (`load_toolrl_apibank`: ``benchmarks/API-Bank/level-{1,2,3}-api_processed.json``). Records
  get ``category`` ``apibank_l<level>`` and ids ``apibank_l<level>_<index>``. Earlier API calls
  in a dialogue become an assistant turn in our ``<tool_call>`` format followed by a ``tool``
  turn with the result; the trailing "Generate API Request:" cue of the original prompt is
  dropped (our prompt gives its own instructions). In level-2 the APIs that ``ToolSearcher``
  returned earlier in the dialogue are added to ``tools`` (as Hammer does), so the gold call
  names an offered tool; a level-2 item whose gold API was never retrieved in its dialogue
  (14 of the official 135, 6 of Hammer's 127, 6 of ToolRL's 67) fails `record_errors` and
  is reported. API parameters become a JSON-schema object (`flat_params_schema`).

Every input that does not become a valid record is reported as a `Problem`, never dropped.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from toolexpander.data.loaders import api_tool, parse_python_calls, read_rows, toolrl_messages, toolrl_tools
from toolexpander.data.schema import LoadResult, Problem, make_record, record_errors
from toolexpander.errors import UserError
from toolexpander.prompts import render_calls

BFCL_NON_LIVE_AST = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
)
BFCL_LIVE_AST = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
BFCL_IRRELEVANCE = ("irrelevance", "live_irrelevance")
BFCL_RELEVANCE = ("live_relevance",)
BFCL_CATEGORIES = BFCL_NON_LIVE_AST + BFCL_LIVE_AST + BFCL_IRRELEVANCE + BFCL_RELEVANCE
BENCHMARK_FORMATS = ("bfcl", "apibank", "hammer", "toolrl_apibank")

_BFCL_FILE = re.compile(r"BFCL_v\d+_(?P<category>\w+)\.json")
_LEVEL = re.compile(r"(?:level-|_l)(?P<level>\d)")


# ---------------------------------------------------------------------------------------- BFCL


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


def load_bfcl(path: str | Path) -> LoadResult:
    """Load one single-turn BFCL question file and its ``possible_answer`` sibling."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"BFCL file {path} does not exist")
    rows = read_rows(path)
    first_id = next((row.get("id") for _, row, _ in rows if isinstance(row, dict)), None)
    category = bfcl_category(path, first_id)
    if category not in BFCL_CATEGORIES:
        raise UserError(
            f"{path}: BFCL category {category!r} is not supported; single-turn categories are "
            f"{', '.join(BFCL_CATEGORIES)}"
        )
    truths: dict[str, dict] = {}
    if category not in BFCL_IRRELEVANCE + BFCL_RELEVANCE:
        answer_path = path.parent / "possible_answer" / path.name
        if not answer_path.is_file():
            raise UserError(f"BFCL ground truth {answer_path} does not exist (needed for {path.name})")
        truths = {
            row["id"]: row for _, row, _ in read_rows(answer_path) if isinstance(row, dict) and "id" in row
        }
    result = LoadResult()
    for line, entry, reason in rows:
        if reason is not None:
            result.problems.append(Problem(str(path), line, reason))
            continue
        try:
            record = _bfcl_record(entry, truths, category)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            result.problems.append(Problem(str(path), line, f"not a BFCL item: {error!r}"))
            continue
        errors = record_errors(record)
        if errors:
            result.problems.append(Problem(str(path), line, "; ".join(errors)))
        else:
            result.records.append(record)
    return result


def _bfcl_record(entry: dict, truths: dict[str, dict], category: str) -> dict:
    messages = [{"role": m["role"], "content": m["content"]} for turn in entry["question"] for m in turn]
    extra: dict[str, Any] = {"category": category}
    if category in BFCL_IRRELEVANCE:
        answer: list[dict] | None = []
    elif category in BFCL_RELEVANCE:
        answer = None
    else:
        if entry["id"] not in truths:
            raise ValueError(f"no ground truth for id {entry['id']!r} in possible_answer")
        extra["ground_truth"] = truths[entry["id"]]["ground_truth"]
        answer = _bfcl_gold(entry["function"], extra["ground_truth"], category)
    return make_record(entry["id"], messages, entry["function"], answer, **extra)


# ------------------------------------------------------------------------------------ API-Bank


def _api_description_tool(description: dict) -> dict:
    """An API from API-Bank's own description format (``input_parameters``)."""
    return api_tool(
        description["name"], description.get("description", ""), description.get("input_parameters", {})
    )


_LOOSE_CALL = re.compile(r"\[(?P<name>\w+)\((?P<arguments>.*)\)\]", re.DOTALL)
_LOOSE_ARGUMENT = re.compile(r"(?P<key>\w+)=(?P<value>.*?)(?=, \w+=|$)", re.DOTALL)


def _parse_loose_request(text: str) -> list[dict]:
    """One call whose quoted values may hold unescaped quotes (48 gold answers of level-1 do,
    e.g. ``health_data='[{'name': ...}]'``): a value runs to the next ``, key=``. Quoted values
    stay strings, as Hammer and ToolRL read them; others must be literals."""
    match = _LOOSE_CALL.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a call list: {text.strip()[:60]!r}")
    pieces = list(_LOOSE_ARGUMENT.finditer(match["arguments"]))
    if ", ".join(piece[0] for piece in pieces) != match["arguments"]:
        raise ValueError(f"only keyword arguments are allowed: {text.strip()[:60]!r}")
    arguments = {}
    for argument in pieces:
        value = argument["value"]
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        arguments[argument["key"]] = value[1:-1] if quoted else ast.literal_eval(value)
    return [{"name": match["name"], "arguments": arguments}]


def parse_api_request(text: str) -> list[dict]:
    """Calls written as ``[Name(key='v', ...), ...]`` (API-Bank's format).

    Read by `parse_python_calls` (`ast` with literal values only: nothing is ever evaluated);
    text that is not valid Python falls back to `_parse_loose_request`.

    >>> parse_api_request("[ToolSearcher(keywords='history October 6th')]")
    [{'name': 'ToolSearcher', 'arguments': {'keywords': 'history October 6th'}}]
    >>> parse_api_request("[Add(note='it's', n=2)]")
    [{'name': 'Add', 'arguments': {'note': "it's", 'n': 2}}]
    """
    try:
        return parse_python_calls(text)
    except ValueError:
        return _parse_loose_request(text)


def _split_request_result(text: str) -> tuple[list[dict], str]:
    """Split ``[Calls(...)]->result`` at the first ``->`` whose left side parses as calls."""
    for match in re.finditer(r"\]->", text):
        try:
            return parse_api_request(text[: match.start() + 1]), text[match.end() :]
        except ValueError:
            continue
    raise ValueError(f"cannot split API request and result in {text[:80]!r}")


def _retrieved_tools(result: str) -> list[dict]:
    """The API descriptions a ``ToolSearcher`` result holds (one dict or a list of them)."""
    try:
        found = ast.literal_eval(result.strip())
    except (SyntaxError, ValueError):
        return []
    found = found if isinstance(found, list) else [found]
    return [
        _api_description_tool(d)
        for d in found
        if isinstance(d, dict) and "name" in d and "input_parameters" in d
    ]


def _add_tools(tools: list[dict], new: list[dict]) -> None:
    names = {tool["name"] for tool in tools}
    for tool in new:
        if tool["name"] not in names:
            tools.append(tool)
            names.add(tool["name"])


_CUE = "Generate API Request:"


def _apibank_dialogue(text: str, tools: list[dict]) -> list[dict]:
    """Turns of an official API-Bank ``input`` (``User:``/``AI:``/``API-Request:`` lines)."""
    messages = []
    for line in text.splitlines():
        role, _, content = line.partition(": ")
        if role == "User":
            messages.append({"role": "user", "content": content.strip()})
        elif role == "AI":
            messages.append({"role": "assistant", "content": content.strip()})
        elif role == "API-Request":
            calls, result = _split_request_result(content)
            messages.append({"role": "assistant", "content": render_calls(calls)})
            messages.append({"role": "tool", "content": result})
            if any(call["name"] == "ToolSearcher" for call in calls):
                _add_tools(tools, _retrieved_tools(result))
        elif line.strip() and line.strip() != _CUE:
            raise ValueError(f"unexpected dialogue line {line[:60]!r}")
    return messages


def _level(path: Path) -> int:
    match = _LEVEL.search(path.name)
    if not match:
        raise UserError(
            f"cannot tell the API-Bank level from the file name {path.name} (expected level-N or _lN)"
        )
    return int(match["level"])


def _read_json_array(path: Path) -> list:
    if not path.is_file():
        raise UserError(f"API-Bank file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, list):
        raise UserError(f"{path} must hold a JSON array")
    return data


def _load_array(path: str | Path, convert) -> LoadResult:
    """Apply ``convert(item, level, index) -> record`` to a JSON array, collecting problems."""
    path = Path(path)
    items, level = _read_json_array(path), _level(path)
    result = LoadResult()
    for index, item in enumerate(items):
        try:
            record = convert(item, level, index)
        except (KeyError, TypeError, ValueError, SyntaxError, AttributeError) as error:
            result.problems.append(Problem(str(path), index + 1, f"cannot convert: {error!r}"))
            continue
        errors = record_errors(record)
        if errors:
            result.problems.append(Problem(str(path), index + 1, "; ".join(errors)))
        else:
            result.records.append(record)
    return result


def _apibank_record(level: int, index: int, messages: list, tools: list, answer: list) -> dict:
    return make_record(f"apibank_l{level}_{index}", messages, tools, answer, category=f"apibank_l{level}")


def _official_record(item: dict, level: int, index: int) -> dict:
    descriptions = item["instruction"].split("API descriptions:", 1)[1]
    tools = [_api_description_tool(json.loads(line)) for line in descriptions.strip().splitlines()]
    messages = _apibank_dialogue(item["input"], tools)
    expected = item["expected_output"].strip()
    if not expected.startswith("API-Request:"):
        raise ValueError(f"expected_output does not start with 'API-Request:': {expected[:60]!r}")
    answer = parse_api_request(expected.removeprefix("API-Request:"))
    return _apibank_record(level, index, messages, tools, answer)


def load_apibank(path: str | Path) -> LoadResult:
    """Load the official API-Bank ``level-1-api.json`` or ``level-2-api.json``."""
    return _load_array(path, _official_record)


_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _hammer_turn(message: dict) -> dict:
    role = {"agent": "assistant"}.get(message["role"], message["role"])
    content = message["content"].removesuffix(_CUE).rstrip()
    fenced = _FENCED.match(content) if role == "assistant" else None
    if fenced:
        calls = json.loads(fenced[1])
        content = render_calls(calls if isinstance(calls, list) else [calls])
    return {"role": role, "content": content}


def _hammer_record(item: dict, level: int, index: int) -> dict:
    tools = [api_tool(t["name"], t.get("description", ""), t.get("parameters", {})) for t in item["tools"]]
    messages = [_hammer_turn(message) for message in item["query"]]
    answer = [{"name": a["name"], "arguments": a["arguments"]} for a in item["answers"]]
    return _apibank_record(level, index, messages, tools, answer)


def load_hammer(path: str | Path) -> LoadResult:
    """Load Hammer's API-Bank conversion (``apibank_l1.json`` / ``apibank_l2.json``)."""
    return _load_array(path, _hammer_record)


def _toolrl_record(item: dict, level: int, index: int) -> dict:
    gold = item["answer"] if isinstance(item["answer"], list) else [item["answer"]]
    answer = [{"name": call["name"], "arguments": call["parameters"]} for call in gold]
    return _apibank_record(level, index, toolrl_messages(item["user"]), toolrl_tools(item["system"]), answer)


def load_toolrl_apibank(path: str | Path) -> LoadResult:
    """Load ToolRL's API-Bank conversion (``level-{1,2,3}-api_processed.json``)."""
    return _load_array(path, _toolrl_record)


# ----------------------------------------------------------------------------------- detection

# The keys that tell the JSON-array layouts apart (first element of the array).
_ARRAY_KEYS = {
    "apibank": {"instruction", "input", "expected_output"},
    "hammer": {"query", "tools", "answers"},
    "toolrl_apibank": {"system", "user", "answer"},
}

LOADERS = {
    "bfcl": load_bfcl,
    "apibank": load_apibank,
    "hammer": load_hammer,
    "toolrl_apibank": load_toolrl_apibank,
}


def _first_object(path: Path) -> Any:
    """The first JSON value of a JSON array file, or the first line of a JSON Lines file; None
    for a file that is not UTF-8 text (a parquet file)."""
    try:
        stripped = path.read_text(encoding="utf-8").lstrip()
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder()
    try:
        if stripped.startswith("["):
            body = stripped[1:].lstrip()
            return decoder.raw_decode(body)[0] if body and body[0] != "]" else None
        return decoder.raw_decode(stripped)[0] if stripped else None
    except json.JSONDecodeError:
        return None


def detect_benchmark_format(path: str | Path) -> str | None:
    """Which benchmark layout a file has: one of `BENCHMARK_FORMATS`, or None."""
    path = Path(path)
    if not path.is_file():
        return None
    first = _first_object(path)
    if not isinstance(first, dict):
        return None
    if {"id", "question", "function"} <= first.keys():
        return "bfcl"
    if _ARRAY_KEYS["hammer"] <= first.keys() and not isinstance(first["query"], list):
        return None  # xLAM's rows have the same keys, with the query as one string
    return next((name for name, keys in _ARRAY_KEYS.items() if keys <= first.keys()), None)
