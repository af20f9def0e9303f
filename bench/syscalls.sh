#!/bin/bash
# System calls per request of the front and of its apps under the seed load: perf stat
# counts the syscall tracepoints of each process for 4 s of a 6 s wrk run, divided by the
# requests wrk completed in those 4 s (its rate × 4). Needs perf (apt-get install -y
# linux-perf) and wrk. Counting tracepoints costs little, but the rate under perf is lower
# than without: compare two builds with the same script, not with the bench's figures.
#
#   bench/syscalls.sh [PROCS=4] [REPO=this repository]
set -euo pipefail
n=${1:-4}
repo=$(cd "${2:-$(dirname "$0")/..}" && pwd)
examples=$(cd "$(dirname "$0")/.." && pwd)/examples/python/hello.py
. "$(dirname "$0")/lib.sh"
[ -x "$repo/dist/cli.js" ] || (cd "$repo" && npm run build --silent)
port=$(free_port)
out=$(mktemp -d)
(cd "$repo" && exec ./dist/cli.js run --listen 127.0.0.1:$port --admin off -n "$n" --log-level error -- python3 "$examples" >/dev/null 2>&1) & upid=$!
trap 'kill -INT $upid 2>/dev/null; wait $upid 2>/dev/null; rm -rf "$out"' EXIT
wait_ok http://127.0.0.1:$port/Hello/1
apps=$(pgrep -d, -P $upid -f hello.py)
wrk -t2 -c200 -d2s http://127.0.0.1:$port/Hello/100 >/dev/null
wrk -t2 -c200 -d6s http://127.0.0.1:$port/Hello/100 > "$out/wrk" & w=$!
sleep 1
perf stat -e syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_epoll_pwait,context-switches -p $upid -o "$out/front" -- sleep 4 & f=$!
perf stat -e syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,context-switches -p "$apps" -o "$out/apps" -- sleep 4
wait $f; wait $w
rps=$(wrk_rps < "$out/wrk")
echo "# $(cd "$repo" && git rev-parse --short HEAD), -n $n, wrk -t2 -c200 /Hello/100 under perf stat: $rps req/s"
for who in front apps; do
  printf '%-6s' "$who"
  awk -v r="$(echo "$rps * 4" | bc)" '/syscalls|context/ { gsub(",", "", $1); name = $2; sub("syscalls:sys_enter_", "", name); printf " %s %.2f", name, $1 / r }' "$out/$who"
  echo " per request"
done
