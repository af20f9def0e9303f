// The log of a spawned `upfront run` (pino JSON lines on its stdout), read as it comes.
import type { RunningCli } from './helpers.js';
import type { LogLine } from './helpers.js';

export function cliLines(cli: RunningCli): LogLine[] {
  const out: LogLine[] = [];
  for (const text of cli.stdout().split('\n')) {
    if (!text.startsWith('{')) continue;
    try { out.push(JSON.parse(text) as LogLine); } catch { /* a line still being written */ }
  }
  return out;
}

/** Resolves on the first (past or future) line matching; rejects after `timeoutMs` with the last lines. */
export function waitForCliLine(cli: RunningCli, pred: (l: LogLine) => boolean, what: string, timeoutMs = 10_000): Promise<LogLine> {
  const found = cliLines(cli).find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const stdout = cli.proc.stdout!;
    const check = () => {
      const line = cliLines(cli).find(pred);
      if (line) { clearTimeout(timer); stdout.off('data', onData); cli.proc.off('exit', onData); resolve(line); }
    };
    // Our listener runs after spawnCli's, which appends the chunk to stdout().
    const onData = () => setImmediate(check);
    const timer = setTimeout(() => {
      stdout.off('data', onData);
      cli.proc.off('exit', onData);
      reject(new Error(`no log line ${what} within ${timeoutMs} ms; last lines:\n${cliLines(cli).slice(-8).map((l) => JSON.stringify(l)).join('\n')}\nstderr: ${cli.stderr().slice(-500)}`));
    }, timeoutMs);
    stdout.on('data', onData);
    cli.proc.on('exit', onData);
  });
}

/** The front's process is still there (no exit, no signal). */
export function alive(cli: RunningCli): boolean {
  return cli.proc.exitCode === null && cli.proc.signalCode === null;
}

/** The running front's /stats (its admin listener must be on TCP). */
export async function cliStats(cli: RunningCli): Promise<any> {
  const res = await fetch(`http://${cli.admin}/stats`, { signal: AbortSignal.timeout(5000) });
  return res.json();
}

/** Requests in flight at the backends plus those waiting in the front queue. */
export async function cliBusy(cli: RunningCli): Promise<number> {
  const s = await cliStats(cli);
  let n = 0;
  for (const p of s.pools) {
    n += p.queue.current;
    for (const b of p.backends) n += b.inflight;
  }
  return n;
}
