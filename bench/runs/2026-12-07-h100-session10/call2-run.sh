#!/usr/bin/env bash
# Session 10, call 2: every kernel against PyTorch (the warpgroup-MMA attention included), the
# engine's gradients against transformers, training steps against PyTorch eager and compiled.
set -u
R=/tmp/r2; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
zcat .device/engine_check.gz > /tmp/bin/engine_check && chmod +x /tmp/bin/engine_check
export FALCONRY=/tmp/bin/falconry ENGINE_CHECK=/tmp/bin/engine_check LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
start=$(date +%s)
timeout 100 python3 bench/kernels.py --attention-only --out $R/kernels.json > $R/kernels.log 2>&1
echo "kernels rc=$? $(( $(date +%s) - start )) s"
grep "attn\|wgmma\|FAIL" $R/kernels.log | head -30
if ! python3 -c "
import json,sys; rows=json.load(open('$R/kernels.json'))['rows']
bad=[r['kernel'] for r in rows if not r['ok']]; print('failed:', bad); sys.exit(1 if bad else 0)"; then
  echo "kernels NOT ok: training on mma.sync"; export FALCONRY_MMA_SYNC=1
fi
CHECKS="${CHECKS-falcon-124m}" NO_KERNELS=1 STEPS=${STEPS:-14} RUNS=/dev/shm timeout $((${LIMIT:-565} - $(date +%s) + start)) \
  bench/gpu_bench.sh $R/bench "$@" > $R/bench.log 2>&1
echo "bench rc=$? $(( $(date +%s) - start )) s"
grep -v "^| transformer" $R/bench.log | grep -v "^|.*|$" | tail -8
python3 bench/step_table.py $R/bench "$@"
rm -rf /dev/shm/run-*
tar czf $OUT/r2.tgz -C /tmp r2
