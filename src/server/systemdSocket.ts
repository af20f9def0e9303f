// The public listener from systemd socket activation (sd_listen_fds(3)): the socket
// is fd 3, LISTEN_PID names this process and LISTEN_FDS counts the sockets. The
// variables are removed once taken, so no child takes them for its own. systemd
// keeps the socket while upfront restarts: connections wait in its accept queue.
export const SD_LISTEN_FDS_START = 3;

/** The fd of the first socket systemd passed, or an error saying what is missing. */
export function takeSystemdSocket(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number {
  const fds = env.LISTEN_FDS;
  const forPid = env.LISTEN_PID;
  if (fds === undefined) {
    throw new Error('listen systemd: no socket from systemd (LISTEN_FDS is not set); start upfront from a .socket unit, under systemd-socket-activate, or use --listen HOST:PORT');
  }
  if (forPid !== undefined && forPid !== String(pid)) {
    throw new Error(`listen systemd: LISTEN_PID is ${forPid}, not this process (${pid}): the sockets were meant for another process (run upfront itself as the service's ExecStart, not under a shell that forks)`);
  }
  const n = Number(fds);
  if (!Number.isInteger(n) || n < 1) throw new Error(`listen systemd: LISTEN_FDS is ${JSON.stringify(fds)}; expected 1 or more sockets`);
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  return SD_LISTEN_FDS_START;
}
