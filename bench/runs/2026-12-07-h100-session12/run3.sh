#!/usr/bin/env bash
# Session 12, last call: the engine's checkpoint and --resume against an uninterrupted run
# (bench/engine_resume.sh, falcon-124m), a profiled falcon-1b run that ends in a checkpoint (how
# long the engine holds training to take it), then falcon-350m and falcon-124m against
# torch.compile once more. Everything lands in $OUT/r.tgz.   run3.sh [LIMIT seconds]
set -u
R=/tmp/r; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
zcat .device/engine_check.gz > /tmp/bin/engine_check && chmod +x /tmp/bin/engine_check
export FALCONRY=/tmp/bin/falconry ENGINE_CHECK=/tmp/bin/engine_check LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
start=$(date +%s)
left() { echo $(( ${1:-500} - $(date +%s) + start )); }
pack() { rm -rf /dev/shm/run-*; tar czf $OUT/r.tgz -C /tmp r; }
trap pack EXIT
timeout 150 bash bench/engine_resume.sh $R/resume > $R/resume.log 2>&1
echo "resume rc=$? $(( $(date +%s) - start )) s"
tail -5 $R/resume.log
python3 bench/make_tokens.py /tmp/tokens 20000000 > /dev/null
sed -e 's/^model = .*/model = "falcon-1b"/' -e 's/^micro_batch_size = .*/micro_batch_size = 8/' \
    -e 's/^grad_accum_steps = .*/grad_accum_steps = 1/' -e 's/^eval_batches = .*/eval_batches = 1/' \
    configs/train/falcon-124m.toml > /tmp/p1b.toml
FALCONRY_PROFILE=1 timeout 90 $FALCONRY train --config /tmp/p1b.toml --data /tmp/tokens --output /dev/shm/run-profile --steps 6 > $R/profile-1b.log 2>&1
echo "profile 1b rc=$? $(( $(date +%s) - start )) s"
grep "ready to train\|checkpoint" $R/profile-1b.log | sed 's/.*INFO.\{4\}//'
grep "^|\|steps," $R/profile-1b.log | head -24
rm -rf /dev/shm/run-profile
CHECKS= NO_KERNELS=1 STEPS=14 RUNS=/dev/shm timeout $(left ${1:-500}) \
  bench/gpu_bench.sh $R/bench falcon-350m:4:2:compiled falcon-124m:4:2:compiled > $R/bench.log 2>&1
echo "bench rc=$? $(( $(date +%s) - start )) s"
grep -v "^| transformer" $R/bench.log | grep "^| falcon\|^| model\|^|---"
