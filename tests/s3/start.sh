#!/usr/bin/env bash
# moto's S3 server for the tests: moto[server] (pinned) in a virtualenv at VENV, made on first
# use and reused after; moto_server on a free 127.0.0.1 port, its log in DIR/moto.log. Prints
# "PORT PID" once the server answers; the caller stops it by that pid.
# Usage: start.sh VENV DIR
set -euo pipefail
venv=${1:?usage: start.sh VENV DIR}
dir=${2:?usage: start.sh VENV DIR}
# The marker is written last: a venv whose install was cut short is made again.
if [ ! -e "$venv/.falconry-installed" ]; then
    rm -rf "$venv"
    { python3 -m venv "$venv" &&
      "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.6'; } >"$dir/pip.log" 2>&1 ||
        { echo "start.sh: could not install moto[server]==5.2.6:" >&2; cat "$dir/pip.log" >&2; exit 1; }
    touch "$venv/.falconry-installed"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$dir/moto.log" 2>&1 &
pid=$!
for _ in $(seq 150); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=2)" 2>/dev/null; then
        echo "$port $pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start.sh: moto_server exited:" >&2
        cat "$dir/moto.log" >&2
        exit 1
    fi
    sleep 0.2
done
kill "$pid"
echo "start.sh: moto_server did not answer in 30 s:" >&2
cat "$dir/moto.log" >&2
exit 1
