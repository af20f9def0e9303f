// The composition root of `upfront run`: the pool, the sources of its backends
// (the supervisor's spawned processes, static upstreams), the public listener with
// what runs before the app (TLS, files, compression, access log, health), the admin
// listener, the figures, and the orderly stop. Wiring only: each part decides its own things.
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import { AdminServer } from './admin/adminServer.js';
import { ConfigError, parseAddress, type RunConfig } from './config/schema.js';
import { CgiParamsEncoder } from './fastcgi/cgiParams.js';
import { FcgiTransport } from './fastcgi/transport.js';
import { HttpTransport } from './http/transport.js';
import { Backend, type BackendSwitches, type ConnectionUse } from './pool/backend.js';
import type { BackendFactory, BackendSource } from './pool/backendSource.js';
import { createPolicy } from './pool/policies/index.js';
import { Pool } from './pool/pool.js';
import type { SwitchSettings } from './pool/switches.js';
import { HealthChecker } from './pool/healthChecks.js';
import { AccessLog } from './server/accessLog.js';
import { FrontServer } from './server/frontServer.js';
import { FrontHealth } from './server/health.js';
import { RedirectListener } from './server/redirectListener.js';
import { BufferCounters } from './server/responseBuffer.js';
import { InternalLocations } from './server/static/internalLocations.js';
import { StaticFiles } from './server/static/staticFiles.js';
import { AcceptQueueSampler, somaxconn } from './stats/acceptQueueSampler.js';
import { FrontResponses } from './stats/frontResponses.js';
import { StatsHistory } from './stats/history.js';
import { InService } from './stats/inService.js';
import { ProcessSampler } from './stats/processSampler.js';
import { RefusalWarnings } from './stats/refusalWarnings.js';
import type { StatsSources } from './stats/snapshot.js';
import { Autoscaler } from './supervisor/autoscaler.js';
import { removeStaleSocketDirs } from './supervisor/staleSocketDirs.js';
import { niceForProcesses, putProcessAtNice, SessionNice } from './supervisor/frontNice.js';
import { putProcessUnder } from './supervisor/schedPolicy.js';
import { StaticUpstreams } from './supervisor/staticUpstreams.js';
import { makeSocketDir } from './supervisor/sockets.js';
import { Supervisor } from './supervisor/supervisor.js';
import { ProcessGroupWatchdog } from './supervisor/watchdog.js';
import type { BackendAddress } from './transport.js';

export const SERVER_SOFTWARE = 'upfront/0.1';
/** Tries of the session's nice write refused with EAGAIN (the kernel's 100 ms window), and the wait between them. */
const SESSION_NICE_ATTEMPTS = 10;
const SESSION_NICE_RETRY_MS = 150;

export interface FrontHooks {
  /** Re-reads the config (file + flags) for a reload; the new command line applies to the new processes. */
  reloadConfig?(): RunConfig;
}

export interface ReloadOutcome {
  replaced: number;
  failed: number;
  /** Why each failed replacement did not start. */
  errors: string[];
}

export class Front {
  readonly pool: Pool;
  readonly server: FrontServer;
  readonly stats: StatsSources;
  /** The spawned processes (none with --upstream alone). */
  readonly supervisor: Supervisor | null;
  readonly upstreams: StaticUpstreams | null;
  /** /healthz and /readyz (admin listener, and the public one with --health-on-public). */
  readonly health: FrontHealth;
  readonly accessLog: AccessLog | null;
  address = '';
  adminAddress: string | null = null;
  private readonly sources: BackendSource[] = [];
  private readonly sampler: AcceptQueueSampler;
  private readonly history: StatsHistory;
  private admin: AdminServer | null = null;
  private autoscaler: Autoscaler | null = null;
  private redirect: RedirectListener | null = null;
  private healthChecker: HealthChecker | null = null;
  private readonly watchdog: ProcessGroupWatchdog;
  private readonly usesSocketDir: boolean;
  private stopping: Promise<void> | null = null;
  /** Puts the front's threads back under the policy they had before start() (a front inside another program: the tests). */
  private restoreSched: () => void = () => {};
  /** Puts the front's threads back at the nice they had before start(). */
  private restoreThreadsNice: () => void = () => {};
  private readonly sessionNice = new SessionNice();
  /** A pending retry of the session's nice write (EAGAIN). */
  private sessionNiceRetry: NodeJS.Timeout | null = null;
  /** The nice the front is at (or asked for and was refused). */
  private nice: number | null = null;

