// The composition root of `upfront run`: pool, supervisor (or upstreams), public
// and admin listeners, and the orderly stop. Used by the CLI and by the tests.
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import { AdminServer } from './admin/adminServer.js';
import { AcceptQueueSampler, somaxconn } from './stats/acceptQueueSampler.js';
import { FrontResponses } from './stats/frontResponses.js';
import { StatsHistory } from './stats/history.js';
import { InService } from './stats/inService.js';
import { ProcessSampler } from './stats/processSampler.js';
import { RefusalWarnings } from './stats/refusalWarnings.js';
import type { StatsSources } from './stats/snapshot.js';
import { ConfigError, parseAddress, type RunConfig } from './config/schema.js';
import { CgiParamsEncoder } from './fastcgi/cgiParams.js';
import { FcgiTransport } from './fastcgi/transport.js';
import { HttpTransport } from './http/transport.js';
import { Backend, type BackendSwitches } from './pool/backend.js';
import { createPolicy } from './pool/policies/index.js';
import { Pool } from './pool/pool.js';
import { decideSwitches, type SwitchSettings } from './pool/switches.js';
import { HealthChecker } from './pool/healthChecks.js';
import { AccessLog } from './server/accessLog.js';
import { FrontServer } from './server/frontServer.js';
import { FrontHealth } from './server/health.js';
import { RedirectListener } from './server/redirectListener.js';
import { InternalLocations } from './server/static/internalLocations.js';
import { StaticFiles } from './server/static/staticFiles.js';
import { BufferCounters } from './server/responseBuffer.js';
import { addressOf } from './server/listen.js';
import { probeBackend } from './supervisor/readiness.js';
import { resolveCommand } from './supervisor/child.js';
import { Autoscaler } from './supervisor/autoscaler.js';
import { removeStaleSocketDirs } from './supervisor/staleSocketDirs.js';
import { ProcessGroupWatchdog } from './supervisor/watchdog.js';
import { Supervisor } from './supervisor/supervisor.js';
import type { BackendAddress } from './transport.js';

export const SERVER_SOFTWARE = 'upfront/0.1';

export interface Front {
  stats: StatsSources;
  address: string;
  adminAddress: string | null;
  pool: Pool;
  supervisor: Supervisor | null;
  server: FrontServer;
  /** /healthz and /readyz (admin listener, and the public one with --health-on-public). */
  health: FrontHealth;
  accessLog: AccessLog | null;
  /** SIGUSR1: the access log file is reopened (logrotate). */
  reopenLogs(): void;
  /** Stop accepting, finish in-flight requests (bounded by shutdown-grace), stop the children. */
  stop(): Promise<void>;
  /** Run `procs` backend processes (scale up, or drain and stop some). */
  scale(procs: number, reason: string): Promise<{ from: number; to: number }>;
  /** Rolling reload of the spawned processes. */
  reload(reason: string): Promise<{ replaced: number; failed: number }>;
}

export interface FrontHooks {
  /** Re-reads the config (file + flags) for a reload; the new command line applies to the new processes. */
  reloadConfig?(): RunConfig;
}

