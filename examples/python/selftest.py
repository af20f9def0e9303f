#!/usr/bin/env python3
"""Self-test of fcgi_server.py + hello.py with a raw FastCGI client (stdlib only).

    python3 selftest.py --all
        spawns hello.py under `spawn-fcgi -n` (socket on fd 0) in the four
        switch combinations (+ --get-values none / empty, + a --bind run)
        and runs every test against each; exit status 0 when all pass.

    python3 selftest.py --socket PATH [--multithreaded true|false]
                        [--multiplexed true|false] [--max-threads N]
                        [--get-values answer|none|empty]
        runs the tests against a server already listening on PATH, started
        with those switches (the expectations depend on them).
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from fcgi_server import decode_pair_list, encode_pairs  # noqa: E402

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA, GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = range(1, 12)
HDR = struct.Struct('!BBHHBx')


def rec(rtype, rid, content=b'', pad=None):
    n = len(content)
    if pad is None:
        pad = -n & 7
    return HDR.pack(1, rtype, rid, n, pad) + content + b'\0' * pad


def begin(rid, keep=True, role=1):
    return rec(BEGIN, rid, struct.pack('!HB5x', role, 1 if keep else 0))


def params(rid, env, split=None):
    """PARAMS records; `split` cuts the encoded pairs into pieces of that size
    (so pairs straddle records)."""
    body = encode_pairs(env.items())
    out = []
    step = split or 65535
    for off in range(0, len(body), step):
        out.append(rec(PARAMS, rid, body[off:off + step], pad=(off // step) % 8 if split else None))
    out.append(rec(PARAMS, rid))
    return b''.join(out)


def stdin(rid, data, step=65535, end=True):
    out = [rec(STDIN, rid, data[off:off + step]) for off in range(0, len(data), step)]
    if end:
        out.append(rec(STDIN, rid))
    return b''.join(out)


def cgi_env(path, method='GET', body_len=None, ctype=None, extra=None):
    env = {
        'GATEWAY_INTERFACE': 'CGI/1.1', 'SERVER_SOFTWARE': 'selftest', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': path, 'REQUEST_URI': path,
        'QUERY_STRING': '', 'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
        'REMOTE_ADDR': '127.0.0.1', 'HTTP_HOST': 'localhost',
    }
    if body_len is not None:
        env['CONTENT_LENGTH'] = str(body_len)
    if ctype:
        env['CONTENT_TYPE'] = ctype
    if extra:
        env.update(extra)
    return env


def request(rid, path, body=None, keep=True, method=None, ctype=None, split=None, extra=None):
    method = method or ('POST' if body is not None else 'GET')
    env = cgi_env(path, method, len(body) if body is not None else None, ctype, extra)
    return begin(rid, keep) + params(rid, env, split) + stdin(rid, body or b'')


class Response:
    def __init__(self):
        self.stdout = []
        self.stderr = []
        self.app_status = None
        self.proto_status = None
        self.done = False

    def parse(self):
        raw = b''.join(self.stdout)
        head, sep, body = raw.partition(b'\r\n\r\n')
        if not sep:
            head, sep, body = raw.partition(b'\n\n')
        self.headers = []
        for line in head.decode('latin-1').splitlines():
            name, _, value = line.partition(':')
            self.headers.append((name.strip(), value.strip()))
        st = self.header('Status') or '200 OK'
        self.status = int(st.split()[0])
        self.body = body
        self.err = b''.join(self.stderr)
        return self

    def header(self, name, all=False):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals if all else (vals[0] if vals else None)


class Client:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b''
        self.responses = {}     # rid -> Response (current)
        self.finished = []      # (rid, Response) in END_REQUEST order
        self.mgmt = []          # (type, content) of management records
        self.end_order = []     # request ids in END_REQUEST order

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def read_record(self):
        while len(self.buf) < 8:
            d = self.sock.recv(262144)
            if not d:
                return None
            self.buf += d
        ver, rtype, rid, clen, plen = HDR.unpack_from(self.buf)
        assert ver == 1, 'bad version %d from server' % ver
        need = 8 + clen + plen
        while len(self.buf) < need:
            d = self.sock.recv(262144)
            if not d:
                raise EOFError('server closed mid-record')
            self.buf += d
        content = self.buf[8:8 + clen]
        self.buf = self.buf[need:]
        return rtype, rid, content

    def pump(self):
        """Read one record; returns it (None at EOF)."""
        r = self.read_record()
        if r is None:
            return None
        rtype, rid, content = r
        if rid == 0:
            self.mgmt.append((rtype, content))
            return r
        resp = self.responses.setdefault(rid, Response())
        if rtype == STDOUT:
            if content:
                resp.stdout.append(content)
        elif rtype == STDERR:
            if content:
                resp.stderr.append(content)
        elif rtype == END:
            resp.app_status, resp.proto_status = struct.unpack('!IB3x', content)
            resp.done = True
            self.end_order.append(rid)
            del self.responses[rid]
            self.finished.append((rid, resp))
        return r

    def wait_end(self, rid):
        """The next finished response for rid (parsed when complete)."""
        while True:
            for i, (r, resp) in enumerate(self.finished):
                if r == rid:
                    del self.finished[i]
                    if resp.proto_status == 0:
                        resp.parse()
                    return resp
            if self.pump() is None:
                raise EOFError('server closed the connection before END_REQUEST of %d' % rid)

    def wait_mgmt(self, rtype, timeout=None):
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            while True:
                for i, (t, c) in enumerate(self.mgmt):
                    if t == rtype:
                        del self.mgmt[i]
                        return c
                if self.pump() is None:
                    raise EOFError('server closed the connection')
        finally:
            self.sock.settimeout(old)

    def at_eof(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                if self.pump() is None:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, EOFError):
            return True


def get(path, sockpath, rid=1, keep=False, **kw):
    c = Client(sockpath)
    try:
        c.send(request(rid, path, keep=keep, **kw))
        return c.wait_end(rid)
    finally:
        c.close()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def hello_lines(body):
    return sum(1 for line in body.decode().splitlines() if 'Hello, World!' in line)


# --- the tests -------------------------------------------------------------------

class Tests:
    def __init__(self, sockpath, mt, mpx, max_threads, get_values, logfile=None):
        self.path = sockpath
        self.mt = mt
        self.mpx = mpx
        self.max_threads = max_threads
        self.get_values = get_values
        self.logfile = logfile

    def client(self):
        return Client(self.path)

    def t_get_values(self):
        c = self.client()
        names = [('FCGI_MAX_CONNS', ''), ('FCGI_MAX_REQS', ''), ('FCGI_MPXS_CONNS', ''), ('X_UNKNOWN', '')]
        c.send(rec(GET_VALUES, 0, encode_pairs(names)))
        if self.get_values == 'none':
            try:
                c.wait_mgmt(GET_VALUES_RESULT, timeout=0.5)
                raise AssertionError('got a GET_VALUES_RESULT with --get-values none')
            except (socket.timeout, TimeoutError):
                pass
            c.sock.settimeout(10)
            c.send(request(1, '/Hello/3', keep=True))
            check(hello_lines(c.wait_end(1).body) == 3, 'request after ignored GET_VALUES failed')
            c.close()
            return 'no reply, as asked'
        got = dict(decode_pair_list(c.wait_mgmt(GET_VALUES_RESULT)))
        if self.get_values == 'empty':
            check(got == {}, 'expected an empty result, got %r' % got)
            c.close()
            return 'empty result'
        n = str(self.max_threads) if self.mt else '1'
        want = {'FCGI_MAX_CONNS': n, 'FCGI_MAX_REQS': n, 'FCGI_MPXS_CONNS': '1' if self.mpx else '0'}
        check(got == want, 'GET_VALUES_RESULT %r, want %r' % (got, want))
        # only what is asked
        c.send(rec(GET_VALUES, 0, encode_pairs([('FCGI_MPXS_CONNS', '')])))
        got = dict(decode_pair_list(c.wait_mgmt(GET_VALUES_RESULT)))
        check(list(got) == ['FCGI_MPXS_CONNS'], 'answered more than asked: %r' % got)
        c.close()
        return str(want)

    def t_hello_keepconn(self):
        c = self.client()
        c.send(request(1, '/Hello/100', keep=True))
        r = c.wait_end(1)
        check(r.status == 200, 'status %d' % r.status)
        check(hello_lines(r.body) == 100, '%d lines' % hello_lines(r.body))
        check(int(r.header('Content-Length')) == len(r.body), 'content-length mismatch')
        check(r.header('Content-Type').startswith('text/html'), 'content-type')
        check(r.app_status == 0 and r.proto_status == 0, 'end %r %r' % (r.app_status, r.proto_status))
        for n in (7, 0, 1):
            c.send(request(1, '/Hello/%d' % n, keep=True))
            r = c.wait_end(1)
            check(hello_lines(r.body) == n, '/Hello/%d gave %d lines' % (n, hello_lines(r.body)))
        # default and root
        for p in ('/Hello', '/'):
            c.send(request(1, p, keep=True))
            check(hello_lines(c.wait_end(1).body) == 100, p)
        # flup/nginx style: SCRIPT_NAME has the path, no PATH_INFO
        env = cgi_env('')
        del env['PATH_INFO']
        env['SCRIPT_NAME'] = env['REQUEST_URI'] = '/Hello/5'
        c.send(begin(1) + params(1, env) + stdin(1, b''))
        check(hello_lines(c.wait_end(1).body) == 5, 'SCRIPT_NAME-only path')
        c.close()
        return '100 lines, 6 more requests on the same connection'

    def t_pipelined(self):
        c = self.client()
        # two whole requests written back to back, same id and then distinct ids
        c.send(request(1, '/Hello/3', keep=True) + request(1, '/Hello/4', keep=True))
        a = c.wait_end(1)
        b = c.wait_end(1)
        check((hello_lines(a.body), hello_lines(b.body)) == (3, 4), 'same-id pipeline out of order')
        body = os.urandom(200000)
        c.send(request(1, '/sha256', body) + request(2, '/Hello/5', keep=True))
        a = c.wait_end(1)
        b = c.wait_end(2)
        check(json.loads(a.body)['sha256'] == hashlib.sha256(body).hexdigest(), 'pipelined sha256')
        check(hello_lines(b.body) == 5, 'pipelined second request')
        c.end_order.clear()
        c.send(request(3, '/sleep/100', keep=True) + request(4, '/pid', keep=True))
        c.wait_end(4)
        c.wait_end(3)
        c.close()
        if self.mt and self.mpx:
            # distinct ids on a multiplexed connection run at once: the fast one ends first
            check(c.end_order == [4, 3], 'END_REQUEST order %r' % c.end_order)
            return 'same id served in order; distinct ids ran concurrently (fast one first)'
        check(c.end_order == [3, 4], 'END_REQUEST order %r' % c.end_order)
        return 'same id, distinct ids, slow then fast: served in order'

    def t_upload_10mb(self):
        c = self.client()
        t0 = time.monotonic()
        body = os.urandom(10 * 1024 * 1024)
        # params cut into 5-byte records: pairs straddle PARAMS records
        msg = begin(1) + params(1, cgi_env('/sha256', 'POST', len(body), 'application/octet-stream'), split=5)
        c.send(msg)
        t = threading.Thread(target=lambda: c.send(stdin(1, body, step=65535)))
        t.start()
        r = c.wait_end(1)
        t.join()
        dt = time.monotonic() - t0
        got = json.loads(r.body)
        check(got == {'bytes': len(body), 'sha256': hashlib.sha256(body).hexdigest()}, 'sha256 %r' % got)
        # odd record sizes + padding on the way in
        small = os.urandom(100003)
        recs = b''.join(rec(STDIN, 1, small[o:o + 777], pad=(o // 777) % 8) for o in range(0, len(small), 777))
        c.send(begin(1) + params(1, cgi_env('/sha256', 'POST', len(small))) + recs + rec(STDIN, 1))
        got = json.loads(c.wait_end(1).body)
        check(got['sha256'] == hashlib.sha256(small).hexdigest(), 'padded STDIN records')
        c.close()
        return '10 MiB hashed in %.0f ms, pairs straddling PARAMS records' % (dt * 1000)

    def t_echo_stream(self):
        c = self.client()
        body = os.urandom(5 * 1024 * 1024 + 17)
        c.send(begin(1) + params(1, cgi_env('/echo', 'POST', len(body), 'application/x-test')))
        t = threading.Thread(target=lambda: c.send(stdin(1, body)))
        t.start()
        r = c.wait_end(1)
        t.join()
        check(r.body == body, 'echo mismatch (%d bytes back)' % len(r.body))
        check(r.header('Content-Type') == 'application/x-test', 'echo content-type')
        c.close()
        return '5 MiB echoed'

    def t_bytes(self):
        c = self.client()
        n = 1000003
        c.send(request(1, '/bytes/%d' % n))
        r = c.wait_end(1)
        want = bytes((i * 31 + 7) & 255 for i in range(n))
        check(r.body == want, 'pattern mismatch')
        check(r.header('X-Sha256') == hashlib.sha256(want).hexdigest(), 'X-Sha256')
        check(int(r.header('Content-Length')) == n, 'content-length')
        c.close()
        return '%d bytes' % n

    def t_misc_routes(self):
        p = self.path
        r = get('/status/418', p)
        check(r.status == 418 and r.body == b'status 418\n', '/status/418')
        r = get('/cookies', p)
        check(r.header('Set-Cookie', all=True) == ['a=1; Path=/', 'b=2; Path=/'], 'cookies %r' % r.headers)
        check(r.status == 200 and r.header('Location') is None, 'cookies status')
        r = get('/redirect', p)
        check(r.status == 302 and r.header('Location') == '/Hello/1', 'redirect')
        r = get('/stderr', p)
        check(b'hello-stderr-line' in r.err and r.status == 200, 'stderr %r' % r.err)
        r = get('/pid', p)
        check(int(r.body) > 0, 'pid')
        r = get('/big-headers', p)
        check(len(r.header('X-Big')) == 100000, 'big header')
        r = get('/env', p, extra={'HTTP_X_TEST': 'yes'})
        check(json.loads(r.body)['HTTP_X_TEST'] == 'yes', 'env')
        r = get('/raise', p)
        check(r.status == 500 and r.app_status != 0, '/raise gave %d' % r.status)
        r = get('/nope', p)
        check(r.status == 404, '404')
        return 'status cookies redirect stderr pid big-headers env 500 404'

    def t_cant_mpx_or_interleave(self):
        c = self.client()
        b1 = os.urandom(300000)
        b2 = os.urandom(100000)
        c.send(begin(1) + params(1, cgi_env('/sha256', 'POST', len(b1))) + stdin(1, b1[:1000], end=False))
        c.send(begin(2) + params(2, cgi_env('/sha256', 'POST', len(b2))) + stdin(2, b2[:5000], end=False))
        if not self.mpx:
            r2 = c.wait_end(2)
            check(r2.proto_status == 1, 'second id got protocolStatus %r, want CANT_MPX_CONN' % r2.proto_status)
            c.send(stdin(2, b2[5000:]))  # ignored
            c.send(stdin(1, b1[1000:]))
            r1 = c.wait_end(1)
            check(json.loads(r1.body)['sha256'] == hashlib.sha256(b1).hexdigest(), 'first request after CANT_MPX')
            c.send(request(2, '/Hello/2', keep=True))
            check(hello_lines(c.wait_end(2).body) == 2, 'connection still usable')
            c.close()
            return 'CANT_MPX_CONN for id 2, id 1 served'
        c.send(stdin(2, b2[5000:]))
        c.send(stdin(1, b1[1000:]))
        r2 = c.wait_end(2)
        r1 = c.wait_end(1)
        check(json.loads(r1.body)['sha256'] == hashlib.sha256(b1).hexdigest(), 'id 1 sha')
        check(json.loads(r2.body)['sha256'] == hashlib.sha256(b2).hexdigest(), 'id 2 sha')
        c.close()
        return 'interleaved ids 1 and 2 served'

    def t_abort(self):
        c = self.client()
        if self.mt:
            t0 = time.monotonic()
            c.send(request(1, '/sleep/5000', keep=True))
            time.sleep(0.2)
            c.send(rec(ABORT, 1))
            r = c.wait_end(1)
            dt = time.monotonic() - t0
            check(dt < 2.0, 'aborted request ended after %.1fs' % dt)
            check(r.app_status != 0, 'appStatus 0 after abort')
            extra = 'ended after %.0f ms' % (dt * 1000)
        else:
            c.send(request(1, '/sleep/300', keep=True) + rec(ABORT, 1))
            r = c.wait_end(1)
            extra = 'seen after the app (single-threaded)'
        # abort of a request still waiting for STDIN: ended at once, without running
        c.send(begin(1) + params(1, cgi_env('/sha256', 'POST', 10)) + stdin(1, b'abc', end=False))
        time.sleep(0.05)
        c.send(rec(ABORT, 1))
        r = c.wait_end(1)
        check(r.app_status != 0, 'abort mid-STDIN: appStatus %r' % r.app_status)
        c.send(request(1, '/Hello/1', keep=True))
        check(hello_lines(c.wait_end(1).body) == 1, 'connection usable after aborts')
        c.close()
        if self.logfile:
            time.sleep(0.05)
            with open(self.logfile) as f:
                check('fcgi: ABORT_REQUEST request_id=1 pid=' in f.read(), 'no ABORT_REQUEST log line')
        return extra

    def t_early_response(self):
        """The app answers without reading the body: END_REQUEST does not wait for
        the rest of STDIN, which is dropped; the connection stays usable."""
        c = self.client()
        body = os.urandom(300000)
        c.send(begin(1) + params(1, cgi_env('/Hello/2', 'POST', len(body))) + stdin(1, body[:100000], end=False))
        early = not (self.mpx and not self.mt)   # single-threaded multiplexed runs apps once STDIN is complete
        if early:
            c.sock.settimeout(3)
            r = c.wait_end(1)
            check(hello_lines(r.body) == 2, 'early response')
            c.sock.settimeout(10)
        c.send(stdin(1, body[100000:]))
        if not early:
            check(hello_lines(c.wait_end(1).body) == 2, 'response after STDIN')
        c.send(request(1, '/sha256', b'abc', keep=True))
        r = c.wait_end(1)
        check(json.loads(r.body)['bytes'] == 3, 'next request after dropped STDIN: %r' % r.body)
        msg = 'END_REQUEST before the end of STDIN; rest dropped' if early else 'app ran after STDIN (multiplexed, single-threaded)'
        if early:
            # a peer that stops sending the body and reuses the id at once
            c.send(begin(1) + params(1, cgi_env('/Hello/3', 'POST', len(body))) + stdin(1, body[:50000], end=False))
            check(hello_lines(c.wait_end(1).body) == 3, 'early response 2')
            c.send(request(1, '/sha256', b'abcd', keep=True))
            r = c.wait_end(1)
            check(json.loads(r.body)['bytes'] == 4, 'id reused before the end of the old STDIN: %r' % r.body)
            if not self.mpx:
                c.send(begin(1) + params(1, cgi_env('/Hello/1', 'POST', 10)) + stdin(1, b'x', end=False))
                c.wait_end(1)
                c.send(request(2, '/Hello/4', keep=True))   # old id 1 ended: not a multiplexing attempt
                r = c.wait_end(2)
                check(r.proto_status == 0 and hello_lines(r.body) == 4, 'new id after an ended request')
            msg += '; id reused without the end of STDIN'
        c.close()
        return msg

    def t_roles_and_types(self):
        c = self.client()
        c.send(begin(1, role=2))
        r = c.wait_end(1)
        check(r.proto_status == 3, 'role 2 gave %r' % r.proto_status)
        c.send(rec(42, 0, b'x'))
        got = c.wait_mgmt(UNKNOWN_TYPE)
        check(got[0] == 42, 'UNKNOWN_TYPE body %r' % got)
        c.send(request(1, '/Hello/1', keep=True))
        check(hello_lines(c.wait_end(1).body) == 1, 'usable after')
        c.close()
        # without KEEP_CONN the server closes after END_REQUEST
        c = self.client()
        c.send(request(1, '/Hello/2', keep=False))
        check(hello_lines(c.wait_end(1).body) == 2, 'no keep-conn request')
        check(c.at_eof(), 'connection not closed without FCGI_KEEP_CONN')
        c.close()
        return 'UNKNOWN_ROLE, UNKNOWN_TYPE, close without KEEP_CONN'

    def t_robust(self):
        c = self.client()
        c.send(b'GET / HTTP/1.0\r\n\r\n')
        check(c.at_eof(), 'garbage did not close the connection')
        c.close()
        c = self.client()
        c.send(begin(1) + params(1, cgi_env('/sha256', 'POST', 100000)) + stdin(1, b'x' * 500, end=False))
        time.sleep(0.05)
        c.close()   # peer vanishes mid-request
        c = self.client()
        c.send(begin(1) + rec(PARAMS, 1, b'\x7f\x05ab') + rec(PARAMS, 1) + stdin(1, b''))   # truncated pair
        r = c.wait_end(1)
        check(r.status == 500, 'bad params gave %r' % r.status)
        c.close()
        check(hello_lines(get('/Hello/3', self.path).body) == 3, 'server unhealthy after garbage')
        return 'garbage, vanished peer, bad params'

    def t_concurrency(self):
        t0 = time.monotonic()
        results = []

        def one():
            results.append(get('/sleep/300', self.path).body)
        ts = [threading.Thread(target=one) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.monotonic() - t0
        check(results == [b'slept 300\n'] * 2, 'sleep results %r' % results)
        if self.mt:
            check(dt < 0.55, 'two sleeps took %.2fs with multithreaded' % dt)
        else:
            check(dt >= 0.59, 'two sleeps took %.2fs single-threaded' % dt)
        msg = 'two /sleep/300 on two connections: %.0f ms' % (dt * 1000)
        if self.mt:
            # beyond max_threads connections: accepted and closed at once
            time.sleep(0.2)   # let the server see the earlier connections close
            held = [self.client() for _ in range(self.max_threads)]
            for h in held:   # make sure each is served (accepted) first
                h.send(request(1, '/Hello/1', keep=True))
                h.wait_end(1)
            extra = self.client()
            try:
                extra.send(request(1, '/Hello/1', keep=True))
                closed = extra.at_eof(2.0)
            except OSError:
                closed = True
            extra.close()
            for h in held:
                h.close()
            check(closed, 'connection beyond max_threads was served')
            time.sleep(0.1)
            check(hello_lines(get('/Hello/1', self.path).body) == 1, 'served again after closing')
            msg += '; connection %d closed at once' % (self.max_threads + 1)
        if self.mt and self.mpx:
            c = self.client()
            n = self.max_threads + 1
            c.send(b''.join(request(i, '/sleep/400', keep=True) for i in range(1, n + 1)))
            got = sorted(c.wait_end(i).proto_status for i in range(1, n + 1))
            c.close()
            check(got == [0] * self.max_threads + [2], 'protocol statuses %r' % got)
            msg += '; %d in flight on one connection, the next OVERLOADED' % self.max_threads
        return msg

    def run(self):
        names = [n for n in dir(self) if n.startswith('t_')]
        order = ['t_get_values', 't_hello_keepconn', 't_pipelined', 't_upload_10mb', 't_echo_stream',
                 't_bytes', 't_misc_routes', 't_cant_mpx_or_interleave', 't_abort', 't_early_response', 't_roles_and_types',
                 't_robust', 't_concurrency']
        names = order + [n for n in names if n not in order]
        failures = 0
        for name in names:
            t0 = time.monotonic()
            try:
                msg = getattr(self, name)()
                print('  ok   %-26s %6.0f ms  %s' % (name[2:], (time.monotonic() - t0) * 1000, msg or ''))
            except Exception as e:
                failures += 1
                print('  FAIL %-26s %6.0f ms  %s: %s' % (name[2:], (time.monotonic() - t0) * 1000,
                                                       type(e).__name__, e))
            sys.stdout.flush()
        return failures


# --- spawning ---------------------------------------------------------------------

def spawn(mt, mpx, max_threads, get_values, tmpdir, bind=False):
    sock = os.path.join(tmpdir, 'py-%d-%d%d-%s%s.sock' % (os.getpid(), mt, mpx, get_values, '-b' if bind else ''))
    logfile = sock + '.log'
    app = [sys.executable, os.path.join(HERE, 'hello.py'),
           '--multithreaded', str(mt).lower(), '--multiplexed', str(mpx).lower(),
           '--max-threads', str(max_threads), '--get-values', get_values]
    if bind:
        cmd = app + ['--bind', sock]
    else:
        sf = shutil.which('spawn-fcgi') or '/usr/bin/spawn-fcgi'
        cmd = [sf, '-s', sock, '-n', '--'] + app
    log = open(logfile, 'w')
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        if os.path.exists(sock):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.close()
                break
            except OSError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError('server did not start: %s' % open(logfile).read())
        time.sleep(0.02)
    return proc, sock, logfile, log


def stop(proc, sock, logfile, log):
    t0 = time.monotonic()
    proc.terminate()
    try:
        rc = proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    dt = time.monotonic() - t0
    log.close()
    for p in (sock,):
        try:
            os.unlink(p)
        except OSError:
            pass
    return rc, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--all', action='store_true')
    ap.add_argument('--socket')
    ap.add_argument('--multithreaded', default='false')
    ap.add_argument('--multiplexed', default='false')
    ap.add_argument('--max-threads', type=int, default=8)
    ap.add_argument('--get-values', default='answer')
    ap.add_argument('--keep-logs', action='store_true')
    args = ap.parse_args()
    if args.socket:
        t = Tests(args.socket, args.multithreaded == 'true', args.multiplexed == 'true',
                  args.max_threads, args.get_values)
        return 1 if t.run() else 0
    if not args.all:
        ap.error('give --all or --socket PATH')
    combos = [(False, False, 8, 'answer', False), (False, True, 8, 'answer', False),
              (True, False, 4, 'answer', False), (True, True, 3, 'answer', False),
              (False, False, 8, 'none', False), (True, True, 8, 'empty', False),
              (False, False, 8, 'answer', True)]
    tmpdir = tempfile.mkdtemp(prefix='fcgi-selftest-')
    total = 0
    try:
        for mt, mpx, mx, gv, bind in combos:
            print('== multithreaded=%s multiplexed=%s max_threads=%d get_values=%s %s' % (
                str(mt).lower(), str(mpx).lower(), mx, gv, '(--bind)' if bind else '(spawn-fcgi, fd 0)'))
            handle = spawn(mt, mpx, mx, gv, tmpdir, bind)
            try:
                t = Tests(handle[1], mt, mpx, mx, gv, handle[2])
                failures = t.run()
            finally:
                rc, dt = stop(*handle)
            ok = rc == 0 and dt < 3
            print('  %s   SIGTERM -> exit %s in %.0f ms' % ('ok' if ok else 'FAIL', rc, dt * 1000))
            if not ok:
                failures += 1
            with open(handle[2]) as f:
                first = f.readline().strip()
            print('  log: %s' % first)
            if failures and args.keep_logs:
                print(open(handle[2]).read())
            total += failures
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    print('== %s' % ('all passed' if not total else '%d failure(s)' % total))
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())
