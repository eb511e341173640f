"""The data formats: each published layout of tool-calling data, as a `Format` that turns one
source row into toolexpander records, and the one convert-and-validate path (`convert_rows`).

`FORMATS` registers the training-data formats; the benchmarks register theirs in their task
module (`toolexpander.tasks.bfcl`, `toolexpander.tasks.apibank`), and
`toolexpander.tasks.load_records` reads any of them. A row is checked against its format's
`Format.shape` and for nesting (`toolexpander.data.schema.MAX_DEPTH`) before its converter reads
it, and every record a converter yields with `record_errors`. Nothing is dropped silently and
one row costs only itself: a broken line, a row that cannot be converted (whatever the converter
raises) or an invalid record becomes a `Problem` (``PATH:LINE: reason``; LINE is the 1-based line
of a JSONL file or the 1-based index of a JSON array, parquet file or hub split). A file that is
not data at all (binary, UTF-16, a corrupt parquet) is a UserError.

Formats and what their converters decide:

``toolexpander``
    our records, unchanged (one that names no ``task`` gets ``generic``).
``xlam`` (``Salesforce/xlam-function-calling-60k``)
    ``{id, query, answers, tools}`` with ``answers`` and ``tools`` as JSON strings. xLAM's flat
    parameter dicts become JSON-schema objects (`flat_params_schema`).
``toolrl`` (ToolRL's ``rlla_sft.json`` rows ``{instruction, input, output}`` and the verl rows
    of ``rlla_4k/*.parquet``)
    the tools are parsed from the ``N. Name: / Description: / Parameters:`` lines of the
    instruction (which is otherwise dropped: its output format is ToolRL's, not ours). The
    dialogue history in the input becomes messages: ``<user>`` -> user, ``<tool_call>`` ->
    an assistant turn with ``tool_calls``, ``<obs>`` -> tool, ``<response>`` -> assistant;
    ``<think>`` blocks are dropped (in the history they are one fixed filler sentence). The
    answer is the ``<tool_call>`` JSON lines of the output, ``parameters`` renamed
    ``arguments``. An output with only a ``<response>`` (the model should ask back or answer
    in words: 54 of the 400 SFT rows) gets the answer ``[]``, "no call", which is what the
    reward expects when no tool fits; the 5 outputs with calls *and* a response keep the calls.
    ToolRL's processed API-Bank files (``{system, user, answer, other}``) are benchmarks, read
    as ``toolrl_apibank`` (`toolexpander.tasks.apibank`).
``glaive`` (ShareGPT, e.g. LLaMA-Factory's ``glaive_toolcall_en_demo.json``)
    ``{conversations, tools}``: human -> user, gpt -> assistant, observation -> tool,
    function_call -> the gold call; ``tools`` is a JSON string of OpenAI-style schemas.
``toolace`` (``Team-ACE/ToolACE`` ``data.json``)
    ``{system, conversations}``: the tool list is the JSON list inside the system text (the rest
    of that text is ToolACE's own format instruction and is dropped); an assistant turn of the
    form ``[Func(a="v", n=3), ...]`` is a call list, read by `parse_python_calls`.

The other formats' records have the task ``generic`` (scored by Tool-N1's exact match).

Multi-turn dialogues (glaive, toolace) are prepared as Tool-N1 does: one item per assistant
call turn, with all earlier turns as context (earlier calls as assistant turns with
``tool_calls``, tool results as ``tool`` turns); assistant text turns are context only,
so a dialogue without any call yields no item (that is not a problem). A call turn that
cannot be used (broken call, a tool that is not offered) becomes a problem whose reason ends
with ``(item <id>)``; the dialogue's other items are kept.

Record ids are ``<format>-<row id, else the row's 0-based index>``, plus ``-<0-based position
of the call turn>`` for dialogues (``glaive-17-3``); ``toolexpander`` records keep theirs.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolexpander.data.schema import (
    GENERIC_TASK,
    REQUIRED_FIELDS,
    TOO_DEEP,
    LoadResult,
    Problem,
    Row,
    call_turn,
    json_reason,
    jsonl_rows,
    make_record,
    record_errors,
    shown,
    too_deep,
)
from toolexpander.errors import UserError

# A converter turns one source row into records, or into the reason an item could not be built.
# Its int argument is the row's 0-based index (0-based line in a JSONL file); keyword arguments
# are what the format's `Format.context` read from the file (BFCL's answers, API-Bank's level).
Converter = Callable[..., Iterator[dict | str]]

# What a source row must hold, checked by `shape_errors` before its converter reads it: a type
# or a tuple of types; ``{key: shape}`` for an object (a key ending in "?" is optional);
# ``[shape]`` for a list of such values. ``object`` takes any value.
Shape = Any

# The longest text handed to `ast` (a call list, a literal): far beyond real data (7,000
# characters at most in ../shared/data). Longer text is refused before `ast` sees it: its parser
# overflows on hostile text such as 100,000 "-" (MemoryError), and costs grow with length.
MAX_LITERAL_CHARS = 100_000


@dataclass(frozen=True)
class Format:
    """One data layout: how to tell it from its first row and how to convert a row."""

    name: str = field(metadata={"help": "the name --format takes"})
    convert: Converter = field(metadata={"help": "one source row -> records or problem reasons"})
    detect: Callable[[dict], bool] = field(metadata={"help": "whether a first row has this layout"})
    context: Callable[[Path, Any], dict] | None = field(
        default=None,
        metadata={
            "help": "(path, first row) -> what convert needs from the file (local files only); None: any source"
        },
    )
    dialogue: bool = field(
        default=False, metadata={"help": "one row yields several items: problems name the item"}
    )
    family: str | None = field(
        default=None, metadata={"help": "another name --format reads it by, when the first row matches"}
    )
    shape: dict = field(
        default_factory=dict, metadata={"help": "the fields a row needs, with their types (`Shape`)"}
    )


# ----- small parsing helpers -------------------------------------------------------------------


_NOUNS = {str: ("a string", "strings"), list: ("a list", "lists"), dict: ("an object", "objects")}


def _noun(shape: Shape, plural: bool = False) -> str:
    """What a `Shape` asks for, in words: "a string or a list", "a list of objects"."""
    if isinstance(shape, dict):
        return "objects" if plural else "an object"
    if isinstance(shape, list):
        return "lists" if plural else f"a list of {_noun(shape[0], plural=True)}"
    return " or ".join(_NOUNS[kind][plural] for kind in (shape if isinstance(shape, tuple) else (shape,)))


def _place(where: str) -> str:
    """A field as reasons name it: a top-level one quoted, a nested one as a path."""
    return where if "[" in where or "." in where else repr(where)


def shape_errors(value: Any, shape: Shape, where: str = "") -> list[str]:
    """What keeps ``value`` from having ``shape`` (see `Shape`): every missing or mistyped field of
    an object, the first bad item of a list; fields named as `record_errors` names them.

    >>> shape_errors({"tools": 3, "turns": [{"from": "a"}, {}]}, {"tools": (str, list), "turns": [{"from": str}]})
    ["'tools' must be a string or a list, got int", "missing field 'turns[1].from'"]
    """
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{_place(where)} must be an object, got {type(value).__name__}"]
        errors = []
        for key, inner in shape.items():
            name = key.removesuffix("?")
            place = f"{where}.{name}" if where else name
            if name in value:
                errors += shape_errors(value[name], inner, place)
            elif not key.endswith("?"):
                errors.append(f"missing field {place!r}")
        return errors
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{_place(where)} must be {_noun(shape)}, got {type(value).__name__}"]
        for i, item in enumerate(value):
            if errors := shape_errors(item, shape[0], f"{where}[{i}]"):
                return errors  # the first bad item shows what is wrong; a long list need not repeat it
        return []
    if isinstance(value, shape):
        return []
    return [f"{_place(where)} must be {_noun(shape)}, got {type(value).__name__}"]


def json_value(text: Any, what: str, kind: type | None = None) -> Any:
    """The value of a field that holds JSON text (a value that is not a string passes as is),
    which must be a ``kind`` when one is given; a ValueError in words when it cannot be read."""
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ValueError(json_reason(error, f"{what} JSON")) from None
    if kind is not None and not isinstance(text, kind):
        raise ValueError(f"{what} must be {_noun(kind)}, got {type(text).__name__}")
    return text


def literal(text: str, what: str) -> Any:
    """A Python literal read by `ast.literal_eval` (nothing is ever evaluated); a ValueError in
    words when ``text`` is not one or is longer than `MAX_LITERAL_CHARS`."""
    if len(text) > MAX_LITERAL_CHARS:
        raise ValueError(f"{what} longer than {MAX_LITERAL_CHARS:,} characters")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # the last two: nesting
        raise ValueError(f"{what} is not a literal") from None


def json_values(text: str, what: str) -> list[Any]:
    """All JSON values written one after another (JSON lines or pretty-printed) in ``text``."""
    decoder, values, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as error:
            raise ValueError(json_reason(error, f"{what} JSON")) from None
        values.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return values


def _call(call: Any, arguments_key: str) -> dict:
    """A source call as ``{"name", "arguments"}``; wrong types are left for `record_errors`."""
    if not isinstance(call, dict):
        raise TypeError(f"a call must be a JSON object, got {type(call).__name__}")
    return {"name": call.get("name"), "arguments": call.get(arguments_key)}


def calls_of(value: Any, arguments_key: str = "arguments") -> list[dict]:
    """One source call or a list of them (glaive's, Hammer's, ToolRL's API-Bank gold) as calls."""
    return [_call(call, arguments_key) for call in (value if isinstance(value, list) else [value])]


def parse_python_calls(text: str) -> list[dict]:
    """Parse a Python-style call list such as ToolACE's into ``[{"name", "arguments"}, ...]``.

    Function names may hold spaces, dots or hyphens (``[Market API(region="US")]``): `tokenize`
    finds them outside string literals and they are swapped for placeholders; `ast` then parses
    the list and `ast.literal_eval` reads each keyword argument, so nothing is ever executed.
    A bare call without brackets reads as a list of one. Raises ValueError when ``text`` is not
    such a list (positional arguments included: their names are unknown).

    >>> parse_python_calls('[Market API(region="US", top=3), ping()]')
    [{'name': 'Market API', 'arguments': {'region': 'US', 'top': 3}}, {'name': 'ping', 'arguments': {}}]
    """
    text = text.strip()
    if len(text) > MAX_LITERAL_CHARS:
        raise ValueError(f"call list longer than {MAX_LITERAL_CHARS:,} characters")
    if not text.startswith("["):
        text = f"[{text}]"
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as error:
        raise ValueError(f"broken call list: {error.args[0]}") from None
    line_offsets = [0]
    for line in text.splitlines(keepends=True):
        line_offsets.append(line_offsets[-1] + len(line))
    spans, depth, start, end = [], 0, None, None
    for token in tokens:
        op = token.string if token.type == tokenize.OP else None
        if op in ("(", "[", "{"):
            if depth == 1 and op == "(":
                if start is None:
                    raise ValueError("broken call list: a call has no function name")
                spans.append((start, end))
                start = None
            depth += 1
        elif op in (")", "]", "}"):
            depth -= 1
        elif depth == 1 and op != "," and token.type not in (tokenize.NL, tokenize.NEWLINE):
            start = start or token.start
            end = token.end
    names = {}
    for index, (start, end) in reversed(list(enumerate(spans))):
        first = line_offsets[start[0] - 1] + start[1]
        last = line_offsets[end[0] - 1] + end[1]
        names[f"_{index}"] = text[first:last]
        text = text[:first] + f"_{index}" + text[last:]
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"broken call list: {error.msg}") from None
    except (MemoryError, RecursionError):  # the parser's own stack, on hostile nesting: not out of memory
        raise ValueError("broken call list: nested too deeply to parse") from None
    calls = []
    for node in tree.elts if isinstance(tree, ast.List) else [tree]:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names):
            raise ValueError("broken call list: an item is not a function call")
        if node.args or any(keyword.arg is None for keyword in node.keywords):
            raise ValueError(f"broken call list: {names[node.func.id]!r} has positional arguments")
        arguments = {}
        for keyword in node.keywords:
            try:
                arguments[keyword.arg] = ast.literal_eval(keyword.value)
            except (ValueError, TypeError, SyntaxError):
                raise ValueError(f"broken call list: argument {keyword.arg!r} is not a literal") from None
        calls.append({"name": names[node.func.id], "arguments": arguments})
    return calls


