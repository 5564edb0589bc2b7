#!/usr/bin/env bash
# Session 10, call 1: the warpgroup-MMA attention kernels checked and timed against mma.sync and
# SDPA, the engine's gradients against transformers with them, training steps vs PyTorch.
set -u
R=/tmp/r; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
zcat .device/engine_check.gz > /tmp/bin/engine_check && chmod +x /tmp/bin/engine_check
export FALCONRY=/tmp/bin/falconry ENGINE_CHECK=/tmp/bin/engine_check LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
start=$(date +%s)
timeout 150 python3 bench/kernels.py --attention-only --out $R/kernels.json > $R/kernels.log 2>&1
echo "kernels rc=$? $(( $(date +%s) - start )) s"
grep "attn\|wgmma\|kernel |\|FAIL" $R/kernels.log | head -40
if grep -q "wgmma\|_wg" $R/kernels.log && python3 -c "
import json,sys; rows=json.load(open('$R/kernels.json'))['rows']
bad=[r['kernel'] for r in rows if not r['ok']]; print('failed:', bad); sys.exit(1 if bad else 0)"; then
  echo "wg kernels ok"
else
  echo "wg kernels NOT ok: training on mma.sync"; export FALCONRY_MMA_SYNC=1
  timeout 100 python3 bench/kernels.py --attention-only --out $R/kernels-mma.json > $R/kernels-mma.log 2>&1
  grep "attn" $R/kernels-mma.log | head
fi
CHECKS="falcon-124m" NO_KERNELS=1 STEPS=${STEPS:-20} timeout $((560 - $(date +%s) + start)) \
  bench/gpu_bench.sh $R/bench "$@" > $R/bench.log 2>&1
echo "bench rc=$? $(( $(date +%s) - start )) s"
grep -v "^| transformer" $R/bench.log | grep -v "^|.*|$" | tail -12
python3 bench/step_table.py $R/bench "$@"
tar czf $OUT/r.tgz -C /tmp r
