#!/usr/bin/env bash
# A one-node Slurm for the tests: munged (as the munge user, a fresh key), slurmctld and slurmd
# (as root), all state, sockets and logs under DIR, on free ports, one node with this machine's
# CPUs in partition `test`. Installs slurm-wlm and munge when missing (Debian). Prints the
# slurm.conf path (export it as SLURM_CONF); `stop.sh DIR` stops what this started, by pid.
# Usage: start.sh DIR
set -euo pipefail
dir=$(realpath "${1:?usage: start.sh DIR}")
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >"$dir/apt.log" 2>&1 ||
        { apt-get update -qq >>"$dir/apt.log" 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >>"$dir/apt.log" 2>&1; } ||
        { echo "start.sh: could not install slurm-wlm and munge (see $dir/apt.log)" >&2; exit 1; }
fi
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
# munged refuses a key or socket folder that others can read or write.
chmod 755 "$dir"
chown munge: "$dir/munge"
chmod 700 "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chown munge: "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
runuser -u munge -- munged --force --key-file="$dir/munge/munge.key" \
    --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
cp "$dir/munge/munged.pid" "$dir/munged.pid"

# Two distinct free ports, both bound at once (two separate picks can return the same port:
# "slurmctld is talking with itself").
read -r ctld_port slurmd_port < <(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
host=$(hostname -s)
cpus=$(nproc)
cat >"$dir/slurm.conf" <<CONF
ClusterName=falconry-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
# Daemons detach (their pid files name them); their output goes to the log folder.
slurmctld -f "$SLURM_CONF" </dev/null >"$dir/log/slurmctld.out" 2>&1
slurmd -f "$SLURM_CONF" </dev/null >"$dir/log/slurmd.out" 2>&1
for _ in $(seq 1 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
        echo "$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
echo "start.sh: the node did not come up idle; sinfo: $(sinfo 2>&1)" >&2
tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
