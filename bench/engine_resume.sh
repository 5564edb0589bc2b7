#!/usr/bin/env bash
# The CUDA engine's checkpoint and --resume against an uninterrupted run, and the NCCL group
# path on one GPU, each with its tokens/s:  bench/engine_resume.sh OUT_DIR  (cuda build gzipped
# at .device/falconry.gz, as the device runs carry it). Was the first GPU run of both (session 4).
set -u
out=$1
mkdir -p /tmp/bin "$out" && zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
F=/tmp/bin/falconry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$(python3 -c "import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], 'lib'))")
python3 bench/make_tokens.py /tmp/tokens 20000000
sed -e 's/^micro_batch_size = .*/micro_batch_size = 4/' -e 's/^grad_accum_steps = .*/grad_accum_steps = 2/' \
    -e 's/^eval_interval = .*/eval_interval = 10/' -e 's/^checkpoint_interval = .*/checkpoint_interval = 10/' \
    -e 's/^eval_batches = .*/eval_batches = 2/' configs/train/falcon-124m.toml > /tmp/c.toml
run() { local tag=$1; shift; "$@" > "$out/$tag.log" 2>&1; echo "$tag rc=$?"; tail -2 "$out/$tag.log"; }
run full $F train --config /tmp/c.toml --data /tmp/tokens --output /tmp/full --steps 20
run first10 $F train --config /tmp/c.toml --data /tmp/tokens --output /tmp/resumed --steps 10
run resume $F train --config /tmp/c.toml --data /tmp/tokens --output /tmp/resumed --steps 20 --resume
FALCONRY_ENGINE=group run group $F train --config /tmp/c.toml --data /tmp/tokens --output /tmp/group --steps 20
cp /tmp/full/metrics.jsonl "$out/full.jsonl"; cp /tmp/resumed/metrics.jsonl "$out/resumed.jsonl"; cp /tmp/group/metrics.jsonl "$out/group.jsonl"
ls /tmp/resumed/checkpoints/* | head -20 > "$out/checkpoints.txt"
python3 - "$out" <<'PY'
import json, sys
rows = lambda f: [json.loads(l) for l in open(f"{sys.argv[1]}/{f}.jsonl")]
for name in ("full", "resumed", "group"):
    r = rows(name)
    tr = {x["step"]: x for x in r if x["split"] == "train"}
    va = {x["step"]: x["loss"] for x in r if x["split"] == "validation"}
    tps = [x["tokens_per_sec"] for s, x in tr.items() if s > 2 and s != 11]
    print(f"{name}: steps {len(tr)}, loss@10 {tr[10]['loss']:.5f} loss@20 {tr[20]['loss']:.5f}, val {va}, tokens/s {sum(tps)/len(tps):,.0f}")
f, r = rows("full"), rows("resumed")
ft = {x["step"]: x["loss"] for x in f if x["split"] == "train"}
rt = {x["step"]: x["loss"] for x in r if x["split"] == "train"}
print("resumed vs uninterrupted, steps 11..20: max |loss difference|", max(abs(ft[s] - rt[s]) for s in range(11, 21)))
PY