  constructor(private readonly config: RunConfig, private readonly logger: Logger, private readonly hooks: FrontHooks = {}) {
    const c = config;
    this.pool = new Pool({
      name: 'app',
      policy: createPolicy(c.policy),
      overflow: c.overflow,
      queueSize: c.queueSize,
      queueTimeoutMs: c.queueTimeout,
      noBackendWaitMs: c.connectTimeout,
    });
    const switches: SwitchSettings = { multithreaded: c.multithreaded, multiplexed: c.multiplexed, maxRequestsPerBackend: c.maxRequestsPerBackend };
    const makeBackend = backendFactory(c, logger);
    this.supervisor = c.procs > 0 ? new Supervisor({
      command: c.command[0],
      args: c.command.slice(1),
      procs: c.procs,
      socketMode: c.socket,
      backlog: c.backlog,
      socketDir: c.socketDir,
      cwd: c.cwd ?? process.cwd(),
      env: c.env,
      switches,
      makeBackend,
      startTimeoutMs: c.startTimeout,
      getValuesTimeoutMs: c.getValuesTimeout,
      killTimeoutMs: c.killTimeout,
      restartBackoffMs: c.restartBackoff,
      restartBackoffMaxMs: c.restartBackoffMax,
      maxRequests: c.maxRequests,
      maxRequestsJitter: c.maxRequestsJitter,
      downAfterFailures: c.downAfterFailures,
      drainTimeoutMs: c.shutdownGrace,
      protocol: c.protocol,
      maxRssMb: c.maxRss,
      socketFd: c.socketFd,
      schedPolicy: c.schedPolicy,
      cpuAffinity: c.cpuAffinity,
      user: c.user,
      group: c.group,
    }, this.pool, logger) : null;
    this.upstreams = c.upstream.length > 0 ? new StaticUpstreams({
      addresses: c.upstream.map(toBackendAddress),
      makeBackend,
      switches,
      protocol: c.protocol,
      getValuesTimeoutMs: c.getValuesTimeout,
      startTimeoutMs: c.startTimeout,
    }, this.pool, logger) : null;
    if (this.upstreams) this.sources.push(this.upstreams);
    if (this.supervisor) this.sources.push(this.supervisor);
    const supervisor = this.supervisor;
    const startedAt = Date.now();
    const frontResponses = new FrontResponses();
    const inService = new InService();
    this.health = new FrontHealth([this.pool], startedAt);
    const { files, internal, accessLog } = edgeParts(c, logger);
    this.accessLog = accessLog;
    try {
      this.server = new FrontServer({
        listen: c.listen,
        tls: c.tlsCert !== undefined ? { certFile: c.tlsCert, keyFile: c.tlsKey! } : null,
        edge: {
          health: c.healthOnPublic ? this.health : null,
          files: c.static.length > 0 || c.tryFiles ? files : null,
          compress: c.compress ? { minSize: c.compressMinSize } : null,
          accessLog,
        },
        limits: {
          maxBodyBytes: c.maxBodySize,
          headersTimeoutMs: c.clientHeaderTimeout,
          bodyTimeoutMs: c.clientBodyTimeout,
          keepAliveTimeoutMs: c.keepaliveTimeout,
          sendTimeoutMs: c.sendTimeout,
        },
        needsBodyLength: c.protocol === 'fastcgi',
        spoolMemoryBytes: 1024 * 1024,
        proxy: {
          pool: this.pool, log: logger, retries: c.retries, queueRetryAfterSec: Math.max(1, Math.ceil(c.queueTimeout / 1000)),
          serverTiming: c.serverTiming, slowRequestMs: c.slowRequest,
          onStuck: c.killStuck && supervisor ? (backendId: string) => supervisor.killStuck(backendId) : undefined,
          responseBuffering: c.responseBuffering
            ? { memoryBytes: c.responseBufferMemory, fileBytes: c.responseBufferMax, counters: new BufferCounters() } : null,
          internal,
          frontResponses, inService,
        },
        requestBuffering: c.requestBuffering,
      }, logger);
    } catch (err) {
      // The TLS certificate or key did not load: a config problem, said with the file's name.
      accessLog?.close();
      throw new ConfigError((err as Error).message);
    }
    this.sampler = new AcceptQueueSampler([this.pool], c.sampleInterval, logger);
    this.history = new StatsHistory({ pools: [this.pool], acceptedConn: () => this.server.acceptedConn, frontResponses, sampler: this.sampler });
    const processes = new ProcessSampler();
    const refusals = new RefusalWarnings(frontResponses, this.pool, logger, startedAt);
    this.history.onTick(() => {
      const pids = [process.pid];
      for (const child of supervisor?.children() ?? []) if (child.pid !== undefined) pids.push(child.pid);
      for (const b of this.pool.backends) if (b.pid !== undefined) pids.push(b.pid);
      processes.sample(pids);
      refusals.check();
    });
    this.stats = {
      pools: [this.pool],
      startedAt,
      acceptedConn: () => this.server.acceptedConn,
      children: () => supervisor?.children() ?? [],
      supervisorCounters: () => supervisor?.counters ?? null,
      sampler: this.sampler,
      frontResponses,
      inService,
      history: this.history,
      processes,
      processManager: c.maxProcs > c.procs ? 'dynamic' : 'static',
    };
    this.watchdog = ProcessGroupWatchdog.get(logger);
    // If upfront is killed, the watchdog removes the socket dir (sockets, admin token).
    this.usesSocketDir = c.procs > 0 || c.admin?.kind === 'tcp';
  }

