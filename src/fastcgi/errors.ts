// Why a FastCGI request failed, in words a log reader and a status code can use.
export type FcgiErrorKind =
  | 'connect'        // connect() failed (err.code: EAGAIN, ECONNREFUSED, ENOENT, ...)
  | 'closed'         // the backend closed the connection before END_REQUEST
  | 'protocol'       // the backend sent bytes that are not valid FastCGI
  | 'head'           // the CGI response head is malformed or too big
  | 'timeout'        // no byte from the backend for read-timeout
  | 'cant-mpx'       // END_REQUEST FCGI_CANT_MPX_CONN
  | 'overloaded'     // END_REQUEST FCGI_OVERLOADED
  | 'unknown-role';  // END_REQUEST FCGI_UNKNOWN_ROLE

export class FcgiError extends Error {
  /** errno name from the system call, where there was one. */
  code: string | undefined;
  /**
   * The backend refused or never started the request, so it can be sent again
   * elsewhere provided the front has not consumed a request body for it.
   */
  notStarted: boolean;
  /**
   * Closed, unanswered, on a connection that never completed a request: the app
   * accepted and closed at once (flup does at its thread limit), a refusal like EAGAIN.
   */
  freshConnection = false;

  constructor(readonly kind: FcgiErrorKind, message: string, options: { code?: string; notStarted?: boolean; cause?: unknown } = {}) {
    super(message, options.cause ? { cause: options.cause } : undefined);
    this.code = options.code;
    this.notStarted = options.notStarted ?? false;
  }
}
