// Socket dirs left behind by an upfront that did not stop in order (its watchdog
// killed too, a reboot without a tmpfs /tmp): TMP/upfront-PID whose PID is not a
// running upfront. Only upfront's own files are removed, and the dir if then empty.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

const DIR_RE = /^upfront-(\d+)$/;
const OWN_FILE_RE = /^(?:b\d+\.sock|shared\.sock|admin\.token)$/;

/** Whether PID is a running upfront: its command line names upfront or its cli.js. */
export function isRunningUpfront(pid: number): boolean {
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return false; // no such process
  }
  return cmdline.split('\0').some((arg) => /upfront|(?:^|\/)cli\.js$/.test(arg));
}

/** Removes stale upfront-PID dirs of this user under `tmpDir`; returns those removed. */
export function removeStaleSocketDirs(tmpDir: string, log: Logger, ownDir?: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(tmpDir);
  } catch {
    return [];
  }
  const uid = process.getuid?.();
  const removed: string[] = [];
  for (const name of names) {
    const m = DIR_RE.exec(name);
    if (!m) continue;
    const dir = path.join(tmpDir, name);
    const pid = Number(m[1]);
    if (dir === ownDir || pid === process.pid || isRunningUpfront(pid)) continue;
    try {
      const st = fs.lstatSync(dir);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      const left: string[] = [];
      for (const f of fs.readdirSync(dir)) {
        if (OWN_FILE_RE.test(f)) fs.rmSync(path.join(dir, f), { force: true });
        else left.push(f);
      }
      if (left.length > 0) {
        log.warn({ dir, pid, left }, `stale socket dir ${dir} (pid ${pid} is not running): removed upfront's files, kept ${left.length} other(s)`);
        continue;
      }
      fs.rmdirSync(dir);
      removed.push(dir);
      log.info({ dir, pid }, `removed stale socket dir ${dir} (pid ${pid} is not a running upfront)`);
    } catch (err) {
      log.warn({ dir, pid, code: (err as NodeJS.ErrnoException).code }, `could not remove stale socket dir ${dir}: ${(err as Error).message}`);
    }
  }
  return removed;
}
