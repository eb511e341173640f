"""Canary: `toolexpander.trainer.trainer` overrides private methods of TRL's `GRPOTrainer`.

If TRL renames them or changes their signatures, our overrides would silently stop being
called (or break). This test fails first, loudly, naming what changed.
"""

import inspect
import re

import trl
from packaging.version import Version
from trl import GRPOTrainer

from toolexpander.trainer.loss import LOSS_TYPES
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
    "_generate_single_turn": [
        "prompt_ids",
        "images",
        "multimodal_fields",
        "num_generations",
        "has_tool_images",
    ],
    "training_step": ["model", "inputs", "num_items_in_batch"],
    "_prepare_inputs": ["generation_batch"],
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
        assert params[: len(expected)] == expected, (
            f"GRPOTrainer.{name}{params} changed (we rely on {expected})"
        )
        ours = list(inspect.signature(getattr(ToolExpanderTrainer, name)).parameters)[1:]
        assert ours[: len(expected)] == expected, f"our override of {name} drifted from TRL's signature"


def test_our_own_methods_shadow_nothing_of_trl():
    # A helper of ours named like a TRL method (TRL has `_generate`) would silently replace it.
    hooked = {"__init__", *HOOKED, *HOOKED_PREFIX}
    ours = {name for name, value in vars(ToolExpanderTrainer).items() if callable(value)}
    shadowed = {name for name in ours - hooked if hasattr(GRPOTrainer, name)}
    assert not shadowed, f"ToolExpanderTrainer methods shadow GRPOTrainer's: {sorted(shadowed)}"


def test_generate_is_called_on_the_unwrapped_model_with_left_padded_ids_and_mask():
    # `shared_prompt_generation` and the prefill/decode timing shadow `generate` on
    # `accelerator.unwrap_model(self.model_wrapped)` during `_generate_single_turn`: TRL must call it
    # there, on that object, with the left-padded ids and mask by keyword, on its transformers path only.
    from trl.models import utils as model_utils

    source = inspect.getsource(GRPOTrainer._generate_single_turn)
    assert source.count("unwrapped_model.generate(") == 1
    call = r"unwrapped_model\.generate\(\s*\*\*generate_inputs, generation_config=self\.generation_config\b"
    assert re.search(call, source)
    assert 'generate_inputs = {"input_ids": padded_ids, "attention_mask": attention_mask}' in source
    assert source.count('padding_side="left"') >= 2
    assert len(re.findall(r"unwrap_model_for_generation\(\s*self\.model_wrapped,", source)) == 2
    assert "if self.use_vllm:" in source and "elif self.use_transformers_continuous_batching:" in source
    unwrap = inspect.getsource(model_utils._unwrap_model_for_generation)
    assert "unwrapped_model = accelerator.unwrap_model(model)" in unwrap
    assert unwrap.count("yield") == 3 and "yield unwrapped_model" in unwrap
    assert "yield accelerator.unwrap_model(model)" in unwrap


def test_step_time_is_logged_once_per_optimizer_step_around_generation_and_loss():
    # `time/<part>_s` is flushed when TRL appends `step_time`, which must cover the whole training_step
    # (generation in `_prepare_inputs`, the loss, the backward), once per optimizer step.
    source = inspect.getsource(GRPOTrainer.training_step)
    assert "output = super().training_step(model, inputs, num_items_in_batch)" in source
    assert 'self._metrics["train"]["step_time"].append(self._current_train_step_time)' in source
    prepare = inspect.getsource(GRPOTrainer._prepare_inputs)
    assert "self._generate_and_score_completions(generation_batch)" in prepare


def test_the_loss_makes_one_forward_whose_log_probs_the_carry_over_term_reuses():
    # `compute_loss` reads the log-probs `_compute_loss` computed (handed over by our override of
    # `_get_per_token_logps_and_entropies`, `Handoff`): that needs exactly one such call, on the loss's inputs.
    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert source.count("self._get_per_token_logps_and_entropies(") == 1
    assert "per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(" in source
    # Rows with advantage 0 add nothing: true of every loss type, whose per-token loss is A times a weight.
    for loss_type in LOSS_TYPES:
        assert f'"{loss_type}"' in source


def test_a_generation_pass_scores_its_rollouts_once():
    # The pass's groups (ids, shots, rewards) are handed over by our `_calculate_rewards` (`Handoff`):
    # TRL's pass must call it exactly once, on every row of the pass.
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert source.count("self._calculate_rewards(") == 1
    assert "rewards_per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids_list)" in source


