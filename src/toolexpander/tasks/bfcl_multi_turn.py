"""BFCL's multi-turn categories (SPEC §10): records, the simulators an episode runs on, and the
verdict of BFCL's ``multi_turn_checker`` reproduced turn by turn on structured calls.

Loading (`load_multi_turn`, the ``bfcl_multi_turn`` format): one question file
``BFCL_v4_multi_turn_<kind>.json`` (JSON Lines), its ground truth in the sibling
``possible_answer/<same name>`` (matched by ``id``) and the function docs of each simulator class
in the sibling ``multi_turn_func_doc/`` folder, as in the ``bfcl-eval`` wheel. BFCL-style training
items may hold their own ``ground_truth`` instead (told by the first item): then no
``possible_answer`` file is read, the docs come from the installed wheel when no sibling folder
has them, and a file whose name and ids name no category is loaded as ``multi_turn_base``. A
record has

- ``turns``: the messages of each user turn, as BFCL has them. A miss_func item has one turn
  with no message: the turn where its held-out functions are offered (BFCL's runner then says
  "I have updated some more functions you can choose from. What about now?");
- ``messages``: the first turn's messages (what a single-turn reader of the record sees);
- ``tools``: the function docs offered from the start: those of the ``involved_classes`` in
  their order, BFCL's types kept (``dict``, ``float``), less the held-out ones;
  ``added_tools``: per turn, the docs offered from that turn on (miss_func only);
- ``involved_classes`` and ``initial_config`` (each class's scenario) as BFCL has them;
- ``ground_truth``: per turn, BFCL's call strings read into calls ``{"name", "arguments"}``
  (keyword arguments only: a positional argument gets the name of the method's parameter at its
  place, from the simulator's signature; values read by `ast.literal_eval`, nothing evaluated);
- ``answer`` None (scored per turn, not by one reply), ``category``, ``task``
  ``bfcl_multi_turn``.

An item whose ground truth cannot be read, or that names an unknown class or function, is a
problem, not a record (`toolexpander.data.formats.convert_rows`).

Episodes (`Episode`, `start_simulators`): every rollout, and the ground truth, runs on its own
fresh instances of the simulator classes of ``bfcl_eval/eval_checker/multi_turn_eval/
func_source_code/`` (``_load_scenario`` with a deep copy of the class's ``initial_config`` and
``long_context`` for the long_context category, as the official checker starts them; MathAPI,
stateless, is not loaded). Calls go through `toolexpander.episodes.Dispatcher` (public methods,
JSON arguments, caps), with `GUARDS` refusing the few arguments that would make MathAPI compute
for minutes (an integer power of more than a million bits, a precision above 1,000 digits).

The verdict (`check_episode`), turn by turn as BFCL's ``multi_turn_checker``: the model's calls of
the turn are executed, then the ground truth's on its own instances. A turn whose ground truth
makes no call is not checked (miss_func and miss_param turns where the model cannot act; the
model's calls are still executed). Otherwise the turn fails when the model made no call
(``multi_turn:empty_turn_model_response``), when a public attribute (not starting with ``_``)
of a ground-truth instance differs (``!=``) from the model's instance of the same class
(``multi_turn:instance_state_mismatch``), or when the ground truth's results of this turn are not
a sub-multiset of the model's results of all turns so far (``multi_turn:execution_response_
mismatch``). An episode with another number of turns than the ground truth fails
(``multi_turn:force_terminated``). The episode is valid iff every turn passes. Ours, beyond
BFCL: a turn of more than `MAX_CALLS_PER_TURN` calls fails (``multi_turn:too_many_calls``; BFCL
force-quits after 20 model replies in a turn, which is the same when each reply makes one call).

Accuracy: per category, and ``multi_turn``, the unweighted mean of the four, as BFCL's
leaderboard. BFCL v4's overall also needs the single-turn and agentic categories, so it is not
given here.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import inspect
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from toolexpander.data import formats
from toolexpander.data.schema import LoadResult, make_record, shown
from toolexpander.episodes.dispatch import MAX_CALLS_PER_TURN, Dispatcher
from toolexpander.errors import UserError
from toolexpander.tasks import bfcl
from toolexpander.tasks.base import CORRECT, Task, Verdict

NAME = "bfcl_multi_turn"
CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
# The simulator classes of the multi-turn categories (BFCL's backend also maps web search and memory).
SIMULATORS = (
    "GorillaFileSystem",
    "MathAPI",
    "MessageAPI",
    "TwitterAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "VehicleControlAPI",
)
FUNC_DOC_DIR = "multi_turn_func_doc"
# BFCL's inference protocol (its ``inference_multi_turn_FC``): the user message of a miss_func turn
# that offers the held-out functions, and the most steps with calls in one turn before the episode
# is force-quit (``MAXIMUM_STEP_LIMIT``).
ADDED_FUNCTIONS_MESSAGE = "I have updated some more functions you can choose from. What about now?"
MAX_STEPS_PER_TURN = 20
V4_OVERALL_NOTE = (
    "BFCL v4 overall left out: it also needs the non-live, live, irrelevance and agentic "
    "(web_search, memory) categories; agentic ones are not scored by toolexpander"
)


# ------------------------------------------------------------------------------------ simulators


class Backend(NamedTuple):
    """What we use of BFCL's executable backend."""

    classes: dict[str, type]  # class name -> simulator class
    doc_files: dict[str, str]  # class name -> its function-doc file in multi_turn_func_doc/
    stateless: frozenset[str]  # classes started without a scenario


