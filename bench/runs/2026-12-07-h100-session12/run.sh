#!/usr/bin/env bash
# Session 12, one call: every kernel against PyTorch (the LayerNorm backward now in two kernels
# without float atomics), the engine's gradients against transformers, training steps against
# torch.compile (350m, then 1b and 124m) with cuBLASLt's algorithm timing logged per shape, and a
# profiled 350m run. A `_wg` attention direction that fails keeps mma.sync (FALCONRY_MMA_SYNC).
# Everything lands in $OUT/r.tgz.
#   run.sh [LIMIT seconds, default 560]
set -u
R=/tmp/r; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
zcat .device/engine_check.gz > /tmp/bin/engine_check && chmod +x /tmp/bin/engine_check
export FALCONRY=/tmp/bin/falconry ENGINE_CHECK=/tmp/bin/engine_check LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export RUST_LOG=info,falconry_train::cuda::gemm=debug
start=$(date +%s)
left() { echo $(( ${1:-560} - $(date +%s) + start )); }
pack() { rm -rf /dev/shm/run-*; tar czf $OUT/r.tgz -C /tmp r; }
trap pack EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > $R/card.txt
timeout ${KERNELS_S:-150} python3 bench/kernels.py --out $R/kernels.json > $R/kernels.log 2>&1
echo "kernels rc=$? $(( $(date +%s) - start )) s"
grep "FAIL\|Error\|error\|layernorm\|rope\|attn_fwd2_wg B8\|attn_bwd_wg B8" $R/kernels.log | head -40
export FALCONRY_MMA_SYNC=$(python3 -c "
import json
try: rows = json.load(open('$R/kernels.json'))['rows']
except Exception: rows = []
ok = lambda p: any(p in r['kernel'] for r in rows) and all(r['ok'] for r in rows if p in r['kernel'])
f, b = ok('_fwd_wg') and ok('_fwd2_wg'), ok('attn_bwd_wg')
print('' if f and b else 'fwd' if b else 'bwd' if f else '1')")
echo "FALCONRY_MMA_SYNC='$FALCONRY_MMA_SYNC'"
runs="falcon-350m:4:2:compiled falcon-1b:8:1:compiled falcon-124m:4:2:compiled"
CHECKS="falcon-124m falcon-350m" NO_KERNELS=1 STEPS=14 RUNS=/dev/shm timeout $(left $(( ${1:-560} - 250 ))) \
  bench/gpu_bench.sh $R/bench falcon-350m:4:2:compiled > $R/bench.log 2>&1
echo "bench 350m rc=$? $(( $(date +%s) - start )) s"
grep -v "^| transformer" $R/bench.log | grep -v "^|.*|$" | tail -4
grep "^loss\|engine check" $R/bench.log
grep "TFLOP" $R/bench/train-*.log | sed 's/.*DEBUG//' | head -40
sed -e 's/^model = .*/model = "falcon-350m"/' -e 's/^eval_batches = .*/eval_batches = 1/' configs/train/falcon-124m.toml > /tmp/p.toml
FALCONRY_PROFILE=1 timeout 60 $FALCONRY train --config /tmp/p.toml --data /tmp/tokens --output /dev/shm/run-profile --steps 6 > $R/profile-350m.log 2>&1
echo "profile rc=$? $(( $(date +%s) - start )) s"
grep "^|" $R/profile-350m.log | head -14
rm -rf /dev/shm/run-profile
CHECKS= NO_KERNELS=1 STEPS=14 RUNS=/dev/shm timeout $(left ${1:-560}) \
  bench/gpu_bench.sh $R/bench2 falcon-1b:8:1:compiled falcon-124m:4:2:compiled > $R/bench2.log 2>&1
echo "bench 1b/124m rc=$? $(( $(date +%s) - start )) s"
grep "checkpoint\|ready to train" $R/bench2/train-falcon-1b*.log
cp $R/bench/card.txt $R/bench/*350m* $R/bench2/ 2>/dev/null
python3 bench/step_table.py $R/bench2 $runs
