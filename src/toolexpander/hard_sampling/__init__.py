"""Dynamic Multi-Round Hard Sampling: which items get demonstrations, how many, and which ones.

`policy` holds the per-item shot schedule and the exponential learning-rate factor;
`demo_bank` picks the demonstrations; `selection` picks the groups a step generates again (the
re-roll of groups found hard, DAPO's refill of zero-variance groups) and the rows that pass holds.
All are pure Python, testable without a model.
"""

from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.hard_sampling.policy import HardSampleTracker, ShotSchedule, exponential_lr_factor

__all__ = ["DemoBank", "HardSampleTracker", "ShotSchedule", "exponential_lr_factor"]
