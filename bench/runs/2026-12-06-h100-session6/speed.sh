#!/usr/bin/env bash
# Issue 10, one call: kernels against PyTorch (fused and split attention backward), training
# steps against torch eager/compile (bench/gpu_bench.sh), the split backward's step for
# comparison, and a FALCONRY_PROFILE run per model.
set -u
out=$1; shift
mkdir -p /tmp/bin "$out" && zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
export FALCONRY=/tmp/bin/falconry CHECKS= STEPS=30 LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
start=$(date +%s)
timeout 420 bench/gpu_bench.sh "$out/bench" "$@" > "$out/bench.log" 2>&1
echo "gpu_bench rc=$? $(( $(date +%s) - start )) s"
grep -A40 "falconry kernels vs PyTorch" "$out/bench.log" | grep "attn\|rope\|kernel |"
tail -8 "$out/bench.log"
for run in "$@"; do
  IFS=: read -r model micro accum <<< "$run"
  cfg=/tmp/$model-$micro-$accum.toml
  FALCONRY_ATTN_BWD=split timeout 100 /tmp/bin/falconry train --config $cfg --data /tmp/tokens --output /tmp/split-$model --steps 30 > "$out/split-$model.log" 2>&1
  cp /tmp/split-$model/metrics.jsonl "$out/split-$model.jsonl"
  FALCONRY_PROFILE=1 timeout 100 /tmp/bin/falconry train --config $cfg --data /tmp/tokens --output /tmp/prof-$model --steps 12 > "$out/profile-$model.log" 2>&1
  python3 - "$out" "$model-$micro-$accum" "$model" <<'PY'
import json, sys, pathlib
out, tag, model = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def load(p):
    rows = [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
    t = [r for r in rows if r["split"] == "train"]
    return t, len(t[1:]) / sum(1 / r["tokens_per_sec"] for r in t[1:])
f, ftps = load(out / "bench" / f"metrics-{tag}.jsonl")
s, stps = load(out / f"split-{model}.jsonl")
diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(f, s))
print(f"{model}: fused backward {ftps:,.0f} tokens/s, split {stps:,.0f} ({ftps / stps:.3f}x); largest loss difference over {len(f)} steps {diff:.2e}; last losses {f[-1]['loss']:.4f} / {s[-1]['loss']:.4f}")
PY
  sed -n '/GPU time per operation/,$p' "$out/profile-$model.log" | head -30
done
