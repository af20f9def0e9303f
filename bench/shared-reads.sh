#!/bin/bash
# CPU per request of the public read path, stream reads against one shared read buffer
# (bench/shared-reads.mjs): ROUNDS alternating rounds of wrk -t2 -c200 for 4 s (after 1 s
# of warm-up), the server's CPU (utime+stime from /proc) over wrk's requests.
#   bench/shared-reads.sh [ROUNDS=3] [PORT=a free one]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rounds=${1:-3}; port=${2:-$(free_port)}
for _ in $(seq 1 "$rounds"); do
  for mode in data shared; do
    node "$here/shared-reads.mjs" $mode "$port" & pid=$!
    wait_ok "http://127.0.0.1:$port/"
    wrk -t2 -c200 -d1s "http://127.0.0.1:$port/" >/dev/null
    c0=$(cpu_ticks $pid)
    out=$(wrk -t2 -c200 -d4s "http://127.0.0.1:$port/")
    c1=$(cpu_ticks $pid)
    kill $pid; wait $pid 2>/dev/null || true
    n=$(wrk_requests <<<"$out"); rps=$(wrk_rps <<<"$out")
    printf '%-6s %9.0f req/s  %5.2f us CPU/req\n' $mode "$rps" "$(echo "($c1 - $c0) * 10000 / $n" | bc -l)"
  done
done
