#!/usr/bin/env python3
"""The app of the 2011 benchmark (`/Hello/N`) plus routes for tests, served by
fcgi_server.py over FastCGI.

    python3 hello.py [--multithreaded true|false] [--multiplexed true|false]
                     [--max-threads N] [--backlog N] [--bind PATH]
                     [--get-values answer|none|empty]

Without --bind it serves on fd 0 (run it under spawn-fcgi or upfront).
Routes (dispatched on PATH_INFO, or SCRIPT_NAME when PATH_INFO is empty, as
nginx's stock fastcgi_params + flup give it):

    /, /Hello, /Hello/N   N lines (default 100) `<p>Hello, World! line i</p>`
                          rendered through a small compiled template
    /sleep/MS             sleeps MS ms (10 ms steps, stops early when
                          environ['fcgi.aborted'] is set), answers `slept MS`
    /echo                 streams the request body back (?buffer=1, or behind
                          nginx: reads it whole first, spooled)
    /sha256               {"bytes": n, "sha256": hex} of the request body
    /bytes/N              N bytes of ((i*31+7) & 255), X-Sha256 header
    /env                  JSON of the string environ values
    /status/CODE          that status, short body
    /cookies              two Set-Cookie headers
    /redirect             302 to /Hello/1
    /stderr               writes `hello-stderr-line` to wsgi.errors
    /stderr/N             N records of 4 KB to wsgi.errors
    /pid                  the process id
    /big-headers          one ~100 KB response header
    /raise                the app raises (the server answers 500)
"""

import functools
import hashlib
import html
import json
import os
import re
import sys
import tempfile
import time
from http import HTTPStatus

sys.dont_write_bytecode = True   # no __pycache__ next to the example
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi_server  # noqa: E402

# --- a tiny compiled template engine, as the frameworks of 2011 had -----------
#
#   {{ expr }}                   the value, HTML-escaped
#   {% for x in expr %} {% endfor %}

_TOKEN = re.compile(r'\{\{(.*?)\}\}|\{%(.*?)%\}', re.S)


def _escape(v):
    return str(v) if v.__class__ is int else html.escape(str(v), True)


def compile_template(source, params, name='<template>'):
    """Compile `source` into a function render(**params) -> str."""
    code = ['def render(%s):' % ', '.join(params), ' _o = []', ' _a = _o.append']
    indent = 1
    run = []  # adjacent text / expression pieces, emitted as one append

    def flush():
        if run:
            code.append(' ' * indent + '_a(' + ' + '.join(run) + ')')
            del run[:]

    pos = 0
    for m in _TOKEN.finditer(source):
        if m.start() > pos:
            run.append(repr(source[pos:m.start()]))
        pos = m.end()
        if m.group(1) is not None:
            run.append('_e(%s)' % m.group(1).strip())
            continue
        stmt = m.group(2).strip()
        flush()
        if stmt.startswith('for '):
            code.append(' ' * indent + stmt + ':')
            indent += 1
        elif stmt == 'endfor':
            if indent == 1:
                raise SyntaxError('endfor without for in ' + name)
            indent -= 1
        else:
            raise SyntaxError('unknown tag {%% %s %%} in %s' % (stmt, name))
    if pos < len(source):
        run.append(repr(source[pos:]))
    flush()
    if indent != 1:
        raise SyntaxError('unclosed for in ' + name)
    code.append(" return ''.join(_o)")
    ns = {'_e': _escape}
    exec(compile('\n'.join(code), name, 'exec'), ns)
    return ns['render']


HELLO = compile_template(
    '<!DOCTYPE html>\n'
    '<html>\n<head><meta charset="utf-8"><title>{{ title }}</title></head>\n<body>\n'
    '{% for i in range(1, n + 1) %}<p>Hello, World! line {{ i }}</p>\n{% endfor %}'
    '</body>\n</html>\n',
    ('title', 'n'), 'hello.html')


# --- helpers ----------------------------------------------------------------------

