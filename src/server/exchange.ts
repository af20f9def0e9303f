// One client request and its response, as the proxy sees them: the request head
// (RequestHead, what transports read), its body with backpressure, and a response
// written once where it can be. The public HTTP/1.1 layer implements it.
import type { RequestHead } from '../transport.js';

export interface BodySink {
  /** A chunk of the request body (a view of a read buffer that is never reused: it may be kept); false: pause until resumeBody(). */
  onBodyData(chunk: Buffer): boolean;
  onBodyEnd(): void;
  /** The client left, stalled past the body timeout, or framed the body badly. */
  onBodyError(err: Error): void;
}

/** Where a request body comes from: the client, or a spool that read it first. */
export interface BodySource {
  readBody(sink: BodySink): void;
  pauseBody(): void;
  resumeBody(): void;
  /** Starts the body again from its beginning for another attempt; false (or absent) if it cannot be read again. */
  rewind?(): boolean;
}

export interface ClientEvents {
  /** After write() returned false, the client took the data. */
  onClientDrain(): void;
  /** The connection closed before this response ended (the client left). */
  onClientClose(): void;
}

export interface ClientExchange extends RequestHead, BodySource {
  /** The request body length; -1 when chunked; 0 when none. */
  readonly contentLength: number;
  readonly chunked: boolean;
  readonly headersSent: boolean;
  readonly finished: boolean;
  /**
   * The largest response head the client takes, counted as headerListBytes() does;
   * undefined: none known (an HTTP/1.1 client reads what comes). HTTP/2 peers say it in
   * SETTINGS_MAX_HEADER_LIST_SIZE, and one sent a bigger head may drop the whole session.
   */
  readonly maxResponseHeadBytes?: number;
  setClientEvents(events: ClientEvents): void;
  /** A whole response in one write, framed with Content-Length (HEAD: the head only). */
  respond(status: number, reason: string | null, headers: string[], body: Buffer | string | null): void;
  /**
   * Starts a response of `contentLength` bytes (-1: unknown, chunked on HTTP/1.1).
   * The head goes out with the first write()/end(), so a response that arrives whole
   * leaves in one write; until then respond() may still replace it. A body longer
   * than a declared length is cut and the connection closed; a shorter one closes it.
   */
  writeHead(status: number, reason: string | null, headers: string[], contentLength: number): void;
  /** false: wait for onClientDrain. */
  write(chunk: Buffer): boolean;
  end(): void;
  /** Cuts the connection: the client must not take the response for complete. */
  destroy(): void;
}

/**
 * A response head's size as HTTP/2 counts a header list (RFC 7541 4.1): each field its
 * name and value plus 32 octets, :status included. Field strings are latin1 views of
 * the bytes, so length is the byte count.
 */
export function headerListBytes(headers: readonly string[]): number {
  let n = STATUS_FIELD_BYTES;
  for (let i = 0; i + 1 < headers.length; i += 2) n += headers[i].length + headers[i + 1].length + FIELD_OVERHEAD_BYTES;
  return n;
}

/** What each field costs in a header list beyond its name and value (RFC 7541 4.1). */
export const FIELD_OVERHEAD_BYTES = 32;
/** The :status field's cost: ":status", three digits, 32. */
export const STATUS_FIELD_BYTES = 7 + 3 + FIELD_OVERHEAD_BYTES;
