#!/usr/bin/env -S node --max-semi-space-size=8 --initial-old-space-size=64
// upfront's command line: parses flags, loads the config, hands over. Thin on purpose.
// The shebang's node flags are the front's (whoever starts this file with an explicit node
// reads them from here: nodeFlags.ts). V8 starts a full mark-compact whenever the old
// generation's headroom is below the young generation's capacity. With 16 MiB semi-spaces that
// was after nearly every scavenge under load; with 8 it still was, ~6 a second, once V8's first
// full collection (~14 s into the load) set the limit ~15 MiB over the ~15 MiB live. The 64 MiB
// floor keeps the headroom above it: each storm cost milliseconds of marking on the thread every
// request waits for (bench/gc.sh, bench/RESULTS.md).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { loadConfigFile } from './config/load.js';
import { ConfigError, validateRunConfig } from './config/schema.js';
import { startFront } from './front.js';
import { createLogger } from './log.js';
import { formatStats } from './admin/statsTable.js';
import { AdminRequestError, fetchStats, findAdminToken, postAdmin } from './admin/adminClient.js';
import { isLoopbackName } from './admin/adminAccess.js';

const EXIT_USAGE = 2;

function fail(message: string, code = 1): never {
  process.stderr.write(`upfront: ${message}\n`);
  process.exit(code);
}

const program = new Command();
program
  .name('upfront')
  .description('A front server and process manager for FastCGI apps: spawns N backends, balances them, shows backpressure.')
  .version(packageVersion(), '-V, --version', 'print the version')
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(`upfront: ${str.replace(/^error: /, '').trim()}\n`) });

const collect = (value: string, previous: string[] = []) => [...previous, value];

