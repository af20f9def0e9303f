// A FastCGI front people run today, as the bench runs it: the same N backends
// under spawn-fcgi on one unix socket, a config generated into the cell's temp
// dir, started in the foreground on a loopback port. One file per front says
// how it is configured and why; the harness (../peerFront.ts) does the rest.
import type { PeerFrontName } from '../results.js';

export interface PeerSetup {
  /** The cell's temp dir: config, logs, pid files. */
  dir: string;
  port: number;
  /** spawn-fcgi's socket (every backend process accepts on it). */
  socket: string;
  /** Worker threads / processes where the front has such a setting: the machine's cores. */
  threads: number;
  documentRoot: string;
  /** The bench runs as root: fronts that would switch to an unprivileged user are told to stay (the socket and logs are in a private dir). */
  asRoot: boolean;
}

export interface PeerFront {
  name: PeerFrontName;
  /** The command, looked up on PATH and in /usr/sbin. */
  binary: string;
  debianPackage: string;
  /** Its config's file name, in the cell's dir and next to results.json. */
  configFile: string;
  config(s: PeerSetup): string;
  /** Arguments that start it in the foreground with that config. */
  args(s: PeerSetup, configPath: string): string[];
  env?(s: PeerSetup): Record<string, string>;
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
