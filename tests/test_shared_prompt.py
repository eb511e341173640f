"""`trainer.shared_prompt`: each distinct prompt encoded once, same log-probs and gradients as the plain path.

The plain path is TRL's: every row's full ``[prompt, completion]`` through the model, logits of the
``C`` positions before the completion tokens divided by the temperature, log-softmax, gather; run
both as TRL's loss forward does (no position ids: pads counted) and as HF generate does (the mask's
cumsum). Tiny random Qwen2 in float32, eager and SDPA attention."""

from __future__ import annotations

import contextlib
import types

import pytest
import torch

from toolexpander.trainer.shared_prompt import group_rows, shared_prompt_logps

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
        shared = shared_prompt_logps(model, *batch, temperature=temperature)
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
        shared = shared_prompt_logps(model, pids, pmask, cids, cmask, temperature=temperature)
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
    shared = shared_prompt_logps(model, pids, pmask, cids, cmask, temperature=temperature)
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
        shared_prompt_logps(model, *batch)
    with torch.no_grad():
        # No backward to replay: newer transformers keep the cache (exact result), older ones drop it
        # in training mode all the same (refused after the prompt forward).
        try:
            shared = shared_prompt_logps(model, *batch)
        except ValueError as error:
            assert "gradient checkpointing" in str(error)
        else:
            assert _masked_max_diff(shared, plain_logps(model, *batch, 1.0, "trl"), batch[3]) <= 1e-5
    model.eval()  # checkpointing is off in eval mode, gradients or not
    shared = shared_prompt_logps(model, *batch)
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
        shared_prompt_logps(NoCache(), *make_batch("groups", inner.config.vocab_size))


def test_refuses_sliding_window_cache():
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
    model = Qwen2ForCausalLM(config).eval()
    with pytest.raises(ValueError, match="DynamicLayer"):
        shared_prompt_logps(model, *make_batch("groups", 64))


def test_refuses_bad_inputs(tiny_model_dir):
    model = _load(tiny_model_dir, "eager")
    pids, pmask, cids, cmask = make_batch("groups", model.config.vocab_size)
    with pytest.raises(ValueError, match="left-padded"):
        shared_prompt_logps(model, pids.flip(1), pmask.flip(1), cids, cmask)
    holed = pmask.clone()
    holed[:, -3] = 0
    with pytest.raises(ValueError, match="left-padded"):
        shared_prompt_logps(model, pids, holed, cids, cmask)
    with pytest.raises(ValueError, match="prompts for"):
        shared_prompt_logps(model, pids[:-1], pmask[:-1], cids, cmask)
    with pytest.raises(ValueError, match="temperature"):
        shared_prompt_logps(model, pids, pmask, cids, cmask, temperature=0.0)
    assert shared_prompt_logps(model, pids, pmask, cids[:, :0], cmask[:, :0]).shape == (pids.shape[0], 0)
