"""`trainer.shared_prompt`: each distinct prompt encoded once, same log-probs and gradients as the plain path.

The plain path is TRL's: every row's full ``[prompt, completion]`` through the model, logits of the
``C`` positions before the completion tokens divided by the temperature, log-softmax, gather; run
both as TRL's loss forward does (no position ids: pads counted) and as HF generate does (the mask's
cumsum); and TRL's own method under its fused LM head (log-probs, entropies, gradients). Then the
real `ToolExpanderTrainer` with `shared_prompt_loss` against TRL's plain path: log-probs of a
generated batch, loss gradients (full fine-tuning, LoRA, swapped carry-over rows, the old log-prob
pass of num_iterations 2), the fallback under gradient checkpointing, two training steps. Generation
(`shared_prompt_cache`): greedy tokens and sampled draws (one seed) equal to the plain `generate`'s,
every step's logits within 1e-5, the expanded cache equal to each row's own prefill, what it refuses;
through the trainer, the same rollouts with `shared_prompt_generation` on and off, and the fallback's
one warning. Tiny random Qwen2 in float32, eager and SDPA attention."""

from __future__ import annotations

import contextlib
import json
import types
import warnings
from pathlib import Path

import pytest
import torch

from tests.test_carry_over import build_trainer as build_carry_over_trainer
from tests.test_carry_over import capture_loss_batches
from toolexpander.trainer.shared_prompt import (
    group_rows,
    shared_prompt_cache,
    shared_prompt_logps_and_entropies,
)

G = 4
PAD = 0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is ~100x faster than two spinning on a shared, loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- group_rows ----------------------------------------------------------------------------------


def _t(rows):
    return torch.tensor(rows, dtype=torch.long)


GROUP_TABLE = {
    # name: (ids, mask, unique_index, row_to_unique)
    "g_identical_rows": (
        [[0, 5, 6]] * 4 + [[7, 8, 9]] * 4,
        [[0, 1, 1]] * 4 + [[1, 1, 1]] * 4,
        [0, 4],
        [0, 0, 0, 0, 1, 1, 1, 1],
    ),
    "mixed_group_interleaved": (
        [[5, 6, 7], [8, 6, 7], [5, 6, 7], [8, 6, 7], [8, 6, 7]],
        [[1, 1, 1]] * 5,
        [0, 1],
        [0, 1, 0, 1, 1],
    ),
    "pad_ids_ignored": (
        [[0, 0, 5, 6], [3, 9, 5, 6], [7, 7, 5, 6]],
        [[0, 0, 1, 1]] * 3,
        [0],
        [0, 0, 0],
    ),
    "same_tokens_different_padding_amounts": (
        [[0, 0, 5, 6], [5, 6, 0, 0], [0, 5, 6, 0], [0, 0, 0, 5]],
        [[0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]],
        [0, 3],
        [0, 0, 0, 1],
    ),
    "pad_id_equal_to_a_real_token": (
        [[5, 5, 6], [0, 5, 6], [5, 5, 6]],
        [[0, 1, 1], [0, 1, 1], [1, 1, 1]],
        [0, 2],
        [0, 0, 1],
    ),
    "same_ids_different_masks": (
        [[5, 6, 7], [5, 6, 7], [5, 6, 7]],
        [[1, 1, 1], [0, 1, 1], [0, 0, 1]],
        [0, 1, 2],
        [0, 1, 2],
    ),
    "prefix_is_another_prompt": (
        [[0, 5, 6], [5, 6, 7], [0, 5, 6]],
        [[0, 1, 1], [1, 1, 1], [0, 1, 1]],
        [0, 1],
        [0, 1, 0],
    ),
    "all_distinct": ([[1, 2], [2, 1], [1, 1]], [[1, 1]] * 3, [0, 1, 2], [0, 1, 2]),
    "single_row": ([[4, 4]], [[1, 1]], [0], [0]),
}


@pytest.mark.parametrize("name", list(GROUP_TABLE))
def test_group_rows_table(name):
    ids, mask, unique_index, row_to_unique = GROUP_TABLE[name]
    got_unique, got_rows = group_rows(_t(ids), _t(mask))
    assert got_unique.tolist() == unique_index
    assert got_rows.tolist() == row_to_unique
    assert got_unique.dtype == got_rows.dtype == torch.long
    # Every row's representative holds the same real tokens.
    ids_t, mask_t = _t(ids), _t(mask).bool()
    for row, u in enumerate(got_rows.tolist()):
        rep = got_unique[u].item()
        assert ids_t[row][mask_t[row]].tolist() == ids_t[rep][mask_t[rep]].tolist()


