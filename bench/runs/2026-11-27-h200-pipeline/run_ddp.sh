#!/bin/bash
# Device run on a 2-GPU host: `falconry train` on one GPU, then data parallel on two
# (`--devices 2`, NCCL), CubeCL's per-kernel profile of a few one-GPU steps, then the PyTorch
# peer on the same shards: all in one call, so every ratio compares runs on the same cards.
# Run from the repo root with `.device` carried (see run.sh).
# Usage: bash bench/runs/2026-11-27-h200-pipeline/run_ddp.sh STEPS
set -x
STEPS=${1:-40}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# cudarc opens libnccl.so; the image has NCCL beside PyTorch as libnccl.so.2.
mkdir -p /tmp/nccl && ln -sf "$(find /opt /usr -name 'libnccl.so.2' 2>/dev/null | head -1)" /tmp/nccl/libnccl.so
export LD_LIBRARY_PATH=/tmp/nccl:$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH}
gunzip -c .device/falconry.gz > /tmp/falconry && chmod +x /tmp/falconry
# One autotune cache per device: the second GPU starts from the first one's.
A=target/autotune/0.10.0
mkdir -p target && cp -r .device/cubecl/* target/ && cp -r $A/device-0-0-cuda $A/device-0-1-cuda

for N in 1 2; do
  T0=$(date +%s)
  timeout 240 /tmp/falconry train --config configs/train/falcon-124m.toml --data .device/pipeline \
      --output /tmp/run$N --steps $STEPS --devices $N 2> /tmp/train$N.log
  echo "devices=$N rc=$? wall=$(( $(date +%s) - T0 ))s"
  tail -3 /tmp/train$N.log
  cp /tmp/run$N/metrics.jsonl $OUT/metrics_devices$N.jsonl
done

printf '[profiling.logger]\nlevel = "basic"\nfile = "/tmp/profile.log"\n' > cubecl.toml
timeout 120 /tmp/falconry train --config configs/train/falcon-124m.toml --data .device/pipeline \
    --output /tmp/prof --steps 3 2>/dev/null
rm cubecl.toml
# The summary table of the last step (the log also has a line per kernel launch).
python3 -c "
t = open('/tmp/profile.log', errors='replace').read()
i = t.rfind('Num Computed'); i = t.rfind('\n', 0, max(0, i - 2000)) if i > 0 else max(0, len(t) - 200000)
open('$OUT/profile_tail.log', 'w').write(t[i:])
"
ls -la /tmp/profile.log

export PYTHONUNBUFFERED=1
python3 bench/torch_falcon.py --model configs/model/falcon-124m.toml --data .device/pipeline/train \
    --micro 4 --accum 2 --steps 30 --falconry $OUT/metrics_devices1.jsonl 2>&1 | tee $OUT/bench.txt
python3 bench/torch_falcon.py --model configs/model/falcon-124m.toml --data .device/pipeline/train \
    --micro 4 --accum 2 --steps 40 --compile --falconry $OUT/metrics_devices1.jsonl 2>&1 | tail -8 | tee -a $OUT/bench.txt
