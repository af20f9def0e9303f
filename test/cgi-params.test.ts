// The CGI params of a request (CgiParamsEncoder) and the path they start from
// (normalizePath), table-tested: what nginx's fastcgi_params would set, and what a
// path that cannot be mapped gets. A real document root on disk for SCRIPT_NAME.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CgiParamsEncoder, CgiRequestError } from '../src/fastcgi/cgiParams.js';
import { decodePairs } from '../src/fastcgi/nameValue.js';
import { RecordType } from '../src/fastcgi/protocol.js';
import { RecordDecoder } from '../src/fastcgi/records.js';
import { normalizePath } from '../src/fastcgi/scriptResolver.js';
import type { ClientConnection, RequestHead } from '../src/transport.js';

describe('normalizePath', () => {
  for (const [raw, want] of [
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['/a/./b', '/a/b'],
    ['/a//b', '/a/b'],
    ['/a/b/', '/a/b/'],
    ['/a/../b', '/b'],
    ['/a/b/..', '/a'],
    ['/%41%2f', '/A/'],            // decoded first, then resolved: %2F is a slash as nginx sees it
    ['/a/%2e%2e/b', '/b'],         // an encoded ".." climbs too
    ['/caf%C3%A9', '/caf\u00c3\u00a9'], // bytes kept as latin1 chars
    ['/..', null],                 // above the root
    ['/a/../..', null],
    ['/%2e%2e/etc/passwd', null],
    ['a/b', null],                 // not absolute
    ['', null],
    ['/%zz', null],                // malformed escape
    ['/%4', null],
    ['/info.php%00.jpg', null],    // NUL: php-cgi would cut SCRIPT_FILENAME there
  ] as const) {
    it(`${JSON.stringify(raw)} → ${JSON.stringify(want)}`, () => {
      expect(normalizePath(raw)).toBe(want);
    });
  }
});

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'upfront-docroot-'));
fs.mkdirSync(path.join(root, 'app'));
fs.writeFileSync(path.join(root, 'index.php'), '');
fs.writeFileSync(path.join(root, 'app', 'run.cgi'), '');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const conn: ClientConnection = { remoteAddress: '192.0.2.7', remotePort: 40000, localAddress: '127.0.0.1', localPort: 8080, encrypted: false };

function head(target: string, headers: string[] = [], extra: Partial<RequestHead> = {}): RequestHead {
  let host: string | undefined;
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === 'host') host = headers[i + 1];
  return { method: 'GET', target, versionMinor: 1, headers, host, contentType: undefined, connection: conn, ...extra };
}

/** The params of one encoded request, and its records' types. */
function params(encoder: CgiParamsEncoder, h: RequestHead, bodyLength = 0): { env: Record<string, string>; types: number[]; keepConn: number } {
  const buf = encoder.encode(h, bodyLength, 1, true);
  const types: number[] = [];
  const stream: Buffer[] = [];
  let keepConn = -1;
  new RecordDecoder({
    onRecord: (type, id, content) => {
      expect(id).toBe(1);
      types.push(type);
      if (type === RecordType.Params) stream.push(Buffer.from(content));
      if (type === RecordType.BeginRequest) keepConn = content[2];
    },
    onProtocolError: (reason) => { throw new Error(reason); },
  }).push(buf);
  return { env: Object.fromEntries(decodePairs(Buffer.concat(stream))), types, keepConn };
}

const encoder = (opts: Partial<ConstructorParameters<typeof CgiParamsEncoder>[0]> = {}) => new CgiParamsEncoder({
  documentRoot: root, serverSoftware: 'upfront/test', passUnderscoreHeaders: false, passProxyHeader: false, extra: [], scriptExtensions: [], ...opts,
});

