// TLS on the public listener: one tls.Server offering h2, http/1.1 and http/1.0 by ALPN.
// HTTP/1.1 sockets (and clients that ask for no protocol) go to the HTTP/1.1 layer,
// which sees them as encrypted (REQUEST_SCHEME=https, HTTPS=on, X-Forwarded-Proto);
// h2 sockets become HTTP/2 sessions. The certificate and key are read from their
// files at start and again on reload, swapped in with setSecureContext: connections
// already open keep theirs, new handshakes get the new one.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Http1Server } from '../http1/server.js';
import type { H2Server } from '../h2/server.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface LoadedCertificate {
  context: tls.SecureContextOptions;
  subject: string;
  /** The leaf certificate's notAfter. */
  validTo: Date;
  fingerprint256: string;
}

/** Reads and checks the certificate chain and key; errors name the file and the problem. */
export function loadCertificate(files: TlsFiles): LoadedCertificate {
  const read = (file: string, what: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(`tls-${what}: cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied (upfront must be able to read it)' : e.message} (${e.code ?? 'error'})`);
    }
  };
  const cert = read(files.certFile, 'cert');
  const key = read(files.keyFile, 'key');
  let leaf: crypto.X509Certificate;
  try {
    leaf = new crypto.X509Certificate(cert);
  } catch (err) {
    throw new Error(`tls-cert: ${files.certFile} holds no PEM certificate: ${(err as Error).message}`);
  }
  const context: tls.SecureContextOptions = { cert, key };
  try {
    tls.createSecureContext(context);
  } catch (err) {
    throw new Error(`tls-key: ${files.keyFile} does not go with ${files.certFile} or is not a PEM private key: ${(err as Error).message}`);
  }
  return { context, subject: leaf.subject.replace(/\n/g, ', '), validTo: new Date(leaf.validTo), fingerprint256: leaf.fingerprint256 };
}

export interface TlsListenerOptions extends TlsFiles {
  /** Bounds the handshake (the HTTP/1.1 layer's head timeout). */
  handshakeTimeoutMs: number;
}

export class TlsListener {
  readonly server: tls.Server;
  private current: LoadedCertificate;
  /** Handshakes that failed (bad clients, scanners). */
  handshakeErrors = 0;

  constructor(private readonly options: TlsListenerOptions, http1: Http1Server, h2: H2Server, private readonly log: Logger) {
    this.current = loadCertificate(options);
    this.server = tls.createServer({
      ...this.current.context,
      // http/1.0 too (as nginx): a client that offers only it (curl --http1.0) would get a
      // no_application_protocol alert instead of the HTTP/1.1 layer, which speaks 1.0.
      ALPNProtocols: ['h2', 'http/1.1', 'http/1.0'],
      minVersion: 'TLSv1.2',
      handshakeTimeout: Math.max(1000, options.handshakeTimeoutMs),
      noDelay: true,
    }, (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol === 'h2') h2.accept(socket);
      else http1.net.emit('connection', socket); // the layer takes any net.Socket; TLSSocket is one
    });
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      this.handshakeErrors++;
      log.debug({ client: socket.remoteAddress, code: err.code }, `TLS handshake failed: ${err.message}`);
      // node only reports some of these (ERR_TLS_HANDSHAKE_TIMEOUT: a client that sends
      // nothing, or half a ClientHello) and leaves the socket open: without this, the
      // handshake timeout bounds nothing and silent connections pile up until no fd is left.
      socket.destroy();
    });
    // tls.Server wraps every connection at once; ours looks at the first byte first (below).
    const wrap = this.server.listeners('connection')[0] as (raw: net.Socket) => void;
    this.server.removeAllListeners('connection');
    this.server.on('connection', (raw: net.Socket) => this.firstByte(raw, wrap));
    this.logCertificate('TLS certificate');
  }

  /**
   * A TLS client speaks first with a handshake record (0x16). A plain HTTP request on this
   * port gets nginx's answer (400, "sent to the HTTPS port") instead of a silent close
   * that leaves its user guessing; anything else is closed. The bytes read go back to the
   * socket (node's TLS layer takes what a socket has buffered). Until the first byte the
   * handshake timeout is ours, since node's starts only once the socket is wrapped.
   */
  private firstByte(raw: net.Socket, wrap: (raw: net.Socket) => void): void {
    const timer = setTimeout(() => {
      this.handshakeErrors++;
      raw.destroy();
    }, Math.max(1000, this.options.handshakeTimeoutMs));
    raw.on('error', () => { /* reset by the client: 'close' follows */ });
    raw.once('close', () => clearTimeout(timer));
    raw.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      raw.pause();
      if (chunk[0] === 0x16) {
        raw.unshift(chunk);
        wrap.call(this.server, raw);
        return;
      }
      this.handshakeErrors++;
      if (chunk[0] >= 0x41 && chunk[0] <= 0x5a) { // an HTTP method's first letter
        this.log.debug({ client: raw.remoteAddress }, 'plain HTTP on the TLS port: answered 400');
        raw.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 74\r\nConnection: close\r\n\r\n'
          + '400 Bad Request: a plain HTTP request was sent to this port; use https://\n');
      } else raw.destroy();
    });
  }

  get certificate(): LoadedCertificate {
    return this.current;
  }

  /** Re-reads the files; on a problem the certificate in use stays and the error is thrown. */
  reload(): LoadedCertificate {
    const fresh = loadCertificate(this.options);
    this.server.setSecureContext({ ...fresh.context });
    const changed = fresh.fingerprint256 !== this.current.fingerprint256;
    this.current = fresh;
    this.logCertificate(changed ? 'TLS certificate reloaded: new certificate' : 'TLS certificate reloaded (unchanged)');
    return fresh;
  }

  private logCertificate(what: string): void {
    const c = this.current;
    const days = Math.floor((c.validTo.getTime() - Date.now()) / 86_400_000);
    const fields = { certFile: this.options.certFile, subject: c.subject, validTo: c.validTo.toISOString(), sha256: c.fingerprint256 };
    if (days < 0) this.log.error(fields, `${what}: ${c.subject} EXPIRED on ${c.validTo.toISOString()}; clients will refuse it`);
    else if (days < 14) this.log.warn(fields, `${what}: ${c.subject} expires in ${days} day(s), on ${c.validTo.toISOString()}`);
    else this.log.info(fields, `${what}: ${c.subject}, valid until ${c.validTo.toISOString()}`);
  }
}