def flat_params_schema(params: Any) -> Any:
    """xLAM's flat parameter dict ``{p: {type, description, default?}}`` as a JSON-schema object.

    A parameter is required unless its type says ``optional`` (``"int, optional"``) or it has a
    real default; ``"default": ""`` counts as none, because xLAM and ToolRL write it for
    parameters that have no default. Each parameter's own dict is kept as published. A value
    that already is a JSON schema, or is not a dict, is returned unchanged.

    >>> flat_params_schema({"q": {"type": "str", "default": ""}, "n": {"type": "int, optional", "default": 5}})
    {'type': 'object', 'properties': {'q': {'type': 'str', 'default': ''}, 'n': {'type': 'int, optional', 'default': 5}}, 'required': ['q']}
    """
    if not isinstance(params, dict) or isinstance(params.get("type"), str):
        return params

    def required(spec: Any) -> bool:
        if not isinstance(spec, dict):
            return True
        return "optional" not in str(spec.get("type", "")).lower() and spec.get("default", "") == ""

    return {
        "type": "object",
        "properties": params,
        "required": [name for name, spec in params.items() if required(spec)],
    }


def api_tool(name: str, description: str, parameters: Any) -> dict:
    """A tool from its parts; its flat parameter dict (API-Bank's, Hammer's, ToolRL's) becomes a
    JSON-schema object by `flat_params_schema`, the conversion xLAM's tools get too.

    Parameter types stay as published (``"str, optional"``, ``"int"``), not mapped to JSON-schema
    names: the published type is what tells `flat_params_schema` that a parameter is optional,
    and API-Bank is scored by exact match of call names and arguments, so schemas never change
    a score.
    """
    return {"name": name, "description": description, "parameters": flat_params_schema(parameters)}