program.command('run')
  .description('spawn N backend processes from COMMAND and serve them over FastCGI (or HTTP)')
  .usage('[options] [-- COMMAND [ARGS...]]')
  // Every option is also a config file key (its name without the dashes); flags override the file.
  .option('-c, --config <file>', 'YAML or JSON config file; flags override it')
  .option('--listen <addr>', 'public listener, HOST:PORT, PORT (on 127.0.0.1), unix:PATH, systemd (socket activation) or fd:N (default 127.0.0.1:8080)')
  .option('--tls-cert <file>', 'PEM certificate chain: TLS on the public listener, HTTP/2 and HTTP/1.1 by ALPN (re-read on reload)')
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
  .option('--redirect-http <addr>', 'a plain HTTP listener that redirects every request to https (HOST:PORT, PORT or unix:PATH)')
  .option('--admin <addr>', 'admin listener, HOST:PORT, PORT or unix:PATH, or "off" (default 127.0.0.1:8081)')
  .option('--admin-token-file <file>', 'the token admin POSTs need (mode 0600) (default: a fresh one in the socket dir)')
  // The processes
  .option('-n, --procs <n>', 'backend processes to spawn from COMMAND, or MIN:MAX to autoscale (default 1; 0 with --upstream alone)')
  .option('--protocol <p>', 'fastcgi (default) or http: HTTP/1.1 to apps that bind UPFRONT_SOCKET or {socket} themselves (gunicorn, uvicorn, Node)')
  .addOption(new Option('--socket <mode>', 'per-process: a unix socket per child; shared: one socket for all as fd 0 (spawn-fcgi -F N) (default per-process)'))
  .option('--socket-fd <how>', '0 (FCGI_LISTENSOCK_FILENO, default) or systemd (fd 3, LISTEN_FDS=1, LISTEN_PID)')
  .option('--sched-policy <policy>', 'CPU scheduling policy of the processes: batch (SCHED_BATCH, default: a woken app does not preempt the front) or other')
  .option('--front-nice <n>', 'nice of the front itself, -20 to 19, as nginx\'s worker_priority (default: the weight of the processes it feeds, 0 for 1, -3 for 2, -6 for 4, -9 for 8, at most -10, so that a client woken by an answer does not preempt the front mid-turn; a front leading its own session gives the session that nice too, as autogroup scheduling counts the nice of a thread only within its session; its processes start at the nice the front was started with)')
  .option('--front-sched-policy <policy>', 'CPU scheduling policy of the front itself: batch (SCHED_BATCH, default: woken by a client or an app, it does not preempt the app or client on its core) or other')
  .option('--cpu-affinity <how>', 'auto: each process bound to one CPU, spread over the CPUs upfront may use (as nginx\'s worker_cpu_affinity auto); none (default): the kernel places them')
  .option('--socket-dir <dir>', 'where backend sockets are created (default a fresh upfront-PID dir under the temp dir)')
  .option('--backlog <n>', 'listen backlog of the sockets upfront creates (default 1024, as spawn-fcgi)')
  .option('--cwd <dir>', 'working directory of the backend processes')
  .option('--env <KEY=VALUE>', 'environment variable for the backend processes (repeatable)', collect)
  .option('--user <user>', 'run the backend processes as this user (when upfront runs as root)')
  .option('--group <group>', 'and this group (default: the user\'s)')
  .option('--start-timeout <ms>', 'a new process must accept connections within this (default 30000)')
  .option('--get-values-timeout <ms>', 'how long a backend that accepted may take to answer FCGI_GET_VALUES (default 1000)')
  .option('--kill-timeout <ms>', 'SIGKILL a process this long after its SIGTERM (default 5000)')
  .option('--restart-backoff <ms>', 'first restart delay after a process exits, doubling per failure in a row (default 100)')
  .option('--restart-backoff-max <ms>', 'longest restart delay (default 30000)')
  .option('--down-after-failures <n>', 'a process failing this many times in a row shows as down in /stats, with its last exit and stderr (default 5)')
  .option('--max-requests <n>', 'recycle a process after N requests (drained first), as gunicorn / php-fpm (default 0: never)')
  .option('--max-requests-jitter <n>', 'add 0..J to --max-requests per process, so they do not recycle together (default 0)')
  .option('--max-rss <mb>', 'recycle a process whose resident memory exceeds this (default 0: never)')
  .option('--kill-stuck <bool>', 'kill a process whose request exceeded --read-timeout; it is restarted (default false)')
  .option('--scale-up-after <ms>', 'autoscale: add a process when the queue was non-empty this long (default 1000)')
  .option('--scale-down-after <ms>', 'autoscale: remove a process idle this long (default 30000)')
  // The backends and how requests reach them
  .option('--upstream <addr>', 'a backend upfront does not spawn: unix:PATH or HOST:PORT (repeatable)', collect)
  .option('--multithreaded <v>', 'true|false|auto: may a backend take more than one request at once (default auto)')
  .option('--multiplexed <v>', 'true|false|auto: may requests share one FastCGI connection (default auto)')
  .option('--max-requests-per-backend <n>', 'slots of a multithreaded backend (default: its FCGI_MAX_REQS, else 8)')
  .option('--keep-conn <bool>', 'FCGI_KEEP_CONN and connection reuse (default true)')
  .option('--pipeline-depth <n>', 'at most this many requests written on one connection to a single-threaded backend, fewer than 2 ms of its recent pace allows (default 16)')
  .option('--policy <name>', 'least-conn | round-robin | random-two (default least-conn)')
  .option('--overflow <mode>', 'no free slot: queue (wait in the front), shed (503 at once), nginx (connect anyway, EAGAIN → 502), retry (connect anyway, retry EAGAIN) (default queue)')
  .option('--queue-size <n>', 'requests that may wait in the front queue, beyond it 503 at once (default 65536: every request of thousands of connections waits its turn, bounded by --queue-timeout)')
  .option('--queue-timeout <ms>', 'longest wait in the queue before 503 (default 10000)')
  .option('--retries <n>', 'times a request that never started is tried on another backend (default 1)')
  .option('--connect-timeout <ms>', 'connect() to a backend gives up after this long (default 1000)')
  .option('--read-timeout <ms>', 'no response byte from the backend for this long → 504 (default 60000)')
  .option('--health-check-interval <ms>', 'actively check --upstream backends this often (default 0: off)')
  .option('--health-check-path <path>', '--protocol http: the path checked with GET (2xx/3xx pass) (default /); FastCGI uses FCGI_GET_VALUES')
  .option('--health-check-timeout <ms>', 'a check with no answer within this fails (default 2000)')
  .option('--health-check-rise <n>', 'passing checks in a row that bring a backend back (default 2)')
  .option('--health-check-fall <n>', 'failed checks in a row that take a backend out (default 3)')
  // Before the app: files, compression, the access log, health
  .option('--static <prefix=dir>', 'serve files under URL_PREFIX from DIR before the app (repeatable), e.g. /assets=/srv/app/public', collect)
  .option('--try-files <bool>', 'serve a file of --document-root when one exists, else pass the request to the app (nginx try_files $uri @app) (default false)')
  .option('--internal-location <prefix=dir>', 'X-Accel-Redirect: /PREFIX/... is sent from DIR; X-Sendfile paths must lie under DIR (repeatable)', collect)
  .option('--compress <bool>', 'gzip/brotli text responses for clients that accept it (default false)')
  .option('--compress-min-size <size>', 'do not compress responses shorter than this (default 1k)')
  .option('--access-log <where>', 'stdout, a file path (reopened on SIGUSR1), or off (default off)')
  .option('--access-log-format <f>', 'combined (nginx\'s, plus rt= ut= qt= backend= pid=) or json (default combined)')
  .option('--health-on-public <bool>', 'also answer /healthz and /readyz on the public listener (default false; always on the admin one)')
  // The requests
  .option('--document-root <dir>', 'for SCRIPT_FILENAME / DOCUMENT_ROOT (default: the current directory)')
  .option('--script-ext <ext>', 'only files with this extension are scripts, e.g. php (repeatable); a path naming none gets 404', collect)
  .option('--max-body-size <size>', 'largest request body, e.g. 100m, 1g; larger → 413 (default 100m; nginx: 1m; 0: no limit)')
  .option('--request-buffering <bool>', 'read a request body whole (memory, then a temp file) before it takes a backend slot (default true, as nginx)')
  .option('--response-buffering <bool>', 'take a response from the backend even when the client reads slowly (default true, as nginx)')
  .option('--response-buffer-memory <size>', 'per response, held in memory before a temp file (default 1m)')
  .option('--response-buffer-max <size>', 'per response, largest temp file; beyond, the backend waits (default 1g, as nginx)')
  .option('--max-head-bytes <n>', 'largest response head a backend may send (default 1048576)')
  .option('--client-header-timeout <ms>', 'a client must send a request head within this (408 after) (default 60000, as nginx)')
  .option('--client-body-timeout <ms>', 'longest pause between two reads of a request body (408 after) (default 60000)')
  .option('--keepalive-timeout <ms>', 'an idle kept-alive client connection is closed after this (default 75000, as nginx)')
  .option('--send-timeout <ms>', 'a client that takes no response bytes for this long is cut (default 60000)')
  .option('--forwarded <bool>', '--protocol http: also send an RFC 7239 Forwarded header (default false)')
  .option('--pass-underscore-headers <bool>', 'pass request headers whose names hold "_" as HTTP_* params (default false, as nginx)')
  .option('--pass-proxy-header <bool>', 'pass a Proxy request header as HTTP_PROXY (default false: httpoxy)')
  .option('--server-timing <bool>', 'add a Server-Timing header (queue, connect, backend) (default false)')
  .option('--slow-request <ms>', 'requests slower than this count as slow in /status (default 5000)')
  // Stopping, stats, log
  .option('--shutdown-delay <ms>', 'on SIGTERM, /readyz answers 503 and the listener keeps accepting this long before draining (default 0)')
  .option('--shutdown-grace <ms>', 'on SIGTERM (or when a process is drained), how long in-flight requests may take (default 30000)')
  .option('--sample-interval <ms>', 'how often the kernel accept queues are read (default 250)')
  .option('--log-level <level>', 'trace|debug|info|warn|error|silent (default info)')
  .option('--log-format <format>', 'json (pino lines) or pretty (default: pretty on a terminal, else json)')
  .argument('[command...]', 'the backend command and its arguments ({socket} is replaced by a socket path the child binds itself)')
  .action(async (command: string[], flags: Record<string, unknown>, cmd: Command) => {
    const readConfig = () => validateRunConfig(runOptions(cmd, flags, command));
    const config = readConfig();
    const log = createLogger(config.logLevel, config.logFormat);
    if (config.admin?.kind === 'tcp' && !isLoopbackName(config.admin.host)) {
      process.stderr.write(`upfront: WARNING: the admin listener ${config.admin.host}:${config.admin.port} is not on loopback: other machines can read /stats, /metrics and /status (POSTs still need the token)\n`);
    }
    // Until the front serves (its processes may take up to start-timeout), node's defaults would
    // end it at a SIGHUP (a `systemctl reload` just after the start) or SIGUSR2, or stop it at a
    // SIGTTIN: each is said and ignored meanwhile. SIGTERM and SIGINT keep ending it at once.
    const whileStarting = (sig: NodeJS.Signals) => log.warn({ signal: sig }, `${sig}: ignored, upfront is still starting; send it again once it serves`);
    const startSignals: NodeJS.Signals[] = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU'];
    for (const sig of startSignals) process.on(sig, whileStarting);
    // A reload re-reads the config file, so a changed command line takes effect.
    const front = await startFront(config, log, { reloadConfig: readConfig });
    for (const sig of startSignals) process.off(sig, whileStarting);
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal: sig }, 'second signal: stopping now');
        process.exit(130);
      }
      log.info({ signal: sig }, `${sig}: graceful stop`);
      front.stop().then(() => log.flush(() => process.exit(0)));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // nginx's graceful quit (nginx -s quit): node's default would end the front at once,
    // every request in flight cut and not a word said.
    process.on('SIGQUIT', onSignal);
    // nginx and gunicorn upgrade their binary on SIGUSR2; upfront has no such thing, and
    // node's default would end the front at once.
    process.on('SIGUSR2', () => log.warn({ signal: 'SIGUSR2' }, 'SIGUSR2: ignored (upfront has no binary upgrade; SIGHUP reloads the processes, SIGTERM stops)'));
    // As gunicorn: SIGTTIN adds a process, SIGTTOU removes one (drained first). Counted
    // from the last count asked, not the one running: three signals before the first
    // change is done are three processes more, not one.
    let asked: number | null = null;
    const step = (delta: number, sig: string) => () => {
      const target = (asked ?? front.supervisor?.procs ?? 0) + delta;
      if (target < 1) return;
      asked = target;
      log.info({ signal: sig, procs: target }, `${sig}: ${target} process${target === 1 ? '' : 'es'} asked for`);
      front.scale(target, sig).catch((err: Error) => log.warn({ signal: sig }, `${sig}: ${err.message}`))
        .finally(() => { if (asked === target) asked = null; });
    };
    process.on('SIGHUP', () => {
      front.reload('SIGHUP').catch((err: Error) => log.warn({ signal: 'SIGHUP' }, `SIGHUP: ${err.message}`));
    });
    // logrotate's convention. A listener also keeps Node from opening its inspector on SIGUSR1.
    process.on('SIGUSR1', () => {
      if (front.accessLog) front.reopenLogs();
      else log.info({ signal: 'SIGUSR1' }, 'SIGUSR1: no access log file to reopen');
    });
    process.on('SIGTTIN', step(1, 'SIGTTIN'));
    process.on('SIGTTOU', step(-1, 'SIGTTOU'));
    // The banner last: whoever reads it may signal at once (SIGTTIN's default would stop the process).
    // curl reaches a unix socket with --unix-socket and any host name in the URL.
    const curl = (address: string, p: string) => (address.startsWith('unix:') ? `curl --unix-socket ${address.slice(5)} http://localhost${p}` : `curl http://${address}${p}`);
    const base = front.address.startsWith('unix:') ? front.address : `${front.server.tls ? 'https' : 'http'}://${front.address}`;
    if (process.stdout.isTTY || config.logLevel !== 'silent') {
      // Nothing serves (a command that exits at once, an upstream down): say why here, not only in the log.
      const pool = front.pool;
      if (!pool.backends.some((b) => b.state === 'ready')) process.stderr.write(`upfront: no backend is ready yet: ${pool.describeUnavailable()}\n`);
      const admin = front.adminAddress;
      const adminFlag = admin && admin.startsWith('unix:') ? ` --admin ${admin}` : admin && admin !== '127.0.0.1:8081' ? ` --admin ${admin}` : '';
      process.stderr.write(`upfront: serving on ${base} (${config.procs} process${config.procs === 1 ? '' : 'es'}${config.upstream.length ? ` + ${config.upstream.length} upstream(s)` : ''}); try:\n`
        + `  ${curl(front.address, '/Hello/100')}\n`
        + (admin ? `  ${curl(admin, '/stats')}\n  upfront top${adminFlag}\n` : '')
        + (admin && !admin.startsWith('unix:') ? `  dashboard: http://${admin}/\n` : '')
        + `Ctrl-C stops it (in-flight requests finish first).\n`);
    }
  });

