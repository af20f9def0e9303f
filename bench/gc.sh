#!/bin/bash
# V8's garbage collection in the front under the seed load, per node flag set: the front
# runs under `node --trace-gc-nvp FLAGS dist/cli.js run -n PROCS`, fresh for each set in
# each round (sets alternate, so a slow minute weighs on all), 2 s of wrk to warm up, then
# DURATION s (default 20, as the seed run's cells) of `wrk -t2 -c200 --latency /Hello/100` (CONNS sets -c): V8's
# heap limits settle over the first ~15 s of load, so a shorter run may miss what a long one
# pays (6 s runs missed the mark-compact storm of 2026-12-02). Per 10,000 requests: full mark-compacts and
# scavenges with their main-thread pauses (--trace-gc-nvp's pause=), then the front's CPU
# per request (all its threads: concurrent marking runs beside the main one), req/s and p99.
# A set is one quoted word of node flags; "" is V8's defaults. SETSID=1 starts each front in a
# session of its own, as `upfront bench` does (its nice then counts against wrk's; see sched.sh).
#
# CONNS (default 200) sets wrk's connections, EXTRA adds flags for `run` (CONNS=4000 EXTRA="--queue-size 8192").
#
#   [DURATION=20] [CONNS=200] [EXTRA=] bench/gc.sh [PROCS=2] [ROUNDS=3] [FLAGS...]      e.g. bench/gc.sh 4 5 "" "--max-semi-space-size=8"
set -euo pipefail
n=${1:-2}; rounds=${2:-3}; duration=${DURATION:-20}; shift $(( $# < 2 ? $# : 2 ))
[ $# -gt 0 ] || set -- "--max-semi-space-size=8" "--max-semi-space-size=8 --initial-old-space-size=64"
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -x dist/cli.js ] || npm run build --silent
out=$(mktemp -d)
upid=
trap '[ -n "$upid" ] && kill -INT $upid 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT
echo "# git $(git rev-parse --short HEAD), -n $n, $rounds rounds of ${duration} s, wrk -c${CONNS:-200}${EXTRA:+, run $EXTRA}; per 10k requests: mark-compacts (pause ms), scavenges (pause ms); front CPU µs/request"
for r in $(seq 1 "$rounds"); do
  for flags in "$@"; do
    port=$(free_port)
    # shellcheck disable=SC2086 # the flags are words
    ${SETSID:+setsid} node --trace-gc-nvp $flags dist/cli.js run --listen 127.0.0.1:$port --admin off -n "$n" ${EXTRA:-} --log-level error -- python3 examples/python/hello.py > "$out/gc" 2>&1 & upid=$!
    wait_ok http://127.0.0.1:$port/Hello/1
    [ -z "${SETSID:-}" ] || upid=$(front_pid $port)
    wrk -t2 -c${CONNS:-200} -d2s http://127.0.0.1:$port/Hello/100 >/dev/null
    lines=$(wc -l < "$out/gc"); cpu0=$(cpu_ticks $upid)
    wrk -t2 -c${CONNS:-200} -d"${duration}s" --latency http://127.0.0.1:$port/Hello/100 > "$out/wrk"
    cpu1=$(cpu_ticks $upid)
    req=$(wrk_requests < "$out/wrk"); rps=$(wrk_rps < "$out/wrk"); p99=$(wrk_p99 < "$out/wrk")
    tail -n +$((lines + 1)) "$out/gc" | awk -v label="${flags:-defaults}" -v r="$r" -v req="$req" -v rps="$rps" -v p99="$p99" -v cpu=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" '
      { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "pause") p = kv[2]; if (kv[1] == "gc") g = kv[2] }
        if (g == "mc") { mc++; mcp += p } else if (g == "s") { s++; sp += p } }
      END { printf "%d %-26s mark-compact %5.2f (%5.1f ms)  scavenge %5.2f (%5.1f ms)  front %5.1f µs/req  %6.0f req/s  p99 %s\n",
            r, label, mc * 1e4 / req, mcp * 1e4 / req, s * 1e4 / req, sp * 1e4 / req, cpu / hz * 1e6 / req, rps, p99 }'
    stop_front $upid; upid=
  done
done
