"""Canary: `toolexpander.trainer.trainer` overrides private methods of TRL's `GRPOTrainer`.

If TRL renames them or changes their signatures, our overrides would silently stop being
called (or break). This test fails first, loudly, naming what changed.
"""

import inspect

import trl
from packaging.version import Version
from trl import GRPOTrainer

from toolexpander.trainer.trainer import ToolExpanderTrainer

# method -> parameter names (after self) our override relies on
HOOKED = {
    "_generate_and_score_completions": ["inputs"],
    "_calculate_rewards": ["inputs", "prompts", "completions", "completion_ids_list"],
    "_save_checkpoint": ["model", "trial"],
    "_load_optimizer_and_scheduler": ["checkpoint"],
    "create_scheduler": ["num_training_steps", "optimizer"],
    "log": ["logs", "start_time"],
    "_get_train_sampler": ["dataset"],
}


def test_trl_version_is_in_the_pinned_range():
    assert Version("1.16") <= Version(trl.__version__) < Version("1.17"), (
        f"TRL {trl.__version__} is outside the range toolexpander's TRL hooks were written for (1.16.x)"
    )


def test_hooked_private_methods_keep_their_signatures():
    for name, expected in HOOKED.items():
        method = getattr(GRPOTrainer, name, None)
        assert method is not None, (
            f"GRPOTrainer.{name} no longer exists: update toolexpander/trainer/trainer.py"
        )
        params = list(inspect.signature(method).parameters)[1:]
        assert params == expected, f"GRPOTrainer.{name}{params} changed (we rely on {expected})"
        ours = list(inspect.signature(getattr(ToolExpanderTrainer, name)).parameters)[1:]
        assert ours == expected, f"our override of {name} drifted from TRL's signature"


def test_generation_batch_still_carries_the_tensors_we_merge():
    # `replace_rows` merges these keys of the dict `_generate_and_score_completions` returns.
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for key in (
        "prompt_ids",
        "prompt_mask",
        "completion_ids",
        "completion_mask",
        "advantages",
        "num_items_in_batch",
    ):
        assert f'"{key}"' in source, f"GRPOTrainer no longer returns {key!r} from generation"
    assert "rewards_per_func = gather(rewards_per_func)" in inspect.getsource(
        GRPOTrainer._calculate_rewards
    ), "_calculate_rewards no longer gathers rewards across processes: hardness would be judged per shard"