  /** Listens, starts the admin listener and the backends; on failure, undoes what it did. */
  async start(): Promise<this> {
    const c = this.config;
    const maxBacklog = somaxconn();
    if (c.procs > 0 && maxBacklog !== null && c.backlog > maxBacklog) {
      this.logger.warn({ backlog: c.backlog, somaxconn: maxBacklog },
        `backlog ${c.backlog} exceeds net.core.somaxconn (${maxBacklog}): the kernel caps it at ${maxBacklog}; raise it with sysctl -w net.core.somaxconn=${c.backlog}`);
    }
    removeStaleSocketDirs(os.tmpdir(), this.logger, c.socketDir);
    if (this.usesSocketDir) makeSocketDir(c.socketDir, c.procs > 0);
    if (this.usesSocketDir) this.watchdog.watchDir(c.socketDir);
    const sched = putProcessUnder(c.frontSchedPolicy);
    if (sched.error) {
      this.logger.warn({ errno: sched.error.code, sched: c.frontSchedPolicy },
        `could not put the front under the CPU scheduling policy ${c.frontSchedPolicy} (${sched.error.message}): it runs under its own; --front-sched-policy other stops trying`);
    }
    this.putAtNice(this.processesFed(c.procs));
    this.restoreSched = () => { this.restoreNice(); sched.restore(); };
    try {
      // Listen first: a port in use should fail before any child is spawned.
      this.address = await this.server.listen();
      if (c.redirectHttp) {
        const tlsPort = Number(/:(\d+)$/.exec(this.address)?.[1] ?? 443);
        this.redirect = new RedirectListener(c.redirectHttp, () => tlsPort, { headersTimeoutMs: c.clientHeaderTimeout, keepAliveTimeoutMs: c.keepaliveTimeout }, this.logger);
        const at = await this.redirect.listen();
        this.logger.info({ redirectHttp: at }, `redirecting http://${at} to https on port ${tlsPort}`);
      }
      if (c.admin) {
        this.admin = new AdminServer({ listen: c.admin, tokenDir: c.socketDir, tokenFile: c.adminTokenFile, health: this.health }, this.stats,
          { scale: (n) => this.scale(n, 'admin POST /scale'), reload: () => this.reload('admin POST /reload') }, this.logger);
        this.adminAddress = await this.admin.listen();
        this.logger.info({ admin: this.adminAddress }, `admin on ${this.adminAddress}: the dashboard at /, and /stats, /metrics, /status`);
      }
      for (const source of this.sources) {
        await source.start();
        if (source === this.upstreams) this.startHealthChecks(this.upstreams.backends);
      }
      if (this.supervisor && c.maxProcs > c.procs) {
        this.autoscaler = new Autoscaler(this.supervisor, this.pool, { min: c.procs, max: c.maxProcs, scaleUpAfterMs: c.scaleUpAfter, scaleDownAfterMs: c.scaleDownAfter, drainTimeoutMs: c.shutdownGrace }, this.logger);
        this.autoscaler.start();
      }
    } catch (err) {
      this.healthChecker?.stop();
      for (const source of this.sources) await source.stop().catch(() => {});
      this.admin?.close();
      this.redirect?.close();
      this.server.destroyAll();
      this.accessLog?.close();
      this.releaseSocketDir();
      this.restoreSched();
      throw err;
    }
    this.sampler.start();
    this.history.start();
    this.logger.info({ listen: this.address, procs: c.procs, socket: c.socket, upstreams: c.upstream }, `upfront listening on ${this.address}`);
    return this;
  }

