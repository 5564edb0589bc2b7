#!/usr/bin/env bash
# Session 11, one call: the attention kernels against PyTorch (the warpgroup-MMA forward with Q
# read from shared memory), then the engine with whichever `_wg` kernels passed (FALCONRY_MMA_SYNC
# keeps mma.sync for a failed direction): gradients against transformers, a profiled 350m run,
# training steps against torch.compile (350m, 1b, 124m). Everything lands in $OUT/r.tgz.
#   run.sh [LIMIT seconds, default 560]
set -u
R=/tmp/r; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
zcat .device/engine_check.gz > /tmp/bin/engine_check && chmod +x /tmp/bin/engine_check
export FALCONRY=/tmp/bin/falconry ENGINE_CHECK=/tmp/bin/engine_check LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
start=$(date +%s)
left() { echo $(( ${1:-560} - $(date +%s) + start )); }
pack() { rm -rf /dev/shm/run-*; tar czf $OUT/r.tgz -C /tmp r; }
trap pack EXIT
timeout 100 python3 bench/kernels.py --attention-only --out $R/kernels.json > $R/kernels.log 2>&1
echo "kernels rc=$? $(( $(date +%s) - start )) s"
grep "attn\|wgmma\|FAIL\|Error\|error" $R/kernels.log | head -30
# Keep mma.sync for a direction whose `_wg` kernel failed (or did not run).
export FALCONRY_MMA_SYNC=$(python3 -c "
import json
try: rows = json.load(open('$R/kernels.json'))['rows']
except Exception: rows = []
ok = lambda p: any(p in r['kernel'] for r in rows) and all(r['ok'] for r in rows if p in r['kernel'])
f, b = ok('_fwd_wg') and ok('_fwd2_wg'), ok('attn_bwd_wg')
print('' if f and b else 'fwd' if b else 'bwd' if f else '1')")
echo "FALCONRY_MMA_SYNC='$FALCONRY_MMA_SYNC'"
runs="falcon-350m:4:2:compiled falcon-1b:8:1:compiled falcon-124m:4:2:compiled"
CHECKS=falcon-124m NO_KERNELS=1 STEPS=14 RUNS=/dev/shm timeout $(left $(( ${1:-560} - 300 ))) \
  bench/gpu_bench.sh $R/bench falcon-350m:4:2:compiled > $R/bench.log 2>&1
echo "bench 350m rc=$? $(( $(date +%s) - start )) s"
grep -v "^| transformer" $R/bench.log | grep -v "^|.*|$" | tail -4
# One profiled run (per-operation GPU times), short.
sed -e 's/^model = .*/model = "falcon-350m"/' -e 's/^eval_batches = .*/eval_batches = 1/' configs/train/falcon-124m.toml > /tmp/p.toml
FALCONRY_PROFILE=1 timeout 60 $FALCONRY train --config /tmp/p.toml --data /tmp/tokens --output /dev/shm/run-profile --steps 6 > $R/profile-350m.log 2>&1
echo "profile rc=$? $(( $(date +%s) - start )) s"
rm -rf /dev/shm/run-profile
CHECKS= NO_KERNELS=1 STEPS=14 RUNS=/dev/shm timeout $(left ${1:-560}) \
  bench/gpu_bench.sh $R/bench2 falcon-1b:8:1:compiled falcon-124m:4:2:compiled > $R/bench2.log 2>&1
echo "bench 1b/124m rc=$? $(( $(date +%s) - start )) s"
cp $R/bench/card.txt $R/bench/*350m* $R/bench2/ 2>/dev/null
python3 bench/step_table.py $R/bench2 $runs
