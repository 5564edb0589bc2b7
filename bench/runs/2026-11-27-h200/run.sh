#!/bin/bash
# Device run: falconry (Burn, CUDA) trains falcon-124m, then the PyTorch peer on the same config.
# Usage: bash .device/run.sh STEPS FALCONRY_TIMEOUT_S
set -x
STEPS=${1:-300}; TMO=${2:-400}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
export LD_LIBRARY_PATH=$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH}
gunzip -c .device/train_run.gz > /tmp/train_run && chmod +x /tmp/train_run
mkdir -p target && cp -r .device/cubecl/* target/ && ls -R target | head -5
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > $OUT/mem_falconry.csv &
SMI=$!
T0=$(date +%s)
timeout $TMO /tmp/train_run --config .device/train-falcon-124m.toml --data .device/shards --output /tmp/run --steps $STEPS > $OUT/falconry_summary.json 2> $OUT/falconry.log
echo "falconry rc=$? wall=$(( $(date +%s) - T0 ))s"
kill $SMI
tail -5 $OUT/falconry.log
cp /tmp/run/metrics.jsonl /tmp/run/loss.png $OUT/ 2>/dev/null
ls /tmp/run/checkpoints/*/ 2>/dev/null
(cd target 2>/dev/null && tar czf $OUT/autotune.tgz . ) ; ls -la target 2>/dev/null | head
export PYTHONUNBUFFERED=1
python3 .device/torch_falcon.py --model .device/model-falcon-124m.toml --data .device/shards --micro 4 --accum 2 --steps 30 --falconry $OUT/falconry_summary.json 2>&1 | tee $OUT/bench.txt
python3 .device/torch_falcon.py --model .device/model-falcon-124m.toml --data .device/shards --micro 4 --accum 2 --steps 40 --compile --falconry $OUT/falconry_summary.json 2>&1 | tail -12 | tee -a $OUT/bench.txt
