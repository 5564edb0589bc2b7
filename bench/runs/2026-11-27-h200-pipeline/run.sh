#!/bin/bash
# Device run: `falconry train` (Burn, CUDA) trains falcon-124m on the pipeline's token shards,
# `falconry eval` scores held-out text with the checkpoint and transformers checks the same
# number, a short run logs CubeCL's per-kernel profile, then the PyTorch peer trains the same
# config on the same shards. Run from the repo root on the device machine, with `.device`
# carried (falconry.gz: `cargo build --release --features cuda`; pipeline/: the shards;
# tokenizer.json; val.txt; cubecl/: an earlier run's autotune cache).
# Usage: bash bench/runs/2026-11-27-h200-pipeline/run.sh STEPS
set -x
STEPS=${1:-300}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
export LD_LIBRARY_PATH=$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH}
gunzip -c .device/falconry.gz > /tmp/falconry && chmod +x /tmp/falconry
mkdir -p target && cp -r .device/cubecl/* target/

nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > $OUT/mem.csv &
SMI=$!
T0=$(date +%s)
timeout 420 /tmp/falconry train --config configs/train/falcon-124m.toml --data .device/pipeline/train \
    --output /tmp/run --steps $STEPS 2> $OUT/train.log
echo "falconry rc=$? wall=$(( $(date +%s) - T0 ))s"
kill $SMI
sort -n $OUT/mem.csv | tail -1
cp /tmp/run/metrics.jsonl /tmp/run/loss.png $OUT/ 2>/dev/null
(cd target && tar czf $OUT/autotune.tgz .)

CKPT=$(ls -d /tmp/run/checkpoints/step-* | tail -1)
/tmp/falconry eval --checkpoint $CKPT --input .device/val.txt --tokenizer .device/tokenizer.json \
    > $OUT/eval.json && cat $OUT/eval.json
export PYTHONUNBUFFERED=1
python3 bench/check_checkpoint.py --checkpoint $CKPT --input .device/val.txt \
    --tokenizer .device/tokenizer.json --falconry $OUT/eval.json | tee $OUT/check_checkpoint.json
/tmp/falconry generate --checkpoint $CKPT --tokenizer .device/tokenizer.json \
    --prompt "The history of the city" --max-new-tokens 40 --top-k 10 | tee $OUT/generate.txt

# Per-kernel profile of a few steps (CubeCL's profiling logger; a table per device sync).
printf '[profiling.logger]\nlevel = "basic"\nfile = "/tmp/profile.log"\n' > cubecl.toml
timeout 120 /tmp/falconry train --config configs/train/falcon-124m.toml --data .device/pipeline/train \
    --output /tmp/prof --steps 4 2>/dev/null
rm cubecl.toml
tail -c 60000 /tmp/profile.log > $OUT/profile_tail.log

python3 bench/torch_falcon.py --model configs/model/falcon-124m.toml --data .device/pipeline/train \
    --micro 4 --accum 2 --steps 30 --falconry $OUT/metrics.jsonl 2>&1 | tee $OUT/bench.txt
python3 bench/torch_falcon.py --model configs/model/falcon-124m.toml --data .device/pipeline/train \
    --micro 4 --accum 2 --steps 40 --compile --falconry $OUT/metrics.jsonl 2>&1 | tail -8 | tee -a $OUT/bench.txt
