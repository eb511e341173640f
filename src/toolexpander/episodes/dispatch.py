"""The safe dispatcher: structured calls executed on a rollout's own simulator objects.

A call is ``{"name": str, "arguments": {...}}``, as our readers return it
(`toolexpander.rewards.parse_calls`); it is never text to evaluate. A `Dispatcher` holds the
objects of one rollout (fresh ones per rollout: their state is the episode's) and executes a
call only when

- its name is a public method of one of them: a plain function defined on the object's class or
  its bases (not ``object``), not starting with ``_``. Attributes of the object, properties,
  static and class methods, dunders (``__class__``) and private methods (``_load_scenario``)
  are unknown names; a dotted name (``os.system``) is one too. Where two classes share a method
  name the later object wins, as BFCL's name mapping does;
- its arguments are an object of JSON values (str, int, float, bool, None, lists, objects with
  string keys), nested at most `toolexpander.data.schema.MAX_DEPTH` levels and at most
  `MAX_ARGUMENT_CHARS` characters as JSON (`argument_problem`), and they bind as keywords to the
  method's parameters (Python's own binding: an unknown or missing parameter is the method's
  TypeError). The method gets a deep copy, so no state is shared with the caller's call list;
- the turn has made fewer than `MAX_CALLS_PER_TURN` calls (`Dispatcher.new_turn` starts a
  turn); later calls of the turn are not executed;
- a guard for the method, if one is given, has no objection (a task's own limits on values
  that would make its simulator compute for minutes).

The result of each call is a string (`result_text`, BFCL's rendering: a string as is, a dict as
JSON, anything else by ``str``). Every failure, ours or the method's, is an error result
``"Error during execution: <reason>"`` (BFCL's wording for a call that raised), never an
exception out of the dispatcher.

BFCL's cap is 20 *steps* (model replies) per turn, not calls; its ground truth makes up to 34
calls in one turn (``multi_turn_long_context_38``), so our cap on calls is 64.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from toolexpander.data.schema import TOO_DEEP, json_problem, too_deep

MAX_CALLS_PER_TURN = 64
MAX_ARGUMENT_CHARS = 100_000
ERROR = "Error during execution: "  # BFCL's prefix for a call that failed

# A guard: a call's arguments -> why the call is refused, or None to execute it.
Guard = Callable[[dict], str | None]


def public_functions(cls: type) -> dict[str, types.FunctionType]:
    """The public methods of ``cls``: every plain function defined on it or its bases (not
    ``object``) whose name does not start with ``_``, the nearest definition first.

    >>> class A:
    ...     def f(self): ...
    ...     def _g(self): ...
    ...     h = staticmethod(len)
    >>> list(public_functions(A))
    ['f']
    """
    found: dict[str, types.FunctionType] = {}
    for klass in cls.__mro__:
        if klass is object:
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and isinstance(value, types.FunctionType):
                found.setdefault(name, value)
    return found


def result_text(value: Any) -> str:
    """A method's return value as BFCL renders it: a string as is, a dict as JSON (``str`` when
    it is not JSON), anything else by ``str``.

    >>> result_text({"current_working_directory": "temp"})
    '{"current_working_directory": "temp"}'
    """
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            return str(value)
    return str(value)


def argument_problem(arguments: Any, max_chars: int = MAX_ARGUMENT_CHARS) -> str | None:
    """Why ``arguments`` cannot be passed to a method, or None when they can.

    >>> argument_problem({"folder": "temp"}) is None
    True
    >>> argument_problem({"n": {1, 2}})
    'arguments: a value of type set is not JSON'
    """
    if not isinstance(arguments, dict):
        return f"arguments must be an object, got {type(arguments).__name__}"
    if too_deep(arguments):
        return f"arguments {TOO_DEEP}"
    problem = json_problem(arguments)
    if problem:
        return f"arguments: {problem}"
    try:
        size = len(json.dumps(arguments))
    except ValueError as error:  # an integer too long to write
        return f"arguments: {error}"
    if size > max_chars:
        return f"arguments longer than {max_chars:,} characters as JSON"
    return None


class Dispatcher:
    """Executes structured calls on the public methods of one rollout's objects (see the module
    docstring); ``execute`` returns one result string per call and never raises."""

    def __init__(
        self,
        objects: Sequence[object],
        *,
        max_calls_per_turn: int = MAX_CALLS_PER_TURN,
        max_argument_chars: int = MAX_ARGUMENT_CHARS,
        guards: Mapping[str, Guard] | None = None,
    ) -> None:
        self.methods: dict[str, tuple[object, types.FunctionType]] = {}
        for obj in objects:  # later objects win a shared name, as in BFCL's mapping
            self.methods.update({name: (obj, f) for name, f in public_functions(type(obj)).items()})
        self.max_calls_per_turn = max_calls_per_turn
        self.max_argument_chars = max_argument_chars
        self.guards = dict(guards or {})
        self.calls_this_turn = 0

    def new_turn(self) -> None:
        """Start a turn: the cap on calls counts from here."""
        self.calls_this_turn = 0

    def execute(self, calls: Sequence[Any]) -> list[str]:
        """The result of each call, in order (executed one after another on the same objects)."""
        return [self.call(call) for call in calls]

    def call(self, call: Any) -> str:
        """The result of one call: what its method returned, or an error result."""
        self.calls_this_turn += 1
        if self.calls_this_turn > self.max_calls_per_turn:
            return f"{ERROR}more than {self.max_calls_per_turn} calls in one turn; this one was not executed"
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return f"{ERROR}a call must be an object with a string 'name'"
        name = call["name"]
        if name not in self.methods:
            return f"{ERROR}unknown function {name[:80]!r}"
        arguments = call.get("arguments", {})
        problem = argument_problem(arguments, self.max_argument_chars)
        if problem is None and name in self.guards:
            problem = self.guards[name](arguments)
        if problem is not None:
            return f"{ERROR}{problem}"
        obj, function = self.methods[name]
        try:
            return result_text(function(obj, **copy.deepcopy(arguments)))
        except Exception as error:  # noqa: BLE001 - whatever the method raises is this call's result
            return f"{ERROR}{error}"
