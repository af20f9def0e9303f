#!/usr/bin/env bash
# bench/seed.sh — the "seed" comparison: the same FastCGI backend behind
# nginx + spawn-fcgi and behind upfront, same load, one Markdown table.
#
# It replays the 2011 benchmark that started upfront (siege -c 200 -t 20s
# .../Hello/100 against flup apps behind nginx + spawn-fcgi at 1, 2 and 4
# processes), with wrk instead of siege. See bench/README.md.
#
# Usage: bench/seed.sh [--procs "1 2 4"] [--duration 20] [--connections 200]
#                      [--path /Hello/100] [--fronts "nginx upfront"]
#                      [--overflow "queue"] [--backlog N] [--warmup 2]
#                      [--backend "CMD ARGS"] [--script-filename FILE]
#                      [--no-record]
#
# For each procs N: one nginx row, then one upfront row per overflow mode
# (--overflow "nginx queue" sweeps both), each upfront row compared with the
# nginx row of the same N. Besides wrk's numbers every row reports EAGAIN
# (failed connects to a full backend accept queue), the largest backend accept
# queue seen, and the largest front queue seen.
#
# Everything runs on 127.0.0.1 and unix sockets in a private temp dir. Every
# process the script starts is stopped on exit, Ctrl-C included.

set -uo pipefail

# ---------------------------------------------------------------- defaults
PROCS="1 2 4"
DURATION=20
CONNECTIONS=200
URL_PATH="/Hello/100"
FRONTS="nginx upfront"
OVERFLOW="queue"       # upfront overflow modes, one upfront row per mode per N
BACKLOG=""             # empty: each front's default (spawn-fcgi -b 1024, upfront --backlog 1024)
WARMUP=2
BACKEND=""             # empty: python3 examples/python/hello.py
SCRIPT_FILENAME=""     # extra fastcgi_param SCRIPT_FILENAME (php-cgi needs it)
RECORD=1
READY_TIMEOUT=10       # seconds a front gets to answer 200 on /Hello/1
SAMPLE_MS=100          # accept-queue sampling period, both fronts (ss for nginx, --sample-interval for upfront)

ORIG_ARGS=("$@")

usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" | sed '/^$/d'
  cat <<'EOF'

Options:
  --procs "1 2 4"          backend process counts to sweep
  --duration 20            seconds of measured load per row (1..600)
  --connections 200        wrk connections (-c)
  --path /Hello/100        request path (the app's Hello/N: N lines of output)
  --fronts "nginx upfront" which fronts to run, in this order
  --overflow "nginx queue" upfront overflow modes to sweep (queue|shed|nginx|retry),
                           one upfront row per mode and N (default: queue)
  --backlog N              listen backlog of the backend sockets, both fronts
                           (spawn-fcgi -b N, upfront --backlog N; both default
                           to 1024; 128 reproduces 2011)
  --warmup 2               seconds of unmeasured load before each row (0 = none)
  --backend "CMD ARGS"     backend command (default: python3 examples/python/hello.py)
  --script-filename FILE   add fastcgi_param SCRIPT_FILENAME FILE in nginx (for php-cgi)
  --no-record              print only; do not write bench/results/seed-*.md
  -h, --help               this text
EOF
}