def _flat_tool(tool: Any) -> Any:
    if isinstance(tool, dict) and "parameters" in tool:
        return {**tool, "parameters": flat_params_schema(tool["parameters"])}
    return tool


# ----- converters: one source row -> records ---------------------------------------------------


def _convert_toolexpander(row: dict, index: int) -> Iterator[dict]:
    yield {**row, "task": row.get("task") or GENERIC_TASK}


def _convert_xlam(row: dict, index: int) -> Iterator[dict]:
    tools = [_flat_tool(tool) for tool in json_value(row["tools"], "tools", list)]
    answer = [_call(call, "arguments") for call in json_value(row["answers"], "answers", list)]
    query = [{"role": "user", "content": row["query"]}]
    yield make_record(f"xlam-{row.get('id', index)}", query, tools, answer, task=GENERIC_TASK)


# ToolRL's training rows and API-Bank levels 1-2 write "1. Name: X\nDescription: d\nParameters: {...}",
# its API-Bank level 3 writes "1. X: d\nParameters: {...}".
_TOOLRL_TOOL = re.compile(
    r"^\d+\. (?:Name: (?P<name>.*)\nDescription: |(?P<short_name>\w+): )(?P<description>.*)\n"
    r"Parameters: (?P<parameters>.*)$",
    re.MULTILINE,
)
_TOOLRL_BLOCK = re.compile(r"<(user|think|tool_call|obs|response)>(.*?)</\1>", re.DOTALL)
_TOOLRL_ROLES = {"user": "user", "obs": "tool", "response": "assistant"}


