# shellcheck shell=bash
# What the bench scripts share (source it): a free loopback port, waiting until a
# server answers, and the CPU time of processes.

# A TCP port on 127.0.0.1 free right now.
free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Waits until URL answers 2xx, up to 10 s; says which did not, and fails.
wait_ok() {
  for _ in $(seq 1 100); do curl -skf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 did not answer within 10 s" >&2
  return 1
}

# utime + stime of the PIDs together, in clock ticks (getconf CLK_TCK a second).
cpu_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# wrk's figures from its report on stdin: requests completed, requests per second, p99 (with its unit; needs --latency).
wrk_requests() { grep -oP '^\s+\K\d+(?= requests in)'; }
wrk_rps() { grep -oP '(?<=Requests/sec:)\s+\S+' | tr -d ' '; }
wrk_p99() { awk '/ 99%/ { print $2 }'; }

# The pid of the front serving on 127.0.0.1:PORT: not $! when setsid forked to start it.
front_pid() { pgrep -f -- "--listen 127.0.0.1:$1 " | head -1; }

# SIGINT to the front PID, then wait until it is gone (it is not this shell's child when setsid forked).
stop_front() {
  kill -INT "$1"; wait "$1" 2>/dev/null || true
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}
