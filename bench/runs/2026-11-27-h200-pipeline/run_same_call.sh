#!/bin/bash
# falconry (one GPU) and PyTorch torch.compile on the same card in one call.
export LD_LIBRARY_PATH=$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH}
gunzip -c .device/falconry.gz > /tmp/falconry && chmod +x /tmp/falconry
mkdir -p target && cp -r .device/cubecl/* target/
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 100 /tmp/falconry train --config configs/train/falcon-124m.toml --data .device/pipeline \
    --output /tmp/run --steps 30 2>/dev/null
cp /tmp/run/metrics.jsonl $OUT/metrics.jsonl
export PYTHONUNBUFFERED=1
timeout 120 python3 bench/torch_falcon.py --model configs/model/falcon-124m.toml --data .device/pipeline/train \
    --micro 4 --accum 2 --steps 30 --compile --falconry $OUT/metrics.jsonl 2>&1 | tail -8 | tee $OUT/bench_compile.txt