  /** Active health checks of the upstreams (--health-check-interval); spawned processes have the supervisor. */
  private startHealthChecks(backends: readonly Backend[]): void {
    const c = this.config;
    if (c.healthCheckInterval <= 0 || backends.length === 0) return;
    this.healthChecker = new HealthChecker(this.pool, [...backends], {
      intervalMs: c.healthCheckInterval, timeoutMs: c.healthCheckTimeout, rise: c.healthCheckRise, fall: c.healthCheckFall,
      protocol: c.protocol, path: c.healthCheckPath ?? null,
    }, this.logger);
    this.healthChecker.start();
  }

  /** SIGUSR1: the access log file is reopened (logrotate). */
  reopenLogs(): void {
    this.accessLog?.reopen();
  }

  /** Runs `procs` backend processes (scale up, or drain and stop some); resolves once done. */
  async scale(procs: number, reason: string): Promise<{ from: number; to: number }> {
    if (!this.supervisor) throw new Error('no spawned backends to scale (this upfront only has --upstream backends)');
    if (!Number.isInteger(procs) || procs < 1 || procs > 1024) throw new Error(`procs: expected a whole number from 1 to 1024, got ${JSON.stringify(procs)}`);
    const outcome = await this.supervisor.scale(procs, reason);
    this.putAtNice(this.processesFed(outcome.to));
    return outcome;
  }

  /** The processes the front feeds with `procs` spawned: at most max-procs under the autoscaler, and the upstreams. */
  private processesFed(procs: number): number {
    const c = this.config;
    return (c.maxProcs > c.procs ? Math.max(procs, c.maxProcs) : procs) + c.upstream.length;
  }

  /**
   * The front's threads and, where it leads its session, the session at --front-nice, or
   * without it at the weight of the `fed` processes (supervisor/frontNice.ts says why).
   */
  private putAtNice(fed: number): void {
    const c = this.config;
    const wanted = c.frontNice ?? niceForProcesses(fed);
    if (wanted === this.nice) return;
    this.nice = wanted;
    this.stopSessionNiceRetry();
    this.restoreThreadsNice();
    const threads = putProcessAtNice(wanted);
    this.restoreThreadsNice = threads.restore;
    if (threads.error) {
      // The same privilege: where the threads' nice was refused, the session's is too.
      this.sayNiceRefused(threads.error, `could not set the front's nice to ${wanted} (${threads.error.message}): it keeps its own`);
      return;
    }
    this.putSessionAtNice(wanted, fed, 1);
  }

  /**
   * The session's nice. EAGAIN is the kernel's 100 ms window for processes without CAP_SYS_ADMIN,
   * shared by all of them: another write came first, and a later try usually finds it open.
   */
  private putSessionAtNice(wanted: number, fed: number, attempt: number): void {
    this.sessionNiceRetry = null;
    const error = this.sessionNice.put(wanted);
    if (error === null) {
      this.logger.debug({ nice: wanted, processes: fed, attempt }, `the front runs at nice ${wanted}`);
      return;
    }
    if (error.code === 'EAGAIN' && attempt < SESSION_NICE_ATTEMPTS) {
      this.logger.debug({ errno: error.code, nice: wanted, attempt }, `the session's nice write was refused (EAGAIN: the kernel's 100 ms window), trying again in ${SESSION_NICE_RETRY_MS} ms`);
      this.sessionNiceRetry = setTimeout(() => this.putSessionAtNice(wanted, fed, attempt + 1), SESSION_NICE_RETRY_MS).unref();
      return;
    }
    // Only the session's write refused: the threads did move, but under autogroup their nice counts only within the session.
    const tried = attempt > 1 ? ` (${attempt} tries over ${((attempt - 1) * SESSION_NICE_RETRY_MS / 1000).toFixed(1)} s)` : '';
    this.sayNiceRefused(error, `the front's threads run at nice ${wanted}, but its session's nice could not be set${tried} (${error.message}): against other sessions it keeps its own`);
  }