def _json_or_literal(text: str, what: str) -> Any:
    """JSON text, else a Python literal (ToolRL's API-Bank files write ``{'q': {...}}``), read by
    `literal`. The JSON error is raised when neither reads."""
    try:
        return json_value(text, what)
    except ValueError as error:
        try:
            return literal(text, what)
        except ValueError:
            raise error from None


def toolrl_tools(system: str) -> list[dict]:
    """The tools of a ToolRL system text (``N. Name: / Description: / Parameters:`` lines, or
    ``N. <name>: <description> / Parameters:`` in API-Bank level 3), converted by `api_tool`."""
    return [
        api_tool(
            (match["name"] or match["short_name"]).strip(),
            match["description"].strip(),
            _json_or_literal(match["parameters"], "tool parameters"),
        )
        for match in _TOOLRL_TOOL.finditer(system)
    ]


def toolrl_calls(text: str) -> list[dict]:
    """The calls of a ToolRL ``<tool_call>`` body: ``{"name", "parameters"}`` JSON objects."""
    return [_call(call, "parameters") for call in json_values(text, "call")]


def toolrl_messages(history: str) -> list[dict]:
    """The turns of a ToolRL dialogue history (``<user>``, ``<tool_call>``, ``<obs>``,
    ``<response>``; ``<think>`` is dropped) as messages, earlier calls as ``tool_calls``."""
    messages = []
    for tag, text in _TOOLRL_BLOCK.findall(history):
        if tag == "tool_call":
            messages.append(call_turn(toolrl_calls(text)))
        elif tag in _TOOLRL_ROLES:
            messages.append({"role": _TOOLRL_ROLES[tag], "content": text.strip()})
    return messages