def test_group_rows_bool_mask_empty_batch_and_bad_shapes():
    assert [t.tolist() for t in group_rows(_t([[0, 3], [9, 3]]), torch.tensor([[0, 1], [0, 1]]).bool())] == [
        [0],
        [0, 0],
    ]
    empty_unique, empty_rows = group_rows(
        torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, 5, dtype=torch.long)
    )
    assert empty_unique.numel() == empty_rows.numel() == 0
    with pytest.raises(ValueError, match="one shape"):
        group_rows(_t([[1, 2]]), _t([[1, 1, 1]]))
    with pytest.raises(ValueError, match="one shape"):
        group_rows(torch.tensor([1, 2]), torch.tensor([1, 1]))


# -- batches ---------------------------------------------------------------------------------------


def _left_pad(prompts, width, pad_ids=None):
    """Left-padded [B, width] ids and mask; pad positions hold PAD or, per row, the given junk ids."""
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        n = len(prompt)
        ids[row, width - n :] = torch.tensor(prompt)
        mask[row, width - n :] = 1
        if pad_ids is not None and n < width:
            ids[row, : width - n] = pad_ids[row][: width - n]
    return ids, mask


def _completions(lengths, width, vocab, gen):
    ids = torch.randint(3, vocab, (len(lengths), width), generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        ids[row, n:] = PAD  # right padding, as TRL pads completions
    return ids, mask


def make_batch(kind: str, vocab: int):
    gen = torch.Generator().manual_seed(sum(map(ord, kind)))

    def prompt(n):
        return torch.randint(3, vocab, (n,), generator=gen).tolist()

    if kind == "groups":  # 2 prompts x G, left padding of different lengths, ragged completions
        a, b = prompt(9), prompt(15)
        prompts = [a] * G + [b] * G
        pids, pmask = _left_pad(prompts, 15)
        cids, cmask = _completions([7, 3, 7, 1, 5, 7, 2, 6], 7, vocab, gen)
    elif kind == "mixed":  # each group of 4 rows holds two different prompts; junk under the pad mask
        a, b, c = prompt(6), prompt(11), prompt(11)
        prompts = [a, a, b, b, c, b, c, c]
        junk = torch.randint(3, vocab, (len(prompts), 11), generator=gen)
        pids, pmask = _left_pad(prompts, 11, pad_ids=junk)
        cids, cmask = _completions([5, 5, 2, 4, 5, 3, 1, 5], 5, vocab, gen)
    elif kind == "distinct":  # every row its own prompt: nothing shared, still exact
        prompts = [prompt(n) for n in (4, 8, 6)]
        pids, pmask = _left_pad(prompts, 8)
        cids, cmask = _completions([3, 4, 2], 4, vocab, gen)
    elif kind == "one_token":  # completions of one token: scored by the prompt forward alone
        a = prompt(7)
        pids, pmask = _left_pad([a] * 3 + [prompt(5)], 7)
        cids, cmask = _completions([1, 1, 1, 1], 1, vocab, gen)
    else:
        raise ValueError(kind)
    return pids, pmask, cids, cmask


BATCHES = ["groups", "mixed", "distinct", "one_token"]


# -- the plain path ----------------------------------------------------------------------------------


def plain_logps(model, pids, pmask, cids, cmask, temperature, positions: str):
    """TRL's path: the full sequence per row; logits[:, -C-1:-1] / T, log_softmax, gather."""
    ids = torch.cat([pids, cids], dim=1)
    mask = torch.cat([pmask, cmask], dim=1)
    kwargs = {}
    if positions == "cumsum":  # as HF generate
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    logits = model(input_ids=ids, attention_mask=mask, **kwargs).logits
    c = cids.shape[1]
    logits = logits[:, -c - 1 : -1].float() / temperature
    return logits.log_softmax(-1).gather(-1, cids.unsqueeze(-1)).squeeze(-1)


# -- models ----------------------------------------------------------------------------------------


def _load(model_dir, attn):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    return model.eval()


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def model(request, tiny_model_dir):
    return _load(tiny_model_dir, request.param)


def _masked_max_diff(a, b, mask):
    return ((a - b).abs() * mask).max().item()


# -- log-probs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("kind", BATCHES)
def test_logps_equal_plain_path(model, kind, temperature):
    batch = make_batch(kind, model.config.vocab_size)
    cmask = batch[3]
    with torch.no_grad():
        shared, _ = shared_prompt_logps_and_entropies(model, *batch, temperature=temperature)
        assert shared.shape == batch[2].shape
        assert torch.isfinite(shared).all()
        for positions in ("trl", "cumsum"):
            plain = plain_logps(model, *batch, temperature, positions)
            assert _masked_max_diff(shared, plain, cmask) <= 1e-5, positions


def test_logps_under_trl_fused_head(tiny_model_dir):
    """Against TRL's own `_get_per_token_logps_and_entropies` on a model patched with its fused LM head
    (as GRPOTrainer patches the policy): the patched forward still serves the shared path."""
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    temperature = 0.8
    model = _load(tiny_model_dir, "sdpa")
    add_fused_lm_head(model, temperature=temperature)
    pids, pmask, cids, cmask = make_batch("groups", model.config.vocab_size)
    fake_trainer = types.SimpleNamespace(
        accelerator=types.SimpleNamespace(autocast=contextlib.nullcontext, is_main_process=True)
    )
    # The method unwrapped from TRL's profiling decorator, which reads more of a trainer.
    method = GRPOTrainer._get_per_token_logps_and_entropies
    method = getattr(method, "__wrapped__", method)
    with torch.no_grad():
        trl_logps, _, _ = method(
            fake_trainer,
            model,
            torch.cat([pids, cids], 1),
            torch.cat([pmask, cmask], 1),
            cids.shape[1],
        )
        shared, _ = shared_prompt_logps_and_entropies(
            model, pids, pmask, cids, cmask, temperature=temperature
        )
    assert _masked_max_diff(shared, trl_logps, cmask) <= 1e-5


# -- gradients -------------------------------------------------------------------------------------


def _grads(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    loss.backward()
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    model.zero_grad(set_to_none=True)
    return flat


def _compare_grads(model, kind):
    pids, pmask, cids, cmask = make_batch(kind, model.config.vocab_size)
    weights = torch.linspace(-1.0, 1.5, cids.shape[0])[:, None]  # per-row "advantages", both signs
    temperature = 0.9
    plain = plain_logps(model, pids, pmask, cids, cmask, temperature, "trl")
    g_plain = _grads(model, (plain * cmask * weights).sum())
    shared, _ = shared_prompt_logps_and_entropies(model, pids, pmask, cids, cmask, temperature=temperature)
    g_shared = _grads(model, (shared * cmask * weights).sum())
    g_shared, g_plain = g_shared.double(), g_plain.double()  # float32 norms of ~1e5 entries drift by 1e-6
    cosine = torch.nn.functional.cosine_similarity(g_shared, g_plain, dim=0).item()
    rel_norm = abs(g_shared.norm() - g_plain.norm()).item() / g_plain.norm().item()
    rel_diff = (g_shared - g_plain).norm().item() / g_plain.norm().item()
    return cosine, rel_norm, rel_diff, g_plain


@pytest.mark.parametrize("kind", ["groups", "mixed", "one_token"])
def test_gradients_full_finetuning(model, kind):
    cosine, rel_norm, rel_diff, g_plain = _compare_grads(model, kind)
    assert g_plain.norm() > 0
    assert cosine >= 0.9999
    assert rel_norm <= 1e-4
    assert rel_diff <= 1e-4


@pytest.mark.parametrize("kind", ["groups", "mixed"])
def test_gradients_lora(tiny_model_dir, kind):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    base = _load(tiny_model_dir, "sdpa")
    # Random A and B (B is zero by default, which would leave A without gradient to compare).
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, config)
    model.train()  # as in training; no dropout anywhere in the tiny model
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    cosine, rel_norm, rel_diff, g_plain = _compare_grads(model, kind)
    assert g_plain.norm() > 0
    assert cosine >= 0.9999
    assert rel_norm <= 1e-4
    assert rel_diff <= 1e-4


# -- what it cannot serve ------------------------------------------------------------------------


def test_refuses_gradient_checkpointing(tiny_model_dir):
    model = _load(tiny_model_dir, "eager")
    # `activation_checkpointing_enable` in newer transformers, `gradient_checkpointing_enable` before.
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model.train()
    batch = make_batch("groups", model.config.vocab_size)
    with pytest.raises(ValueError, match="gradient checkpointing"):
        shared_prompt_logps_and_entropies(model, *batch)
    with torch.no_grad():
        # No backward to replay: newer transformers keep the cache (exact result), older ones drop it
        # in training mode all the same (refused after the prompt forward).
        try:
            shared, _ = shared_prompt_logps_and_entropies(model, *batch)
        except ValueError as error:
            assert "gradient checkpointing" in str(error)
        else:
            assert _masked_max_diff(shared, plain_logps(model, *batch, 1.0, "trl"), batch[3]) <= 1e-5
    model.eval()  # checkpointing is off in eval mode, gradients or not
    shared, _ = shared_prompt_logps_and_entropies(model, *batch)
    with torch.no_grad():
        plain = plain_logps(model, *batch, 1.0, "trl")
    assert _masked_max_diff(shared.detach(), plain, batch[3]) <= 1e-5


def test_refuses_forward_without_cache(tiny_model_dir):
    inner = _load(tiny_model_dir, "eager")

    class NoCache(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner
            self.config = inner.config

        def forward(self, input_ids=None, attention_mask=None, position_ids=None):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)

    with pytest.raises(ValueError, match="takes no KV cache"):
        shared_prompt_logps_and_entropies(NoCache(), *make_batch("groups", inner.config.vocab_size))


def _sliding_window_model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        use_sliding_window=True,
        sliding_window=4,
        max_window_layers=0,
    )
    return Qwen2ForCausalLM(config).eval()


