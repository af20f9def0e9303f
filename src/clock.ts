// A coarse clock (ms) for the request path: timeouts and caches need no Date.now()
// per request or per record. One unref'd timer advances it every TICK_MS.
export const TICK_MS = 20;
export let coarseNow = Date.now();
setInterval(() => { coarseNow = Date.now(); }, TICK_MS).unref();