/** The config file's keys, overridden by the flags given on the command line (by their long names: the keys). */
function runOptions(cmd: Command, flags: Record<string, unknown>, command: string[]): Record<string, unknown> {
  const raw: Record<string, unknown> = flags.config ? loadConfigFile(String(flags.config)) : {};
  for (const option of cmd.options) {
    const name = option.attributeName();
    if (name === 'config' || flags[name] === undefined || cmd.getOptionValueSource(name) !== 'cli') continue;
    raw[option.long!.slice(2)] = flags[name];
  }
  if (command.length) raw.command = command;
  return raw;
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** nginx-conf's socket dir: one that survives the shell the printed lines run in. */
const NGINX_CONF_SOCKET_DIR = path.join(os.tmpdir(), 'upfront-spawn-fcgi');

const tokenFileHelp = 'the admin token file (default: the file the running upfront names in GET /stats)';
const ADMIN_DEFAULT = '127.0.0.1:8081';
/** reload and scale last as long as new processes take to start and old ones to drain. */
const ADMIN_ACTION_TIMEOUT_MS = 15 * 60_000;

program.command('stats')
  .description('print the pools, backends and processes of a running upfront (from its admin listener)')
  .option('--admin <addr>', 'admin listener, HOST:PORT or unix:PATH', ADMIN_DEFAULT)
  .option('--json', 'print the raw JSON of GET /stats')
  .action(async (flags: { admin: string; json?: boolean }) => {
    const stats = await fetchStats(flags.admin);
    process.stdout.write(flags.json ? JSON.stringify(stats, null, 2) + '\n' : formatStats(stats));
  });

program.command('top')
  .description('a live view of a running upfront, refreshed every second: queues, rates, backends (q quits)')
  .option('--admin <addr>', 'admin listener, HOST:PORT or unix:PATH', ADMIN_DEFAULT)
  .action(async (flags: { admin: string }) => {
    const { runTop } = await import('./admin/top.js');
    await runTop(flags.admin, { stdin: process.stdin, stdout: process.stdout });
    process.exit(0);
  });

program.command('scale')
  .description('run N backend processes in a running upfront (new ones start; removed ones drain first); waits for the outcome')
  .argument('<procs>', 'the number of processes (1 to 1024)')
  .option('--admin <addr>', 'admin listener, HOST:PORT or unix:PATH', ADMIN_DEFAULT)
  .option('--admin-token-file <file>', tokenFileHelp)
  .action(async (procs: string, flags: { admin: string; adminTokenFile?: string }) => {
    if (!/^\d+$/.test(procs) || Number(procs) < 1 || Number(procs) > 1024) fail(`procs: expected a whole number from 1 to 1024, got ${JSON.stringify(procs)}`, EXIT_USAGE);
    const token = await findAdminToken(flags.admin, flags.adminTokenFile);
    const result = await postAdmin(flags.admin, '/scale', { procs: Number(procs) }, token, ADMIN_ACTION_TIMEOUT_MS);
    const processes = `process${result.to === 1 ? '' : 'es'}`;
    process.stdout.write(result.from === result.to ? `already ${result.to} ${processes}\n` : `scaled from ${result.from} to ${result.to} ${processes}\n`);
  });

program.command('reload')
  .description('rolling reload of a running upfront: new processes first, old ones drained and stopped; waits for the outcome')
  .option('--admin <addr>', 'admin listener, HOST:PORT or unix:PATH', ADMIN_DEFAULT)
  .option('--admin-token-file <file>', tokenFileHelp)
  .action(async (flags: { admin: string; adminTokenFile?: string }) => {
    const token = await findAdminToken(flags.admin, flags.adminTokenFile);
    const result = await postAdmin(flags.admin, '/reload', {}, token, ADMIN_ACTION_TIMEOUT_MS);
    const n = Number(result.replaced);
    process.stdout.write(`reloaded: ${n} process${n === 1 ? '' : 'es'} replaced\n`);
  });

const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);

