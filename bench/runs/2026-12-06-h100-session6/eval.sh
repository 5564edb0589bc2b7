#!/usr/bin/env bash
# Issue 13 on one GPU: falcon-124m trained by falconry (with [eval_tasks] rows during training),
# then falconry eval-tasks (CUDA engine, bf16) against lm_eval 0.4.13 --model hf (bf16) on the
# same checkpoint, same tasks and limits: scores side by side and the speed ratio.
set -u
out=$1
mkdir -p /tmp/bin "$out" && zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/card.txt"
python3 .device/install_wheels.py 2>&1 | tail -3
python3 -c "import lm_eval, datasets, transformers, huggingface_hub as h; print('lm_eval', lm_eval.__version__, 'datasets', datasets.__version__, 'transformers', transformers.__version__, 'hub', h.__version__)" 2>&1 | tail -3
mkdir -p /tmp/d && tar xzf .device/data.tar.gz -C /tmp/d
cat > /tmp/c.toml <<TOML
model = "falcon-124m"
seq_len = 1024
micro_batch_size = 8
grad_accum_steps = 1
max_steps = 200
precision = "bf16"
seed = 1337
eval_interval = 100
eval_batches = 1
checkpoint_interval = 200
peak_flops = 989e12
[schedule]
max_lr = 6e-4
min_lr = 6e-5
warmup_steps = 30
[eval_tasks]
tasks = "arc_easy,hellaswag:10"
limit = 100
data = "/tmp/d/data/eval"
tokenizer = "/tmp/d/data/tokenizer/falcon/tokenizer.json"
TOML
cp /tmp/c.toml "$out/train.toml"
start=$(date +%s)
timeout 60 /tmp/bin/falconry train --config /tmp/c.toml --data .device/tokens --output /tmp/run124 > "$out/train.log" 2>&1
echo "train rc=$? $(( $(date +%s) - start )) s"; tail -3 "$out/train.log"
cp /tmp/run124/metrics.jsonl "$out/metrics.jsonl"; grep eval_tasks "$out/metrics.jsonl" | tail -4
ck=/tmp/run124/checkpoints/step-000200
timeout 330 python3 scripts/lm_eval_parity.py --checkpoint $ck --data /tmp/d/data --limit 200 --mmlu-limit 5 \
  --device cuda --dtype bfloat16 --batch-size 32 --falconry /tmp/bin/falconry --work /tmp/par2 --report-only > "$out/parity.txt" 2>&1
echo "parity rc=$?"; grep -v "^+\|it/s\]\|%|" "$out/parity.txt" | tail -40
cp -r /tmp/par2/falconry "$out/falconry-out" 2>/dev/null; find /tmp/par2 -name "results_*.json" -exec cp {} "$out/" \;