def test_refuses_sliding_window_cache():
    with pytest.raises(ValueError, match="DynamicLayer"):
        shared_prompt_logps_and_entropies(_sliding_window_model(), *make_batch("groups", 64))


def test_refuses_bad_inputs(tiny_model_dir):
    model = _load(tiny_model_dir, "eager")
    pids, pmask, cids, cmask = make_batch("groups", model.config.vocab_size)
    with pytest.raises(ValueError, match="left-padded"):
        shared_prompt_logps_and_entropies(model, pids.flip(1), pmask.flip(1), cids, cmask)
    holed = pmask.clone()
    holed[:, -3] = 0
    with pytest.raises(ValueError, match="left-padded"):
        shared_prompt_logps_and_entropies(model, pids, holed, cids, cmask)
    with pytest.raises(ValueError, match="prompts for"):
        shared_prompt_logps_and_entropies(model, pids[:-1], pmask[:-1], cids, cmask)
    with pytest.raises(ValueError, match="temperature"):
        shared_prompt_logps_and_entropies(model, pids, pmask, cids, cmask, temperature=0.0)
    empty, _ = shared_prompt_logps_and_entropies(model, pids, pmask, cids[:, :0], cmask[:, :0])
    assert empty.shape == (pids.shape[0], 0)


# -- entropies, short prompts ----------------------------------------------------------------------