export async function startFront(config: RunConfig, log: Logger, hooks: FrontHooks = {}): Promise<Front> {
  const pool = new Pool({
    name: 'app',
    policy: createPolicy(config.policy),
    overflow: config.overflow,
    queueSize: config['queue-size'],
    queueTimeoutMs: config['queue-timeout'],
    noBackendWaitMs: config['connect-timeout'],
  });
  // nginx and retry: as nginx by default, a new connection per request without FCGI_KEEP_CONN
  // (a single-threaded app serving a kept connection to its end would starve the rest).
  const perRequestConnections = config.overflow === 'nginx' || config.overflow === 'retry';
  const switches: SwitchSettings = {
    multithreaded: config.multithreaded,
    multiplexed: config.multiplexed,
    maxRequestsPerBackend: config['max-requests-per-backend'],
  };
  const connectionUse = {
    keepConn: perRequestConnections ? false : config['keep-conn'],
    pipelineDepth: perRequestConnections || !config['keep-conn'] ? 1 : config['pipeline-depth'],
  };
  const encoder = config.protocol === 'fastcgi' ? new CgiParamsEncoder({
    documentRoot: config['document-root'],
    serverSoftware: SERVER_SOFTWARE,
    passUnderscoreHeaders: config['pass-underscore-headers'],
    passProxyHeader: config['pass-proxy-header'],
    extra: [],
    scriptExtensions: config['script-ext'],
  }) : null;
  /** A backend at `address`, with the transport of the configured protocol; its learned changes logged once each. */
  const makeBackend = (id: string, address: BackendAddress, index: number): Backend => {
    const initial: BackendSwitches = { multithreaded: false, multiplexed: false, slots: 1, source: 'not yet asked', answersGetValues: false };
    const backend = new Backend(id, address, initial, connectionUse, index, (caps, events) => encoder
      ? new FcgiTransport({
        address, readTimeoutMs: config['read-timeout'], connectTimeoutMs: config['connect-timeout'], maxHeadBytes: config['max-head-bytes'],
        retryEagain: config.overflow === 'retry', perRequestConnections, encoder,
      }, caps, events)
      : new HttpTransport({
        address, readTimeoutMs: config['read-timeout'], connectTimeoutMs: config['connect-timeout'], forwarded: config.forwarded, maxHeadBytes: config['max-head-bytes'],
      }, caps, events));
    backend.log = log;
    backend.caps.onChange = (what, why) => log.warn({ backend: id, pid: backend.pid, change: what, evidence: why }, `backend ${id}: ${what} (${why})`);
    return backend;
  };
  const startedAt = Date.now();
  const bufferCounters = new BufferCounters();
  const frontResponses = new FrontResponses();
  const inService = new InService();
  const health = new FrontHealth([pool], startedAt);
  const { files, internal, accessLog } = edgeParts(config, log);
  let server: FrontServer;
  try {
    server = new FrontServer({
      listen: config.listen,
      tls: config['tls-cert'] !== undefined ? { certFile: config['tls-cert'], keyFile: config['tls-key']! } : null,
      edge: {
        health: config['health-on-public'] ? health : null,
        files: config.static.length > 0 || config['try-files'] ? files : null,
        compress: config.compress ? { minSize: config['compress-min-size'] } : null,
        accessLog,
      },
      limits: {
        maxBodyBytes: config['max-body-size'],
        headersTimeoutMs: config['client-header-timeout'],
        bodyTimeoutMs: config['client-body-timeout'],
        keepAliveTimeoutMs: config['keepalive-timeout'],
        sendTimeoutMs: config['send-timeout'],
      },
      needsBodyLength: config.protocol === 'fastcgi',
      spoolMemoryBytes: 1024 * 1024,
      proxy: {
        pool, log, retries: config.retries, queueRetryAfterSec: Math.max(1, Math.ceil(config['queue-timeout'] / 1000)),
        serverTiming: config['server-timing'], slowRequestMs: config['slow-request'],
        onStuck: config['kill-stuck'] ? (backendId: string) => supervisor?.killStuck(backendId) : undefined,
        responseBuffering: config['response-buffering']
          ? { memoryBytes: config['response-buffer-memory'], fileBytes: config['response-buffer-max'], counters: bufferCounters } : null,
        internal,
        frontResponses, inService,
      },
      requestBuffering: config['request-buffering'],
    }, log);
  } catch (err) {
    // The TLS certificate or key did not load: a config problem, said with the file's name.
    accessLog?.close();
    throw new ConfigError((err as Error).message);
  }
  let redirect: RedirectListener | null = null;
  let healthChecker: HealthChecker | null = null;

  let supervisor: Supervisor | null = null;
  let admin: AdminServer | null = null;
  let autoscaler: Autoscaler | null = null;
  const scale = async (procs: number, reason: string) => {
    if (!supervisor) throw new Error('no spawned backends to scale (this upfront only has --upstream backends)');
    if (!Number.isInteger(procs) || procs < 1 || procs > 1024) throw new Error(`procs: expected a whole number from 1 to 1024, got ${JSON.stringify(procs)}`);
    return supervisor.scale(procs, reason, config['shutdown-grace']);
  };
  const reload = async (reason: string) => {
    if (server.tls !== null) {
      // The certificate first: a file that does not load refuses the reload, and the one in use stays.
      try {
        server.reloadCertificate();
      } catch (err) {
        log.error({ reason }, `reload refused: ${(err as Error).message}; the certificate in use stays`);
        throw err;
      }
      if (!supervisor) return { replaced: 0, failed: 0 };
    }
    if (!supervisor) throw new Error('no spawned backends to reload (this upfront only has --upstream backends)');
    if (hooks.reloadConfig) {
      try {
        const fresh = hooks.reloadConfig();
        const changed = fresh.command.join(' ') !== config.command.join(' ');
        supervisor.setCommand(fresh.command[0], fresh.command.slice(1), fresh.env, fresh.cwd ?? process.cwd());
        if (changed) log.info({ command: fresh.command }, `reload: new command line ${fresh.command.join(' ')}`);
        config.command = fresh.command;
      } catch (err) {
        log.error({ reason }, `reload refused: ${(err as Error).message}; the running processes stay`);
        throw err;
      }
    }
    return supervisor.reload(reason, config['shutdown-grace']);
  };
  const sampler = new AcceptQueueSampler([pool], config['sample-interval'], log);
  const history = new StatsHistory({ pools: [pool], acceptedConn: () => server.acceptedConn, frontResponses, sampler });
  const processes = new ProcessSampler();
  const refusals = new RefusalWarnings(frontResponses, pool, log, startedAt);
  history.onTick(() => {
    const pids = [process.pid];
    for (const c of supervisor?.children() ?? []) if (c.pid !== undefined) pids.push(c.pid);
    for (const b of pool.backends) if (b.pid !== undefined) pids.push(b.pid);
    processes.sample(pids);
    refusals.check();
  });
  const statsSources: StatsSources = {
    pools: [pool],
    startedAt,
    acceptedConn: () => server.acceptedConn,
    children: () => supervisor?.children() ?? [],
    supervisorCounters: () => supervisor?.counters ?? null,
    sampler,
    frontResponses,
    inService,
    history,
    processes,
    processManager: config.maxProcs > config.procs ? 'dynamic' : 'static',
  };
  const maxBacklog = somaxconn();
  if (config.procs > 0 && maxBacklog !== null && config.backlog > maxBacklog) {
    log.warn({ backlog: config.backlog, somaxconn: maxBacklog },
      `backlog ${config.backlog} exceeds net.core.somaxconn (${maxBacklog}): the kernel caps it at ${maxBacklog}; raise it with sysctl -w net.core.somaxconn=${config.backlog}`);
  }
  const cleanups: Array<() => void> = [];
  if (accessLog !== null) cleanups.push(() => accessLog!.close());
  try {
    if (config.procs > 0 && !config.command[0].includes('{socket}')) resolveCommand(config.command[0], config.cwd ?? process.cwd());
  } catch (err) {
    accessLog?.close();
    throw err;
  }
  removeStaleSocketDirs(os.tmpdir(), log, config.socketDir);
  // If upfront is killed, the watchdog removes the socket dir (sockets, admin token).
  const usesSocketDir = config.procs > 0 || config.admin?.kind === 'tcp';
  const watchdog = ProcessGroupWatchdog.get(log);
  const releaseSocketDir = () => {
    if (!usesSocketDir) return;
    try { fs.rmdirSync(config.socketDir); } catch { /* not empty, or gone */ }
    watchdog.unwatchDir(config.socketDir);
  };
  if (usesSocketDir) {
    watchdog.watchDir(config.socketDir);
    cleanups.push(releaseSocketDir);
  }
  try {
    // Listen first: a port in use should fail before any child is spawned.
    const address = await server.listen();
    cleanups.push(() => server.destroyAll());
    if (config['redirect-http']) {
      const tlsPort = Number(/:(\d+)$/.exec(address)?.[1] ?? 443);
      redirect = new RedirectListener(config['redirect-http'], () => tlsPort, { headersTimeoutMs: config['client-header-timeout'], keepAliveTimeoutMs: config['keepalive-timeout'] }, log);
      const at = await redirect.listen();
      cleanups.push(() => redirect?.close());
      log.info({ redirectHttp: at }, `redirecting http://${at} to https on port ${tlsPort}`);
    }
    if (config.admin) {
      admin = new AdminServer({ listen: config.admin, tokenDir: config.socketDir, tokenFile: config['admin-token-file'], health }, statsSources,
        { scale: (n) => scale(n, 'admin POST /scale'), reload: () => reload('admin POST /reload') }, log);
      const adminAddress = await admin.listen();
      cleanups.push(() => admin?.close());
      log.info({ admin: adminAddress }, `admin on ${adminAddress}: the dashboard at /, and /stats, /metrics, /status`);
    }
    await addUpstreams(config, pool, makeBackend, switches, log);
    if (config['health-check-interval'] > 0 && pool.backends.length > 0) {
      healthChecker = new HealthChecker(pool, [...pool.backends], {
        intervalMs: config['health-check-interval'], timeoutMs: config['health-check-timeout'], rise: config['health-check-rise'], fall: config['health-check-fall'],
        protocol: config.protocol, path: config['health-check-path'] ?? null,
      }, log);
      healthChecker.start();
      cleanups.push(() => healthChecker?.stop());
    }
    if (config.procs > 0) {
      supervisor = new Supervisor({
        command: config.command[0],
        args: config.command.slice(1),
        procs: config.procs,
        socketMode: config.socket,
        backlog: config.backlog,
        socketDir: config.socketDir,
        cwd: config.cwd ?? process.cwd(),
        env: config.env,
        switches,
        makeBackend,
        startTimeoutMs: config['start-timeout'],
        getValuesTimeoutMs: config['get-values-timeout'],
        killTimeoutMs: config['kill-timeout'],
        restartBackoffMs: config['restart-backoff'],
        restartBackoffMaxMs: config['restart-backoff-max'],
        maxRequests: config['max-requests'],
        maxRequestsJitter: config['max-requests-jitter'],
        downAfterFailures: config['down-after-failures'],
        drainTimeoutMs: config['shutdown-grace'],
        protocol: config.protocol,
        maxRssMb: config['max-rss'],
        socketFd: config['socket-fd'],
        user: config.user,
        group: config.group,
      }, pool, log);
      await supervisor.start();
      if (config.maxProcs > config.procs) {
        autoscaler = new Autoscaler(supervisor, pool, { min: config.procs, max: config.maxProcs, scaleUpAfterMs: config['scale-up-after'], scaleDownAfterMs: config['scale-down-after'], drainTimeoutMs: config['shutdown-grace'] }, log);
        autoscaler.start();
      }
    }
    sampler.start();
    history.start();
    log.info({ listen: address, procs: config.procs, socket: config.socket, upstreams: config.upstream }, `upfront listening on ${address}`);

    let stopping: Promise<void> | null = null;
    const stop = (): Promise<void> => {
      if (stopping) return stopping;
      stopping = (async () => {
        // /readyz says 503 from now on; with --shutdown-delay the listener stays open meanwhile,
        // so balancers that poll it take this host out before connections are refused.
        health.beginStop();
        const delay = config['shutdown-delay'];
        if (delay > 0) {
          log.info({ delayMs: delay, inflight: server.active }, `stopping: /readyz answers 503; still accepting for ${delay} ms (shutdown-delay)`);
          await new Promise((r) => setTimeout(r, delay).unref());
        }
        log.info({ inflight: server.active, queued: pool.queue.length }, 'stopping: no new connections; finishing in-flight requests');
        server.stopAccepting();
        redirect?.close();
        healthChecker?.stop();
        const graceOver = new Promise<'grace'>((r) => setTimeout(() => r('grace'), config['shutdown-grace']).unref());
        const result = await Promise.race([server.whenIdle().then(() => 'idle' as const), graceOver]);
        if (result === 'grace') {
          log.warn({ inflight: server.active, queued: pool.queue.length }, `shutdown grace (${config['shutdown-grace']} ms) is over: cutting the requests still in flight`);
          pool.rejectQueued();
        }
        pool.close();
        autoscaler?.stop();
        if (supervisor) await supervisor.stop();
        for (const b of pool.backends) b.transport.close(true);
        server.destroyAll();
        admin?.close();
        accessLog?.close();
        releaseSocketDir();
        sampler.stop();
        history.stop();
        log.info('stopped');
      })();
      return stopping;
    };
    const reopenLogs = () => accessLog?.reopen();
    return { scale, reload, stats: statsSources, address, adminAddress: admin ? addressOf(admin.http) : null, pool, supervisor, server, health, accessLog, reopenLogs, stop };
  } catch (err) {
    history.stop();
    if (supervisor) await supervisor.stop().catch(() => {});
    for (const c of cleanups.reverse()) c();
    throw err;
  }
}

