#!/usr/bin/env bash
# Start the Docker engine in the background unless it already answers.
# Idempotent and quiet when dockerd is up; logs to .cache/dockerd.log.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
log="$top/.cache/dockerd.log"
sock=/var/run/docker.sock

up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

up && exit 0
command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "dockerd.sh: must run as root" >&2; exit 1; }
mkdir -p "$(dirname "$log")"
# A stale pid file from a dead engine would stop a new one from starting.
if [ -s /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
	rm -f /var/run/docker.pid
fi
if ! { [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }; then
	echo "dockerd.sh: starting dockerd (log: $log)"
	setsid nohup dockerd --host "unix://$sock" >>"$log" 2>&1 </dev/null &
fi
for _ in $(seq 1 120); do
	up && exit 0
	sleep 0.5
done
echo "dockerd.sh: dockerd did not answer on $sock within 60 s; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