def _convert_toolrl(row: dict, index: int) -> Iterator[dict]:
    if "prompt" in row:  # verl RL rows: [system, user] prompt, gold text in reward_model
        if len(row["prompt"]) < 2:
            raise ValueError("'prompt' must hold a system and a user turn")
        system, history = row["prompt"][0]["content"], row["prompt"][1]["content"]
        output = row["reward_model"]["ground_truth"]
    else:
        system, history, output = row["instruction"], row["input"], row["output"]
    calls = [toolrl_calls(text) for tag, text in _TOOLRL_BLOCK.findall(output) if tag == "tool_call"]
    answer = [call for block in calls for call in block]
    yield make_record(f"toolrl-{index}", toolrl_messages(history), toolrl_tools(system), answer, task=GENERIC_TASK)


def _dialogue_items(
    prefix: str, tools: list, turns: list[tuple[str, str]], parse_calls: Callable[[str], list[dict]]
) -> Iterator[dict | str]:
    """Tool-N1's preparation of a dialogue: one item per ``call`` turn, earlier turns as context.

    ``turns`` are ``(role, text)`` with role user/assistant/tool, or ``call`` for a gold call
    turn whose text ``parse_calls`` reads (ValueError or TypeError, in words, when it cannot)."""
    context: list[dict] = []
    for position, (role, text) in enumerate(turns):
        if role != "call":
            context.append({"role": role, "content": text})
            continue
        item_id = f"{prefix}-{position}"
        try:
            calls = parse_calls(text)
        except (ValueError, TypeError) as error:
            yield f"{error} (item {item_id})"
            context.append({"role": "assistant", "content": text})
            continue
        yield make_record(item_id, list(context), tools, calls, task=GENERIC_TASK)
        context.append(call_turn(calls))


_GLAIVE_ROLES = {"human": "user", "gpt": "assistant", "observation": "tool", "function_call": "call"}


def _glaive_calls(text: str) -> list[dict]:
    return calls_of(json_value(text, "call"))


def _dialogue_turns(conversations: list, roles: dict[str, str]) -> list[tuple[str, str]]:
    turns = []
    for turn in conversations:
        if turn["from"] not in roles:
            raise ValueError(f"unknown turn role {shown(turn['from'])}")
        turns.append((roles[turn["from"]], turn["value"]))
    return turns


def _convert_glaive(row: dict, index: int) -> Iterator[dict | str]:
    tools = json_value(row["tools"], "tools", list) if row["tools"] != "" else []
    turns = _dialogue_turns(row["conversations"], _GLAIVE_ROLES)
    yield from _dialogue_items(f"glaive-{row.get('id', index)}", tools, turns, _glaive_calls)


_TOOLACE_ROLES = {"user": "user", "assistant": "assistant", "tool": "tool"}


