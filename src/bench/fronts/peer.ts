// A front people run today, as the bench runs it: the same N backends the way
// its users start them (FastCGI: spawn-fcgi -F N on one unix socket; HTTP: N
// processes, each binding its own unix socket), a config generated into the
// cell's temp dir, started in the foreground on a loopback port. One file per
// front says how it is configured and why, for each protocol; the harness
// (../peerFront.ts) does the rest.
import type { PeerFrontName } from '../results.js';

interface SetupBase {
  /** The cell's temp dir: config, logs, pid files, sockets. */
  dir: string;
  port: number;
  /** Worker threads / processes where the front has such a setting: the machine's cores. */
  threads: number;
  documentRoot: string;
  /** The bench runs as root: fronts that would switch to an unprivileged user are told to stay (the socket and logs are in a private dir). */
  asRoot: boolean;
}

export interface PeerSetup extends SetupBase {
  /** spawn-fcgi's socket (every backend process accepts on it). */
  socket: string;
}

export interface PeerHttpSetup extends SetupBase {
  /** One unix socket per backend process, each bound by its process (HTTP/1.1 on it). */
  sockets: string[];
}

/** The front as an HTTP reverse proxy to N unix sockets (`upfront bench --protocol http`). */
export interface PeerHttp {
  config(s: PeerHttpSetup): string;
  /** When its log line for a refused connect() differs from the FastCGI one. */
  eagainLine?: RegExp;
  /** The most backends its config can name, when it has such a limit, and why. */
  maxBackends?: { count: number; why: string };
}

export interface PeerFront {
  name: PeerFrontName;
  /** The command, looked up on PATH and in /usr/sbin. */
  binary: string;
  debianPackage: string;
  /** Its config's file name, in the cell's dir and next to results.json. */
  configFile: string;
  /** Its FastCGI config, to spawn-fcgi's socket. */
  config(s: PeerSetup): string;
  /** Its HTTP reverse-proxy config, or none: it cannot run HTTP cells. */
  http?: PeerHttp;
  /** Arguments that start it in the foreground with that config. */
  args(s: SetupBase, configPath: string): string[];
  env?(s: SetupBase): Record<string, string>;
  /** Where it logs errors, relative to the dir ('stderr.log' is its stdout + stderr). */
  errorLog: string;
  /** A line of its error log per connect() the backend socket refused (EAGAIN: the accept queue was full). */
  eagainLine: RegExp;
  /** Lines of its logs that say nothing about a failure (start-up notices), skipped when looking for a cause. */
  notice: RegExp;
  versionArgs: string[];
  /** Its version from the output of `binary versionArgs`. */
  version(output: string): string;
}

/** A string as YAML / Caddyfile / lighttpd config quote it (JSON's quoting is valid in all three for plain paths). */
export function quoted(s: string): string {
  return JSON.stringify(s);
}