# `trainer.loss.aggregate` (our carry-over term) and `row_share` (rows with advantage 0 left out) copy
# these lines of `GRPOTrainer._compute_loss` (code only, comments dropped); tests/test_loss.py checks
# them numerically against it. A change here: update trainer/loss.py, then this list.
TRL_AGGREGATION = [
    'mode = "train" if self.model.training else "eval"',
    'if self.loss_type in ["grpo", "sapo"]:',
    "loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()",
    'normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0',
    "policy_loss = loss.detach()",
    "loss = loss / normalizer",
    'elif self.loss_type == "bnpo":',
    "loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)",
    'normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0',
    "policy_loss = loss.detach()",
    "loss = loss / normalizer",
    'elif self.loss_type == "dr_grpo":',
    "loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * self.max_completion_length)",
    'normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0',
    "policy_loss = loss.detach()",
    "loss = loss / normalizer",
    'elif self.loss_type in ["cispo", "dapo", "vespo"]:',
    'normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes',
    'if mode == "train":',
    "normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation",
    "loss = (per_token_loss * mask).sum() / normalizer",
    "policy_loss = loss.detach()",
    'elif self.loss_type == "luspo":',
    "loss = (per_token_loss * mask).sum(-1).mean()",
    'normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0',
    "policy_loss = loss.detach()",
    "loss = loss / normalizer",
    "else:",
    'raise ValueError(f"Unknown loss type: {self.loss_type}")',
]


def test_the_loss_aggregation_is_the_one_trainer_loss_reproduces():
    source = inspect.getsource(GRPOTrainer._compute_loss)
    block = source[source.index('mode = "train" if self.model.training') : source.index("# Entropy bonus")]
    code = [line.split("  #")[0].strip() for line in block.splitlines()]
    code = [line for line in code if line and not line.startswith("#")]
    assert code == TRL_AGGREGATION, (
        "GRPOTrainer._compute_loss aggregates the per-token loss differently: update "
        "toolexpander/trainer/loss.py (aggregate, row_share) to it, then TRL_AGGREGATION"
    )
    # The loss tokens: what `ToolExpanderTrainer._loss_mask` computes too.
    assert (
        'mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]'
        in source
    )
    # Every loss type TRL computes a per-token loss for is one `aggregate` knows, and no other.
    named = re.findall(r'self\.loss_type (?:==|in) (\[[^\]]*\]|"\w+")', source)
    assert set(re.findall(r"\w+", " ".join(named))) == set(LOSS_TYPES), named


def test_every_per_row_tensor_of_a_generation_batch_is_one_we_merge():
    # A second generation pass replaces rows (`replace_rows`); a per-row tensor it does not know
    # would keep the first pass's rows and silently mismatch the others.
    from toolexpander.trainer.trainer import _LEFT_PADDED, _RIGHT_PADDED

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    block = source[source.index("output = {") :]
    keys = set(re.findall(r'output\["(\w+)"\]', block)) | set(
        re.findall(r'^\s+"(\w+)": ', block, re.MULTILINE)
    )
    assert {
        "prompt_ids",
        "completion_mask",
        "advantages",
        "old_per_token_logps",
        "tool_mask",
    } <= keys  # parsed
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
    assert tail and all(params[name].default is None for name in tail), (
        f"new non-multimodal parameters: {tail}"
    )
    source = inspect.getsource(method)
    assert "labels[:, :-logits_to_keep] = -100" in source and "fused_lm_head=True" in source
    assert (
        "outputs.log_probs[:, -logits_to_keep:]" in source
        and "outputs.entropy[:, -logits_to_keep:]" in source
    )
    assert "input_ids = torch.cat([prompt_ids, completion_ids], dim=1)" in inspect.getsource(
        GRPOTrainer._compute_loss
    )
    generation = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "prompt_completion_ids = torch.cat([prompt_ids, completion_ids], dim=1)" in generation
    init = inspect.getsource(GRPOTrainer.__init__)
    assert "self.temperature = args.temperature" in init and 'outputs=("log_probs", "entropy")' in init
    fused = inspect.getsource(add_fused_lm_head)
    assert "shift_labels" in fused and "fused_lm_head" in fused