@functools.cache
def backend() -> Backend:
    """Import the simulator classes once (after `toolexpander.tasks.bfcl`'s import set-up)."""
    bfcl.prepare_import()
    try:
        from bfcl_eval.constants import executable_backend_config as config

        classes = {
            name: getattr(importlib.import_module(config.CLASS_FILE_PATH_MAPPING[name]), name)
            for name in SIMULATORS
        }
    except ImportError as error:  # the wheel, or mpmath (MathAPI's one dependency), is missing
        raise UserError(f"{bfcl.INSTALL_HINT} ({error})") from error
    doc_files = {name: config.MULTI_TURN_FUNC_DOC_FILE_MAPPING[name] for name in SIMULATORS}
    return Backend(classes, doc_files, frozenset(config.STATELESS_CLASSES))


def start_simulators(record: dict) -> dict[str, object]:
    """Fresh instances of the record's ``involved_classes``, in their order, each started from a
    deep copy of its ``initial_config`` as BFCL's checker starts them."""
    found = backend()
    long_context = "long_context" in record["category"]
    instances = {}
    for name in record["involved_classes"]:
        instance = found.classes[name]()
        if name not in found.stateless:
            config = copy.deepcopy(record["initial_config"].get(name, {}))
            instance._load_scenario(config, long_context=long_context)
        instances[name] = instance
    return instances


def method_parameters(class_names: Sequence[str]) -> dict[str, list[str]]:
    """Method name -> its parameter names in order (``self`` left out), over ``class_names``."""
    classes = backend().classes
    return {
        name: list(inspect.signature(function).parameters)[1:]
        for class_name in class_names
        for name, function in vars(classes[class_name]).items()
        if inspect.isfunction(function) and not name.startswith("_")
    }


MAX_POWER_BITS = 1_000_000
MAX_PRECISION = 1_000


def _power_guard(arguments: dict) -> str | None:
    base, exponent = arguments.get("base"), arguments.get("exponent")
    exact = type(base) is int and type(exponent) is int and base not in (-1, 0, 1)  # bool is not int here
    if exact and exponent * abs(base).bit_length() > MAX_POWER_BITS:
        return f"the result would have more than {MAX_POWER_BITS:,} bits; not computed"
    return None


def _precision_guard(arguments: dict) -> str | None:
    precision = arguments.get("precision")
    if isinstance(precision, int | float) and precision > MAX_PRECISION:
        return f"precision above {MAX_PRECISION:,} digits; not computed"
    return None