def _embedded_tool_list(text: str) -> list[dict]:
    """The first JSON list of objects inside ``text`` (ToolACE writes its tools into the system text)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\[", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        except RecursionError:  # stop: trying each of a deep run of "[" would take quadratic time
            raise ValueError(f"the system text holds JSON {TOO_DEEP}") from None
        if isinstance(value, list) and value and all(isinstance(tool, dict) for tool in value):
            return value
    raise ValueError("no JSON tool list in the system text")


def _convert_toolace(row: dict, index: int) -> Iterator[dict | str]:
    tools = _embedded_tool_list(row["system"])
    turns = []
    for role, text in _dialogue_turns(row["conversations"], _TOOLACE_ROLES):
        is_call = role == "assistant" and text.strip().startswith("[") and text.strip().endswith("]")
        turns.append(("call" if is_call else role, text))
    yield from _dialogue_items(f"toolace-{row.get('id', index)}", tools, turns, parse_python_calls)


def has_keys(*keys: str) -> Callable[[dict], bool]:
    """A `Format.detect` for a layout told by its keys alone."""
    return lambda row: set(keys) <= row.keys()


def registry(*formats: Format) -> dict[str, Format]:
    """Formats by name, in the order `detect_format` tries them."""
    return {format.name: format for format in formats}


def _is_xlam(row: dict) -> bool:
    return has_keys("query", "answers", "tools")(row) and isinstance(row["query"], str)


def _is_toolrl(row: dict) -> bool:
    if has_keys("instruction", "input", "output")(row):
        return isinstance(row["instruction"], str) and bool(_TOOLRL_TOOL.search(row["instruction"]))
    return has_keys("prompt", "reward_model")(row)


_TURNS = [{"from": str, "value": str}]  # ShareGPT turns, as glaive and ToolACE write them

# The training-data formats; glaive before toolace (a glaive row may have a system text too).
FORMATS = registry(
    Format("toolexpander", _convert_toolexpander, has_keys(*REQUIRED_FIELDS)),  # `record_errors` checks it
    Format("xlam", _convert_xlam, _is_xlam, shape={"query": str, "answers": (str, list), "tools": (str, list)}),
    Format(
        "glaive",
        _convert_glaive,
        has_keys("conversations", "tools"),
        dialogue=True,
        shape={"conversations": _TURNS, "tools": (str, list)},
    ),
    Format(
        "toolace",
        _convert_toolace,
        has_keys("conversations", "system"),
        dialogue=True,
        shape={"conversations": _TURNS, "system": str},
    ),
    Format(
        "toolrl",
        _convert_toolrl,
        _is_toolrl,
        # Either layout: the SFT rows' three texts or the verl rows' prompt and gold text.
        shape={
            "instruction?": str,
            "input?": str,
            "output?": str,
            "prompt?": [{"content": str}],
            "reward_model?": {"ground_truth": str},
        },
    ),
)


# ----- reading sources ----------------------------------------------------------------------------

DATA_SUFFIXES = (".json", ".jsonl", ".parquet")


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a parquet file, a JSON array or a JSON Lines file (told apart by the first character).
    Raises UserError for a file that is none of them: not parquet, or not UTF-8 text."""
    if str(path).endswith(".parquet"):
        import pyarrow  # comes with datasets; only parquet needs it
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pyarrow.ArrowException, OSError) as error:  # ArrowInvalid: not parquet, or corrupt
            raise UserError(f"{path} is not a readable parquet file: {' '.join(str(error).split())}") from None
        return [(line, row, None) for line, row in enumerate(table.to_pylist(), 1)]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        text = None
    # JSON text never holds a raw NUL; UTF-16 without a byte-order mark decodes with many.
    if text is None or "\x00" in text:
        raise UserError(
            f"{path} is not UTF-8 text (a binary or UTF-16 file?); data files are JSON Lines, a JSON "
            "array or parquet (named .parquet)"
        )
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except (ValueError, RecursionError) as error:  # one document: one reason for the whole file
            return [(getattr(error, "lineno", 1), None, json_reason(error))]
        return [(line, row, None) for line, row in enumerate(rows, 1)]
    return list(jsonl_rows(text))


def _read_hub(dataset_id: str, split: str | None) -> list[Row]:
    import datasets  # heavy; only hub sources need it

    try:
        dataset = datasets.load_dataset(dataset_id, split=split or "train")
    except Exception as error:  # the hub client raises many types: offline, gated, unknown id
        raise UserError(f"cannot load {dataset_id!r} from the Hugging Face hub: {error}") from error
    return [(line, row, None) for line, row in enumerate(dataset, 1)]


def _looks_like_path(source: str) -> bool:
    """True for what cannot be a hub id (``owner/name`` or ``name``) and so must be a missing file."""
    return (
        source.endswith(DATA_SUFFIXES)
        or source.startswith((".", "/", "~"))
        or source.count("/") > 1
        or (os.sep != "/" and os.sep in source)
    )


def detect_format(row: Any, name: str = "", formats: dict[str, Format] = FORMATS) -> str | None:
    """The first of ``formats`` whose layout ``row`` (a source's first row) has, else one whose
    name is in the file name ``name`` (formats that need no file context only).

    >>> detect_format({"query": "q", "answers": "[]", "tools": "[]", "id": 0})
    'xlam'
    >>> detect_format({"text": "?"}, "data/glaive_toolcall_en_demo.json")
    'glaive'
    """
    if isinstance(row, dict):
        found = next((f.name for f in formats.values() if f.detect(row)), None)
        if found:
            return found
    file_name = os.path.basename(name).lower()
    return next((f.name for f in formats.values() if f.context is None and f.name in file_name), None)