  private sayNiceRefused(error: NodeJS.ErrnoException, outcome: string): void {
    const wanted = this.nice!;
    // The default asks for what an unprivileged user may not have: said, not warned.
    const level = this.config.frontNice === undefined ? 'info' : 'warn';
    const remedy = error.code === 'EAGAIN' ? 'the kernel takes one session nice write every 100 ms from processes without CAP_SYS_ADMIN, and another came first each time'
      : `CAP_SYS_NICE or a matching RLIMIT_NICE (systemd LimitNICE=${wanted}) allows it`;
    this.logger[level]({ errno: error.code, nice: wanted }, `${outcome}; ${remedy}, --front-nice 0 stops trying`);
  }

  private stopSessionNiceRetry(): void {
    if (this.sessionNiceRetry !== null) clearTimeout(this.sessionNiceRetry);
    this.sessionNiceRetry = null;
  }

  private restoreNice(): void {
    this.stopSessionNiceRetry();
    this.sessionNice.restore();
    this.restoreThreadsNice();
    this.restoreThreadsNice = () => {};
    this.nice = null;
  }

  /** The TLS certificate re-read, then a rolling reload of the spawned processes, with the command line of a re-read config. */
  async reload(reason: string): Promise<ReloadOutcome> {
    const supervisor = this.supervisor;
    if (this.server.tls !== null) {
      // The certificate first: a file that does not load refuses the reload, and the one in use stays.
      try {
        this.server.reloadCertificate();
      } catch (err) {
        this.logger.error({ reason }, `reload refused: ${(err as Error).message}; the certificate in use stays`);
        throw err;
      }
      if (!supervisor) return { replaced: 0, failed: 0, errors: [] };
    }
    if (!supervisor) throw new Error('no spawned backends to reload (this upfront only has --upstream backends)');
    if (this.hooks.reloadConfig) {
      try {
        const fresh = this.hooks.reloadConfig();
        if (fresh.command.join(' ') !== this.config.command.join(' ')) this.logger.info({ command: fresh.command }, `reload: new command line ${fresh.command.join(' ')}`);
        supervisor.setCommand(fresh.command[0], fresh.command.slice(1), fresh.env, fresh.cwd ?? process.cwd());
        this.config.command = fresh.command;
      } catch (err) {
        this.logger.error({ reason }, `reload refused: ${(err as Error).message}; the running processes stay`);
        throw err;
      }
    }
    return supervisor.reload(reason);
  }

  /** Stops accepting, finishes in-flight requests (bounded by shutdown-grace), stops the backends. */
  stop(): Promise<void> {
    this.stopping ??= this.stopInOrder();
    return this.stopping;
  }

  private async stopInOrder(): Promise<void> {
    const { server, pool, logger: log } = this;
    const grace = this.config.shutdownGrace;
    // /readyz says 503 from now on; with --shutdown-delay the listener stays open meanwhile,
    // so balancers that poll it take this host out before connections are refused.
    this.health.beginStop();
    const delay = this.config.shutdownDelay;
    if (delay > 0) {
      log.info({ delayMs: delay, inflight: server.active }, `stopping: /readyz answers 503; still accepting for ${delay} ms (shutdown-delay)`);
      await new Promise((r) => setTimeout(r, delay).unref());
    }
    log.info({ inflight: server.active, queued: pool.queue.length }, 'stopping: no new connections; finishing in-flight requests');
    server.stopAccepting();
    this.redirect?.close();
    this.healthChecker?.stop();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace'>((r) => { timer = setTimeout(() => r('grace'), grace); });
    const result = await Promise.race([server.whenIdle().then(() => 'idle' as const), graceOver]);
    clearTimeout(timer);
    if (result === 'grace') {
      log.warn({ inflight: server.active, queued: pool.queue.length }, `shutdown grace (${grace} ms) is over: cutting the requests still in flight`);
      pool.rejectQueued();
    }
    pool.close();
    this.autoscaler?.stop();
    for (const source of this.sources) await source.stop();
    for (const b of pool.backends) b.transport.close(true);
    server.destroyAll();
    this.admin?.close();
    this.accessLog?.close();
    this.releaseSocketDir();
    this.sampler.stop();
    this.history.stop();
    this.restoreSched();
    log.info('stopped');
  }

