"""Loss forward+backward: the plain path (every row's full [prompt, completion]) against
`trainer.shared_prompt.shared_prompt_logps_and_entropies` (each distinct prompt encoded once), SPEC §11.

A random Llama shaped like SmolLM2-135M (hidden 576, 30 layers, 9 heads, 3 KV heads, intermediate
1536, vocab 49152, tied embeddings), float32 weights under bfloat16 autocast on CPU, SDPA attention.
Settings:
- ``demo``: 4 prompts x G=4, prompts of ~420 tokens (left-padded, 400-440), completions of up to 64
  (right-padded, ragged);
- ``paper``: 2 prompts x G=10, prompts of ~800 tokens, completions of up to 256. To keep memory
  sane it runs one group (G rows) per forward+backward on both paths, gradients accumulated, as a
  trainer with a per-device batch of one group would.

Both paths compute the same loss, ``sum(logps * mask * advantage) / mask.sum()``; runs alternate
(plain, shared) after one warm-up each, so machine load hits both alike. ``plain_s`` and
``shared_s`` are the median process CPU seconds of one step (on ``--threads 1``, the default, the
step's own work: another tenant's load does not count), ``*_wall_s`` the median wall seconds.
``max_abs_logp_diff`` compares the two paths' log-probs (bfloat16: not exact). One JSON line per
setting:

    python benchmarks/shared_prompt_loss.py [--settings demo paper] [--repeats 2] [--threads 1]
        [--layers 30] [--rows_per_backward N]

Peak memory (max RSS, measured): ``demo`` 13.0 GB at 30 layers (16 rows of ~500 tokens at once, as the
demo's per-device batch of 16; ``--rows_per_backward 4`` takes about a quarter of the activations);
``paper`` 4.4 GB at 2 layers and 6.0 GB at 4, so about 26 GB at 30: on a smaller machine pass
``--layers 12`` or so (the per-layer ratio is the point; the LM head's share grows as layers drop).
Measured on this project's 2-core CPU box (AMD EPYC), ``--threads 2``, nothing else running:
``demo`` (30 layers, 2 repeats) wall 36.2 s plain, 11.7 s shared per step (3.09x; the token count
ratio is (4 x 440 + 16 x 63) / (16 x 504) = 0.34); ``paper`` at ``--layers 12 --repeats 1`` wall
48.7 s plain, 19.8 s shared (2.47x).

Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from toolexpander.trainer.shared_prompt import shared_prompt_logps_and_entropies

SETTINGS = {
    # name: (prompts, G, prompt length (mean), completion length (max), rows per forward+backward)
    "demo": (4, 4, 420, 64, None),
    "paper": (2, 10, 800, 256, 10),
    "gpu": (4, 8, 1024, 256, None),  # issue 23's GPU check, for a 0.5B-shaped model
}
PAD = 0


def build_model(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=layers,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        pad_token_id=PAD,
        bos_token_id=1,
        eos_token_id=2,
    )
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config).train()  # no dropout in this config


def make_batch(n_prompts: int, group: int, prompt_len: int, completion_len: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = [prompt_len - 20 + (40 * i) // max(1, n_prompts - 1) for i in range(n_prompts)]
    width = max(lengths)
    rows = n_prompts * group
    prompt_ids = torch.full((rows, width), PAD, dtype=torch.long)
    prompt_mask = torch.zeros(rows, width, dtype=torch.long)
    for p, n in enumerate(lengths):
        tokens = torch.randint(3, 49152, (n,), generator=gen)
        for g in range(group):
            prompt_ids[p * group + g, width - n :] = tokens
            prompt_mask[p * group + g, width - n :] = 1
    completion_ids = torch.randint(3, 49152, (rows, completion_len), generator=gen)
    completion_mask = torch.zeros(rows, completion_len, dtype=torch.long)
    for row in range(rows):
        n = (
            completion_len - int(torch.randint(0, completion_len // 2, (1,), generator=gen))
            if row % 3
            else completion_len
        )
        completion_mask[row, :n] = 1
        completion_ids[row, n:] = PAD
    advantages = torch.linspace(-1.0, 1.0, rows)[:, None]
    return prompt_ids, prompt_mask, completion_ids, completion_mask, advantages


def plain_logps(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """TRL's plain path: the whole sequence, logits[:, -C-1:-1], log-softmax (float32), gather."""
    ids = torch.cat([prompt_ids, completion_ids], 1)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    c = completion_ids.shape[1]
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=c + 1).logits[:, :-1].float()
    return logits.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)


def step(model, path: str, batch, chunk: int | None) -> torch.Tensor:
    """One loss forward+backward over the batch (in chunks of whole groups); returns the log-probs."""
    prompt_ids, prompt_mask, completion_ids, completion_mask, advantages = batch
    rows = prompt_ids.shape[0]
    chunk = chunk or rows
    total = completion_mask.sum()
    model.zero_grad(set_to_none=True)
    out = []
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        args = (prompt_ids[part], prompt_mask[part], completion_ids[part], completion_mask[part])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logps = (
                plain_logps(model, *args)
                if path == "plain"
                else shared_prompt_logps_and_entropies(model, *args)[0]
            )
        loss = (logps * completion_mask[part] * advantages[part]).sum() / total
        loss.backward()
        out.append(logps.detach())
    return torch.cat(out)


def timed(model, path, batch, chunk):
    cpu, wall = time.process_time(), time.perf_counter()
    logps = step(model, path, batch, chunk)
    return time.process_time() - cpu, time.perf_counter() - wall, logps


def common_arguments(description: str) -> argparse.ArgumentParser:
    """The options this benchmark shares with `benchmarks/step_cost.py`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per path, after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--layers", type=int, default=30, help="fewer for a quick look (30 = SmolLM2-135M)")
    return parser


def main() -> None:
    parser = common_arguments(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows_per_backward",
        type=int,
        default=None,
        help="rows per forward+backward (a multiple of G keeps groups whole); default: the setting's",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(args.layers)
    for name in args.settings:
        n_prompts, group, prompt_len, completion_len, chunk = SETTINGS[name]
        chunk = args.rows_per_backward or chunk
        batch = make_batch(n_prompts, group, prompt_len, completion_len)
        _, _, plain = timed(model, "plain", batch, chunk)  # warm-ups
        _, _, shared = timed(model, "shared", batch, chunk)
        mask = batch[3].bool()
        diff = (plain - shared).abs()[mask].max().item()
        times = {"plain": [], "shared": []}
        for _ in range(args.repeats):
            for path in ("plain", "shared"):
                cpu, wall, _ = timed(model, path, batch, chunk)
                times[path].append((cpu, wall))
        med = {
            (path, kind): statistics.median(t[i] for t in times[path])
            for path in times
            for i, kind in enumerate(("cpu", "wall"))
        }
        print(
            json.dumps(
                {
                    "setting": name,
                    "part": "loss",
                    "plain_s": round(med["plain", "cpu"], 3),
                    "shared_s": round(med["shared", "cpu"], 3),
                    "ratio": round(med["shared", "cpu"] / med["plain", "cpu"], 3),
                    "plain_wall_s": round(med["plain", "wall"], 3),
                    "shared_wall_s": round(med["shared", "wall"], 3),
                    "rows": n_prompts * group,
                    "prompt_tokens": batch[0].shape[1],
                    "completion_tokens": completion_len,
                    "rows_per_backward": chunk or n_prompts * group,
                    "layers": args.layers,
                    "threads": args.threads,
                    "repeats": args.repeats,
                    "max_abs_logp_diff": round(diff, 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
