"""A GRPO step's cost with each distinct prompt encoded once (SPEC §11) against TRL's plain path,
side by side in one run: generation (prefill + decode) and the loss (log-prob forward + backward).

SmolLM2-135M (`toolexpander.models.load_model_and_tokenizer(SMOLLM2_HUB_ID)`, the first ``--layers``
of its 30), patched with TRL's fused LM head as `GRPOTrainer` patches its policy, everything under
bfloat16 autocast on CPU. Prompts are random tokens of the settings' lengths (left-padded, built as
`benchmarks/shared_prompt_loss.py` builds them), replies sampled (temperature 1, no top-k/top-p) to
exactly the reply length:
- ``demo``: 4 prompts x G=4, prompts of ~420 tokens, replies of 64, the loss over all 16 rows at once;
- ``paper``: 2 prompts x G=10, prompts of ~800 tokens, replies of 256, the loss one group (10 rows)
  per forward+backward, gradients accumulated.

Per path, one step is: ``generate`` over all rows (plain: as TRL calls it; shared: started from
`shared_prompt_cache`), then the loss forward+backward over the generated replies (plain: TRL's own
``GRPOTrainer._get_per_token_logps_and_entropies``; shared: `shared_prompt_logps_and_entropies`),
with entropies as TRL's loss asks. Off Triton devices (so on CPU) TRL's fused head scores every
position of the plain path's rows, prompt included, not only the completion's: part of what the
shared path saves here is that head. One warm-up step per path, then ``--repeats`` steps alternating
(plain, shared) so machine load hits both alike. Two JSON lines per setting: ``part`` ``loss`` (the
loss forward+backward) and ``step`` (generation + loss); ``plain_s`` and ``shared_s`` are median
process CPU seconds (on ``--threads 1``, the default, the step's own work: another tenant's load does
not count), ``*_wall_s`` median wall seconds; ``same_replies`` is the share of reply tokens the two
paths sampled alike from one seed (bfloat16 rounding may tip a draw, after which a row differs).

- ``gpu`` (with ``--device cuda --model qwen2.5-0.5b-random``): 4 prompts x G=8, prompts of ~1,024
  tokens, replies of 256, a random model shaped like Qwen2.5-0.5B (bf16 autocast on the GPU; times
  are wall seconds after a CUDA synchronise, since process CPU time means nothing there).

    python benchmarks/step_cost.py [--settings demo paper] [--repeats 2] [--threads 1] [--layers 30]
    python benchmarks/step_cost.py --device cuda --model qwen2.5-0.5b-random --settings gpu

Figures, CPU: this project's 2-core box (AMD EPYC), ``--threads 2``, nothing else running,
2026-12-04, one run: ``--settings demo`` (30 layers, 2 repeats) loss 82.0 s plain, 11.2 s shared wall
(7.3x; CPU time 143.0 / 21.9 s), whole step 99.1 / 22.6 s (4.4x); ``--settings paper --layers 12``
(at 30 layers the plain pass would need about 26 GB, `shared_prompt_loss.py`, more than the box's
24; 2 repeats) loss 157.4 / 19.4 s (8.1x), whole step 193.6 / 52.4 s (3.7x). The plain loss here is
more than twice `shared_prompt_loss.py`'s plain path at the same shapes (36 s, no fused head): TRL's
fused LM head, off Triton, scores every prompt position too. Reply tokens sampled alike: 0.842 /
0.863. GPU, one H200 (torch 2.11, transformers 5.17, 2026-12-04, nothing else on it), ``--device
cuda --model qwen2.5-0.5b-random --settings gpu --repeats 3``: loss 0.437 s plain, 0.253 s shared
(1.73x); whole step 9.14 s, 8.68 s (1.05x): on the GPU the step is HF ``generate``'s 256 decode
steps (8.7 of 9.1 s), which sharing the prompt does not shorten; 0.987 of the reply tokens sampled
alike. Never run as a test.
"""

from __future__ import annotations

import json
import statistics
import time
import types
from contextlib import nullcontext

import torch

# Run as a script, so benchmarks/ is on sys.path.
from shared_prompt_loss import SETTINGS, common_arguments, make_batch
from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.utils import add_fused_lm_head

from toolexpander.models import SMOLLM2_HUB_ID, load_model_and_tokenizer
from toolexpander.trainer.shared_prompt import shared_prompt_cache, shared_prompt_logps_and_entropies

SEED = 0


def qwen_05b_shaped(layers: int):
    """A random model of Qwen2.5-0.5B's shape (hidden 896, 14 heads, 2 KV heads, intermediate 4864,
    vocab 151936, tied embeddings): the timing needs its shape, not its weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(SEED)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=0,
    )
    return Qwen2ForCausalLM(config)


def load_model(layers: int, kind: str, device: str):
    """SmolLM2-135M's first ``layers`` layers (or a random 0.5B-shaped model), float32 weights,
    TRL's fused LM head (log-probs, entropy)."""
    if kind == "qwen2.5-0.5b-random":
        return _fused(qwen_05b_shaped(layers), device)
    model, _ = load_model_and_tokenizer(SMOLLM2_HUB_ID, dtype=torch.float32)
    model.model.layers = model.model.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    return _fused(model, device)


