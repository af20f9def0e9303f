#!/bin/bash
# Dishonest backends: upfront with default flags against a FastCGI server whose
# FCGI_GET_VALUES overstates what it serves, next to upfront with the switches set by
# hand to the truth, in the same minutes (alternating rounds, medians, min–max).
#
#   bench/dishonest.sh [ROUNDS] [SECONDS]      (defaults 3, 10)
#
# Backend: test/fixtures/capacity-backend.py, -n 2, wrk -t2 -c200 /Hello/10.
#   serial  serves one connection at a time, claims 1000   (truth: --multithreaded false)
#   pool:4  4 threads bound to connections, claims 1024     (truth: --max-requests-per-backend 4)
# Prints one line per run and a median table; failures (wrk socket errors and
# timeouts, non-2xx) are counted next to req/s.
set -euo pipefail
rounds=${1:-3}; secs=${2:-10}
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -x dist/cli.js ] || npm run build --silent
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
backend=test/fixtures/capacity-backend.py
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start() { # port mode flags...
  local port=$1 mode=$2; shift 2
  ./dist/cli.js run --listen 127.0.0.1:$port --admin off -n 2 --log-level error "$@" -- python3 $backend $mode >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$port/Hello/1 >/dev/null && return; sleep 0.1; done
  echo "upfront on $port did not start" >&2; exit 1
}

run() { # label port
  local out; out=$(wrk -t2 -c200 -d${secs}s --timeout 10s http://127.0.0.1:$2/Hello/10)
  local rps fail non2xx
  rps=$(wrk_rps <<<"$out")
  fail=$(echo "$out" | awk '/Socket errors/ { for (i = 3; i <= NF; i++) s += $i + 0 } END { print s + 0 }')
  non2xx=$(echo "$out" | grep -oP '(?<=Non-2xx or 3xx responses: )\d+' || echo 0)
  echo "$1 rps=$rps socket_errors=${fail:-0} non2xx=${non2xx:-0}"
}

echo "# dishonest backends: $(date -u +%FT%TZ), git $(git rev-parse --short HEAD), $(nproc) cores, node $(node -v), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "# command: bench/dishonest.sh $rounds $secs"
start 29101 serial
start 29102 serial --multithreaded false
start 29103 pool:4
start 29104 pool:4 --max-requests-per-backend 4
for p in 29101 29102 29103 29104; do wrk -t2 -c200 -d2s http://127.0.0.1:$p/Hello/10 >/dev/null; done
results=$(mktemp)
for r in $(seq 1 "$rounds"); do
  # odd rounds: default first; even rounds: the hand-set switches first (no order effect in the medians)
  if [ $((r % 2)) = 1 ]; then order="serial/default:29101 serial/--multithreaded_false:29102 pool:4/default:29103 pool:4/--max-requests-per-backend_4:29104"
  else order="serial/--multithreaded_false:29102 serial/default:29101 pool:4/--max-requests-per-backend_4:29104 pool:4/default:29103"; fi
  for pair in $order; do
    run "${pair%:*}" "${pair##*:}" | tee -a "$results"
  done
done
echo
echo "| backend / upfront flags | req/s median (min–max) | socket errors | non-2xx |"
echo "|---|---:|---:|---:|"
for label in serial/default serial/--multithreaded_false pool:4/default pool:4/--max-requests-per-backend_4; do
  rps=$(grep "^$label " "$results" | sed 's/.* rps=\([0-9.]*\).*/\1/' | sort -n)
  errs=$(grep "^$label " "$results" | sed 's/.*socket_errors=\([0-9]*\).*/\1/' | paste -sd+ | awk -F+ '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }')
  bad=$(grep "^$label " "$results" | sed 's/.*non2xx=\([0-9]*\).*/\1/' | paste -sd+ | awk -F+ '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }')
  echo "$rps" | awk -v l="${label//_/ }" -v e="$errs" -v b="$bad" '{ r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2; printf "| %s | %.0f (%.0f–%.0f) | %d | %d |\n", l, m, r[1], r[NR], e, b }'
done
rm -f "$results"
