#!/usr/bin/env bash
# Issue 14 on one GPU, one call: falcon-7b (random init in HF layout, as transformers saves it)
# fine-tuned at seq 512 by `falconry finetune` with QLoRA (NF4 base) and with LoRA (bf16 base),
# then PyTorch + peft on the same config in the same call (LoRA bf16; QLoRA where bitsandbytes
# imports). Per run: the GPU's peak used memory over the process (nvidia-smi every 100 ms, less
# the idle reading before it), what falconry's allocator held for live tensors after the forward
# (metrics.jsonl) and tokens/s after two warm-up steps. LIMIT_GB=24 runs the fine-tunes under an
# MPS pinned-memory limit (a 24 GB card's memory; CubeCL sizes its pools from the free memory,
# vendor/cubecl-cuda/PATCHES.md); the daemon is stopped at the end.
#
#   bench/finetune_gpu.sh OUT        (repo root; .device/falconry.gz = the cuda build,
#                                     .device/data.tar.gz = tokenizer, .device/inst.jsonl = data)
# env: STEPS (12), BATCH (1; rows per step), MICRO (BATCH; rows per forward/backward), RUNS ("falconry-nf4 falconry-bf16 peft-bf16 peft-nf4"), TIMEOUT
# (seconds a run may take, 420), LIMIT_GB. The first cold run spends minutes in CubeCL's autotune
# (target/autotune/: carry it to the next call).
set -u
out=${1:?output folder}
steps=${STEPS:-12}
batch=${BATCH:-1}
micro=${MICRO:-$batch}
runs=${RUNS:-falconry-nf4 falconry-bf16 peft-bf16 peft-nf4}
limit=${TIMEOUT:-420}
mkdir -p /tmp/bin "$out"
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"
mkdir -p /tmp/d && tar xzf .device/data.tar.gz -C /tmp/d
if [ ! -f /tmp/f7b/config.json ]; then
  start=$(date +%s)
  python3 bench/peft_finetune.py make --output /tmp/f7b --tokenizer /tmp/d/data/tokenizer/falcon \
    > "$out/make.log" 2>&1
  echo "made falcon-7b in $(( $(date +%s) - start )) s: $(tail -1 "$out/make.log" | cut -c1-300)"
fi
sed -e "s/^batch_size = .*/batch_size = $batch/" -e "s/^micro_batch_size = .*/micro_batch_size = $micro/" \
  configs/finetune/falcon-7b-qlora.toml > /tmp/ft.toml

if [ -n "${LIMIT_GB:-}" ]; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps/pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps/log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  nvidia-cuda-mps-control -d || exit 1
  trap 'echo quit | nvidia-cuda-mps-control' EXIT
  export CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=${LIMIT_GB}G
  python3 -c "import torch; f, t = torch.cuda.mem_get_info(); print(f'MPS limit ${LIMIT_GB}G: {f >> 20} MiB free')"
fi
idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
# peak NAME CMD...: runs CMD with the GPU's used memory sampled; one summary line.
peak() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/$name.mem" &
  local poll=$!
  local start=$(date +%s)
  "$@" > "$out/$name.log" 2>&1
  local rc=$?
  kill $poll 2>/dev/null; wait $poll 2>/dev/null
  local top=$(sort -n "$out/$name.mem" | tail -1)
  echo "$name: rc $rc, $(( $(date +%s) - start )) s, peak GPU memory $(( top - idle )) MiB over idle $idle"
  tail -2 "$out/$name.log" | cut -c1-400
}

for run in $runs; do
  case $run in
    falconry-nf4|falconry-bf16)
      q=(); [ $run = falconry-nf4 ] && q=(--quantize nf4)
      [ $run = falconry-bf16 ] && sed -i 's/^quantize = .*/quantize = "none"/' /tmp/ft.toml
      rm -rf /tmp/ft-$run
      peak $run timeout $limit /tmp/bin/falconry finetune --checkpoint /tmp/f7b --data .device/inst.jsonl \
        --output /tmp/ft-$run --config /tmp/ft.toml "${q[@]}" --steps "$steps"
      cp /tmp/ft-$run/metrics.jsonl "$out/$run.metrics.jsonl" 2>/dev/null
      python3 - "$out/$run.metrics.jsonl" <<'PY'
import json, statistics, sys
try:
    rows = [json.loads(l) for l in open(sys.argv[1])]
except FileNotFoundError:
    rows = []
if not rows:
    sys.exit(print("  no step finished"))
t = [r["tokens_per_sec"] for r in rows[2:]] or [r["tokens_per_sec"] for r in rows]
mem = max((r.get("memory_in_use_mib", 0) for r in rows), default=0)
print(f"  tokens/s median {statistics.median(t):.0f} over {len(t)} steps, loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f},"
      f" live tensors after the forward {mem:.0f} MiB (reserved {max(r.get('memory_reserved_mib', 0) for r in rows):.0f})")
PY
      ;;
    peft-bf16|peft-nf4)
      q=(); [ $run = peft-nf4 ] && q=(--quantize nf4)
      peak $run timeout $limit python3 bench/peft_finetune.py train --checkpoint /tmp/f7b \
        --steps "$steps" --batch "$batch" "${q[@]}"
      ;;
  esac
done