def plain_entropies(model, pids, pmask, cids, cmask, temperature):
    """TRL's `entropy_from_logits` on the plain path's scoring logits: -sum p log p."""
    ids, mask = torch.cat([pids, cids], dim=1), torch.cat([pmask, cmask], dim=1)
    logits = (
        model(input_ids=ids, attention_mask=mask).logits[:, -cids.shape[1] - 1 : -1].float() / temperature
    )
    logps = logits.log_softmax(-1)
    return -(logps.exp() * logps).sum(-1)


@pytest.mark.parametrize("kind", ["groups", "mixed", "one_token"])
def test_entropies_equal_plain_path(model, kind):

    batch = make_batch(kind, model.config.vocab_size)
    cmask = batch[3]
    with torch.no_grad():
        logps, entropies = shared_prompt_logps_and_entropies(
            model, *batch, temperature=0.7, compute_entropy=True
        )
        assert _masked_max_diff(entropies, plain_entropies(model, *batch, 0.7), cmask) <= 1e-5
        assert _masked_max_diff(logps, plain_logps(model, *batch, 0.7, "trl"), cmask) <= 1e-5
    # Nothing where the completion is padding, as TRL's fused head gives.
    assert (logps[cmask == 0] == 0).all() and (entropies[cmask == 0] == 0).all()
    assert shared_prompt_logps_and_entropies(model, *batch)[1] is None


def test_prompts_of_one_token(model):
    """Rows whose prompt is one real token (nothing but pads in the shared cache), and prompts one column
    wide (no cache at all)."""
    gen = torch.Generator().manual_seed(3)
    vocab = model.config.vocab_size
    a, b = (
        torch.randint(3, vocab, (1,), generator=gen).tolist(),
        torch.randint(3, vocab, (6,), generator=gen).tolist(),
    )
    pids, pmask = _left_pad([a, a, b, b], 6)
    cids, cmask = _completions([4, 2, 4, 3], 4, vocab, gen)
    with torch.no_grad():
        for batch in ((pids, pmask, cids, cmask), (pids[:2, -1:], pmask[:2, -1:], cids[:2], cmask[:2])):
            shared, _ = shared_prompt_logps_and_entropies(model, *batch)
            assert _masked_max_diff(shared, plain_logps(model, *batch, 1.0, "trl"), batch[3]) <= 1e-5