def _text(start_response, status, body, ctype='text/plain; charset=utf-8', extra=()):
    if isinstance(body, str):
        body = body.encode('utf-8')
    headers = [('Content-Type', ctype), ('Content-Length', str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def _json(start_response, obj, status='200 OK'):
    return _text(start_response, status, json.dumps(obj, sort_keys=True) + '\n',
                 'application/json')


def _not_found(environ, start_response):
    return _text(start_response, '404 Not Found', 'not found\n')


def _status_line(code):
    try:
        return '%d %s' % (code, HTTPStatus(code).phrase)
    except ValueError:
        return '%d Unknown' % code


def _input_chunks(environ, limit=None, size=65536):
    """The request body in chunks; at most `limit` bytes when given."""
    inp = environ['wsgi.input']
    left = limit
    while left is None or left > 0:
        chunk = inp.read(size if left is None else min(size, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def _content_length(environ):
    try:
        n = int(environ.get('CONTENT_LENGTH') or '')
    except ValueError:
        return None
    return n if n >= 0 else None


_PATTERN = bytes((i * 31 + 7) & 255 for i in range(256))
_PATTERN_CHUNK = _PATTERN * 256  # 64 KiB: every full chunk of the pattern is the same


@functools.lru_cache(maxsize=64)
def _pattern_sha256(n):
    h = hashlib.sha256()
    full, rest = divmod(n, len(_PATTERN_CHUNK))
    for _ in range(full):
        h.update(_PATTERN_CHUNK)
    h.update(_PATTERN_CHUNK[:rest])
    return h.hexdigest()


def _pattern_chunks(n):
    chunk = _PATTERN_CHUNK
    while n >= len(chunk):
        yield chunk
        n -= len(chunk)
    if n:
        yield chunk[:n]


class _NeverSet:
    def is_set(self):
        return False


# --- routes --------------------------------------------------------------------------

def hello(environ, start_response, arg):
    if arg is None:
        n = 100
    else:
        try:
            n = int(arg)
        except ValueError:
            return _not_found(environ, start_response)
        if n < 0 or n > 1000000:
            return _not_found(environ, start_response)
    body = HELLO(title='Hello', n=n).encode('utf-8')
    start_response('200 OK', [('Content-Type', 'text/html; charset=utf-8'),
                              ('Content-Length', str(len(body)))])
    return [body]


def sleep(environ, start_response, arg):
    try:
        ms = int(arg)
    except (TypeError, ValueError):
        return _not_found(environ, start_response)
    aborted = environ.get('fcgi.aborted') or _NeverSet()
    deadline = time.monotonic() + ms / 1000.0
    while not aborted.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(0.01, left))
    return _text(start_response, '200 OK', 'slept %d\n' % ms)


def _echo_buffered(environ, start_response, limit, headers):
    """Read the whole body first (memory up to 1 MiB, then a temp file), then send it back."""
    f = tempfile.SpooledTemporaryFile(max_size=1 << 20)
    try:
        for chunk in _input_chunks(environ, limit):
            f.write(chunk)
        f.seek(0)
        start_response('200 OK', headers)
        while True:
            chunk = f.read(65536)
            if not chunk:
                return
            yield chunk
    finally:
        f.close()


def echo(environ, start_response, arg):
    # Full duplex by default: each 64 KiB read is yielded at once. nginx stops
    # sending the request body as soon as the response starts (its FastCGI
    # upstream is half duplex), so behind nginx (SERVER_SOFTWARE nginx/...) or
    # with ?buffer=1 the body is read whole (spooled) before it is sent back;
    # ?buffer=0 forces streaming.
    n = _content_length(environ)
    headers = [('Content-Type', environ.get('CONTENT_TYPE') or 'application/octet-stream')]
    if n is not None:
        headers.append(('Content-Length', str(n)))
    query = environ.get('QUERY_STRING', '')
    buffered = 'buffer=1' in query or (
        environ.get('SERVER_SOFTWARE', '').startswith('nginx') and 'buffer=0' not in query)
    if buffered:
        return _echo_buffered(environ, start_response, n, headers)
    start_response('200 OK', headers)
    return _input_chunks(environ, n)


def sha256(environ, start_response, arg):
    h = hashlib.sha256()
    count = 0
    for chunk in _input_chunks(environ, _content_length(environ)):
        h.update(chunk)
        count += len(chunk)
    return _json(start_response, {'bytes': count, 'sha256': h.hexdigest()})


def byte_pattern(environ, start_response, arg):
    try:
        n = int(arg)
    except (TypeError, ValueError):
        return _not_found(environ, start_response)
    if n < 0:
        return _not_found(environ, start_response)
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', str(n)),
                              ('X-Sha256', _pattern_sha256(n))])
    return _pattern_chunks(n)


def env(environ, start_response, arg):
    return _json(start_response, {k: v for k, v in environ.items() if isinstance(v, str)})


def status(environ, start_response, arg):
    try:
        code = int(arg)
    except (TypeError, ValueError):
        return _not_found(environ, start_response)
    if not 100 <= code <= 999:
        return _not_found(environ, start_response)
    line = _status_line(code)
    if code in (204, 304) or code < 200:
        start_response(line, [])
        return []
    return _text(start_response, line, 'status %d\n' % code)


def cookies(environ, start_response, arg):
    return _text(start_response, '200 OK', 'cookies set\n',
                 extra=[('Set-Cookie', 'a=1; Path=/'), ('Set-Cookie', 'b=2; Path=/')])


def redirect(environ, start_response, arg):
    return _text(start_response, '302 Found', 'see /Hello/1\n', extra=[('Location', '/Hello/1')])


def stderr(environ, start_response, arg):
    errors = environ['wsgi.errors']
    if arg is None:
        errors.write('hello-stderr-line\n')
        errors.flush()
        return _text(start_response, '200 OK', 'wrote to wsgi.errors\n')
    # /stderr/N: N records of 4 KB each, a chatty app (the front logs a bounded part)
    try:
        n = int(arg)
    except ValueError:
        return _not_found(environ, start_response)
    if n < 0 or n > 100000:
        return _not_found(environ, start_response)
    for i in range(n):
        errors.write('hello-stderr-line %d %s\n' % (i, 'e' * 4000))
        errors.flush()
    return _text(start_response, '200 OK', 'wrote %d records to wsgi.errors\n' % n)


def pid(environ, start_response, arg):
    return _text(start_response, '200 OK', '%d\n' % os.getpid())


_BIG = 'x' * 100000


def big_headers(environ, start_response, arg):
    return _text(start_response, '200 OK', 'big header sent\n', extra=[('X-Big', _BIG)])


def fail(environ, start_response, arg):
    raise RuntimeError('this route always fails')


# first path segment -> (handler, takes an argument)
ROUTES = {
    '': (hello, False),
    'Hello': (hello, True),
    'sleep': (sleep, True),
    'echo': (echo, False),
    'sha256': (sha256, False),
    'bytes': (byte_pattern, True),
    'env': (env, False),
    'status': (status, True),
    'cookies': (cookies, False),
    'redirect': (redirect, False),
    'stderr': (stderr, True),
    'pid': (pid, False),
    'big-headers': (big_headers, False),
    'raise': (fail, False),
}


def application(environ, start_response):
    # behind flup + nginx's stock params SCRIPT_NAME holds the path and
    # PATH_INFO is empty; behind upfront SCRIPT_NAME is empty
    path = environ.get('PATH_INFO') or environ.get('SCRIPT_NAME') or '/'
    parts = path.strip('/').split('/', 1)
    route = ROUTES.get(parts[0])
    if route is None:
        return _not_found(environ, start_response)
    handler, takes_arg = route
    arg = parts[1] if len(parts) > 1 else None
    if arg is not None and not takes_arg:
        return _not_found(environ, start_response)
    return handler(environ, start_response, arg)


if __name__ == '__main__':
    sys.exit(fcgi_server.main(application, prog='hello.py',
                              description='The Hello/N app on the stdlib FastCGI server.'))
