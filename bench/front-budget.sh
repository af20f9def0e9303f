#!/bin/bash
# Where the front's CPU per request goes: perf samples of the upfront process (all its
# threads) under the seed load, grouped as kernel, node/V8 C++, V8's GC, V8 builtins,
# upfront's JavaScript, node's own JavaScript and libc. Needs perf (apt-get install -y
# linux-perf) and wrk.
#
#   bench/front-budget.sh [PROCS=2] [SECONDS=8]
set -euo pipefail
n=${1:-2}; secs=${2:-8}
cd "$(dirname "$0")/.."
. bench/lib.sh
[ -x dist/cli.js ] || npm run build --silent
port=$(free_port)
out=$(mktemp -d)
trap 'rm -rf "$out"; rm -f /tmp/perf-$upid.map' EXIT
# shellcheck disable=SC2046 # the shebang's node flags are words
node --perf-basic-prof $(sed -n '1s|^#!/usr/bin/env -S node||p' dist/cli.js) dist/cli.js run --listen 127.0.0.1:$port --admin off -n "$n" --log-level error -- python3 examples/python/hello.py >/dev/null 2>&1 & upid=$!
wait_ok http://127.0.0.1:$port/Hello/1
wrk -t2 -c200 -d3s http://127.0.0.1:$port/Hello/100 >/dev/null
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$upid/stat)
wrk -t2 -c200 -d$((secs + 2))s http://127.0.0.1:$port/Hello/100 > "$out/wrk" & w=$!
sleep 1; perf record -F 1999 -p $upid -o "$out/perf.data" -- sleep "$secs" >/dev/null 2>&1
wait $w
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$upid/stat)
req=$(wrk_requests < "$out/wrk")
us=$(( (u1 - u0 + s1 - s0) * 10000000 / req / 1000 ))
echo "# git $(git rev-parse --short HEAD), -n $n, wrk -t2 -c200 /Hello/100: $(wrk_rps < "$out/wrk") req/s, front CPU $us µs/request (user $(( (u1-u0)*10000000/req/1000 )), sys $(( (s1-s0)*10000000/req/1000 )))"
kill -INT $upid; wait $upid || true
perf report -i "$out/perf.data" --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep '%' | US=$us python3 -c '
import os, re, sys
cat = {}
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[(.)\]\s+(.*)", line)
    if not m: continue
    p, dso, sym = float(m.group(1)), m.group(2), m.group(4)
    if "kernel" in dso: k = "kernel (syscalls, loopback TCP, unix sockets, wakeups)"
    elif "file:///" in sym and "/dist/" in sym: k = "upfront JavaScript"
    elif sym.startswith("JS:"): k = "node JavaScript (net, streams)"
    elif sym.startswith("Builtins_") or "JIT" in dso: k = "V8 builtins (for either)"
    elif dso == "node" and re.search(r"Marking|Sweep|Scaveng|GC|Heap|Evacuat|MemoryChunk|Compactor|RememberedSet|SlotSet|BodyDescriptor|SizeFromMap", sym): k = "V8 garbage collection"
    elif dso == "node": k = "node / V8 / libuv C++ (other)"
    elif "libc" in dso: k = "libc (malloc, memcpy, syscall stubs)"
    else: k = "other"
    cat[k] = cat.get(k, 0) + p
us = float(os.environ["US"])
print("| share | µs/request | where |\n|---:|---:|---|")
for k, v in sorted(cat.items(), key=lambda x: -x[1]):
    print(f"| {v:.1f} % | {us * v / 100:.1f} | {k} |")
'