async function addUpstreams(config: RunConfig, pool: Pool, makeBackend: (id: string, address: BackendAddress, index: number) => Backend,
  switches: SwitchSettings, log: Logger): Promise<void> {
  const probes: Promise<void>[] = [];
  config.upstream.forEach((u, i) => {
    const a = parseAddress(u);
    if (typeof a === 'string') throw new Error(`upstream ${u}: ${a}`);
    const address: BackendAddress = a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
    const id = `u${i}`;
    const backend = makeBackend(id, address, pool.backends.length);
    pool.add(backend);
    // An upstream is not ours to wait for forever: probe in the background, serve once it answers.
    probes.push((async () => {
      for (;;) {
        try {
          const result = await probeBackend({ address, getValuesTimeoutMs: config['get-values-timeout'], deadline: Date.now() + config['start-timeout'], isAlive: () => true, fastcgi: config.protocol === 'fastcgi' });
          const s = decideSwitches(switches, result.values, config.protocol);
          backend.applySwitches(s);
          backend.state = 'ready';
          backend.unavailable = null;
          log.info({ backend: id, address: backend.addressText, multithreaded: s.multithreaded, multiplexed: s.multiplexed, slots: s.slots, source: s.source },
            `upstream ${id} ${backend.addressText} ready: ${s.slots} slot${s.slots === 1 ? '' : 's'}${s.multiplexed ? ', multiplexed' : ''}`);
          pool.serveQueue();
          return;
        } catch (err) {
          backend.unavailable = `not reachable: ${(err as Error).message}`;
          log.warn({ backend: id, address: backend.addressText }, `upstream ${backend.addressText} not reachable: ${(err as Error).message}; trying again`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })());
  });
  // Wait briefly so the first requests find the upstreams ready; don't block start on a dead one.
  await Promise.race([Promise.all(probes), new Promise((r) => setTimeout(r, config['get-values-timeout'] + 500))]);
}

/** Static files, internal locations and the access log, checked at start: a missing directory or an unwritable log is a config error. */
function edgeParts(config: RunConfig, log: Logger): { files: StaticFiles | null; internal: InternalLocations | null; accessLog: AccessLog | null } {
  let files: StaticFiles | null = null;
  let internal: InternalLocations | null = null;
  try {
    if (config.static.length > 0 || config['try-files'] || config['internal-location'].length > 0) {
      files = new StaticFiles({ mounts: config.static, tryFilesRoot: config['try-files'] ? config['document-root'] : null, scriptExtensions: config['script-ext'] }, log);
    }
    if (files !== null && config['internal-location'].length > 0) internal = new InternalLocations(config['internal-location'], files, log);
    const accessLog = config['access-log'] === 'off' ? null : new AccessLog(config['access-log'], config['access-log-format'], log);
    return { files, internal, accessLog };
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}