def _trl_method():
    """TRL's `_get_per_token_logps_and_entropies` unwrapped from its profiling decorator, and a stand-in
    for the few trainer attributes it reads."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    method = GRPOTrainer._get_per_token_logps_and_entropies
    fake_trainer = types.SimpleNamespace(
        accelerator=types.SimpleNamespace(autocast=contextlib.nullcontext, is_main_process=True)
    )
    return getattr(method, "__wrapped__", method), fake_trainer


@pytest.mark.parametrize("kind", ["groups", "mixed"])
def test_fused_head_entropies_and_gradients_equal_trl(tiny_model_dir, kind):
    """Under TRL's fused LM head (log-probs and entropies, as GRPOTrainer patches its policy): the shared
    path's log-probs, entropies and the gradient of a loss using both equal TRL's own method's."""
    from trl.trainer.utils import add_fused_lm_head

    temperature = 0.8
    model = _load(tiny_model_dir, "sdpa")
    add_fused_lm_head(model, temperature=temperature, outputs=("log_probs", "entropy"))
    pids, pmask, cids, cmask = make_batch(kind, model.config.vocab_size)
    method, fake_trainer = _trl_method()
    weights = torch.linspace(-1.0, 1.5, cids.shape[0])[:, None]
    ids, mask = torch.cat([pids, cids], 1), torch.cat([pmask, cmask], 1)
    logps, entropies, _ = method(fake_trainer, model, ids, mask, cids.shape[1], compute_entropy=True)
    g_plain = _grads(model, ((logps + 0.3 * entropies) * cmask * weights).sum())
    shared, shared_entropies = shared_prompt_logps_and_entropies(
        model, pids, pmask, cids, cmask, temperature=temperature, compute_entropy=True
    )
    # All positions: both give 0 under the padding.
    assert (shared - logps).abs().max().item() <= 1e-5
    assert (shared_entropies - entropies).abs().max().item() <= 1e-5
    g_shared = _grads(model, ((shared + 0.3 * shared_entropies) * cmask * weights).sum())
    g_shared, g_plain = g_shared.double(), g_plain.double()
    assert g_plain.norm() > 0
    assert torch.nn.functional.cosine_similarity(g_shared, g_plain, dim=0).item() >= 0.9999
    assert (g_shared - g_plain).norm().item() / g_plain.norm().item() <= 1e-4


def test_fused_head_without_entropies_refuses_them(tiny_model_dir):
    from trl.trainer.utils import add_fused_lm_head

    model = _load(tiny_model_dir, "sdpa")
    add_fused_lm_head(model)  # as TRL patches the reference model: log-probs only
    batch = make_batch("groups", model.config.vocab_size)
    with torch.no_grad():
        assert shared_prompt_logps_and_entropies(model, *batch)[1] is None
        with pytest.raises(ValueError, match="without entropies"):
            shared_prompt_logps_and_entropies(model, *batch, compute_entropy=True)


# -- through the trainer: `shared_prompt_loss` on against TRL's plain path --------------------------


def build_trainer(tmp_path, tiny_model_dir, monkeypatch, reward, peft=False, **fields):
    """test_carry_over's trainer as plain GRPO on the model the batch was generated with (lr 0),
    gradient checkpointing off (TRL's default is on, which the shared prompt cannot serve)."""
    from peft import LoraConfig

    settings = {"mode": "grpo", "reroll_all_fail": False, "demo_rollouts_per_group": None}
    settings.update({"learning_rate": 0.0, "seed": 0, "gradient_checkpointing": False, **fields})
    # random lora_B (PEFT starts it at 0, which would leave lora_A without gradient)
    lora = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    torch.manual_seed(0)
    trainer, _, _ = build_carry_over_trainer(
        tmp_path, tiny_model_dir, monkeypatch, reward, peft_config=lora if peft else None, **settings
    )
    return trainer


def spy_shared_calls(monkeypatch) -> list[dict]:
    """Every call the trainer makes to the shared path: gradients recorded or not, rows, distinct prompts,
    and whether it served (False: it raised, for the plain path to serve)."""
    from toolexpander.trainer import trainer as trainer_module

    calls = []
    original = trainer_module.shared_prompt_logps_and_entropies

    def spy(model, prompt_ids, prompt_mask, *args, **kwargs):
        distinct = len(group_rows(prompt_ids, prompt_mask)[0])
        call = {
            "grad": torch.is_grad_enabled(),
            "rows": len(prompt_ids),
            "distinct": distinct,
            "served": False,
        }
        calls.append(call)
        output = original(model, prompt_ids, prompt_mask, *args, **kwargs)
        call["served"] = True
        return output

    monkeypatch.setattr(trainer_module, "shared_prompt_logps_and_entropies", spy)
    return calls


def loss_gradient(trainer, batch: dict, shared: bool) -> tuple[float, torch.Tensor]:
    trainer.args.shared_prompt_loss = shared
    model = trainer.model
    model.zero_grad(set_to_none=True)
    loss = trainer.compute_loss(model, dict(batch))
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    model.zero_grad(set_to_none=True)
    return loss.item(), flat.double()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _from_scripted(name):
    from tests import scripted_rewards

    return getattr(scripted_rewards, name)


