"""`trainer.loss`: our aggregation of a per-token loss equals TRL's own, for every loss_type TRL has.

TRL's side is `GRPOTrainer._compute_loss` itself, on a real (tiny) trainer whose log-prob forward is
replaced by known tensors. The per-token loss is then controlled exactly: advantages 0 make every
loss type's policy term 0, and ``beta=1`` leaves the per-token KL term
``exp(ref - logp) - (ref - logp) - 1``, which the test computes from the same tensors."""

import re

import pytest
import torch
from trl import GRPOConfig, GRPOTrainer

from toolexpander.trainer.config import CARRY_OVER_LOSS_TYPES, ToolExpanderConfig
from toolexpander.trainer.loss import LOSS_TYPES, aggregate, row_share
from toolexpander.trainer.trainer import subset_rows

ROWS, WIDTH, MAX_COMPLETION_LENGTH = 4, 5, 7
# The loss tokens of the whole generation batch on all processes (more than this micro-batch holds).
NUM_ITEMS = 13.0


@pytest.fixture(scope="module")
def trainer(tiny_model_dir, tmp_path_factory):
    from datasets import Dataset

    from toolexpander.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir)
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl-loss")),
        beta=1.0,
        use_bias_correction_kl=False,
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=MAX_COMPLETION_LENGTH,
        use_cpu=True,
        bf16=False,
        report_to="none",
    )
    return GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}),
        processing_class=tokenizer,
    )


def batch(seed: int = 0) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """A micro-batch (rows of 5, 3, 0 and 1 loss tokens), the policy's log-probs and the per-token loss."""
    generator = torch.Generator().manual_seed(seed)
    logps = -torch.rand(ROWS, WIDTH, generator=generator) * 3
    ref = logps + torch.randn(ROWS, WIDTH, generator=generator)
    lengths = torch.tensor([5, 3, 0, 1])
    mask = (torch.arange(WIDTH) < lengths.unsqueeze(1)).long()
    inputs = {
        "prompt_ids": torch.ones(ROWS, 2, dtype=torch.long),
        "prompt_mask": torch.ones(ROWS, 2, dtype=torch.long),
        "completion_ids": torch.ones(ROWS, WIDTH, dtype=torch.long),
        "completion_mask": mask,
        "advantages": torch.zeros(ROWS),
        "ref_per_token_logps": ref,
        "num_items_in_batch": torch.tensor(NUM_ITEMS),
    }
    per_token_loss = torch.exp(ref - logps) - (ref - logps) - 1  # TRL's per-token KL, times beta 1
    return inputs, logps, per_token_loss


def trl_loss(trainer, inputs: dict, logps: torch.Tensor) -> torch.Tensor:
    """TRL's `_compute_loss` with its log-prob forward answering ``logps`` (entropies 0, no aux loss)."""
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (
        logps,
        torch.zeros_like(logps),
        None,
    )
    try:
        return GRPOTrainer._compute_loss(trainer, trainer.model, inputs)
    finally:
        del trainer._get_per_token_logps_and_entropies


@pytest.fixture
def settings(trainer, monkeypatch):
    """Sets the loss type, the training mode and the accumulation of ``trainer`` (undone after the test)."""
    from accelerate import Accelerator

    def apply(
        loss_type: str, training: bool = True, processes: int = 1, accumulation: int = 3, per_gen: int = 2
    ):
        monkeypatch.setattr(trainer, "loss_type", loss_type)
        monkeypatch.setattr(trainer, "current_gradient_accumulation_steps", accumulation, raising=False)
        monkeypatch.setattr(trainer.args, "steps_per_generation", per_gen)
        # One process here: only TRL's normaliser reads the count (gather and reduce see one process).
        monkeypatch.setattr(Accelerator, "num_processes", property(lambda self: processes))
        trainer.model.train(training)
        return {
            "num_items_in_batch": torch.tensor(NUM_ITEMS),
            "num_processes": processes,
            "accumulation": accumulation if training else 1,  # TRL's eval neither splits nor accumulates
            "steps_per_generation": per_gen if training else 1,
            "max_completion_length": MAX_COMPLETION_LENGTH,
        }

    yield apply
    trainer.model.train()


def test_the_loss_types_are_trls():
    # The list TRL's config documents; the canary pins the ones its `_compute_loss` aggregates.
    help_text = GRPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    supported = re.search(r"Supported values are ([^.]*)\.", help_text).group(1)
    assert set(re.findall(r"'(\w+)'", supported)) == set(LOSS_TYPES), supported


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_aggregate_equals_trls_compute_loss(trainer, settings, loss_type, training, processes):
    options = settings(loss_type, training=training, processes=processes)
    inputs, logps, per_token_loss = batch()
    expected = trl_loss(trainer, inputs, logps)
    ours = aggregate(per_token_loss, inputs["completion_mask"], loss_type, **options)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_aggregate_takes_a_per_row_loss_broadcast_over_the_tokens(trainer, settings, loss_type):
    # TRL's sequence-level losses are (B, 1) before the mask broadcasts them.
    options = settings(loss_type)
    inputs, _, _ = batch()
    per_row = torch.tensor([[1.0], [2.0], [3.0], [-4.0]])
    mask = inputs["completion_mask"]
    torch.testing.assert_close(
        aggregate(per_row, mask, loss_type, **options),
        aggregate(per_row.expand(ROWS, WIDTH), mask, loss_type, **options),
    )


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_a_loss_over_some_rows_times_row_share_equals_trls_loss_over_all(trainer, settings, loss_type):
    # What `compute_loss` does when rows with advantage 0 are left out: their per-token loss is 0
    # (here: the reference equals the policy on them, so their KL is 0).
    settings(loss_type)
    inputs, logps, _ = batch(seed=1)
    rows = torch.tensor([True, False, True, True])
    inputs["ref_per_token_logps"][~rows] = logps[~rows]
    whole = trl_loss(trainer, inputs, logps)
    part = trl_loss(trainer, subset_rows(inputs, rows), logps[rows])
    share = row_share(rows, inputs["completion_mask"], loss_type)
    torch.testing.assert_close(part * share, whole, rtol=1e-6, atol=0.0)


def test_aggregate_refuses_what_it_cannot_normalise():
    loss, mask = torch.ones(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="unknown loss_type 'ppo'"):
        aggregate(loss, mask, "ppo")
    with pytest.raises(ValueError, match="dr_grpo needs max_completion_length"):
        aggregate(loss, mask, "dr_grpo")
    with pytest.raises(ValueError, match="dapo needs num_items_in_batch"):
        aggregate(loss, mask, "dapo")
    assert aggregate(loss, mask, "dapo", num_items_in_batch=3).item() == 2.0  # a plain number serves


@pytest.mark.parametrize("loss_type", sorted(set(LOSS_TYPES) - set(CARRY_OVER_LOSS_TYPES)))
def test_carry_over_refuses_the_loss_types_it_is_not_defined_for(tmp_path, loss_type):
    # cispo, sapo, vespo and luspo reshape the ratio term itself; our carry-over term (pi/(pi+gamma),
    # unclipped) is defined beside grpo, bnpo, dr_grpo and dapo only.
    assert set(CARRY_OVER_LOSS_TYPES) < set(LOSS_TYPES)
    fields = {"output_dir": str(tmp_path), "use_cpu": True, "report_to": "none", "loss_type": loss_type}
    ToolExpanderConfig(**fields)  # without carry-over, every loss type of TRL is taken
    with pytest.raises(ValueError, match=f"carry_over needs loss_type in .*got '{loss_type}'"):
        ToolExpanderConfig(**fields, carry_over="swap")