die() { echo "seed.sh: $*" >&2; exit 2; }
log() { echo "seed.sh: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --procs)            PROCS="${2:?--procs needs a value}"; shift 2 ;;
    --duration)         DURATION="${2:?--duration needs a value}"; shift 2 ;;
    --connections)      CONNECTIONS="${2:?--connections needs a value}"; shift 2 ;;
    --path)             URL_PATH="${2:?--path needs a value}"; shift 2 ;;
    --fronts)           FRONTS="${2:?--fronts needs a value}"; shift 2 ;;
    --overflow)         OVERFLOW="${2:?--overflow needs a value}"; shift 2 ;;
    --backlog)          BACKLOG="${2:?--backlog needs a value}"; shift 2 ;;
    --warmup)           WARMUP="${2:?--warmup needs a value}"; shift 2 ;;
    --backend)          BACKEND="${2:?--backend needs a value}"; shift 2 ;;
    --script-filename)  SCRIPT_FILENAME="${2:?--script-filename needs a value}"; shift 2 ;;
    --no-record)        RECORD=0; shift ;;
    -h|--help)          usage; exit 0 ;;
    --*=*)              set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    *)                  usage >&2; die "unknown argument: $1" ;;
  esac
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
for n in $PROCS; do is_uint "$n" && [ "$n" -ge 1 ] && [ "$n" -le 256 ] || die "--procs: '$n' is not a process count (1..256)"; done
[ -n "${PROCS// /}" ] || die "--procs is empty"
is_uint "$DURATION" && [ "$DURATION" -ge 1 ] && [ "$DURATION" -le 600 ] || die "--duration must be 1..600 seconds"
is_uint "$CONNECTIONS" && [ "$CONNECTIONS" -ge 1 ] && [ "$CONNECTIONS" -le 10000 ] || die "--connections must be 1..10000"
is_uint "$WARMUP" && [ "$WARMUP" -le 60 ] || die "--warmup must be 0..60 seconds"
[ -z "$BACKLOG" ] || { is_uint "$BACKLOG" && [ "$BACKLOG" -ge 1 ]; } || die "--backlog must be a positive integer"
[[ "$URL_PATH" == /* ]] || die "--path must start with /"
for f in $FRONTS; do case "$f" in nginx|upfront) ;; *) die "--fronts: unknown front '$f' (nginx, upfront)";; esac; done
read -r -a OVERFLOW_MODES <<<"$OVERFLOW"
[ ${#OVERFLOW_MODES[@]} -gt 0 ] || die "--overflow is empty"
for m in "${OVERFLOW_MODES[@]}"; do
  case "$m" in queue|shed|nginx|retry) ;; *) die "--overflow: '$m' is not one of queue, shed, nginx, retry";; esac
done

# ---------------------------------------------------------------- paths
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
cd "$ROOT" || die "cannot cd to $ROOT"

if [ -z "$BACKEND" ]; then
  BACKEND_ARGV=(python3 "$ROOT/examples/python/hello.py")
  [ -f "$ROOT/examples/python/hello.py" ] || die "backend examples/python/hello.py not found (use --backend to pick another FastCGI app)"
else
  read -r -a BACKEND_ARGV <<<"$BACKEND"
fi
command -v "${BACKEND_ARGV[0]}" >/dev/null 2>&1 || [ -x "${BACKEND_ARGV[0]}" ] || die "backend command not found: ${BACKEND_ARGV[0]}"

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- tools
need_pkg() { # tool package -> 0 if present, else prints the install line
  if command -v "$1" >/dev/null 2>&1; then return 0; fi
  echo "seed.sh: '$1' not found — install it: apt-get install $2" >&2
  return 1
}
need_pkg wrk wrk || die "wrk is needed for every row"
need_pkg curl curl || die "curl is needed for readiness checks"
need_pkg setsid util-linux || die "setsid is needed to stop processes reliably"
need_pkg timeout coreutils || die "timeout is needed to bound runs"
HAVE_SS=1
need_pkg ss iproute2 || { HAVE_SS=0; log "without ss the nginx rows show accept-queue max n/a"; }

RUN_FRONTS=""
SKIP_NOTES=()
for f in $FRONTS; do
  case "$f" in
    nginx)
      ok=1
      need_pkg nginx nginx-light || ok=0
      need_pkg spawn-fcgi spawn-fcgi || ok=0
      [ -r /etc/nginx/fastcgi_params ] || { log "/etc/nginx/fastcgi_params missing — install it: apt-get install nginx-common"; ok=0; }
      if [ $ok = 1 ]; then RUN_FRONTS+=" nginx"; else SKIP_NOTES+=("nginx front skipped: missing tools (see above)"); fi
      ;;
    upfront)
      if ! need_pkg node nodejs; then
        SKIP_NOTES+=("upfront front skipped: node missing")
      elif [ ! -x "$ROOT/dist/cli.js" ]; then
        log "dist/cli.js not built (or not executable) — build it first: (cd $ROOT && npm run build)"
        SKIP_NOTES+=("upfront front skipped: dist/cli.js not built (run npm run build)")
      else
        RUN_FRONTS+=" upfront"
      fi
      ;;
  esac
done
[ -n "$RUN_FRONTS" ] || die "no front can run"

# ---------------------------------------------------------------- process bookkeeping
TMP=$(mktemp -d "${TMPDIR:-/tmp}/upfront-seed.XXXXXX") || die "mktemp failed"
chmod 700 "$TMP"
GROUPS_TO_KILL=()   # process group ids (each started with setsid)
PIDFILES=()         # spawn-fcgi pid files (each child is its own session)
EXTRA_PIDS=()       # descendants seen, in case they left our groups
WRK_PID=""

alive() { # pid -> 0 if running and not a zombie
  local st
  [ -r "/proc/$1/stat" ] || return 1
  st=$(cut -d')' -f2- "/proc/$1/stat" 2>/dev/null | awk '{print $1}')
  [ -n "$st" ] && [ "$st" != Z ]
}

group_alive() { # pgid -> 0 if any member runs
  local p
  for p in $(pgrep -g "$1" 2>/dev/null); do alive "$p" && return 0; done
  return 1
}

descendants() { # pid -> all descendant pids
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}

pidfile_pids() { local f; for f in "${PIDFILES[@]}"; do [ -r "$f" ] && cat "$f"; done; }

stop_all() { # TERM everything we started, wait up to 5 s, then KILL
  local g p t pids=()
  for g in "${GROUPS_TO_KILL[@]}"; do
    for p in $(descendants "$g"); do EXTRA_PIDS+=("$p"); done
  done
  pids=("${EXTRA_PIDS[@]}" $(pidfile_pids))
  for g in "${GROUPS_TO_KILL[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  for t in $(seq 50); do
    local any=0
    for g in "${GROUPS_TO_KILL[@]}"; do group_alive "$g" && any=1; done
    for p in "${pids[@]}"; do alive "$p" && any=1; done
    [ $any = 0 ] && break
    sleep 0.1
  done
  for g in "${GROUPS_TO_KILL[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
  for p in "${pids[@]}"; do alive "$p" && { kill -KILL -- "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; }; done
  for g in "${GROUPS_TO_KILL[@]}"; do wait "$g" 2>/dev/null; done
  GROUPS_TO_KILL=(); PIDFILES=(); EXTRA_PIDS=()
}

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$WRK_PID" ]; then kill -TERM -- "-$WRK_PID" 2>/dev/null; kill -TERM "$WRK_PID" 2>/dev/null; wait "$WRK_PID" 2>/dev/null; fi
  stop_all
  if [ "${SEED_KEEP_TMP:-0}" = 1 ]; then log "kept $TMP (SEED_KEEP_TMP=1)"; else rm -rf "$TMP"; fi
}
on_signal() { log "interrupted ($1) — stopping everything"; exit 130; }
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

start_group() { # logfile cmd... -> sets STARTED_PID (own session and process group)
  local logf=$1; shift
  setsid "$@" </dev/null >"$logf" 2>&1 &
  STARTED_PID=$!
  GROUPS_TO_KILL+=("$STARTED_PID")
}

free_port() {
  python3 - <<'EOF' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
EOF
}

cpu_ticks() { # pids... -> utime+stime sum in clock ticks
  local p sum=0 rest
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    rest=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    # after "comm)": state(3) ... utime(14) stime(15) → fields 12 and 13 here
    sum=$(( sum + $(awk '{print $12 + $13}' <<<"$rest") ))
  done
  echo "$sum"
}

wait_ready() { # port pid-to-watch logfile -> 0 when GET /Hello/1 answers 200
  local port=$1 pid=$2 logf=$3 code deadline=$(( $(date +%s%N) / 1000000 + READY_TIMEOUT * 1000 ))
  while [ $(( $(date +%s%N) / 1000000 )) -lt $deadline ]; do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/Hello/1" 2>/dev/null)
    [ "$code" = 200 ] && return 0
    if [ -n "$pid" ] && ! alive "$pid"; then
      READY_ERR="exited before answering (last log lines: $(tail -n 3 "$logf" 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
      return 1
    fi
    sleep 0.1
  done
  READY_ERR="no 200 on /Hello/1 within ${READY_TIMEOUT}s (last status: ${code:-none}; last log lines: $(tail -n 3 "$logf" 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
  return 1
}

# ---------------------------------------------------------------- load
WRK_THREADS=2; [ "$CONNECTIONS" -lt 2 ] && WRK_THREADS=1

run_wrk() { # port seconds outfile -> runs wrk bounded, interruptible
  local port=$1 secs=$2 out=$3
  timeout -k 5 $(( secs + 30 )) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency \
    "http://127.0.0.1:$port$URL_PATH" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID"; local rc=$?
  WRK_PID=""
  return $rc
}

to_ms() { # wrk duration like 812.00us / 9.08ms / 1.20s / 2.00m -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; else if (u == "h") n *= 3600000
    printf "%.2f", n }'
}

# parse_wrk outfile -> sets W_RPS W_REQS W_P50 W_P99 W_NON2XX W_SOCKERR W_SOCKERR_TOTAL
parse_wrk() {
  local f=$1 c r w t
  W_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$f")
  W_REQS=$(awk '/ requests in / {print $1}' "$f")
  W_P50=$(awk '$1 == "50%" {print $2}' "$f"); [ -n "$W_P50" ] && W_P50=$(to_ms "$W_P50")
  W_P99=$(awk '$1 == "99%" {print $2}' "$f"); [ -n "$W_P99" ] && W_P99=$(to_ms "$W_P99")
  W_NON2XX=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f"); W_NON2XX=${W_NON2XX:-0}
  read -r c r w t < <(awk '/Socket errors:/ { gsub(",", ""); print $4, $6, $8, $10 }' "$f")
  c=${c:-0}; r=${r:-0}; w=${w:-0}; t=${t:-0}
  W_SOCKERR_TOTAL=$(( c + r + w + t ))
  if [ "$W_SOCKERR_TOTAL" = 0 ]; then W_SOCKERR=0; else W_SOCKERR="$W_SOCKERR_TOTAL (c$c r$r w$w t$t)"; fi
  [ -n "$W_RPS" ] && [ -n "$W_REQS" ]
}

us_per_req() { # ticks requests -> µs/request
  awk -v t="$1" -v r="$2" -v hz="$CLK_TCK" 'BEGIN { if (r > 0) printf "%.1f", t * 1000000 / hz / r; else print "n/a" }'
}

# ---------------------------------------------------------------- results
declare -A ROW_RPS=()      # "nginx/N" -> req/s: the base of the ratio column
declare -A SEEN_BACKLOG=() # front -> backlogs the kernel reported for its backend sockets
ROWS=()                    # "label|front|procs|rps|p50|p99|non2xx|sockerr|eagain|aqmax|fqmax|cpu"
NOTES=("${SKIP_NOTES[@]}")

add_row() { # label front procs rps p50 p99 non2xx sockerr eagain aqmax fqmax cpu
  local IFS='|'
  ROWS+=("$*")
  if [ "$2" = nginx ] && [ "$4" != "—" ]; then ROW_RPS["nginx/$3"]=$4; fi
}
fail_row() { # label front procs reason
  add_row "$1" "$2" "$3" "—" "—" "—" "—" "—" "—" "—" "—" "—"
  NOTES+=("$1 at procs=$3 failed: $4"); log "$1 procs=$3 FAILED: $4"
}
note_backlog() { # front "b1,b2"
  local b
  for b in ${2//,/ }; do
    [[ " ${SEEN_BACKLOG[$1]:-} " == *" $b "* ]] || SEEN_BACKLOG[$1]="${SEEN_BACKLOG[$1]:-}${SEEN_BACKLOG[$1]:+ }$b"
  done
}

# A snapshot function sets S_EAGAIN (a counter since the front started),
# S_AQMAX (largest backend accept queue seen), S_FQMAX (largest front queue
# seen) and S_BACKLOG (backlog(s) the kernel reports); "n/a" where unknown.
measure() { # label front procs port tag cpu-pids-fn snapshot-fn
  local label=$1 front=$2 n=$3 port=$4 tag=$5 pidsfn=$6 snapfn=$7 out="$TMP/wrk-$5.txt" t0 t1 e0 eag
  if [ "$WARMUP" -gt 0 ]; then
    log "$label procs=$n: warmup ${WARMUP}s"
    run_wrk "$port" "$WARMUP" "$TMP/warmup-$tag.txt"
  fi
  $snapfn; e0=$S_EAGAIN
  t0=$(cpu_ticks $($pidsfn))
  log "$label procs=$n: measuring ${DURATION}s, $CONNECTIONS connections, $URL_PATH"
  if ! run_wrk "$port" "$DURATION" "$out"; then
    fail_row "$label" "$front" "$n" "wrk failed: $(tail -n 2 "$out" | tr '\n' ' ')"; return 1
  fi
  t1=$(cpu_ticks $($pidsfn))
  $snapfn
  if ! parse_wrk "$out"; then fail_row "$label" "$front" "$n" "could not parse wrk output: $(head -c 300 "$out" | tr '\n' ' ')"; return 1; fi
  if [ "$e0" = "n/a" ] || [ "$S_EAGAIN" = "n/a" ]; then eag="n/a"; else eag=$(( S_EAGAIN - e0 )); fi
  [ "$S_BACKLOG" = "n/a" ] || note_backlog "$front" "$S_BACKLOG"
  add_row "$label" "$front" "$n" "$W_RPS" "$W_P50" "$W_P99" "$W_NON2XX" "$W_SOCKERR" "$eag" "$S_AQMAX" "$S_FQMAX" \
          "$(us_per_req $(( t1 - t0 )) "$W_REQS")"
  log "$label procs=$n: $W_RPS req/s, p50 ${W_P50} ms, p99 ${W_P99} ms, non-2xx $W_NON2XX, socket errors $W_SOCKERR, EAGAIN $eag, accept-queue max $S_AQMAX, front-queue max $S_FQMAX"
}

# ---------------------------------------------------------------- nginx + spawn-fcgi
NGINX_MASTER=""
AQ_FILE=""
nginx_pids() { echo "$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER" 2>/dev/null); }

# The spawn-fcgi socket's accept queue, read with ss every SAMPLE_MS from the
# end of the readiness check to the end of the measured run (warmup included,
# as upfront's own maxima are). Writes "max backlog" to $2 whenever max grows.
SAMPLER="$TMP/aq-sampler.sh"
cat >"$SAMPLER" <<'SAMPLER_EOF'
sock=$1 out=$2 period=$3 max=-1
while :; do
  line=$(ss -xlH src "$sock" 2>/dev/null | awk -v p="$sock" '$5 == p { print $3, $4; exit }')
  if [ -n "$line" ]; then
    read -r q b <<<"$line"
    if [ "$q" -gt "$max" ] 2>/dev/null; then
      max=$q
      echo "$max $b" >"$out.tmp" && mv -f "$out.tmp" "$out"
    fi
  fi
  sleep "$period"
done
SAMPLER_EOF
SAMPLE_PERIOD=$(awk -v ms="$SAMPLE_MS" 'BEGIN { printf "%.3f", ms / 1000 }')

nginx_snapshot() {
  S_EAGAIN=$(grep -c 'Resource temporarily unavailable' "$TMP/nginx/error.log" 2>/dev/null); S_EAGAIN=${S_EAGAIN:-0}
  S_FQMAX="n/a"   # nginx has no front queue: a request without a backend connection is a 502
  S_AQMAX="n/a"; S_BACKLOG="n/a"
  if [ -n "$AQ_FILE" ] && [ -s "$AQ_FILE" ]; then read -r S_AQMAX S_BACKLOG <"$AQ_FILE"; fi
  S_AQMAX=${S_AQMAX:-n/a}; S_BACKLOG=${S_BACKLOG:-n/a}
}

run_nginx() {
  local n=$1 port sock="$TMP/fcgi-$1.sock" pidf="$TMP/spawn-fcgi-$1.pid" conf="$TMP/nginx/nginx.conf" wc user_line="" sf_line="" b_args=()
  rm -rf "$TMP/nginx"; mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
  : >"$TMP/nginx/error.log"
  port=$(free_port)
  [ -n "$BACKLOG" ] && b_args=(-b "$BACKLOG")

  PIDFILES+=("$pidf")
  if ! spawn-fcgi -s "$sock" -F "$n" -P "$pidf" "${b_args[@]}" -- /usr/bin/env "${BACKEND_ARGV[@]}" \
       </dev/null >"$TMP/spawn-fcgi-$n.log" 2>&1; then
    fail_row nginx nginx "$n" "spawn-fcgi failed: $(tail -n 3 "$TMP/spawn-fcgi-$n.log" | tr '\n' ' ')"; stop_all; return
  fi

  wc=$(( CONNECTIONS * 2 + 256 )); [ $wc -lt 1024 ] && wc=1024
  [ "$(id -u)" = 0 ] && user_line="user root $(id -gn);"   # worker must reach the socket in our 0700 temp dir
  [ -n "$SCRIPT_FILENAME" ] && sf_line="fastcgi_param SCRIPT_FILENAME $SCRIPT_FILENAME;"
  cat >"$conf" <<NGINX_EOF
# generated by bench/seed.sh — nginx defaults otherwise (no upstream keepalive)
$user_line
worker_processes 1;
worker_rlimit_nofile $(( wc + 64 ));
daemon off;
master_process on;
error_log $TMP/nginx/error.log;
pid $TMP/nginx/nginx.pid;
events { worker_connections $wc; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/client_body;
    fastcgi_temp_path     $TMP/nginx/tmp/fastcgi;
    proxy_temp_path       $TMP/nginx/tmp/proxy;
    uwsgi_temp_path       $TMP/nginx/tmp/uwsgi;
    scgi_temp_path        $TMP/nginx/tmp/scgi;
    upstream backend { server unix:$sock; }
    server {
        listen 127.0.0.1:$port;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO \$uri;
            $sf_line
            fastcgi_pass backend;
        }
    }
}
NGINX_EOF
  start_group "$TMP/nginx/stdout.log" nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$conf"
  NGINX_MASTER=$STARTED_PID
  if ! wait_ready "$port" "$NGINX_MASTER" "$TMP/nginx/error.log"; then
    fail_row nginx nginx "$n" "nginx+spawn-fcgi: $READY_ERR"; stop_all; return
  fi
  AQ_FILE="$TMP/aq-nginx-$n.txt"; rm -f "$AQ_FILE"
  if [ "$HAVE_SS" = 1 ]; then
    start_group "$TMP/aq-sampler-$n.log" bash "$SAMPLER" "$sock" "$AQ_FILE" "$SAMPLE_PERIOD"
  fi
  measure nginx nginx "$n" "$port" "nginx-$n" nginx_pids nginx_snapshot
  stop_all   # the ss sampler too
  AQ_FILE=""
}

# ---------------------------------------------------------------- upfront
UPFRONT_PID=""
UPFRONT_ADMIN=""
upfront_pids() { echo "$UPFRONT_PID"; }

# /stats → "EAGAIN aqmax fqmax backlogs": pools[0].backends[].connectErrors.EAGAIN
# summed (0 when absent), max of backends[].acceptQueue.max, pools[0].queue.max.
STATS_JS='let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
  const o=["n/a","n/a","n/a","n/a"];
  try {
    const p=(JSON.parse(s).pools||[])[0];
    if (p) {
      const bs=p.backends||[];
      o[0]=bs.reduce((a,b)=>a+(Number((b.connectErrors||{}).EAGAIN)||0),0);
      const aq=bs.map(b=>b.acceptQueue).filter(q=>q&&typeof q.max==="number");
      if (aq.length) { o[1]=Math.max(...aq.map(q=>q.max)); const bl=[...new Set(aq.map(q=>q.backlog).filter(x=>x!=null))]; if (bl.length) o[3]=bl.join(","); }
      if (p.queue&&typeof p.queue.max==="number") o[2]=p.queue.max;
    }
  } catch (e) {}
  console.log(o.join(" "));
});'

upfront_snapshot() {
  local json
  json=$(curl -s -m 5 --unix-socket "$UPFRONT_ADMIN" http://x/stats 2>/dev/null)
  read -r S_EAGAIN S_AQMAX S_FQMAX S_BACKLOG < <(node -e "$STATS_JS" <<<"$json" 2>/dev/null || echo "n/a n/a n/a n/a")
  S_EAGAIN=${S_EAGAIN:-n/a}; S_AQMAX=${S_AQMAX:-n/a}; S_FQMAX=${S_FQMAX:-n/a}; S_BACKLOG=${S_BACKLOG:-n/a}
}

run_upfront() { # procs overflow-mode
  local n=$1 mode=$2 label="upfront (overflow=$2)" tag="upfront-$2-$1" port logf args
  logf="$TMP/$tag.log"
  port=$(free_port)
  UPFRONT_ADMIN="$TMP/admin.sock"; rm -f "$UPFRONT_ADMIN"
  args=(run --listen "127.0.0.1:$port" --admin "unix:$UPFRONT_ADMIN" -n "$n" --overflow "$mode" --sample-interval "$SAMPLE_MS")
  [ -n "$BACKLOG" ] && args+=(--backlog "$BACKLOG")
  start_group "$logf" "$ROOT/dist/cli.js" "${args[@]}" -- "${BACKEND_ARGV[@]}"
  UPFRONT_PID=$STARTED_PID
  if ! wait_ready "$port" "$UPFRONT_PID" "$logf"; then
    fail_row "$label" upfront "$n" "upfront: $READY_ERR"; stop_all; return
  fi
  measure "$label" upfront "$n" "$port" "$tag" upfront_pids upfront_snapshot
  [ "$S_EAGAIN" = "n/a" ] && NOTES+=("$label at procs=$n: no /stats from unix:$UPFRONT_ADMIN — EAGAIN and queue columns n/a")
  stop_all
}

# ---------------------------------------------------------------- run
START_DATE=$(date '+%Y-%m-%d %H:%M:%S %z')
STAMP=$(date '+%Y%m%d-%H%M')
for n in $PROCS; do
  for f in $RUN_FRONTS; do
    case "$f" in
      nginx)   run_nginx "$n" ;;
      upfront) for m in "${OVERFLOW_MODES[@]}"; do run_upfront "$n" "$m"; done ;;
    esac
  done
done

# ---------------------------------------------------------------- report
ratio() { # procs rps -> rps / nginx rps at the same procs
  local base=${ROW_RPS["nginx/$1"]:-}
  if [ "$2" = "—" ] || [ -z "$base" ]; then echo "n/a"; return; fi
  awk -v a="$2" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

TABLE=$(
  echo "| front | procs | req/s | p50 ms | p99 ms | non-2xx | socket errors | EAGAIN | accept-queue max | front-queue max | front CPU µs/req | ratio vs nginx |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label f n rps p50 p99 non sock eag aq fq cpu <<<"$row"
    echo "| $label | $n | $rps | $p50 | $p99 | $non | $sock | $eag | $aq | $fq | $cpu | $(ratio "$n" "$rps") |"
  done
)

SOMAXCONN=$(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo "?")
if [ -n "$BACKLOG" ]; then
  backlog_line="$BACKLOG for both fronts (spawn-fcgi -b $BACKLOG, upfront --backlog $BACKLOG)"
else
  backlog_line="defaults (spawn-fcgi 1024, upfront 1024)"
fi
seen=""
for f in nginx upfront; do [ -n "${SEEN_BACKLOG[$f]:-}" ] && seen+="${seen:+, }$f rows ${SEEN_BACKLOG[$f]// /\/}"; done
backlog_line+="; kernel reports: ${seen:-n/a}; net.core.somaxconn $SOMAXCONN"

echo "backlog: $backlog_line"
echo
echo "$TABLE"
if [ ${#NOTES[@]} -gt 0 ]; then
  echo
  for note in "${NOTES[@]}"; do echo "- $note"; done
fi

if [ "$RECORD" = 1 ]; then
  mkdir -p "$BENCH_DIR/results"
  out="$BENCH_DIR/results/seed-$STAMP.md"
  cmdline="bench/seed.sh"
  for a in "${ORIG_ARGS[@]}"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then cmdline+=" $a"; else cmdline+=" '${a//\'/\'\\\'\'}'"; fi
  done
  nginx_v=$(nginx -v 2>&1 | sed 's/^nginx version: nginx\///' || true)
  git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
  if [ -n "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ]; then git_rev+=" + uncommitted changes in src/"; fi
  {
    echo "## seed benchmark, $START_DATE"
    echo
    echo "- command: \`$cmdline\`"
    echo "- host: nproc $(nproc), kernel $(uname -sr), $(uname -m)"
    echo "- node $(node --version 2>/dev/null || echo missing), nginx ${nginx_v:-missing}, $(wrk -v 2>&1 | head -n1 | awk '{print "wrk", $2}'), $(spawn-fcgi -v 2>/dev/null | head -n1 | awk '{print "spawn-fcgi", $2}')"
    echo "- upfront: git $git_rev; overflow modes: ${OVERFLOW_MODES[*]}; --sample-interval $SAMPLE_MS"
    echo "- backend: \`${BACKEND_ARGV[*]}\`; load: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s --latency $URL_PATH, ${WARMUP}s warmup per row"
    echo "- backlog: $backlog_line"
    echo
    echo "$TABLE"
    if [ ${#NOTES[@]} -gt 0 ]; then
      echo
      for note in "${NOTES[@]}"; do echo "- $note"; done
    fi
    echo
  } >>"$out"
  log "recorded in ${out#"$ROOT"/}"
fi