TRAINER_CASES = {
    # name: (reward, trainer fields)
    "full_finetuning": ("every_other_correct", {}),
    "lora": ("every_other_correct", {"peft": True}),
    # Re-rolled hard groups are mixed (1 of 4 rows with demonstrations); swapped to the zero-shot prompt.
    "carry_over_swapped_rows": (
        "correct_with_demos",
        {
            "mode": "hard_sampling_only",
            "carry_over": "swap_nll",
            "demo_rollouts_per_group": 1,
            "reroll_all_fail": True,
        },
    ),
    # The old log-probs are taken in generation (no gradient), through the same method.
    "num_iterations_2": ("every_other_correct", {"num_iterations": 2}),
}


@pytest.mark.parametrize("case", list(TRAINER_CASES))
def test_trainer_log_probs_and_gradients_equal_trl_plain_path(tmp_path, tiny_model_dir, monkeypatch, case):
    from trl import GRPOTrainer

    reward, fields = TRAINER_CASES[case]
    trainer = build_trainer(tmp_path, tiny_model_dir, monkeypatch, _from_scripted(reward), **fields)
    assert trainer.args.shared_prompt_loss  # on by default
    calls = spy_shared_calls(monkeypatch)
    batches = capture_loss_batches(trainer)
    trainer.train()
    (batch,) = batches
    # The loss forward of the step went through the shared path: 8 rows, 2 distinct prompts.
    assert {"grad": True, "rows": 8, "distinct": 2, "served": True} in calls
    assert all(call["served"] for call in calls)
    unique, _ = group_rows(batch["prompt_ids"], batch["prompt_mask"])
    assert len(unique) == 2
    if case == "carry_over_swapped_rows":
        # The swapped rows hold the zero-shot prompt of their group's other rows: one prompt per group.
        assert batch["swapped"].sum().item() == 2 and (batch["advantages"] != 0).all()
    model = trainer.model
    model.train()
    pids, pmask, cids, cmask = (
        batch[k] for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")
    )
    ids, mask, width = torch.cat([pids, cids], 1), torch.cat([pmask, cmask], 1), cids.shape[1]
    with torch.no_grad():
        before = len(calls)
        logps, entropies, aux = trainer._get_per_token_logps_and_entropies(
            model, ids, mask, width, compute_entropy=True
        )
        assert len(calls) == before + 1 and calls[-1]["served"]  # served by the shared path
        plain_logps_, plain_entropies_, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer, model, ids, mask, width, compute_entropy=True
        )
    logps_diff = (logps - plain_logps_).abs().max().item()
    assert logps_diff <= 1e-5, logps_diff
    assert (entropies - plain_entropies_).abs().max().item() <= 1e-5
    assert aux is None and logps.shape == cids.shape
    if case == "num_iterations_2":
        old = batch["old_per_token_logps"]
        assert old is not None and any(not call["grad"] and call["served"] for call in calls)
        assert (old - plain_logps_).abs().max().item() <= 1e-5
    loss_shared, g_shared = loss_gradient(trainer, batch, shared=True)
    loss_plain, g_plain = loss_gradient(trainer, batch, shared=False)
    assert g_plain.norm() > 0
    cosine = torch.nn.functional.cosine_similarity(g_shared, g_plain, dim=0).item()
    rel_norm = abs(g_shared.norm() - g_plain.norm()).item() / g_plain.norm().item()
    assert cosine >= 0.9999, cosine
    assert rel_norm <= 1e-4, rel_norm
    assert abs(loss_shared - loss_plain) <= 1e-5 * max(1.0, abs(loss_plain))


def test_gradient_checkpointing_falls_back_to_the_plain_path_with_one_warning(
    tmp_path, tiny_model_dir, monkeypatch
):
    from trl import GRPOTrainer

    trainer = build_trainer(
        tmp_path,
        tiny_model_dir,
        monkeypatch,
        _from_scripted("every_other_correct"),
        gradient_checkpointing=True,
        max_steps=2,
        learning_rate=1e-4,
    )
    calls = spy_shared_calls(monkeypatch)
    plain_with_grad = []
    original = GRPOTrainer._get_per_token_logps_and_entropies

    def plain(self, *args, **kwargs):
        plain_with_grad.append(torch.is_grad_enabled())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", plain)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    ours = [str(w.message) for w in caught if str(w.message).startswith("shared_prompt_loss")]
    assert len(ours) == 1, ours
    assert "gradient checkpointing" in ours[0]
    # Tried once, then the plain path served both steps' loss forwards.
    assert [(call["grad"], call["served"]) for call in calls] == [(True, False)]
    assert plain_with_grad.count(True) == 2