program.command('bench')
  .description('the process-count experiment: sweep procs × switches × overflow modes, upfront against the fronts people run (nginx, h2o, HAProxy, lighttpd, Caddy): over FastCGI with spawn-fcgi, or as HTTP reverse proxies to one unix socket per process')
  .usage('[options] -- COMMAND [ARGS...]')
  .option('--procs <list>', 'process counts to sweep', '1,2,4')
  .option('--switches <list>', 'multithreaded/multiplexed pairs to sweep, e.g. auto,false/false; auto: what the backend answers (and upfront learns)', 'auto')
  .option('--protocol <p>', 'fastcgi: the peers over spawn-fcgi; http: every front proxies HTTP to N processes, each binding the unix socket in UPFRONT_SOCKET (or {socket})', 'fastcgi')
  .option('--overflow <list>', 'upfront overflow modes to sweep (default queue,nginx; with --protocol http: queue)')
  .option('--front <list>', 'fronts to compare: upfront, nginx, h2o, haproxy, lighttpd, caddy, or all', 'all')
  .option('--path <path>', 'the URL path to load', '/Hello/100')
  .option('--concurrency <n>', 'concurrent connections', '200')
  .option('--duration <time>', 'measured time per cell', '20s')
  .option('--warmup <time>', 'warmup per cell', '3s')
  .option('--repeat <n>', 'runs per cell (medians, with min–max)', '3')
  .option('--load <tool>', 'autocannon (built in), wrk or siege', 'autocannon')
  .option('--backlog <n>', 'FastCGI: listen backlog of every front\'s backend sockets (spawn-fcgi -b, upfront --backlog) (default 1024); an HTTP app sets its own')
  .option('--out <dir>', 'where results.json, report.html and each front\'s config go', 'bench-out')
  .argument('<command...>', 'the backend command (FastCGI: an app serving on fd 0; HTTP: an app binding UPFRONT_SOCKET or {socket})')
  .action(async (command: string[], f: Record<string, string>) => {
    const { runBench, stopEverything, which, availableFronts } = await import('./bench/sweep.js');
    const { renderReportHtml, renderTerminalTable } = await import('./bench/report.js');
    const { ALL_FRONTS } = await import('./bench/results.js');
    const { LOAD_TOOLS } = await import('./bench/load.js');
    type FrontName = (typeof ALL_FRONTS)[number];
    const int = (name: string, v: string, min: number) => {
      if (!/^\d+$/.test(v) || Number(v) < min) fail(`${name}: expected a whole number ≥ ${min}, got ${JSON.stringify(v)}`, EXIT_USAGE);
      return Number(v);
    };
    const seconds = (name: string, v: string) => {
      const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(v.trim());
      if (!m) fail(`${name}: expected a duration such as 20s or 500ms, got ${JSON.stringify(v)}`, EXIT_USAGE);
      return m![2] === 'ms' ? Number(m![1]) / 1000 : Number(m![1]);
    };
    const procs = list(f.procs).map((p) => int('procs', p, 1));
    if (f.protocol !== 'fastcgi' && f.protocol !== 'http') fail(`protocol: ${JSON.stringify(f.protocol)} is not one of fastcgi, http`, EXIT_USAGE);
    const protocol = f.protocol as 'fastcgi' | 'http';
    // The app binds its own socket: neither the bench nor any front can set its backlog.
    if (protocol === 'http' && f.backlog !== undefined) fail('backlog: with --protocol http each app binds its own socket with its own backlog (Tornado: 128); --backlog is for FastCGI backends', EXIT_USAGE);
    // auto (what the backend answers, and what upfront learns) may sit beside pairs: the default next to hand-set switches in one run.
    const switches = list(f.switches).map((pair) => {
      if (pair === 'auto') return null;
      const m = /^(true|false)\/(true|false)$/.exec(pair);
      if (!m) fail(`switches: expected auto or multithreaded/multiplexed pairs such as false/false,true/true, got ${JSON.stringify(pair)}`, EXIT_USAGE);
      if (protocol === 'http' && m![2] === 'true') fail(`switches: multiplexed is FastCGI's (FCGI_MPXS_CONNS); with --protocol http use false/false or true/false, got ${JSON.stringify(pair)}`, EXIT_USAGE);
      return { multithreaded: m![1] === 'true', multiplexed: m![2] === 'true' };
    });
    const overflow = list(f.overflow ?? (protocol === 'http' ? 'queue' : 'queue,nginx'));
    for (const o of overflow) if (!['queue', 'shed', 'nginx', 'retry'].includes(o)) fail(`overflow: ${JSON.stringify(o)} is not one of queue, shed, nginx, retry`, EXIT_USAGE);
    for (const o of overflow) if (protocol === 'http' && (o === 'nginx' || o === 'retry')) fail(`overflow: ${o} reproduces nginx's FastCGI behaviour; with --protocol http use queue or shed`, EXIT_USAGE);
    const asked = list(f.front).flatMap((fr) => (fr === 'all' ? [...ALL_FRONTS] : [fr]));
    for (const fr of asked) if (!(ALL_FRONTS as readonly string[]).includes(fr)) fail(`front: ${JSON.stringify(fr)} is not one of ${ALL_FRONTS.join(', ')}, all`, EXIT_USAGE);
    const fronts = [...new Set(asked)] as FrontName[];
    if (!(LOAD_TOOLS as readonly string[]).includes(f.load)) fail(`load: ${JSON.stringify(f.load)}: use ${LOAD_TOOLS.join(', ')}`, EXIT_USAGE);
    if (f.load !== 'autocannon' && !which(f.load)) {
      process.stderr.write(`upfront: ${f.load} is not installed (apt-get install ${f.load}); using the built-in autocannon instead\n`);
      f.load = 'autocannon';
    }
    // A front that cannot run here: one line, and the rest still runs.
    for (const sk of availableFronts(fronts, protocol, procs).skipped) process.stderr.write(`upfront: ${sk.front} is skipped: ${sk.reason}\n`);
    const outDir = f.out;
    fs.mkdirSync(outDir, { recursive: true });
    const tty = process.stderr.isTTY;
    const onInterrupt = () => { stopEverything(); process.stderr.write('\nupfront bench: interrupted; every server it started is stopped\n'); process.exit(130); };
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onInterrupt);
    const configs: string[] = [];
    const results = await runBench({
      command, protocol, procs, switches, overflow, fronts,
      path: f.path, concurrency: int('concurrency', f.concurrency, 1), durationSec: seconds('duration', f.duration), warmupSec: seconds('warmup', f.warmup),
      repeat: int('repeat', f.repeat, 1), load: f.load as 'autocannon' | 'wrk' | 'siege', backlog: int('backlog', f.backlog ?? '1024', 1),
      commandLine: ['upfront', ...process.argv.slice(2)].join(' '),
      configDir: outDir,
      onConfig: (file) => configs.push(file),
      progress: (text, done) => {
        if (tty) process.stderr.write(`\r\x1b[K${text}${done ? '\n' : ''}`);
        else if (done) process.stderr.write(`${text}\n`);
      },
    });
    fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    fs.writeFileSync(path.join(outDir, 'report.html'), renderReportHtml(results));
    process.stdout.write(renderTerminalTable(results) + '\n');
    if (results.recommendation) process.stdout.write(`recommendation: ${results.recommendation.why}\n`);
    process.stdout.write(`results: ${[path.join(outDir, 'results.json'), path.join(outDir, 'report.html'), ...configs].join(', ')}\n`);
    // No cell gave a figure: say why (each cell's cause is in the table above) and fail.
    if (!results.cells.some((c) => c.error === null && c.median !== null)) {
      const causes = [...new Set(results.cells.map((c) => c.error).filter(Boolean))];
      fail(`no cell succeeded: ${causes.join(' | ') || 'no front could run'}`);
    }
  });

