#!/usr/bin/env bash
# Stops the daemons `start.sh DIR` started, by the pids in their pid files, and waits for them.
# Usage: stop.sh DIR
set -uo pipefail
dir=${1:?usage: stop.sh DIR}
for name in slurmd slurmctld munged; do
    pidfile="$dir/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
done
