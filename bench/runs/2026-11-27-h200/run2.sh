#!/bin/bash
# Device run 2: falconry with micro-batch 8 (no accumulation), 60 steps; PyTorch at micro-batch 8 and 16.
set -x
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
export LD_LIBRARY_PATH=$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH}
gunzip -c .device/train_run.gz > /tmp/train_run && chmod +x /tmp/train_run
mkdir -p target && cp -r .device/cubecl/* target/
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > $OUT/mem_falconry_mb8.csv &
SMI=$!
T0=$(date +%s)
timeout 420 /tmp/train_run --config .device/train-falcon-124m-mb8.toml --data .device/shards --output /tmp/run --steps 60 > $OUT/falconry_mb8_summary.json 2> $OUT/falconry_mb8.log
echo "falconry rc=$? wall=$(( $(date +%s) - T0 ))s"
kill $SMI
sort -n $OUT/mem_falconry_mb8.csv | tail -1
cp /tmp/run/metrics.jsonl $OUT/metrics_mb8.jsonl
(cd target && tar czf $OUT/autotune2.tgz .)
export PYTHONUNBUFFERED=1
python3 .device/torch_falcon.py --model .device/model-falcon-124m.toml --data .device/shards --micro 8 --accum 1 --steps 30 --falconry $OUT/falconry_mb8_summary.json 2>&1 | tee $OUT/bench_mb8.txt
python3 .device/torch_falcon.py --model .device/model-falcon-124m.toml --data .device/shards --micro 8 --accum 1 --steps 40 --compile --falconry $OUT/falconry_mb8_summary.json 2>&1 | tail -9 | tee -a $OUT/bench_mb8.txt
python3 .device/torch_falcon.py --model .device/model-falcon-124m.toml --data .device/shards --micro 16 --accum 1 --steps 30 2>&1 | tail -2 | tee -a $OUT/bench_mb8.txt
