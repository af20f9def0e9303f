// A backend's bytes end responses; each ended response frees a slot, which the pool fills
// with a queued request at once. Written in arrival order, the front would first send every
// response to its client (one write each, each waking a client that may take the front's
// core) and only then the backend's next requests: the app sits idle meanwhile. During a
// backend's turn, writes to clients are held (the socket corked) and go out after the
// transport wrote what the turn gave its backends. bench/RESULTS.md: +5–10 % req/s at 1
// process, less front CPU per request (bench/sched.sh A/B).
import type net from 'node:net';

let inTurn = false;
const held: net.Socket[] = [];

/** Starts a backend's turn; false when one is already under way (the caller then just goes on). */
export function beginBackendTurn(): boolean {
  if (inTurn) return false;
  inTurn = true;
  return true;
}

/** Ends the turn: call after the backends' writes; the held client writes go out, in order. */
export function endBackendTurn(): void {
  inTurn = false;
  for (let i = 0; i < held.length; i++) held[i].uncork();
  held.length = 0;
}

/** Called before a write to a client: inside a backend's turn the socket waits for the turn's end. */
export function holdClientWrite(socket: net.Socket): void {
  if (!inTurn || socket.writableCorked !== 0) return;
  socket.cork();
  held.push(socket);
}
