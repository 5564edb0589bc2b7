#!/bin/bash
# The 2-GPU run that gave metrics_h200x2_devices2.jsonl: 20 steps with both autotune caches
# carried; thread stacks (cuda-gdb) if it is still running after 200 s. (An earlier call ran
# out of time there: the stacks showed rank 1 still autotuning from cold, its cache having been
# copied under the wrong device name, and rank 0 waiting for it in the gradient all-reduce.)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p /tmp/nccl && ln -sf "$(find /opt /usr -name 'libnccl.so.2' 2>/dev/null | head -1)" /tmp/nccl/libnccl.so
ls -la /tmp/nccl
export LD_LIBRARY_PATH=/tmp/nccl:$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH}
gunzip -c .device/falconry.gz > /tmp/falconry && chmod +x /tmp/falconry
A=target/autotune/0.10.0
mkdir -p target && cp -r .device/cubecl/* target/ && cp -r $A/device-0-0-cuda $A/device-0-1-cuda
RUST_BACKTRACE=1 NCCL_DEBUG=WARN /tmp/falconry train --config configs/train/falcon-124m.toml --data .device/pipeline \
    --output /tmp/run2 --steps 20 --devices 2 > /tmp/d.log 2>&1 &
PID=$!
for i in $(seq 1 40); do sleep 5; kill -0 $PID 2>/dev/null || break; done
if kill -0 $PID 2>/dev/null; then
  echo "still running after $((i*5))s: stacks"
  timeout 40 cuda-gdb -p $PID -batch -ex "thread apply all bt 12" > $OUT/stacks.txt 2>&1
  kill -9 $PID
fi
wait $PID; echo "rc=$?"
grep -v "Tuning" /tmp/d.log | tail -80 > $OUT/ddp.log
cat /tmp/run2/metrics.jsonl 2>/dev/null
grep -v "^\s*$" $OUT/stacks.txt 2>/dev/null | grep -E "^Thread|#[0-9]+ " | grep -v "libc.so\|pthread" | cut -c1-200 | head -150