def test_two_steps_give_the_same_weights_with_and_without_the_shared_prompt(
    tmp_path, tiny_model_dir, monkeypatch
):
    from safetensors.torch import load_file

    from toolexpander.cli import main

    recipe = str(Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu.yaml")
    calls = spy_shared_calls(monkeypatch)
    weights = {}
    for shared in ("true", "false"):
        out = tmp_path / shared
        argv = [
            "train",
            "--config",
            recipe,
            "--model_name_or_path",
            tiny_model_dir,
            "--build_tiny_model",
            "false",
        ]
        argv += ["--output_dir", str(out), "--max_steps", "2", "--save_strategy", "no", "--mode", "grpo"]
        argv += ["--correctness_reward", "tests.scripted_rewards:every_other_correct"]
        argv += ["--gradient_checkpointing", "false"]  # TRL's default (on) would leave both runs plain
        assert main([*argv, "--shared_prompt_loss", shared]) == 0
        weights[shared] = load_file(out / "model.safetensors")
        logged = [row for row in read_jsonl(out / "metrics.jsonl") if "shared_prompt/rows_per_prompt" in row]
        assert [row["shared_prompt/rows_per_prompt"] for row in logged] == ([4.0, 4.0] if shared == "true" else [])
        if shared == "true":
            assert sum(call["grad"] and call["served"] for call in calls) == 2  # both steps' loss forwards
            served = len(calls)
    assert len(calls) == served  # nothing shared with it off
    start = load_file(Path(tiny_model_dir, "model.safetensors"))
    moved = max((weights["false"][name] - start[name]).abs().max().item() for name in start)
    diff = max((weights["true"][name] - weights["false"][name]).abs().max().item() for name in start)
    assert moved > 1e-5  # the steps moved the weights
    assert diff <= 1e-6, (diff, moved)


# -- generation: each distinct prompt prefilled once -------------------------------------------------


def _generate_both(model, pids, pmask, **settings):
    """The plain `generate` and the one started from `shared_prompt_cache`, each after one seed."""
    settings = {"max_new_tokens": 10, "pad_token_id": PAD, **settings}
    outputs = []
    for shared in (False, True):
        cache = shared_prompt_cache(model, pids, pmask, **settings) if shared else {}
        torch.manual_seed(0)
        with torch.no_grad():
            outputs.append(model.generate(input_ids=pids, attention_mask=pmask, **cache, **settings))
    return outputs


@pytest.mark.parametrize("kind", ["groups", "mixed", "distinct"])
def test_greedy_generation_gives_the_plain_tokens(model, kind):
    """Two prompts of unequal length (left padding), two prompts per group of 4, and all distinct."""
    pids, pmask, _, _ = make_batch(kind, model.config.vocab_size)
    plain, shared = _generate_both(model, pids, pmask, do_sample=False)
    assert shared.shape[1] > pids.shape[1]
    assert torch.equal(shared, plain)


def test_greedy_generation_under_lora(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = get_peft_model(_load(tiny_model_dir, "sdpa"), config)
    pids, pmask, _, _ = make_batch("mixed", model.config.vocab_size)
    plain, shared = _generate_both(model, pids, pmask, do_sample=False)
    assert torch.equal(shared, plain)


@pytest.mark.parametrize("kind", ["groups", "mixed"])
def test_sampling_draws_from_the_plain_distribution(model, kind):
    """One seed, the same tokens, and every step's logits within 1e-5 of the plain call's: float32
    rounding only (the last prompt token meets the cached prompt in a forward of its own). The
    prefill draws no random numbers, so the two calls' draws line up token for token."""
    pids, pmask, _, _ = make_batch(kind, model.config.vocab_size)
    settings = {"do_sample": True, "temperature": 0.9, "top_k": 0, "top_p": 1.0}
    settings.update(output_logits=True, return_dict_in_generate=True)
    plain, shared = _generate_both(model, pids, pmask, **settings)
    assert torch.equal(shared.sequences, plain.sequences)
    assert len(shared.logits) == len(plain.logits) > 1
    assert max((a - b).abs().max().item() for a, b in zip(shared.logits, plain.logits)) <= 1e-5


def test_the_expanded_cache_holds_each_rows_prompt(model):
    """Every row's keys and values (all layers, real positions) equal those of its own prompt's plain
    prefill (positions as generate makes them; the keys are stored rotated): rows of one prompt share
    its single encoding, whatever their order."""
    from transformers import DynamicCache

    pids, pmask, _, _ = make_batch("mixed", model.config.vocab_size)
    (cache,) = shared_prompt_cache(model, pids, pmask).values()
    plain = DynamicCache(config=model.config)
    head_mask = pmask[:, :-1]
    positions = (head_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        model(
            input_ids=pids[:, :-1],
            attention_mask=head_mask,
            position_ids=positions,
            use_cache=True,
            **{_cache_name(model): plain},
        )
    real = head_mask.bool()[:, None, :, None]  # [B, 1, P-1, 1] against [B, heads, P-1, dim]
    assert cache.get_seq_length() == pids.shape[1] - 1
    for shared_layer, plain_layer in zip(cache.layers, plain.layers, strict=True):
        assert shared_layer.keys.shape == plain_layer.keys.shape
        assert ((shared_layer.keys - plain_layer.keys).abs() * real).max().item() <= 1e-5
        assert ((shared_layer.values - plain_layer.values).abs() * real).max().item() <= 1e-5


def _cache_name(model) -> str:
    """`cache` (transformers 5.2x) or `past_key_values` (before): the forward's name for it."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def test_generation_refuses_what_it_cannot_serve(tiny_model_dir):
    from transformers import GenerationConfig

    model = _load(tiny_model_dir, "eager")
    pids, pmask, _, _ = make_batch("groups", model.config.vocab_size)
    refused = [
        ({"num_beams": 2}, "beam search"),
        ({"generation_config": GenerationConfig(num_beams=2)}, "beam search"),
        ({"num_return_sequences": 2, "do_sample": True}, "num_return_sequences"),
        ({"cache_implementation": "static"}, "cache_implementation"),
        ({"use_cache": False}, "use_cache"),
        ({"token_type_ids": torch.zeros_like(pids)}, "token_type_ids"),
    ]
    for settings, message in refused:
        with pytest.raises(ValueError, match=message):
            shared_prompt_cache(model, pids, pmask, **settings)
    with pytest.raises(ValueError, match="left-padded"):
        shared_prompt_cache(model, pids.flip(1), pmask.flip(1))
    with pytest.raises(ValueError, match="DynamicLayer"):
        shared_prompt_cache(_sliding_window_model(), *make_batch("groups", 64)[:2])
    # Nothing to share: the plain call.
    assert shared_prompt_cache(model, *make_batch("distinct", model.config.vocab_size)[:2]) == {}
    assert shared_prompt_cache(model, pids[:, -1:], pmask[:, -1:]) == {}


# -- generation through the trainer: `shared_prompt_generation` on against the plain generate ------


def spy_generation_caches(monkeypatch) -> list[dict]:
    """Every `shared_prompt_cache` call the trainer makes: its rows and what came of it (``shared``:
    a cache; ``plain``: nothing to share; ``refused``: it raised)."""
    from toolexpander.trainer import trainer as trainer_module

    calls = []
    original = trainer_module.shared_prompt_cache

    def spy(model, input_ids, attention_mask, **settings):
        call = {"rows": len(input_ids), "outcome": "refused"}
        calls.append(call)
        cache = original(model, input_ids, attention_mask, **settings)
        call["outcome"] = "shared" if cache else "plain"
        return cache

    monkeypatch.setattr(trainer_module, "shared_prompt_cache", spy)
    return calls


def test_trainer_generates_the_same_completions_with_each_prompt_prefilled_once(
    tmp_path, tiny_model_dir, monkeypatch
):
    """A step with the field on and one with it off, from one seed, TRL's sampling: the same rollouts."""
    completions = {}
    for shared in (True, False):
        calls = spy_generation_caches(monkeypatch)
        trainer = build_trainer(
            tmp_path / str(shared),
            tiny_model_dir,
            monkeypatch,
            _from_scripted("every_other_correct"),
            shared_prompt_generation=shared,
        )
        batches = capture_loss_batches(trainer)
        trainer.train()
        (batch,) = batches
        completions[shared] = batch["completion_ids"]
        # 2 items x G=4 rows, prefilled as 2 prompts.
        assert calls == ([{"rows": 8, "outcome": "shared"}] if shared else [])
    assert torch.equal(completions[True], completions[False])


def test_what_generation_cannot_share_falls_back_with_one_warning(tmp_path, tiny_model_dir, monkeypatch):
    trainer = build_trainer(
        tmp_path,
        tiny_model_dir,
        monkeypatch,
        _from_scripted("every_other_correct"),
        cache_implementation="dynamic",  # generate builds its own cache
        max_steps=2,
    )
    calls = spy_generation_caches(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    ours = [str(w.message) for w in caught if str(w.message).startswith("shared_prompt_generation")]
    assert len(ours) == 1 and "cache_implementation='dynamic'" in ours[0], ours
    assert calls == [{"rows": 8, "outcome": "refused"}]  # not tried again at the second step
    assert trainer.state.global_step == 2
