// --user / --group: the uid and gid the children run as, looked up in /etc/passwd
// and /etc/group, with errors that name the problem.
import fs from 'node:fs';

export interface Identity { user: string; uid: number; gid: number }

function lookup(file: string, name: string): string[] | null {
  let text = '';
  try { text = fs.readFileSync(file, 'utf8'); } catch { return null; }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name || (/^\d+$/.test(name) && fields[2] === name)) return fields;
  }
  return null;
}

export function resolveIdentity(user: string, group: string | undefined): Identity {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`--user ${user} needs upfront to run as root (it runs as uid ${process.getuid()})`);
  }
  const pw = lookup('/etc/passwd', user);
  if (!pw) throw new Error(`--user ${user}: no such user in /etc/passwd`);
  let gid = Number(pw[3]);
  if (group !== undefined) {
    const gr = lookup('/etc/group', group);
    if (!gr) throw new Error(`--group ${group}: no such group in /etc/group`);
    gid = Number(gr[2]);
  }
  return { user: pw[0], uid: Number(pw[2]), gid };
}
