// What cleans up when upfront itself is killed (SIGKILL, OOM killer, a crash):
// a small /bin/sh that reads a pipe whose write end only upfront holds. It learns
// each child's process group as it is spawned (and forgets it when the group is
// gone) and the socket dirs in use. At end of file — upfront gone, whatever the
// cause — it SIGKILLs every group it knows (workers a child forked included:
// gunicorn's, php-cgi's PHP_FCGI_CHILDREN), removes upfront's files from the socket
// dirs and the dirs, and exits. setpriv's pdeathsig reaches the direct child only.
//
// One watchdog per upfront process, started when there is something to guard and
// ended when there is nothing left; it costs a line on a pipe per spawn and exit,
// nothing per request. It holds no backend socket: its stdio is the pipe and
// /dev/null, and every other fd of ours is close-on-exec.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';

// The protocol, one line each: "+ PGID" / "- PGID" (a group to kill / forget),
// "d DIR" / "u DIR" (a socket dir to clean / forget). Groups are kept as " 1 2 3 ",
// dirs as newline-separated lines; quoted patterns match a path literally.
const SCRIPT = `
trap '' HUP INT QUIT TERM TSTP TTIN TTOU PIPE
NL='
'
groups=' '
dirs=$NL
while IFS= read -r line; do
  arg=\${line#??}
  case $line in
    '+ '*) groups="$groups$arg " ;;
    '- '*) case $groups in *" $arg "*) groups="\${groups%% $arg *} \${groups#* $arg }" ;; esac ;;
    'd '*) dirs="$dirs$arg$NL" ;;
    'u '*) case $dirs in *"$NL$arg$NL"*) dirs="\${dirs%%"$NL$arg$NL"*}$NL\${dirs#*"$NL$arg$NL"}" ;; esac ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
IFS=$NL
set -f
for d in $dirs; do
  set +f
  rm -f -- "$d"/b[0-9]*.sock "$d"/shared.sock "$d"/admin.token
  rmdir -- "$d" 2>/dev/null
  set -f
done
exit 0
`;

export class ProcessGroupWatchdog {
  private static instance: ProcessGroupWatchdog | null = null;

  /** The watchdog of this process; it logs to the logger of its latest user. */
  static get(log: Logger): ProcessGroupWatchdog {
    if (!ProcessGroupWatchdog.instance) ProcessGroupWatchdog.instance = new ProcessGroupWatchdog(log);
    ProcessGroupWatchdog.instance.log = log;
    return ProcessGroupWatchdog.instance;
  }

  private proc: ChildProcess | null = null;
  private readonly groups = new Set<number>();
  private readonly dirs = new Set<string>();
  private unexpectedExits = 0;

  private constructor(private log: Logger) {}

  /** The pid of the watchdog process while one runs (for tests and the log). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** A child's process group (its pid: children are spawned detached), killed if upfront dies. */
  track(pgid: number): void {
    if (!Number.isInteger(pgid) || pgid <= 1 || this.groups.has(pgid)) return;
    this.groups.add(pgid);
    this.send(`+ ${pgid}`);
  }

  /** The group is gone (its leader exited and the group was killed): never kill that number again. */
  forget(pgid: number): void {
    if (!this.groups.delete(pgid)) return;
    this.send(`- ${pgid}`);
    this.stopIfIdle();
  }

  /** A socket dir whose upfront files (b*.sock, shared.sock, admin.token) and itself go if upfront dies. */
  watchDir(dir: string): void {
    if (dir.includes('\n') || this.dirs.has(dir)) return;
    this.dirs.add(dir);
    this.send(`d ${dir}`);
  }

  unwatchDir(dir: string): void {
    if (!this.dirs.delete(dir)) return;
    this.send(`u ${dir}`);
    this.stopIfIdle();
  }

  private send(line: string): void {
    if (!this.proc) this.start();
    this.proc?.stdin?.write(line + '\n');
  }

  private start(): void {
    const proc = spawn('/bin/sh', ['-c', SCRIPT], {
      stdio: ['pipe', 'ignore', 'ignore'],
      // Its own session: a terminal's Ctrl-C or a signal to upfront's group does not reach it.
      detached: true,
    });
    this.proc = proc;
    // Neither the process nor its pipe keeps upfront alive; the pipe's end is the point.
    proc.unref();
    (proc.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    proc.stdin?.on('error', () => { /* it died: handled on exit */ });
    proc.once('error', (err: NodeJS.ErrnoException) => {
      this.log.error({ code: err.code }, `watchdog: cannot start /bin/sh (${err.code}): backends will not be cleaned up if upfront is killed with SIGKILL`);
    });
    proc.once('exit', (code, signal) => {
      if (this.proc !== proc) return; // ended on purpose
      this.proc = null;
      if (this.groups.size === 0 && this.dirs.size === 0) return;
      this.unexpectedExits++;
      if (this.unexpectedExits > 5) {
        this.log.error({ code, signal }, 'watchdog: exited again; not restarting it: backends will not be cleaned up if upfront is killed with SIGKILL');
        return;
      }
      this.log.warn({ code, signal }, `watchdog (pid ${proc.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; starting a new one`);
      // Tell the new one everything the old one knew.
      for (const g of this.groups) this.send(`+ ${g}`);
      for (const d of this.dirs) this.send(`d ${d}`);
    });
    this.log.debug({ watchdog: proc.pid }, `watchdog started (pid ${proc.pid})`);
  }

  /** Nothing to guard: end of file, and the watchdog exits (after doing nothing). */
  private stopIfIdle(): void {
    if (this.groups.size > 0 || this.dirs.size > 0 || !this.proc) return;
    const proc = this.proc;
    this.proc = null;
    proc.stdin?.end();
  }
}
