"""Where a training step's time goes: seconds per part, each part counting only its own time.

Parts nest as the calls do (the log-prob forward runs inside TRL's loss, which runs inside ours):
a part's seconds exclude those of the parts opened inside it, so the parts of a step add up to the
step's wall time. Nothing is counted outside an open step (evaluation, saving). ``sync`` (e.g.
``torch.cuda.synchronize``) runs at every boundary so that asynchronous device work is charged to
the part that queued it; on CPU there is none to wait for.

>>> ticks = iter(range(10))  # a clock that reads 0, 1, 2, ... seconds
>>> clock = StepClock(("backward", "decode", "prefill"), now=lambda: float(next(ticks)))
>>> with clock.part("decode"):  # no step open: not counted
...     pass
>>> with clock.step("backward"):  # opens at 0
...     with clock.part("decode"):  # 1 to 2
...         clock.charge("prefill", 0.25)  # of which 0.25 s were measured as prefill
>>> clock.flush()  # the step closed at 3: 3 seconds in all
{'backward': 2.0, 'decode': 0.75, 'prefill': 0.25}
>>> clock.flush()
{'backward': 0.0, 'decode': 0.0, 'prefill': 0.0}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

__all__ = ["StepClock"]


class StepClock:
    """Seconds per part of the steps since the last `flush`; ``parts`` are the names `flush` reports
    (0.0 for a part that did not run), in that order."""

    def __init__(
        self,
        parts: tuple[str, ...],
        sync: Callable[[], None] | None = None,
        now: Callable[[], float] = time.perf_counter,
    ):
        self.parts = parts
        self.sync = sync
        self._clock = now
        self._totals = dict.fromkeys(parts, 0.0)
        self._open: list[list] = []  # [name, start, seconds of the parts inside it]

    def step(self, part: str) -> AbstractContextManager[None]:
        """A training step; its own time (what no part inside it claims) goes to ``part``. Inside an
        open step it is a part of that one."""
        return self._measured(part)

    def part(self, name: str) -> AbstractContextManager[None]:
        """A part of the open step (none open: nothing is counted)."""
        self._check(name)
        return self._measured(name) if self._open else nullcontext()

    def charge(self, name: str, seconds: float) -> None:
        """Move ``seconds`` of the innermost open part to ``name`` (a split measured inside it)."""
        self._check(name)
        if self._open:
            self._totals[name] += seconds
            self._open[-1][2] += seconds

    def flush(self) -> dict[str, float]:
        """Seconds per part since the last flush; starts counting afresh."""
        totals, self._totals = self._totals, dict.fromkeys(self.parts, 0.0)
        return totals

    @contextmanager
    def _measured(self, name: str) -> Iterator[None]:
        self._check(name)
        self._open.append([name, self._now(), 0.0])
        try:
            yield
        finally:
            self._close()

    def _check(self, name: str) -> None:
        if name not in self._totals:
            raise KeyError(f"{name!r} is not one of the parts {self.parts}")

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return self._clock()

    def _close(self) -> None:
        name, start, inner = self._open.pop()
        elapsed = self._now() - start
        self._totals[name] += elapsed - inner
        if self._open:
            self._open[-1][2] += elapsed
