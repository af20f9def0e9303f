// Responses the front writes itself, counted per cause, apart from the statuses
// backends answer: a 503 because the queue was full is not a backend's 5xx. The
// request path increments these (one call each); the stats read them.

/** Every cause, in the order tables show them. Each is exported at 0 until it happens. */
export const FRONT_RESPONSE_CAUSES = [
  'queue-full',      // 503: the front queue held queue-size requests
  'queue-timeout',   // 503: waited queue-timeout for a slot
  'shed',            // 503: no free slot, overflow shed
  'no-backend',      // 503: no backend ready nor about to be
  'shutdown',        // 503: upfront is stopping
  'backend-failed',  // 502/503/504 written for a backend that failed (connect, closed, garbage, read-timeout, FCGI_OVERLOADED)
  'body-too-large',  // 413: over max-body-size
  'client-timeout',  // 408: a client too slow to send its request head or body
  'not-found',       // 404: a path no script maps to (script-ext)
  'bad-request',     // 400, 414, 431, 501, 505...: the HTTP layer or the front refused the request itself
  'internal-error',  // 500: the front failed answering (a bug: its log line says where)
] as const;

export type FrontResponseCause = (typeof FRONT_RESPONSE_CAUSES)[number];

/** The status each cause answers with (where one cause has several, the usual one). */
export const CAUSE_STATUS: Record<FrontResponseCause, number> = {
  'queue-full': 503, 'queue-timeout': 503, shed: 503, 'no-backend': 503, shutdown: 503,
  'backend-failed': 502, 'body-too-large': 413, 'client-timeout': 408, 'not-found': 404, 'bad-request': 400,
  'internal-error': 500,
};

export type CauseCounts = Record<FrontResponseCause, number>;

export function zeroCauses(): CauseCounts {
  return Object.fromEntries(FRONT_RESPONSE_CAUSES.map((c) => [c, 0])) as CauseCounts;
}

export class FrontResponses {
  readonly counts: CauseCounts = zeroCauses();

  /** The pool refused a slot (its AcquireRefusal reason: full, timeout, shed, no-backend, shutdown). */
  refused(reason: string): void {
    const c = this.counts;
    switch (reason) {
      case 'full': c['queue-full']++; return;
      case 'timeout': c['queue-timeout']++; return;
      case 'shed': c.shed++; return;
      case 'no-backend': c['no-backend']++; return;
      default: c.shutdown++;
    }
  }

  /** The request itself was refused with `status` (by the HTTP layer, the front, or a transport that cannot express it). */
  rejected(status: number): void {
    const c = this.counts;
    if (status === 413) c['body-too-large']++;
    else if (status === 408) c['client-timeout']++;
    else if (status === 404) c['not-found']++;
    else if (status === 500) c['internal-error']++;
    else c['bad-request']++;
  }

  /** A 502/503/504 written because the backend failed before a response head went out. */
  backendFailed(): void {
    this.counts['backend-failed']++;
  }
}
