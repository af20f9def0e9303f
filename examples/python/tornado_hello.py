#!/usr/bin/python3
"""The 2011 benchmark's Hello/N app on Tornado, an HTTP backend for
`upfront run --protocol http`. One process, one IOLoop; it binds the unix
socket path upfront gives it in UPFRONT_SOCKET (or PORT, default 8000, by hand).

    upfront run --protocol http -n 2 --max-requests-per-backend 1 -- /usr/bin/python3 examples/python/tornado_hello.py

Debian's python3-tornado (6.2) runs under Debian's /usr/bin/python3.

    /, /Hello, /Hello/N   N lines (default 100) `<p>Hello, World! line i</p>`
                          rendered by a Tornado template
    /bytes/N              N bytes of ((i*31+7) & 255), streamed, X-Sha256 header
    /sha256               {"bytes": n, "sha256": hex} of the request body (streamed)
"""

import hashlib
import os
import sys

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.template
import tornado.web

sys.dont_write_bytecode = True

HELLO = tornado.template.Template(
    '<!DOCTYPE html>\n'
    '<html>\n<head><meta charset="utf-8"><title>{{ title }}</title></head>\n<body>\n'
    '{% for i in range(1, n + 1) %}<p>Hello, World! line {{ i }}</p>\n{% end %}'
    '</body>\n</html>\n', name='hello.html')

_PATTERN_CHUNK = bytes((i * 31 + 7) & 255 for i in range(256)) * 256  # 64 KiB


def _pattern_sha256(n):
    h = hashlib.sha256()
    full, rest = divmod(n, len(_PATTERN_CHUNK))
    for _ in range(full):
        h.update(_PATTERN_CHUNK)
    h.update(_PATTERN_CHUNK[:rest])
    return h.hexdigest()


class Hello(tornado.web.RequestHandler):
    def get(self, n=None):
        n = 100 if n is None else int(n)
        if n > 1000000:
            raise tornado.web.HTTPError(404)
        self.set_header('Content-Type', 'text/html; charset=utf-8')
        self.write(HELLO.generate(title='Hello', n=n))


class Bytes(tornado.web.RequestHandler):
    async def get(self, n):
        n = int(n)
        self.set_header('Content-Type', 'application/octet-stream')
        self.set_header('Content-Length', str(n))
        self.set_header('X-Sha256', _pattern_sha256(n))
        while n > 0:
            chunk = _PATTERN_CHUNK if n >= len(_PATTERN_CHUNK) else _PATTERN_CHUNK[:n]
            n -= len(chunk)
            self.write(chunk)
            await self.flush()  # backpressure: the next chunk waits for the socket


@tornado.web.stream_request_body
class Sha256(tornado.web.RequestHandler):
    def prepare(self):
        self.hash = hashlib.sha256()
        self.count = 0

    def data_received(self, chunk):
        self.hash.update(chunk)
        self.count += len(chunk)

    def post(self):
        self.write({'bytes': self.count, 'sha256': self.hash.hexdigest()})

    put = post


def main():
    app = tornado.web.Application([
        (r'/', Hello), (r'/Hello', Hello), (r'/Hello/(\d+)', Hello),
        (r'/bytes/(\d+)', Bytes), (r'/sha256', Sha256),
    ])
    server = tornado.httpserver.HTTPServer(app, max_body_size=1 << 30)
    path = os.environ.get('UPFRONT_SOCKET')
    if path:
        server.add_socket(tornado.netutil.bind_unix_socket(path, mode=0o600))
    else:
        server.listen(int(os.environ.get('PORT', '8000')), '127.0.0.1')
    sys.stderr.write('tornado_hello: listening on %s pid=%d\n' % (path or os.environ.get('PORT', '8000'), os.getpid()))
    tornado.ioloop.IOLoop.current().start()


if __name__ == '__main__':
    main()