# MathAPI methods whose arguments could keep a rollout busy for minutes (10**10_000_000: 8 s).
GUARDS = {"power": _power_guard, "logarithm": _precision_guard, "square_root": _precision_guard}


def simulator_dispatcher(
    instances: dict[str, object], *, max_calls_per_turn: int = MAX_CALLS_PER_TURN
) -> Dispatcher:
    """The dispatcher of one rollout's simulator ``instances`` (`start_simulators`), with `GUARDS`."""
    return Dispatcher(list(instances.values()), max_calls_per_turn=max_calls_per_turn, guards=GUARDS)


# ------------------------------------------------------------------------------------- loading


def read_call(text: str, parameters: dict[str, list[str]]) -> dict:
    """One BFCL ground-truth call string as ``{"name", "arguments"}``; ValueError when it is not
    one call of a known function with literal arguments.

    >>> read_call("sort('final_report.pdf')", {"sort": ["file_name"]})
    {'name': 'sort', 'arguments': {'file_name': 'final_report.pdf'}}
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ValueError(f"ground-truth call {shown(text)} is not a call") from None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(f"ground-truth call {shown(text)} is not a call")  # noqa: TRY004 - a problem's reason
    name = node.func.id
    if name not in parameters:
        raise ValueError(f"ground-truth call {shown(text)} names no method of the involved classes")
    if len(node.args) > len(parameters[name]) or any(k.arg is None for k in node.keywords):
        raise ValueError(f"ground-truth call {shown(text)} does not fit the method's parameters")
    named = [*zip(parameters[name], node.args), *((k.arg, k.value) for k in node.keywords)]
    arguments = {}
    for parameter, value in named:
        if parameter in arguments:
            raise ValueError(f"ground-truth call {shown(text)} gives {parameter!r} twice")
        try:
            arguments[parameter] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"ground-truth call {shown(text)}: {parameter!r} is not a literal") from None
    return {"name": name, "arguments": arguments}


def _context(path: Path, first: Any) -> dict:
    """The category of a question file, its ground truth by id (None: each item holds its own),
    and the function docs by class."""
    first_id = first.get("id") if isinstance(first, dict) else None
    category = bfcl.bfcl_category(path, first_id if isinstance(first_id, str) else None)
    inline = isinstance(first, dict) and "ground_truth" in first
    if inline and category not in CATEGORIES:
        category = "multi_turn_base"  # training items of ours: loaded as BFCL loads its base category
    if category not in CATEGORIES:
        raise UserError(f"{path}: {category!r} is not a BFCL multi-turn category ({', '.join(CATEGORIES)})")
    answer_path = path.parent / "possible_answer" / path.name
    truths = None
    if not inline and not answer_path.is_file():
        raise UserError(f"BFCL ground truth {answer_path} does not exist (needed for {path.name})")
    if not inline:
        truths = {
            row["id"]: row["ground_truth"]
            for _, row, _ in formats.read_rows(answer_path)
            if isinstance(row, dict) and isinstance(row.get("id"), str)
        }
    doc_dir = path.parent / FUNC_DOC_DIR
    if inline and not doc_dir.is_dir():
        doc_dir = bfcl.default_data_dir() / FUNC_DOC_DIR  # the installed wheel's
    docs = {}
    for class_name, file_name in backend().doc_files.items():
        doc_path = doc_dir / file_name
        if not doc_path.is_file():
            raise UserError(f"BFCL function docs {doc_path} do not exist (needed for {path.name})")
        docs[class_name] = [row for _, row, _ in formats.read_rows(doc_path) if isinstance(row, dict)]
    return {"truths": truths, "docs": docs, "category": category}


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(text, str) for text in value)


def _convert(
    entry: dict, index: int, *, truths: dict | None, docs: dict[str, list[dict]], category: str
) -> Iterator[dict]:
    classes = entry["involved_classes"]
    unknown = [name for name in classes if name not in docs]
    if unknown:
        raise ValueError(f"unknown simulator class {shown(unknown[0])}; known: {', '.join(SIMULATORS)}")
    if truths is not None and entry["id"] not in truths:
        raise ValueError(f"no ground truth for id {shown(entry['id'])} in possible_answer")
    turns = [[{"role": m["role"], "content": m["content"]} for m in turn] for turn in entry["question"]]
    if not turns:
        raise ValueError("the item has no turn")
    truth = entry.get("ground_truth") if truths is None else truths[entry["id"]]
    if not (isinstance(truth, list) and len(truth) == len(turns) and all(map(_is_strings, truth))):
        raise ValueError(
            f"the ground truth of {shown(entry['id'])} has not one list of call strings per turn"
        )
    tools = [doc for name in classes for doc in docs[name]]
    added_tools: list[list[dict]] = [[] for _ in turns]
    for turn, names in (entry.get("missed_function") or {}).items():
        if not (turn.isdigit() and int(turn) < len(turns)):
            raise ValueError(f"missed_function names turn {shown(turn)}, which the item does not have")
        if not _is_strings(names):
            raise ValueError(f"missed_function of turn {shown(turn)} must be a list of function names")
        added_tools[int(turn)] = [doc for doc in tools if doc["name"] in names]
        tools = [doc for doc in tools if doc["name"] not in names]
    parameters = method_parameters(classes)
    ground_truth = [[read_call(text, parameters) for text in calls] for calls in truth]
    record = make_record(
        entry["id"],
        turns[0],
        tools,
        None,
        task=NAME,
        category=category,
        turns=turns,
        added_tools=added_tools,
        involved_classes=classes,
        initial_config=entry["initial_config"],
        ground_truth=ground_truth,
    )
    try:  # once here, so that an episode never meets a scenario its simulators cannot load
        start_simulators(record)
    except Exception as error:  # noqa: BLE001 - whatever _load_scenario raises on a broken config
        raise ValueError(
            f"initial_config does not start the simulators ({type(error).__name__}: {str(error)[:80]})"
        ) from None
    yield record


FORMAT = formats.Format(
    NAME,
    _convert,
    formats.has_keys("id", "question", "initial_config", "involved_classes"),
    context=_context,
    shape={
        "id": str,
        "question": [[{"role": str, "content": str}]],
        "initial_config": dict,
        "involved_classes": [str],
        "missed_function?": {},
        "ground_truth?": [[str]],
    },
)


def load_multi_turn(path: str | Path) -> LoadResult:
    """Load one BFCL multi-turn question file with its ground truth and function docs."""
    return formats.load(str(path), NAME, {NAME: FORMAT})


def load_categories(data_dir: str | Path, categories: Sequence[str] = CATEGORIES) -> dict[str, LoadResult]:
    """``BFCL_v4_<category>.json`` of each multi-turn category under ``data_dir``."""
    return bfcl.load_categories(data_dir, categories, load=load_multi_turn)


# ------------------------------------------------------------------------------------- episodes


def _failure(error_type: str, message: str) -> Verdict:
    return {"valid": False, "error_type": error_type, "error": [message]}


class Episode:
    """One rollout of a multi-turn record, turn by turn: the model's calls run on its own
    simulators (`execute`, as often as the turn has replies), and `end_turn` runs the ground
    truth's calls of the turn on the ground truth's simulators and gives the turn's verdict."""

    def __init__(self, record: dict, *, max_calls_per_turn: int = MAX_CALLS_PER_TURN) -> None:
        self.record = record
        self.model = start_simulators(record)
        self.truth = start_simulators(record)
        self.dispatcher = simulator_dispatcher(self.model, max_calls_per_turn=max_calls_per_turn)
        self._truth_dispatcher = simulator_dispatcher(self.truth, max_calls_per_turn=max_calls_per_turn)
        self.turn = 0
        self.results: list[str] = []  # of every model call so far, all turns

    def execute(self, calls: Sequence[Any]) -> list[str]:
        """Run calls of the model in the current turn; their results (the tool messages), in order."""
        results = self.dispatcher.execute(calls)
        self.results += results
        return results

    def end_turn(self) -> Verdict:
        """Close the current turn and judge it (see the module docstring); once per turn of the record."""
        index, made = self.turn, self.dispatcher.calls_this_turn
        truth_calls = self.record["ground_truth"][index]
        truth_results = self._truth_dispatcher.execute(truth_calls)
        self.turn += 1
        self.dispatcher.new_turn()
        self._truth_dispatcher.new_turn()
        if made > self.dispatcher.max_calls_per_turn:
            return _failure(
                "multi_turn:too_many_calls",
                f"{made} calls in turn {index}, more than {self.dispatcher.max_calls_per_turn}",
            )
        if not truth_calls:
            return CORRECT
        if made == 0:
            return _failure(
                "multi_turn:empty_turn_model_response", f"Model response list is empty for turn {index}"
            )
        for class_name, truth in self.truth.items():
            differences = state_differences(self.model[class_name], truth)
            if differences:
                return _failure(
                    "multi_turn:instance_state_mismatch",
                    f"Model instance for {class_name} does not match the state with ground truth instance "
                    f"in turn {index}: {', '.join(differences)}",
                )
        missing = Counter(truth_results) - Counter(self.results)
        if missing:
            return _failure(
                "multi_turn:execution_response_mismatch",
                f"Model response execution results so far does not contain all the ground truth response "
                f"execution results for turn {index}: missing {[text[:200] for text in sorted(missing)[:3]]}",
            )
        return CORRECT


