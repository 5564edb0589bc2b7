#!/usr/bin/env bash
# The GPU bench in one call (issue 10): falconry's kernels against PyTorch on fresh random
# inputs, the CUDA engine's loss and gradients against transformers, then training steps of
# `falconry train` against bench/torch_falcon.py (eager and torch.compile) on the same card, same
# config, same token shards. Ends with one table naming the card; any correctness failure makes
# it exit 1.
#
#   bench/gpu_bench.sh OUT_DIR [MODEL[:MICRO:ACCUM[:FLAGS]] ...]     (default falcon-124m:4:2)
#
# FLAGS (comma-separated): `eager` leaves torch.compile out for that run, `recompute` turns on
# falconry's recompute_activations (PyTorch then runs without recomputation, for reference),
# `mma` runs falconry's portable mma.sync attention instead of Hopper's warpgroup-MMA kernels
# (FALCONRY_MMA_SYNC=1) and leaves PyTorch out, `compiled` leaves PyTorch eager out.
#
# Run from the repository root on the GPU machine with the cuda build at $FALCONRY and the
# engine_check example at $ENGINE_CHECK (`cargo build --release --features cuda`, and
# `--example engine_check`); CUDA's libraries in /usr/local/cuda/lib64. STEPS (30) sets the
# training steps per run, CHECKS the models whose gradients are checked (MODEL[:recompute];
# set and empty: none); NO_KERNELS=1 skips the kernel checks; RUNS (/tmp) holds falconry's run
# folders (/dev/shm spares a 1B model's checkpoint the disk).
set -uo pipefail
out=${1:?usage: gpu_bench.sh OUT_DIR [MODEL[:MICRO:ACCUM] ...]}
shift
runs=("${@:-falcon-124m:4:2}")
FALCONRY=${FALCONRY:-falconry}
ENGINE_CHECK=${ENGINE_CHECK:-engine_check}
STEPS=${STEPS:-30}
RUNS=${RUNS:-/tmp}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
mkdir -p "$out"
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"

if [[ -z ${NO_KERNELS:-} ]]; then
    echo "== kernels against PyTorch"
    timeout 240 python3 bench/kernels.py --out "$out/kernels.json" || status=1
fi

echo "== engine gradients against transformers"
printf 'vocab_size = 4096\nhidden_size = 256\nnum_hidden_layers = 2\nnum_attention_heads = 4\nnum_kv_heads = 4\nmulti_query = false\nffn_hidden_size = 1024\n' > /tmp/falcon-rw-small.toml
for m in ${CHECKS-falcon-124m falcon-350m /tmp/falcon-rw-small.toml falcon-124m:recompute}; do
    IFS=: read -r model mode <<< "$m"
    name=$(basename "$model" .toml)${mode:+-$mode}
    dir=/tmp/engine_check/$name
    # The per-tensor rows stay in the file; the log gets the summary.
    { timeout 120 "$ENGINE_CHECK" "$dir" "$model" 2 256 $mode > /dev/null &&
      timeout 120 python3 bench/check_engine.py "$dir" > "$out/check_$name.txt"; } || status=1
    grep -v "^| transformer" "$out/check_$name.txt"
done

echo "== training steps: falconry vs PyTorch"
python3 bench/make_tokens.py /tmp/tokens 20000000
for run in "${runs[@]}"; do
    IFS=: read -r model micro accum flags <<< "$run"
    micro=${micro:-4}; accum=${accum:-2}; flags=${flags:-}
    tag=$model-$micro-$accum${flags:+-${flags//,/-}}
    cfg=/tmp/$tag.toml
    sed -e "s/^model = .*/model = \"$model\"/" -e "s/^micro_batch_size = .*/micro_batch_size = $micro/" \
        -e "s/^grad_accum_steps = .*/grad_accum_steps = $accum/" -e "s/^eval_batches = .*/eval_batches = 2/" \
        configs/train/falcon-124m.toml > "$cfg"
    [[ $flags == *recompute* ]] && sed -i "s/^peak_flops = .*/&\nrecompute_activations = true/" "$cfg"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "/tmp/mem-$tag.csv" &
    smi=$!
    start=$(date +%s.%N)
    mma=; [[ $flags == *mma* ]] && mma=1
    FALCONRY_MMA_SYNC=${mma:-${FALCONRY_MMA_SYNC:-}} timeout 300 "$FALCONRY" train --config "$cfg" --data /tmp/tokens --output "$RUNS/run-$tag" --steps "$STEPS" \
        > "$out/train-$tag.log" 2>&1 || { status=1; tail -5 "$out/train-$tag.log"; }
    echo "falconry $tag: $(python3 -c "import time; print(round(time.time() - $start, 1))") s wall, peak $(sort -n "/tmp/mem-$tag.csv" | tail -1) MiB"
    kill $smi
    sort -n "/tmp/mem-$tag.csv" | tail -1 > "$out/mem-$tag.txt"
    cp "$RUNS/run-$tag/metrics.jsonl" "$out/metrics-$tag.jsonl"
    conf=configs/model/$model.toml
    modes=("" --compile)
    [[ -n "${NO_COMPILE:-}" || $flags == *eager* ]] && modes=("")
    [[ $flags == *compiled* ]] && modes=(--compile)
    [[ $flags == *mma* ]] && modes=()
    for mode in "${modes[@]}"; do
        timeout 300 python3 bench/torch_falcon.py --model "$conf" --data /tmp/tokens --micro "$micro" --accum "$accum" \
            --steps "$STEPS" $mode 2>&1 | grep '^{' > "$out/torch-$tag${mode:+-compiled}.json" || true
    done
done
python3 bench/step_table.py "$out" "${runs[@]}"
exit $status
