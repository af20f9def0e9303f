#!/usr/bin/env bash
# undici vs http-proxy (and upfront --protocol http) in front of the same Node HTTP
# app on a unix socket, same load, same run. Prints req/s and front CPU per request.
#   bench/http-transport.sh [--duration 10] [--connections 50]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10; CONNS=50; PATH_=/Hello/100
while [ $# -gt 0 ]; do case "$1" in
  --duration) DURATION=$2; shift 2;; --connections) CONNS=$2; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x dist/cli.js ] || npm run build --silent
TMP=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
TICK=$(getconf CLK_TCK)
. bench/lib.sh
UPFRONT_SOCKET="$TMP/app.sock" node examples/node/http-app.mjs 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 50); do [ -S "$TMP/app.sock" ] && break; sleep 0.1; done
echo "| front | req/s | p99 ms | non-2xx | front CPU µs/req |"
echo "|---|---:|---:|---:|---:|"
run() { # name port pid
  wait_ok "http://127.0.0.1:$2/Hello/1"
  wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$2$PATH_" >/dev/null 2>&1
  local c0; c0=$(cpu_ticks "$3")
  local out; out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2$PATH_")
  local c1; c1=$(cpu_ticks "$3")
  local rps; rps=$(wrk_rps <<<"$out")
  local p99; p99=$(wrk_p99 <<<"$out")
  local non2xx; non2xx=$(grep -oP 'Non-2xx or 3xx responses: \K\d+' <<<"$out" || echo 0)
  local us; us=$(python3 -c "print(round(($c1-$c0)/$TICK*1e6/($rps*$DURATION),1))")
  echo "| $1 | $rps | $p99 | ${non2xx:-0} | $us |"
}
node bench/http-proxies.mjs undici 18301 "$TMP/app.sock" 2>/dev/null & P=$!; PIDS+=($P); run "undici 7 (minimal proxy)" 18301 $P; kill $P
node bench/http-proxies.mjs http-proxy 18302 "$TMP/app.sock" 2>/dev/null & P=$!; PIDS+=($P); run "http-proxy 1.18.1 (minimal proxy)" 18302 $P; kill $P
./dist/cli.js run --protocol http --listen 127.0.0.1:18303 --admin off --procs 0 --upstream "unix:$TMP/app.sock" --max-requests-per-backend 64 --log-level warn >/dev/null 2>&1 & P=$!; PIDS+=($P); run "upfront --protocol http" 18303 $P; kill $P
echo
echo "command: bench/http-transport.sh --duration $DURATION --connections $CONNS; $(date -u '+%F %T') UTC; nproc $(nproc); node $(node --version); git $(git rev-parse --short HEAD)"
