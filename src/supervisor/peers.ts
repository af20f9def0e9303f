// Which backend process serves a connection on a shared socket, where the kernel
// picked the child: the accepted end's inode (sock_diag, native/sock.ts) is found
// among the socket fds of the child's process group (/proc/PID/fd; its workers
// included, e.g. php-cgi's PHP_FCGI_CHILDREN). Used at start, reload and scale
// (off the request path): a /proc walk costs about a millisecond per hundred processes.
import fs from 'node:fs';
import { statFields } from '../stats/proc.js';

/** Processes whose process group is one of `groups` (each child leads its own group). */
function membersOf(groups: ReadonlySet<number>): Array<{ pid: number; group: number }> {
  const out: Array<{ pid: number; group: number }> = [];
  let entries: string[];
  try { entries = fs.readdirSync('/proc'); } catch { return out; }
  for (const name of entries) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const fields = statFields(name); // state ppid pgrp ...
    if (fields === null) continue; // gone
    const group = Number(fields[2]);
    if (groups.has(group)) out.push({ pid: Number(name), group });
  }
  return out;
}

/** The socket inodes each group's processes hold open: inode → group. */
export function socketInodesOf(groups: Iterable<number>): Map<number, number> {
  const wanted = new Set(groups);
  const out = new Map<number, number>();
  if (wanted.size === 0) return out;
  for (const { pid, group } of membersOf(wanted)) {
    let fds: string[];
    try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; } // exited meanwhile, or not ours to read
    for (const fd of fds) {
      let link: string;
      try { link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      if (link.startsWith('socket:[')) out.set(Number(link.slice(8, -1)), group);
    }
  }
  return out;
}
