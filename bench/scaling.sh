#!/usr/bin/env bash
# Data-parallel scaling of `falconry train --devices N` (the CUDA engine over NCCL, issue 15):
# tokens/s on 1, 2, 4 ... GPUs of this host at the same per-GPU batch, the efficiency per GPU
# against one GPU, and the card's name, in one call. First, on one GPU, the group code path
# (`FALCONRY_ENGINE=group`: NCCL with one rank, per-block all-reduce on a second stream) must
# give the single engine's losses (within 2e-3: the engine's f32 atomics make runs differ in the
# last bits), else the script fails.
#
#   bench/scaling.sh OUT_DIR [MODEL:MICRO:ACCUM ...]        (default falcon-124m:4:2)
#
# Run from the repository root on the GPU machine with the cuda build at $FALCONRY; NCCL from
# PyTorch's wheel (found below) or LD_LIBRARY_PATH. STEPS (20) sets the steps per run.
set -uo pipefail
out=${1:?usage: scaling.sh OUT_DIR [MODEL:MICRO:ACCUM ...]}
shift
runs=("${@:-falcon-124m:4:2}")
FALCONRY=${FALCONRY:-falconry}
STEPS=${STEPS:-20}
nccl=$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib'))" 2>/dev/null)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${nccl:+$nccl:}${LD_LIBRARY_PATH:-}
mkdir -p "$out"
gpus=$(nvidia-smi -L | wc -l)
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "$gpus x $card" | tee "$out/card.txt"
python3 bench/make_tokens.py /tmp/tokens 40000000

# train TAG MODEL MICRO ACCUM DEVICES [ENV...]: one run, its metrics kept as $out/TAG.jsonl.
train() {
    local tag=$1 model=$2 micro=$3 accum=$4 n=$5
    shift 5
    local cfg=/tmp/$tag.toml
    sed -e "s/^model = .*/model = \"$model\"/" -e "s/^micro_batch_size = .*/micro_batch_size = $micro/" \
        -e "s/^grad_accum_steps = .*/grad_accum_steps = $accum/" -e "s/^eval_batches = .*/eval_batches = 2/" \
        configs/train/falcon-124m.toml > "$cfg"
    rm -rf "/tmp/run-$tag"
    env "$@" timeout 300 "$FALCONRY" train --config "$cfg" --data /tmp/tokens --output "/tmp/run-$tag" \
        --steps "$STEPS" --devices "$n" > "$out/$tag.log" 2>&1 || { tail -5 "$out/$tag.log"; return 1; }
    grep '"split":"train"' "/tmp/run-$tag/metrics.jsonl" > "$out/$tag.jsonl"
}

status=0
IFS=: read -r model micro accum <<< "${runs[0]}"
train single "$model" "$micro" "$accum" 1 || status=1
train group1 "$model" "$micro" "$accum" 1 FALCONRY_ENGINE=group || status=1
python3 - "$out" <<'PY' || status=1
import json, sys
loss = lambda f: [json.loads(l)["loss"] for l in open(f"{sys.argv[1]}/{f}.jsonl")]
a, b = loss("single"), loss("group1")
print(f"one GPU, engine vs NCCL group of one: {len(a)} steps, max |loss difference| {max(abs(x - y) for x, y in zip(a, b)):.3g}")
sys.exit(0 if len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= 2e-3 else 1)
PY

for run in "${runs[@]}"; do
    IFS=: read -r model micro accum <<< "$run"
    for n in 1 2 4 8; do
        (( n > gpus )) && break
        train "$model-$n" "$model" "$micro" "$accum" "$n" || status=1
    done
done
python3 - "$out" "$card" "$gpus" "${runs[@]}" <<'PY'
import json, pathlib, sys
out, card, gpus, runs = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
print(f"\n{gpus} x {card}: falconry train --devices N, same per-GPU batch, tokens/s of steps 3..\n")
print("| model | micro x accum | GPUs | tokens/s | per GPU | efficiency |")
print("|---|---|---:|---:|---:|---:|")
for run in runs:
    model, micro, accum = run.split(":")
    base = None
    for n in (1, 2, 4, 8):
        f = out / f"{model}-{n}.jsonl"
        if not f.exists():
            continue
        rows = [json.loads(l) for l in open(f)][2:]
        tps = sum(r["tokens_per_sec"] for r in rows) / max(len(rows), 1)
        base = base or tps
        print(f"| {model} | {micro} x {accum} | {n} | {tps:,.0f} | {tps / n:,.0f} | {tps / n / base:.1%} |")
PY
exit $status
