#!/bin/bash
# The processes' CPU scheduling policy (or placement) under the seed load: a fresh front per
# setting in each round (`./dist/cli.js run -n PROCS --sched-policy P`, or the flags given;
# settings alternate, so a slow minute weighs on all), 2 s of wrk to warm up, then DURATION s (default 6) of `wrk -t2 -c200 --latency
# /Hello/100`. Per request: the front's and the apps' CPU, the apps' voluntary (ran dry)
# and involuntary (preempted) context switches, the front's main thread's involuntary ones;
# the machine's busy share (/proc/stat, steal excluded); req/s and p99.
#
#   [DURATION=6] bench/sched.sh [PROCS=2] [ROUNDS=4] [SETTING...]     (default: batch other)
#   a SETTING is a policy name, flags for `run` (bench/sched.sh 4 8 "--cpu-affinity none" "--cpu-affinity auto"),
#   or the path of another checkout to run its build with default flags (bench/sched.sh 4 6 "$PWD" /tmp/wt-idea),
#   default (the flags' defaults), or session:N — default flags, the front started in a session of its own and N written to its session's nice
#   (/proc/PID/autogroup) once it serves, or app-session:N [FLAGS] — N written to each app's session's nice once the front serves
#   (the apps lead sessions of their own), or front-cpu:C [FLAGS] — every thread of the front bound to CPU C (taskset) once it serves. SETSID=1 starts every front in a session of its own, as `upfront bench` does:
#   under autogroup scheduling (sched(7)) a nice counts only within a session, and a front started here otherwise
#   shares this script's session with wrk.
set -euo pipefail
n=${1:-2}; rounds=${2:-4}; duration=${DURATION:-6}; shift $(( $# < 2 ? $# : 2 ))
[ $# -gt 0 ] || set -- batch other
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -x dist/cli.js ] || npm run build --silent
out=$(mktemp -d)
upid=
trap '[ -n "$upid" ] && kill -INT $upid 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT
switches() { # PID...: voluntary and involuntary context switches, summed
  local v=0 i=0 p
  for p in "$@"; do
    v=$((v + $(awk '/^voluntary_ctxt/ {print $2}' "/proc/$p/status")))
    i=$((i + $(awk '/^nonvoluntary_ctxt/ {print $2}' "/proc/$p/status")))
  done
  echo "$v $i"
}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; } # busy and idle (+iowait) ticks
echo "# git $(git rev-parse --short HEAD), -n $n, $rounds rounds, wrk -t2 -c200 -d${duration}s /Hello/100; per request: CPU µs, apps' context switches"
for r in $(seq 1 "$rounds"); do
  for setting in "$@"; do
    cli=./dist/cli.js; flags=(); session=; own=${SETSID:-}; fcpu=; appsession=
    if [ "${setting#/}" != "$setting" ]; then cli=$setting/dist/cli.js
    elif [ "${setting#session:}" != "$setting" ]; then session=${setting#session:}; own=1
    elif [ "${setting#app-session:}" != "$setting" ]; then rest=${setting#app-session:}; appsession=${rest%% *}; [ "$rest" = "$appsession" ] || read -ra flags <<< "${rest#* }"
    elif [ "${setting#front-cpu:}" != "$setting" ]; then rest=${setting#front-cpu:}; fcpu=${rest%% *}; [ "$rest" = "$fcpu" ] || read -ra flags <<< "${rest#* }"
    elif [ "$setting" = default ]; then :
    elif [ "${setting#-}" = "$setting" ]; then flags=(--sched-policy "$setting"); else read -ra flags <<< "$setting"; fi
    port=$(free_port)
    ${own:+setsid} "$cli" run --listen 127.0.0.1:$port --admin off -n "$n" "${flags[@]}" --log-level error -- python3 examples/python/hello.py >/dev/null 2>&1 & upid=$!
    wait_ok http://127.0.0.1:$port/Hello/1
    [ -z "$own" ] || upid=$(front_pid $port)
    [ -z "$session" ] || echo "$session" > "/proc/$upid/autogroup"
    [ -z "$fcpu" ] || taskset -apc "$fcpu" $upid >/dev/null
    # shellcheck disable=SC2207 # pids are words
    apps=($(pgrep -P $upid -f hello.py))
    [ -z "$appsession" ] || for a in "${apps[@]}"; do echo "$appsession" > "/proc/$a/autogroup"; done
    wrk -t2 -c200 -d2s http://127.0.0.1:$port/Hello/100 >/dev/null
    f0=$(cpu_ticks $upid); a0=$(cpu_ticks "${apps[@]}"); read -r v0 i0 < <(switches "${apps[@]}"); read -r b0 idle0 < <(busy); read -r _ fi0 < <(switches "$upid")
    wrk -t2 -c200 -d${duration}s --latency http://127.0.0.1:$port/Hello/100 > "$out/wrk"
    f1=$(cpu_ticks $upid); a1=$(cpu_ticks "${apps[@]}"); read -r v1 i1 < <(switches "${apps[@]}"); read -r b1 idle1 < <(busy); read -r _ fi1 < <(switches "$upid")
    req=$(wrk_requests < "$out/wrk")
    awk -v r="$r" -v p="$setting" -v req="$req" -v hz="$(getconf CLK_TCK)" -v f=$((f1 - f0)) -v a=$((a1 - a0)) -v v=$((v1 - v0)) -v i=$((i1 - i0)) \
        -v b=$((b1 - b0)) -v idle=$((idle1 - idle0)) -v fi=$((fi1 - fi0)) -v rps="$(wrk_rps < "$out/wrk")" \
        -v p99="$(wrk_p99 < "$out/wrk")" -v errs="$(grep -E 'Socket errors|Non-2xx' "$out/wrk" | tr -s ' ' | tr '\n' ' ')" \
      'BEGIN { printf "%d %-6s %6.0f req/s  p99 %-8s front %5.1f µs  apps %5.1f µs  apps ran dry %.3f, preempted %.3f  front preempted %.3f  machine %4.1f %% busy %s\n",
               r, p, rps, p99, f / hz * 1e6 / req, a / hz * 1e6 / req, v / req, i / req, fi / req, b * 100 / (b + idle), errs }'
    stop_front $upid; upid=
  done
done