describe('CgiParamsEncoder', () => {
  const e = encoder();

  for (const [target, want] of [
    // No file named by any prefix: the whole path is PATH_INFO (flup, WSGI).
    ['/Hello/100?x=1', { SCRIPT_NAME: '', PATH_INFO: '/Hello/100', QUERY_STRING: 'x=1', SCRIPT_FILENAME: `${root}/Hello/100`, DOCUMENT_URI: '/Hello/100', REQUEST_URI: '/Hello/100?x=1' }],
    // The first prefix that is a file is the script; the rest is PATH_INFO (and PATH_TRANSLATED).
    ['/index.php/a/b', { SCRIPT_NAME: '/index.php', PATH_INFO: '/a/b', SCRIPT_FILENAME: `${root}/index.php`, PATH_TRANSLATED: `${root}/a/b` }],
    ['/app/run.cgi', { SCRIPT_NAME: '/app/run.cgi', PATH_INFO: '', SCRIPT_FILENAME: `${root}/app/run.cgi` }],
    ['/app/./run.cgi/x%20y', { SCRIPT_NAME: '/app/run.cgi', PATH_INFO: '/x y', PATH_TRANSLATED: `${root}/x y`, REQUEST_URI: '/app/./run.cgi/x%20y', DOCUMENT_URI: '/app/run.cgi/x y' }],
    ['/app', { SCRIPT_NAME: '', PATH_INFO: '/app' }], // a directory is not a script
  ] as const) {
    it(`${target}: ${JSON.stringify(want)}`, () => {
      const { env } = params(e, head(target, ['Host', 'example.com:8080']));
      expect(env).toMatchObject(want);
      if (!('PATH_TRANSLATED' in want)) expect(env.PATH_TRANSLATED).toBeUndefined();
    });
  }

  it('the fixed, per-connection and per-request params, as nginx sets them', () => {
    const { env, types, keepConn } = params(e, head('/x', ['Host', '[::1]:8080'], { method: 'POST', contentType: 'text/plain', versionMinor: 0 }), 5);
    expect(env).toEqual({
      QUERY_STRING: '', REQUEST_METHOD: 'POST', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '5',
      SCRIPT_NAME: '', SCRIPT_FILENAME: `${root}/x`, PATH_INFO: '/x', REQUEST_URI: '/x', DOCUMENT_URI: '/x',
      SERVER_PROTOCOL: 'HTTP/1.0', SERVER_NAME: '[::1]', GATEWAY_INTERFACE: 'CGI/1.1', SERVER_SOFTWARE: 'upfront/test',
      DOCUMENT_ROOT: root, REDIRECT_STATUS: '200', REMOTE_ADDR: '192.0.2.7', REMOTE_PORT: '40000', SERVER_ADDR: '127.0.0.1',
      SERVER_PORT: '8080', REQUEST_SCHEME: 'http', HTTP_HOST: '[::1]:8080',
    });
    // A body follows: no empty STDIN yet.
    expect(types).toEqual([RecordType.BeginRequest, RecordType.Params, RecordType.Params]);
    expect(keepConn).toBe(1);
  });

  it('without a Host, SERVER_NAME is the address the request came to; a body-less request ends its STDIN', () => {
    const { env, types } = params(e, head('/x'));
    expect(env.SERVER_NAME).toBe('127.0.0.1');
    expect(env.CONTENT_LENGTH).toBe('0');
    expect(types.at(-1)).toBe(RecordType.Stdin);
  });

  it('headers: HTTP_* names, repeats joined (cookies with "; "), no Proxy (httpoxy), no names with "_", no Content-*', () => {
    const { env } = params(e, head('/x', ['Host', 'h', 'X-Custom-Thing', 'a', 'x-custom-thing', 'b', 'Cookie', 'a=1', 'cookie', 'b=2',
      'Proxy', 'http://evil', 'X_Under', 'no', 'Content-Type', 'text/plain', 'Content-Length', '0']));
    expect(env).toMatchObject({ HTTP_X_CUSTOM_THING: 'a, b', HTTP_COOKIE: 'a=1; b=2' });
    for (const k of ['HTTP_PROXY', 'HTTP_X_UNDER', 'HTTP_CONTENT_TYPE', 'HTTP_CONTENT_LENGTH']) expect(env[k]).toBeUndefined();
    const open = encoder({ passProxyHeader: true, passUnderscoreHeaders: true });
    expect(params(open, head('/x', ['Proxy', 'p', 'X_Under', 'u'])).env).toMatchObject({ HTTP_PROXY: 'p', HTTP_X_UNDER: 'u' });
  });

  it('HTTPS on an encrypted connection; an unknown length (-1) leaves CONTENT_LENGTH empty', () => {
    const tls = { ...conn, encrypted: true };
    const { env } = params(e, head('/x', [], { connection: tls }), -1);
    expect(env).toMatchObject({ REQUEST_SCHEME: 'https', HTTPS: 'on', CONTENT_LENGTH: '' });
  });

  it('bytes pass unchanged (latin1 in, latin1 out)', () => {
    const { env } = params(e, head('/caf%C3%A9', ['X-Name', '\u00e9t\u00e9']));
    expect(Buffer.from(env.PATH_INFO, 'latin1').toString('utf8')).toBe('/café');
    expect(env.HTTP_X_NAME).toBe('\u00e9t\u00e9');
  });

  for (const [target, status, message] of [
    ['/../etc/passwd', 400, 'request path "/../etc/passwd" is not a valid absolute path'],
    ['/a%00b', 400, 'request path "/a%00b" is not a valid absolute path'],
  ] as const) {
    it(`${target} → ${status}`, () => {
      expect(() => e.encode(head(target), 0, 1, true)).toThrow(new CgiRequestError(status, message));
    });
  }

  it('with script extensions only those files are scripts; a path naming none → 404', () => {
    const php = encoder({ scriptExtensions: ['.php'] });
    expect(params(php, head('/index.php/x')).env).toMatchObject({ SCRIPT_NAME: '/index.php', PATH_INFO: '/x' });
    expect(() => php.encode(head('/app/run.cgi'), 0, 1, true)).toThrow(new CgiRequestError(404, 'no script at "/app/run.cgi"'));
    expect(() => php.encode(head('/nothing'), 0, 1, true)).toThrow(CgiRequestError);
  });
});
