#!/usr/bin/env bash
# Session 12, call 4: the checkpoint/--resume check again (engine downloads now through
# page-locked memory), a falcon-1b run ending in a checkpoint (how long it holds training), then
# falcon-124m and falcon-350m against PyTorch eager and torch.compile in the same call.
# Everything lands in $OUT/r.tgz.   run4.sh [LIMIT seconds]
set -u
R=/tmp/r; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
zcat .device/engine_check.gz > /tmp/bin/engine_check && chmod +x /tmp/bin/engine_check
export FALCONRY=/tmp/bin/falconry ENGINE_CHECK=/tmp/bin/engine_check LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
start=$(date +%s)
left() { echo $(( ${1:-400} - $(date +%s) + start )); }
pack() { rm -rf /dev/shm/run-*; tar czf $OUT/r.tgz -C /tmp r; }
trap pack EXIT
timeout 100 bash bench/engine_resume.sh $R/resume > $R/resume.log 2>&1
echo "resume rc=$? $(( $(date +%s) - start )) s"
tail -4 $R/resume.log
sed -e 's/^model = .*/model = "falcon-1b"/' -e 's/^micro_batch_size = .*/micro_batch_size = 8/' \
    -e 's/^grad_accum_steps = .*/grad_accum_steps = 1/' -e 's/^eval_batches = .*/eval_batches = 1/' \
    configs/train/falcon-124m.toml > /tmp/p1b.toml
timeout 80 $FALCONRY train --config /tmp/p1b.toml --data /tmp/tokens --output /dev/shm/run-1b --steps 6 > $R/train-1b.log 2>&1
echo "1b rc=$? $(( $(date +%s) - start )) s"
grep "ready to train\|checkpoint\|tokens/s" $R/train-1b.log | sed 's/.*INFO.\{4\}//'
rm -rf /dev/shm/run-1b
CHECKS=falcon-350m NO_KERNELS=1 STEPS=14 RUNS=/dev/shm timeout $(left ${1:-400}) \
  bench/gpu_bench.sh $R/bench falcon-124m:4:2 falcon-350m:4:2 > $R/bench.log 2>&1
echo "bench rc=$? $(( $(date +%s) - start )) s"
grep "engine check" $R/bench.log
grep -v "^| transformer" $R/bench.log | grep "^| falcon\|^| model\|^|---\|H100\|H200"