  private releaseSocketDir(): void {
    if (!this.usesSocketDir) return;
    try { fs.rmdirSync(this.config.socketDir); } catch { /* not empty, or gone */ }
    this.watchdog.unwatchDir(this.config.socketDir);
  }
}

/** Starts a front: the CLI's `upfront run` and the tests. */
export async function startFront(config: RunConfig, log: Logger, hooks: FrontHooks = {}): Promise<Front> {
  return new Front(config, log, hooks).start();
}

function toBackendAddress(upstream: string): BackendAddress {
  const a = parseAddress(upstream);
  if (typeof a === 'string') throw new Error(`upstream ${upstream}: ${a}`); // validated already
  return a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
}

/** Backends with the transport of the configured protocol; what each learns at run time is logged once per change. */
function backendFactory(c: RunConfig, log: Logger): BackendFactory {
  // nginx and retry: as nginx by default, a new connection per request without FCGI_KEEP_CONN
  // (a single-threaded app serving a kept connection to its end would starve the rest).
  const perRequestConnections = c.overflow === 'nginx' || c.overflow === 'retry';
  const use: ConnectionUse = {
    keepConn: perRequestConnections ? false : c.keepConn,
    pipelineDepth: perRequestConnections || !c.keepConn ? 1 : c.pipelineDepth,
  };
  const encoder = c.protocol === 'fastcgi' ? new CgiParamsEncoder({
    documentRoot: c.documentRoot,
    serverSoftware: SERVER_SOFTWARE,
    passUnderscoreHeaders: c.passUnderscoreHeaders,
    passProxyHeader: c.passProxyHeader,
    extra: [],
    scriptExtensions: c.scriptExt,
  }) : null;
  const unknown: BackendSwitches = { multithreaded: false, multiplexed: false, slots: 1, source: 'not yet asked', answersGetValues: false };
  return (id, address, index) => {
    const backend = new Backend(id, address, unknown, use, index, (caps, events) => encoder
      ? new FcgiTransport({
        address, readTimeoutMs: c.readTimeout, connectTimeoutMs: c.connectTimeout, maxHeadBytes: c.maxHeadBytes,
        retryEagain: c.overflow === 'retry', perRequestConnections, encoder,
      }, caps, events)
      : new HttpTransport({ address, readTimeoutMs: c.readTimeout, connectTimeoutMs: c.connectTimeout, forwarded: c.forwarded, maxHeadBytes: c.maxHeadBytes }, caps, events));
    backend.log = log;
    backend.caps.onChange = (what, why) => log.warn({ backend: id, pid: backend.pid, change: what, evidence: why }, `backend ${id}: ${what} (${why})`);
    return backend;
  };
}

/** Static files, internal locations and the access log, checked at start: a missing directory or an unwritable log is a config error. */
function edgeParts(c: RunConfig, log: Logger): { files: StaticFiles | null; internal: InternalLocations | null; accessLog: AccessLog | null } {
  let files: StaticFiles | null = null;
  let internal: InternalLocations | null = null;
  try {
    if (c.static.length > 0 || c.tryFiles || c.internalLocation.length > 0) {
      files = new StaticFiles({ mounts: c.static, tryFilesRoot: c.tryFiles ? c.documentRoot : null, scriptExtensions: c.scriptExt }, log);
    }
    if (files !== null && c.internalLocation.length > 0) internal = new InternalLocations(c.internalLocation, files, log);
    const accessLog = c.accessLog === 'off' ? null : new AccessLog(c.accessLog, c.accessLogFormat, log);
    return { files, internal, accessLog };
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
