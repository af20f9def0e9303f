// The composition root of `upfront run`: the pool, the sources of its backends
// (the supervisor's spawned processes, static upstreams), the public and admin
// listeners, and the orderly stop. Wiring only: each part decides its own things.
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import { AdminServer } from './admin/adminServer.js';
import { parseAddress, type RunConfig } from './config/schema.js';
import { CgiParamsEncoder } from './fastcgi/cgiParams.js';
import { FcgiTransport } from './fastcgi/transport.js';
import { HttpTransport } from './http/transport.js';
import { Backend, type BackendSwitches, type ConnectionUse } from './pool/backend.js';
import type { BackendFactory, BackendSource } from './pool/backendSource.js';
import { createPolicy } from './pool/policies/index.js';
import { Pool } from './pool/pool.js';
import type { SwitchSettings } from './pool/switches.js';
import { FrontServer } from './server/frontServer.js';
import { addressOf } from './listen.js';
import { AcceptQueueSampler, somaxconn } from './stats/acceptQueueSampler.js';
import type { StatsSources } from './stats/snapshot.js';
import { Autoscaler } from './supervisor/autoscaler.js';
import { removeStaleSocketDirs } from './supervisor/staleSocketDirs.js';
import { StaticUpstreams } from './supervisor/staticUpstreams.js';
import { Supervisor } from './supervisor/supervisor.js';
import { ProcessGroupWatchdog } from './supervisor/watchdog.js';
import type { BackendAddress } from './transport.js';

export const SERVER_SOFTWARE = 'upfront/0.1';

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
  address = '';
  adminAddress: string | null = null;
  private readonly sources: BackendSource[] = [];
  private readonly sampler: AcceptQueueSampler;
  private admin: AdminServer | null = null;
  private autoscaler: Autoscaler | null = null;
  private readonly watchdog: ProcessGroupWatchdog;
  private readonly usesSocketDir: boolean;
  private stopping: Promise<void> | null = null;

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
    this.server = new FrontServer({
      listen: c.listen,
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
      },
    }, logger);
    this.sampler = new AcceptQueueSampler([this.pool], c.sampleInterval, logger);
    this.stats = {
      pools: [this.pool],
      startedAt: Date.now(),
      acceptedConn: () => this.server.acceptedConn,
      children: () => supervisor?.children() ?? [],
      supervisorCounters: () => supervisor?.counters ?? null,
      sampler: this.sampler,
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
    if (this.usesSocketDir) this.watchdog.watchDir(c.socketDir);
    try {
      // Listen first: a port in use should fail before any child is spawned.
      this.address = await this.server.listen();
      if (c.admin) {
        this.admin = new AdminServer({ listen: c.admin, tokenDir: c.socketDir, tokenFile: c.adminTokenFile }, this.stats,
          { scale: (n) => this.scale(n, 'admin POST /scale'), reload: () => this.reload('admin POST /reload') }, this.logger);
        this.adminAddress = await this.admin.listen();
        this.logger.info({ admin: this.adminAddress }, `admin on http://${this.adminAddress}/stats`);
      }
      for (const source of this.sources) await source.start();
      if (this.supervisor && c.maxProcs > c.procs) {
        this.autoscaler = new Autoscaler(this.supervisor, this.pool, { min: c.procs, max: c.maxProcs, scaleUpAfterMs: c.scaleUpAfter, scaleDownAfterMs: c.scaleDownAfter, drainTimeoutMs: c.shutdownGrace }, this.logger);
        this.autoscaler.start();
      }
    } catch (err) {
      for (const source of this.sources) await source.stop().catch(() => {});
      this.admin?.close();
      this.server.destroyAll();
      this.releaseSocketDir();
      throw err;
    }
    this.sampler.start();
    this.logger.info({ listen: this.address, procs: c.procs, socket: c.socket, upstreams: c.upstream }, `upfront listening on ${this.address}`);
    return this;
  }

  /** Runs `procs` backend processes (scale up, or drain and stop some); resolves once done. */
  async scale(procs: number, reason: string): Promise<{ from: number; to: number }> {
    if (!this.supervisor) throw new Error('no spawned backends to scale (this upfront only has --upstream backends)');
    if (!Number.isInteger(procs) || procs < 1 || procs > 1024) throw new Error(`procs: expected a whole number from 1 to 1024, got ${JSON.stringify(procs)}`);
    return this.supervisor.scale(procs, reason);
  }

  /** Rolling reload of the spawned processes, with the command line of a re-read config. */
  async reload(reason: string): Promise<ReloadOutcome> {
    const supervisor = this.supervisor;
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
    log.info({ inflight: server.active, queued: pool.queue.length }, 'stopping: no new connections; finishing in-flight requests');
    server.stopAccepting();
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
    this.releaseSocketDir();
    this.sampler.stop();
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
      : new HttpTransport({ address, readTimeoutMs: c.readTimeout, connectTimeoutMs: c.connectTimeout, forwarded: c.forwarded }, caps, events));
    backend.caps.onChange = (what, why) => log.warn({ backend: id, pid: backend.pid, change: what, evidence: why }, `backend ${id}: ${what} (${why})`);
    return backend;
  };
}
