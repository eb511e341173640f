"""Where a step's time goes: `StepClock` (its doctest has the arithmetic) and the real trainer's
``time/<part>_s`` metrics after a step on a tiny model (no timing is asserted, only what is logged)."""

from __future__ import annotations

import json

import pytest

from tests.scripted_rewards import every_other_correct
from tests.test_shared_prompt import build_trainer
from toolexpander.trainer.step_clock import StepClock
from toolexpander.trainer.trainer import METRICS_FILE, STEP_PARTS


def test_parts_outside_a_step_and_unknown_parts():
    clock = StepClock(("step", "part"))
    with clock.part("part"):  # no step open: nothing counted
        clock.charge("part", 5.0)
    assert clock.flush() == {"step": 0.0, "part": 0.0}
    for misnamed in (lambda: clock.part("unknown"), lambda: clock.step("unknown")):
        with pytest.raises(KeyError, match="unknown"), misnamed():
            pass
    with pytest.raises(KeyError, match="unknown"):
        clock.charge("unknown", 1.0)


def test_a_nested_step_is_a_part_of_the_open_one():
    ticks = iter(range(10))
    clock = StepClock(("outer", "inner"), now=lambda: float(next(ticks)))
    with clock.step("outer"), clock.step("inner"):  # 0 / 1 .. 2 / 3
        pass
    assert clock.flush() == {"outer": 2.0, "inner": 1.0}


@pytest.mark.parametrize("shared", [True, False])
def test_a_step_logs_where_its_time_goes(tmp_path, tiny_model_dir, monkeypatch, shared):
    trainer = build_trainer(
        tmp_path,
        tiny_model_dir,
        monkeypatch,
        every_other_correct,
        shared_prompt_generation=shared,
        shared_prompt_loss=shared,
        learning_rate=1e-4,
    )
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    (row,) = [row for row in rows if "step_time" in row]  # the step's; the last row is the run summary
    parts = {part: row[f"time/{part}_s"] for part in STEP_PARTS}
    assert all(seconds >= 0.0 for seconds in parts.values()), parts
    # Every part ran in this step (the clock's resolution is far below a forward of the model).
    assert all(seconds > 0.0 for seconds in parts.values()), parts
    # The parts split the step: together they are TRL's step_time, up to the few lines around it.
    assert sum(parts.values()) == pytest.approx(row["step_time"], rel=0.05, abs=0.05)
