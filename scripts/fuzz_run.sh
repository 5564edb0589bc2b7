#!/usr/bin/env bash
# Runs one fuzz target for SECONDS on its corpus, with the limits README.md (Fuzzing) records:
# a 10 s hang limit, 2 GiB RSS, no single allocation over 512 MiB (a length field believed).
# Build first: cargo +nightly fuzz build --fuzz-dir fuzz. Crashes land in fuzz/artifacts/TARGET/;
# the log, with libFuzzer's final stats, in fuzz/logs/TARGET.log.
# Usage: scripts/fuzz_run.sh TARGET SECONDS [JOBS]
set -euo pipefail
target=$1 seconds=$2 jobs=${3:-1}
cd "$(dirname "$0")/../fuzz"
bin=target/x86_64-unknown-linux-gnu/release/$target
mkdir -p "artifacts/$target" logs "corpus/$target"
flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512
       -print_final_stats=1 -artifact_prefix="artifacts/$target/")
if [ "$jobs" -gt 1 ]; then
    # libFuzzer's fork mode: JOBS processes share the corpus; a crash is kept and the run goes on.
    flags+=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi
start=$(date +%s)
nice -n 15 "$bin" "${flags[@]}" "corpus/$target" 2>&1 | tee "logs/$target.log" | grep -v "^#[0-9]*\s*\(NEW\|REDUCE\|pulse\)" || true
echo "$target: $(( $(date +%s) - start )) s wall on $(nproc) cores, $jobs job(s)" | tee -a "logs/$target.log"
