#!/usr/bin/env python3
"""How steadily the apps get the CPU under load, whatever front feeds them.

Waits DELAY seconds, finds the processes whose command line contains PATTERN
(default hello.py) and whose program is python, then reads their threads'
/proc/PID/task/*/schedstat every 100 ms for SECONDS: the CPU time they ran and the
time they were runnable but waiting for a core, each as a share of the window.
With one single-threaded app the app is the stage every request waits for: a share
that swings from window to window is a rate that swings, and a FIFO queue in front
of it turns that into latency spread (p99 far above p50).

    bench/app-share.py DELAY SECONDS [PATTERN]
    e.g. in one shell: bench/app-share.py 12 8
         in another:   node dist/cli.js bench --front lighttpd --procs 1 --duration 20s --repeat 1 -- python3 examples/python/hello.py
"""
import glob
import os
import statistics
import sys
import time


def pids(pattern):
    found = []
    for path in glob.glob('/proc/[0-9]*'):
        pid = int(path[6:])
        if pid == os.getpid():
            continue
        try:
            argv = open(path + '/cmdline', 'rb').read().decode(errors='replace').split('\0')
        except OSError:
            continue
        if 'python' in os.path.basename(argv[0]) and any(pattern in a for a in argv[1:]):
            found.append(pid)
    return found


def schedstat(pids_):
    """Summed over the processes' threads: ns on a CPU, ns runnable and waiting."""
    ran = waited = 0
    for pid in pids_:
        for f in glob.glob('/proc/%d/task/*/schedstat' % pid):
            try:
                fields = open(f).read().split()
            except OSError:
                continue
            ran += int(fields[0])
            waited += int(fields[1])
    return ran, waited


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    delay, seconds = float(sys.argv[1]), float(sys.argv[2])
    pattern = sys.argv[3] if len(sys.argv) > 3 else 'hello.py'
    time.sleep(delay)
    apps = pids(pattern)
    if not apps:
        sys.exit('app-share: no python process with %r in its command line' % pattern)
    ran_shares, wait_shares = [], []
    ran0, wait0 = schedstat(apps)
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        time.sleep(0.1)
        t1 = time.monotonic()
        ran1, wait1 = schedstat(apps)
        ran_shares.append((ran1 - ran0) / 1e9 / (t1 - t0))
        wait_shares.append((wait1 - wait0) / 1e9 / (t1 - t0))
        ran0, wait0, t0 = ran1, wait1, t1
    ran_shares.sort()
    wait_shares.sort()

    def q(a, p):
        return a[min(len(a) - 1, int(len(a) * p))]

    print('apps %s, %d windows of 100 ms' % (' '.join(map(str, apps)), len(ran_shares)))
    print('CPU share:    mean %.2f  p5 %.2f  p50 %.2f  p95 %.2f  stdev %.3f' % (
        statistics.mean(ran_shares), q(ran_shares, .05), q(ran_shares, .5), q(ran_shares, .95), statistics.pstdev(ran_shares)))
    print('waiting share (runnable, no core): mean %.2f  p50 %.2f  p95 %.2f' % (
        statistics.mean(wait_shares), q(wait_shares, .5), q(wait_shares, .95)))


main()