# ----- the one convert-and-validate path -----------------------------------------------------------


def _row_problem(row: Any, format: Format) -> str | None:
    """Why ``row`` cannot go to ``format``'s converter, or None: checked before anything reads it."""
    if not isinstance(row, dict):
        return f"a record must be a JSON object, got {type(row).__name__}"
    if too_deep(row):
        return TOO_DEEP
    return "; ".join(shape_errors(row, format.shape)) or None


def _reason(error: Exception, format: Format) -> str:
    """What a converter raised, as a reason: its ValueErrors and TypeErrors are worded for the
    user (`Format.shape` keeps Python's own from arising); any other exception is a case no check
    foresaw, named as such rather than ending the file."""
    if isinstance(error, KeyError):
        return f"missing field {error}"
    if isinstance(error, RecursionError):  # from JSON text inside a field, nested past Python's limit
        return TOO_DEEP
    if isinstance(error, ValueError | TypeError):
        return str(error)
    return f"the {format.name} converter failed on this row ({type(error).__name__}: {error})"


def convert_rows(rows: list[Row], source: str, format: Format, context: dict | None = None) -> LoadResult:
    """Convert every row with ``format`` and check every record with `record_errors` (ids unique
    too): records, plus a `Problem` for each row or item that could not be used. Whatever one row
    holds, it costs that row only: every exception becomes its problem."""
    result, first_line = LoadResult(), {}
    for line, row, error in rows:
        error = error or _row_problem(row, format)
        if error is not None:
            result.problems.append(Problem(source, line, error))
            continue
        try:
            for item in format.convert(row, line - 1, **(context or {})):
                if isinstance(item, str):
                    result.problems.append(Problem(source, line, item))
                    continue
                # A field's JSON text may nest deeper than the row did.
                errors = [TOO_DEEP] if too_deep(item) else record_errors(item)
                if not errors and item["id"] in first_line:
                    errors = [f"duplicate id {shown(item['id'])}, first at line {first_line[item['id']]}"]
                if errors:
                    item_note = f" (item {item['id']})" if format.dialogue else ""
                    result.problems.append(Problem(source, line, "; ".join(errors) + item_note))
                    continue
                first_line[item["id"]] = line
                result.records.append(item)
        except Exception as error:  # noqa: BLE001 - one hostile row must not end the file
            result.problems.append(Problem(source, line, _reason(error, format)))
    return result


def load(source: str, format: str, formats: dict[str, Format], *, split: str | None = None) -> LoadResult:
    """Load ``source`` in ``format`` (a name in ``formats``, or ``auto``): see
    `toolexpander.tasks.load_records`, which passes every registered format."""
    if format != "auto" and format not in formats:
        raise UserError(f"unknown format {format!r}; choose one of auto, {', '.join(formats)}")
    if os.path.isdir(source):
        raise UserError(f"{source} is a folder; pass one data file")
    is_file = os.path.isfile(source)
    if not is_file and _looks_like_path(source):
        raise UserError(f"{source} does not exist")
    if not is_file and format != "auto" and formats[format].context is not None:
        raise UserError(f"the {format} format is read from local files only, and {source} is not one")
    rows = read_rows(source) if is_file else _read_hub(source, split)
    first = next((row for _, row, error in rows if error is None), None)
    if format == "auto":
        candidates = formats if is_file else {n: f for n, f in formats.items() if f.context is None}
        format = detect_format(first, source, candidates)
        if format is None and first is None:  # nothing parsed: report the broken lines, if any
            return LoadResult(problems=[Problem(source, line, error) for line, _, error in rows])
        if format is None:
            raise UserError(f"cannot tell the format of {source}; pass --format, one of {', '.join(formats)}")
    chosen = formats[format]
    # A family shares a name: ToolRL's API-Bank files are "toolrl" too; the first row tells which.
    chosen = next(
        (f for f in formats.values() if f.family == format and isinstance(first, dict) and f.detect(first)),
        chosen,
    )
    context = chosen.context(Path(source), first) if chosen.context is not None else None
    return convert_rows(rows, source, chosen, context)