_ABSENT = object()


def state_differences(model: object, truth: object) -> list[str]:
    """The public attributes of ``truth`` whose value on ``model`` differs (BFCL's state check)."""
    return [
        name
        for name, value in vars(truth).items()
        if not name.startswith("_") and getattr(model, name, _ABSENT) != value
    ]


def is_turn_list(turns: Any) -> bool:
    """Whether ``turns`` is a list of call lists (one per turn); the calls themselves may be anything."""
    return isinstance(turns, list) and all(isinstance(calls, list) for calls in turns)


def check_episode(record: dict, turns: list[list[dict]] | None) -> Verdict:
    """BFCL's verdict on the calls the model made in each turn (in execution order), with
    ``turns_valid``: each turn's verdict (all False when the turns could not be run)."""
    truth = record["ground_truth"]
    if not is_turn_list(turns):
        verdict = _failure("multi_turn:decoder_failed", "the prediction is not a list of call lists")
        return {**verdict, "turns_valid": [False] * len(truth)}
    if len(turns) != len(truth):
        verdict = _failure(
            "multi_turn:force_terminated",
            f"The length of the model result turns ({len(turns)}) does not match the length of the "
            f"ground truth turns ({len(truth)})",
        )
        return {**verdict, "turns_valid": [False] * len(truth)}
    episode = Episode(record)
    verdicts = []
    for calls in turns:
        episode.execute(calls)
        verdicts.append(episode.end_turn())
    first_failure = next((verdict for verdict in verdicts if not verdict["valid"]), CORRECT)
    return {**first_failure, "turns_valid": [verdict["valid"] for verdict in verdicts]}


# ------------------------------------------------------------------------------------- scoring


def aggregates(categories: dict[str, dict]) -> tuple[dict[str, float], list[str]]:
    """``multi_turn``: the unweighted mean of the four categories' accuracies (BFCL's
    leaderboard), left out with a note when one was not run."""
    summary, notes = {}, []
    missing = [c for c in CATEGORIES if c not in categories]
    if missing:
        notes.append(f"multi_turn left out: not run: {', '.join(missing)}")
    else:
        summary["multi_turn"] = math.fsum(categories[c]["accuracy"] for c in CATEGORIES) / len(CATEGORIES)
    return summary, [*notes, V4_OVERALL_NOTE]


TASK = Task(NAME, check_episode, prompt_tools=bfcl.prompt_tools, aggregate=aggregates, multi_turn=True)
