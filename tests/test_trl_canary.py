"""Canary: `toolexpander.trainer.trainer` overrides private methods of TRL's `GRPOTrainer`.

If TRL renames them or changes their signatures, our overrides would silently stop being
called (or break). This test fails first, loudly, naming what changed.
"""

import inspect
import re

import trl
from packaging.version import Version
from trl import GRPOTrainer

from toolexpander.trainer.trainer import ToolExpanderTrainer

# method -> parameter names (after self) our override relies on
HOOKED = {
    "_generate_and_score_completions": ["inputs"],
    "_calculate_rewards": ["inputs", "prompts", "completions", "completion_ids_list"],
    "_save_checkpoint": ["model", "trial"],
    "_save": ["output_dir", "state_dict"],
    "_load_optimizer_and_scheduler": ["checkpoint"],
    "create_scheduler": ["num_training_steps", "optimizer"],
    "_get_train_sampler": ["dataset"],
    "compute_loss": ["model", "inputs", "return_outputs", "num_items_in_batch"],
    "_compute_loss": ["model", "inputs"],
    "_tokenize_prompts": ["prompts"],
}
# Overridden with a catch-all tail (*args, **kwargs): only the leading parameters are pinned.
HOOKED_PREFIX = {
    "_get_per_token_logps_and_entropies": [
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
    ],
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
    for name, expected in HOOKED_PREFIX.items():
        params = list(inspect.signature(getattr(GRPOTrainer, name)).parameters)[1:]
        assert params[: len(expected)] == expected, f"GRPOTrainer.{name}{params} changed (we rely on {expected})"
        ours = list(inspect.signature(getattr(ToolExpanderTrainer, name)).parameters)[1:]
        assert ours[: len(expected)] == expected, f"our override of {name} drifted from TRL's signature"


def test_the_loss_makes_one_forward_whose_log_probs_the_carry_over_term_reuses():
    # `compute_loss` reads the log-probs `_compute_loss` computed (captured by our override of
    # `_get_per_token_logps_and_entropies`): that needs exactly one such call, on the loss's inputs.
    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert source.count("self._get_per_token_logps_and_entropies(") == 1
    assert "per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(" in source
    # Rows with advantage 0 add nothing: true of every loss type whose per-token loss is A times a weight.
    for loss_type in ("grpo", "dapo", "bnpo", "dr_grpo"):
        assert f'"{loss_type}"' in source


def test_every_per_row_tensor_of_a_generation_batch_is_one_we_merge():
    # A second generation pass replaces rows (`replace_rows`); a per-row tensor it does not know
    # would keep the first pass's rows and silently mismatch the others.
    from toolexpander.trainer.trainer import _LEFT_PADDED, _RIGHT_PADDED

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    block = source[source.index("output = {") :]
    keys = set(re.findall(r'output\["(\w+)"\]', block)) | set(re.findall(r'^\s+"(\w+)": ', block, re.MULTILINE))
    assert {"prompt_ids", "completion_mask", "advantages", "old_per_token_logps", "tool_mask"} <= keys  # parsed
    merged = {*_LEFT_PADDED, *_RIGHT_PADDED, "advantages", "num_items_in_batch"}
    # Vision inputs: text-only tool calling never sets them (the trainer takes no images).
    vision = {"pixel_values", "image_grid_thw", "pixel_attention_mask", "spatial_shapes", "image_sizes"}
    vision |= {"token_type_ids", "mm_token_type_ids", "image_position_ids", "num_images", "num_tiles"}
    assert keys - merged - vision == set(), f"GRPOTrainer returns new per-row keys {keys - merged - vision}"


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


def test_the_log_prob_passes_are_what_the_shared_prompt_splits_and_scores_alike():
    # `shared_prompt_loss`: our override splits TRL's input back into [prompt | completion] at
    # `logits_to_keep`, treats every parameter after `compute_aux_loss` as a multimodal input (None for
    # text), and scores with the fused LM head TRL patches onto the policy, as TRL does.
    from trl.trainer.utils import add_fused_lm_head

    method = GRPOTrainer._get_per_token_logps_and_entropies
    params = inspect.signature(method).parameters
    tail = list(params)[list(params).index("compute_aux_loss") + 1 :]
    assert tail and all(params[name].default is None for name in tail), f"new non-multimodal parameters: {tail}"
    source = inspect.getsource(method)
    assert "labels[:, :-logits_to_keep] = -100" in source and "fused_lm_head=True" in source
    assert "outputs.log_probs[:, -logits_to_keep:]" in source and "outputs.entropy[:, -logits_to_keep:]" in source
    assert "input_ids = torch.cat([prompt_ids, completion_ids], dim=1)" in inspect.getsource(GRPOTrainer._compute_loss)
    generation = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "prompt_completion_ids = torch.cat([prompt_ids, completion_ids], dim=1)" in generation
    init = inspect.getsource(GRPOTrainer.__init__)
    assert "self.temperature = args.temperature" in init and 'outputs=("log_probs", "entropy")' in init
    fused = inspect.getsource(add_fused_lm_head)
    assert "shift_labels" in fused and "fused_lm_head" in fused
