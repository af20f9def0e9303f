// A backend's switches (flup's multithreaded / multiplexed, and its slots), from the
// flags and what the backend says in FCGI_GET_VALUES. What it says is a hint: run-time
// evidence may lower it later (see Capabilities).
import type { BackendSwitches } from './backend.js';

export type Switch = boolean | 'auto';

export interface SwitchSettings {
  multithreaded: Switch;
  multiplexed: Switch;
  /** Slots of a multithreaded backend; undefined: FCGI_MAX_REQS, else 8. */
  maxRequestsPerBackend: number | undefined;
}

/** The highest FastCGI request id (16 bits; 0 is the management id). */
const MAX_REQUEST_ID = 0xffff;

/**
 * A count from a GET_VALUES answer: decimal digits only (as the spec's examples and every
 * known app write them), else NaN, as if not said. Number() alone would take "Infinity",
 * "1.5", "0x4" or "1e9" from a lying or broken app.
 */
function countOf(value: string | undefined): number {
  return value !== undefined && /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
}

/** Decides a backend's switches from the flags and its GET_VALUES answer. */
export function decideSwitches(settings: SwitchSettings, values: Map<string, string> | null, protocol: 'fastcgi' | 'http' = 'fastcgi'): BackendSwitches {
  if (protocol === 'http') {
    // HTTP/1.1 has no GET_VALUES: auto means an app that takes concurrent requests (gunicorn
    // with its workers, a Node server); one request per connection, never multiplexed.
    const multithreaded = settings.multithreaded === 'auto' ? true : settings.multithreaded;
    return { multithreaded, multiplexed: false, slots: multithreaded ? settings.maxRequestsPerBackend ?? 8 : 1, source: settings.multithreaded === 'auto' ? 'http: auto is multithreaded' : 'flags', answersGetValues: false };
  }
  const maxReqs = countOf(values?.get('FCGI_MAX_REQS'));
  const maxConns = countOf(values?.get('FCGI_MAX_CONNS'));
  const answered = values !== null && values.size > 0;
  const multithreaded = settings.multithreaded === 'auto'
    ? answered && ((maxReqs > 1) || (maxConns > 1))
    : settings.multithreaded;
  const multiplexed = settings.multiplexed === 'auto'
    ? answered && values!.get('FCGI_MPXS_CONNS') === '1'
    : settings.multiplexed;
  let slots = 1;
  if (multithreaded) {
    slots = settings.maxRequestsPerBackend ?? (maxReqs > 0 ? maxReqs : 8);
    // All of a multiplexed backend's requests share one connection, told apart by a 16-bit id.
    if (multiplexed && slots > MAX_REQUEST_ID) slots = MAX_REQUEST_ID;
  }
  const auto = settings.multithreaded === 'auto' || settings.multiplexed === 'auto';
  const source = !auto ? 'flags' : answered ? 'GET_VALUES' : values === null ? 'fallback: no GET_VALUES answer' : 'fallback: empty GET_VALUES answer';
  return { multithreaded, multiplexed, slots, source, answersGetValues: values !== null };
}

