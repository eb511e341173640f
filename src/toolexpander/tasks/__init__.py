"""One unit per benchmark: each task module owns its loading, the tools its prompt shows, the check
of one answer and the aggregation of its categories (nanochat's ``Task`` idea).

- `bfcl`: BFCL through the official checker; `bfcl_multi_turn`: BFCL's multi-turn categories,
  episodes run on its simulators and judged per turn as its checker does; `chat_episodes`:
  multi-turn chat logs with tool calls read into episodes; `apibank`: API-Bank by exact match;
- `suite`: the built-in synthetic suite (its tools in `suite_catalogue`);
- ``generic`` (`base.GENERIC`): our own data and the training formats, by Tool-N1's exact match.

A record names its task (``record["task"]``); `task_of` returns the `Task` that scores it.
`FORMATS` is the one registry of data formats (the training formats of
`toolexpander.data.formats` and the benchmarks' own), and `load_records` reads any of them.
"""

from __future__ import annotations

from toolexpander.data import formats
from toolexpander.data.schema import LoadResult, task_name
from toolexpander.errors import UserError
from toolexpander.tasks import apibank, bfcl, bfcl_multi_turn, chat_episodes, suite
from toolexpander.tasks.base import GENERIC, Task

TASKS: dict[str, Task] = {
    task.name: task
    for task in (GENERIC, suite.TASK, bfcl.TASK, bfcl_multi_turn.TASK, chat_episodes.TASK, apibank.TASK)
}
# In the order auto-detection tries them: the training formats first.
FORMATS: dict[str, formats.Format] = {
    **formats.FORMATS,
    **chat_episodes.FORMATS,
    bfcl.NAME: bfcl.FORMAT,
    bfcl_multi_turn.NAME: bfcl_multi_turn.FORMAT,
    **apibank.FORMATS,
}


def task_of(record: dict) -> Task:
    """The task that scores ``record``, by its ``task`` name."""
    name = task_name(record)
    if name not in TASKS:
        raise UserError(f"record {record.get('id')!r} names the unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def load_records(source: str, format: str = "auto", *, split: str | None = None) -> LoadResult:
    """Load ``source`` (a local file: JSON Lines, a JSON array or parquet; or a hub dataset id,
    read with ``split``, default "train") as records plus the problems of every input that could
    not be used.

    ``format`` is a name in `FORMATS`, or ``auto``: the first format whose layout the first row
    has, else a format name inside ``source``. A source that is not an existing file is a hub
    dataset id unless it looks like a path (a data-file suffix, a leading ``.``, ``/`` or ``~``,
    or more than one ``/``); benchmark formats read local files only. Raises UserError for an
    unknown format, a path that does not exist, a file that is not data (binary, UTF-16, a
    corrupt parquet), or a source whose format cannot be told; never for one record, whatever it
    holds: that is one of the problems.
    """
    return formats.load(source, format, FORMATS, split=split)


__all__ = ["FORMATS", "TASKS", "Task", "load_records", "task_of"]
