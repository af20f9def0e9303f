#!/usr/bin/env bash
# What the access log and TLS cost the front, per request: upfront with the access
# log off / combined / JSON (to a file), and with TLS (HTTP/1.1 over TLS, kept
# connections), next to nginx doing the same (access_log off / combined with a
# 64k buffer, TLS), all in front of the same Node HTTP app on a unix socket.
# Configurations alternate within each round so they share the machine's state.
#   bench/edge-cost.sh [--duration 3] [--rounds 2] [--connections 50]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=3; ROUNDS=2; CONNS=50; PATH_=/Hello/100
while [ $# -gt 0 ]; do case "$1" in
  --duration) DURATION=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;; --connections) CONNS=$2; shift 2;; *) echo "unknown option $1" >&2; exit 2;; esac; done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx); [ -x "$NGINX" ] || NGINX=
[ -x dist/cli.js ] || npm run build --silent
TMP=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; [ -n "$NGINX" ] && [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
TICK=$(getconf CLK_TCK)
# CPU of a process tree (nginx: master + worker): cpu_ticks.
. bench/lib.sh
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
UPFRONT_SOCKET="$TMP/app.sock" node examples/node/http-app.mjs 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 50); do [ -S "$TMP/app.sock" ] && break; sleep 0.1; done

UP=(./dist/cli.js run --protocol http --admin off --procs 0 --upstream "unix:$TMP/app.sock" --max-requests-per-backend 64 --log-level warn)
start_upfront() { # port extra-args...
  local port=$1; shift
  "${UP[@]}" --listen "127.0.0.1:$port" "$@" >/dev/null 2>"$TMP/upfront-$port.err" & PIDS+=($!); echo $! > "$TMP/pid-$port"
}
start_upfront 18401
start_upfront 18402 --access-log "$TMP/access-combined.log"
start_upfront 18403 --access-log "$TMP/access.json" --access-log-format json
start_upfront 18404 --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem"
if [ -n "$NGINX" ]; then
  # As root its worker would run as nobody, who cannot reach a socket in a private temp dir.
  USER_LINE=; [ "$(id -u)" = 0 ] && USER_LINE='user root;'
  cat > "$TMP/nginx.conf" <<NGX
$USER_LINE
worker_processes 1; daemon off; pid $TMP/nginx.pid; error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
  upstream app { server unix:$TMP/app.sock; keepalive 64; }
  client_body_temp_path $TMP/b; proxy_temp_path $TMP/p; fastcgi_temp_path $TMP/f; uwsgi_temp_path $TMP/u; scgi_temp_path $TMP/s;
  proxy_http_version 1.1; proxy_set_header Connection "";
  server { listen 127.0.0.1:18411; access_log off; location / { proxy_pass http://app; } }
  server { listen 127.0.0.1:18412; access_log $TMP/nginx-access.log combined buffer=64k flush=1s; location / { proxy_pass http://app; } }
  server { listen 127.0.0.1:18413 ssl; ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem; access_log off; location / { proxy_pass http://app; } }
}
NGX
  "$NGINX" -p "$TMP/" -c "$TMP/nginx.conf" 2>"$TMP/nginx.err" & PIDS+=($!)
fi
wait_front() { wait_ok "$1$PATH_" && return 0; cat "$TMP"/*.err "$TMP/nginx-error.log" >&2 2>/dev/null; return 1; }
CONFIGS=("upfront, access log off|http://127.0.0.1:18401|upfront|18401" "upfront, access log combined (file)|http://127.0.0.1:18402|upfront|18402"
  "upfront, access log json (file)|http://127.0.0.1:18403|upfront|18403" "upfront, TLS (HTTP/1.1, kept connections)|https://127.0.0.1:18404|upfront|18404")
[ -n "$NGINX" ] && CONFIGS+=("nginx, access_log off|http://127.0.0.1:18411|nginx|" "nginx, access_log combined buffer=64k|http://127.0.0.1:18412|nginx|" "nginx, TLS (HTTP/1.1, kept connections)|https://127.0.0.1:18413|nginx|")
for c in "${CONFIGS[@]}"; do IFS="|" read -r _ url _ _ <<<"$c"; wait_front "$url"; done
pids_of() { # kind port
  if [ "$1" = upfront ]; then cat "$TMP/pid-$2"; else local m; m=$(cat "$TMP/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; fi
}
echo "| round | front | req/s | non-2xx / errors | front CPU µs/req |"
echo "|---:|---|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name url kind port <<<"$c"
    # shellcheck disable=SC2046
    set -- $(pids_of "$kind" "$port")
    wrk -t2 -c"$CONNS" -d1s "$url$PATH_" >/dev/null 2>&1
    c0=$(cpu_ticks "$@")
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "$url$PATH_")
    c1=$(cpu_ticks "$@")
    reqs=$(wrk_requests <<<"$out"); rps=$(wrk_rps <<<"$out")
    bad=$(( $(grep -oP 'Non-2xx or 3xx responses: \K\d+' <<<"$out" || echo 0) + $(grep -oP 'Socket errors: connect \K\d+' <<<"$out" || echo 0) ))
    us=$(python3 -c "print(round(($c1-$c0)/$TICK*1e6/$reqs,1))")
    echo "| $round | $name | $rps | $bad | $us |"
  done
done
echo
echo "access log lines written: combined $(wc -l < "$TMP/access-combined.log" 2>/dev/null || echo 0) (after a flush each second), json $(wc -l < "$TMP/access.json" 2>/dev/null || echo 0)"
echo "command: bench/edge-cost.sh --duration $DURATION --rounds $ROUNDS --connections $CONNS; $(date -u '+%F %T') UTC; nproc $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg); node $(node --version); git $(git rev-parse --short HEAD)"