def _fused(model, device: str):
    model.config._attn_implementation = "sdpa"
    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    return model.to(device).train()  # no dropout in either


def trl_logps_and_entropies(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """TRL's plain path: its own method (unwrapped from its profiling decorator) on every row's
    ``[prompt, completion]``; a stand-in for the one trainer attribute it reads."""
    method = GRPOTrainer._get_per_token_logps_and_entropies
    method = getattr(method, "__wrapped__", method)
    trainer = types.SimpleNamespace(accelerator=types.SimpleNamespace(autocast=nullcontext))
    ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    logps, entropies, _ = method(trainer, model, ids, mask, completion_ids.shape[1], compute_entropy=True)
    return logps, entropies


def clock(device: str) -> tuple[float, float]:
    """(process CPU, wall) seconds, once the device's queued work is done."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.process_time(), time.perf_counter()


def one_step(model, path: str, prompt_ids, prompt_mask, completion_length: int, chunk: int | None):
    """Generation, then the loss forward+backward in chunks of ``chunk`` rows; returns the seconds
    (process CPU, wall) of each and the sampled replies."""
    device = prompt_ids.device.type
    settings = {
        "max_new_tokens": completion_length,
        "min_new_tokens": completion_length,
        "do_sample": True,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "pad_token_id": model.config.pad_token_id or 0,
    }
    rows = prompt_ids.shape[0]
    chunk = chunk or rows
    clocks = [clock(device)]
    torch.manual_seed(SEED)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        cache = shared_prompt_cache(model, prompt_ids, prompt_mask, **settings) if path == "shared" else {}
        sequences = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **cache, **settings)
    completion_ids = sequences[:, prompt_ids.shape[1] :]
    completion_mask = torch.ones_like(completion_ids)
    clocks.append(clock(device))
    advantages = torch.linspace(-1.0, 1.0, rows, device=device)[:, None]
    model.zero_grad(set_to_none=True)
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        args = (prompt_ids[part], prompt_mask[part], completion_ids[part], completion_mask[part])
        with torch.autocast(device, dtype=torch.bfloat16):
            if path == "plain":
                logps, entropies = trl_logps_and_entropies(model, *args)
            else:
                logps, entropies = shared_prompt_logps_and_entropies(model, *args, compute_entropy=True)
        # A GRPO-like loss that reaches both outputs, as TRL's entropy term would.
        loss = ((logps * advantages[part]).sum() - 1e-3 * entropies.sum()) / completion_mask.sum()
        loss.backward()
    clocks.append(clock(device))
    (cpu0, wall0), (cpu1, wall1), (cpu2, wall2) = clocks
    return {"generate": (cpu1 - cpu0, wall1 - wall0), "loss": (cpu2 - cpu1, wall2 - wall1)}, completion_ids


def median_seconds(steps: list[dict], part: str) -> tuple[float, float]:
    """Median (process CPU, wall) seconds of ``part``: ``loss``, or ``step`` (generation + loss)."""
    parts = ("loss",) if part == "loss" else ("generate", "loss")
    cpu = statistics.median(sum(step[p][0] for p in parts) for step in steps)
    wall = statistics.median(sum(step[p][1] for p in parts) for step in steps)
    return cpu, wall


def main() -> None:
    parser = common_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "qwen2.5-0.5b-random"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    layers = 24 if args.model != "smollm2" and args.layers == 30 else args.layers  # 30: SmolLM2's
    model = load_model(layers, args.model, args.device)
    for name in args.settings:
        n_prompts, group, prompt_len, completion_len, chunk = SETTINGS[name]
        batch = make_batch(n_prompts, group, prompt_len, completion_len)[:2]
        prompt_ids, prompt_mask = (tensor.to(args.device) for tensor in batch)
        replies = {}
        for path in ("plain", "shared"):  # warm-ups
            _, replies[path] = one_step(model, path, prompt_ids, prompt_mask, completion_len, chunk)
        same = (replies["plain"] == replies["shared"]).float().mean().item()
        steps = {"plain": [], "shared": []}
        for _ in range(args.repeats):
            for path, done in steps.items():
                done.append(one_step(model, path, prompt_ids, prompt_mask, completion_len, chunk)[0])
        for part in ("loss", "step"):
            plain_cpu, plain_wall = median_seconds(steps["plain"], part)
            shared_cpu, shared_wall = median_seconds(steps["shared"], part)
            if args.device == "cuda":  # the GPU's work is not the process's CPU time
                plain_cpu, shared_cpu = plain_wall, shared_wall
            line = {
                "setting": name,
                "part": part,
                "plain_s": round(plain_cpu, 3),
                "shared_s": round(shared_cpu, 3),
                "ratio": round(shared_cpu / plain_cpu, 3),
                "plain_wall_s": round(plain_wall, 3),
                "shared_wall_s": round(shared_wall, 3),
                "rows": n_prompts * group,
                "prompt_tokens": prompt_ids.shape[1],
                "completion_tokens": completion_len,
                "rows_per_backward": chunk or n_prompts * group,
                "model": args.model,
                "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
                "layers": layers,
                "threads": args.threads,
                "repeats": args.repeats,
                "same_replies": round(same, 3),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
