#!/usr/bin/env bash
# Session 12, call 5: call 4's checkpoint failure fixed (the last chunk of a page-locked
# download): the checkpoint/--resume check and a falcon-1b run ending in a checkpoint.
set -u
R=/tmp/r; mkdir -p $R /tmp/bin
zcat .device/falconry.gz > /tmp/bin/falconry && chmod +x /tmp/bin/falconry
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
start=$(date +%s)
trap 'tar czf $OUT/r.tgz -C /tmp r; rm -rf /dev/shm/run-*' EXIT
timeout 100 bash bench/engine_resume.sh $R/resume > $R/resume.log 2>&1
echo "resume rc=$? $(( $(date +%s) - start )) s"
tail -4 $R/resume.log
sed -e 's/^model = .*/model = "falcon-1b"/' -e 's/^micro_batch_size = .*/micro_batch_size = 8/' \
    -e 's/^grad_accum_steps = .*/grad_accum_steps = 1/' -e 's/^eval_batches = .*/eval_batches = 1/' \
    configs/train/falcon-124m.toml > /tmp/p1b.toml
timeout 80 /tmp/bin/falconry train --config /tmp/p1b.toml --data /tmp/tokens --output /dev/shm/run-1b --steps 6 > $R/train-1b.log 2>&1
echo "1b rc=$? $(( $(date +%s) - start )) s"
grep "ready to train\|checkpoint\|tokens/s\|error" $R/train-1b.log | sed 's/.*INFO.\{4\}//'
ls -la /dev/shm/run-1b/checkpoints/*/ | head