program.command('nginx-conf')
  .description('print the nginx config and spawn-fcgi command lines equivalent to an `upfront run` (FastCGI)')
  .usage('[-c FILE] [options] -- COMMAND [ARGS...]')
  .option('-c, --config <file>', 'an upfront run config file (its listen, procs, socket, backlog, socket-dir, document-root, cwd, command)')
  .option('--listen <addr>', 'HOST:PORT or PORT (default 127.0.0.1:8080)')
  .option('-n, --procs <n>', 'backend processes (default 1)')
  .option('--socket <mode>', 'per-process (a spawn-fcgi per process, one upstream server each) or shared (spawn-fcgi -F N) (default per-process)')
  .option('--backlog <n>', 'listen backlog of the backend sockets (default 1024)')
  .option('--socket-dir <dir>', `where the backend sockets go; the printed lines create it (default ${NGINX_CONF_SOCKET_DIR})`)
  .option('--document-root <dir>', 'root (default: the current directory)')
  .option('--cwd <dir>', 'the directory COMMAND runs in (spawn-fcgi -d)')
  .argument('[command...]', 'the backend command (a FastCGI app serving on fd 0)')
  .action(async (command: string[], flags: Record<string, unknown>, cmd: Command) => {
    const raw = runOptions(cmd, flags, command);
    for (const key of Object.keys(raw)) if (!['listen', 'procs', 'socket', 'backlog', 'socket-dir', 'document-root', 'cwd', 'command', 'multithreaded', 'multiplexed'].includes(key)) delete raw[key];
    raw['socket-dir'] ??= NGINX_CONF_SOCKET_DIR;
    const config = validateRunConfig({ ...raw, admin: 'off' });
    if (config.listen.kind !== 'tcp') fail('listen: nginx-conf needs HOST:PORT', EXIT_USAGE);
    if (config.procs < 1) fail('procs: nginx-conf needs a COMMAND and at least 1 process', EXIT_USAGE);
    const { resolveCommand } = await import('./config/command.js');
    const { nginxConf } = await import('./bench/nginxConf.js');
    const cwd = config.cwd ?? process.cwd();
    // spawn-fcgi execs the app without a PATH search (its full path), in -d DIR (relative arguments work).
    const app = [resolveCommand(config.command[0], cwd), ...config.command.slice(1)];
    const dir = config.socketDir;
    const perSocket = config.socket === 'shared' ? config.procs : 1;
    const sockets = config.socket === 'shared' ? [path.join(dir, 'shared.sock')] : Array.from({ length: config.procs }, (_, i) => path.join(dir, `b${i}.sock`));
    const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
    const spawnFcgi = sockets.map((sock) => ['spawn-fcgi', '-s', sock, '-b', String(config.backlog), '-F', String(perSocket), '-d', cwd, '--', ...app].map(quote).join(' '));
    const setup = { listenHost: config.listen.host, listenPort: config.listen.port, sockets, procsPerSocket: perSocket,
      backlog: config.backlog, command: app, documentRoot: config.documentRoot, prefixRelative: true };
    process.stdout.write(`# Save as DIR/nginx.conf; run: nginx -p DIR/ -c nginx.conf (pid, logs and temp files stay in DIR).\n`
      + `# Backends first (spawn-fcgi):\n#   mkdir -p ${quote(dir)}\n${spawnFcgi.map((c) => `#   ${c}`).join('\n')}\n`
      + `# The workers must reach the sockets spawn-fcgi made as this user (ignored unless nginx starts as root):\n`
      + `user ${os.userInfo().username};\n`
      + nginxConf(setup));
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
      process.exit(EXIT_USAGE);
    }
    if (err instanceof ConfigError) fail(err.message, EXIT_USAGE);
    if (err instanceof AdminRequestError) fail(err.message, err.badInput ? EXIT_USAGE : 1);
    fail((err as Error).message);
  }
}

void main();
