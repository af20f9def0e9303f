#!/usr/bin/env python3
"""A pure-stdlib FastCGI 1.0 responder that runs a WSGI application.

It has flup's switches (multithreaded, multiplexed, max threads) and serves
either on fd 0 (FCGI_LISTENSOCK_FILENO, the listening socket a parent such as
spawn-fcgi or upfront hands over) or on a unix socket it binds itself.

    from fcgi_server import WSGIServer
    WSGIServer(app, multithreaded=False, multiplexed=False).run()

or, from the command line (APP defaults to a one-line hello app):

    python3 fcgi_server.py [module:callable] [--multithreaded true|false]
        [--multiplexed true|false] [--max-threads N] [--backlog N]
        [--bind PATH] [--get-values answer|none|empty]

How requests are run, per switch combination:

* multithreaded=false, multiplexed=false: one thread. One connection at a
  time, served until the peer closes it. The app starts when PARAMS end;
  wsgi.input pulls STDIN records from the socket as the app reads. Requests
  written back to back on a kept-alive connection (pipelining) are served in
  order. A BEGIN_REQUEST for a second id while a request's STDIN is still
  arriving gets END_REQUEST(CANT_MPX_CONN).
* multithreaded=false, multiplexed=true: one thread. Interleaved requests are
  collected (STDIN spooled to a SpooledTemporaryFile, 1 MB in memory) and run
  one at a time in the order their STDIN completes.
* multithreaded=true: a reader thread per connection (at most max_threads
  connections; beyond, accept and close at once, as flup does). Apps run in
  worker threads and read wsgi.input from a bounded buffer the reader fills
  (backpressure at 1 MB), so ABORT_REQUEST is seen while the app runs.
  multiplexed=false: one request at a time per connection (a pipelined one
  waits its turn; CANT_MPX_CONN as above). multiplexed=true: every request
  runs at once (one reusing the id of a request still running waits for it),
  at most max_threads in flight overall (beyond: END_REQUEST(OVERLOADED));
  writes go through a per-connection lock.

In every mode END_REQUEST is sent as soon as the app returns, as flup does:
STDIN the app did not read is dropped as it keeps arriving (nginx stops
sending a request body once the response has started). Without
FCGI_KEEP_CONN the connection is closed after END_REQUEST.
"""

import argparse
import errno
import os
import queue
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import deque

__all__ = ['WSGIServer', 'main', 'parse_args', 'encode_pairs', 'decode_pairs']

# --- protocol constants -----------------------------------------------------

FCGI_LISTENSOCK_FILENO = 0
FCGI_VERSION_1 = 1

FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_DATA = 8
FCGI_GET_VALUES = 9
FCGI_GET_VALUES_RESULT = 10
FCGI_UNKNOWN_TYPE = 11

FCGI_KEEP_CONN = 1

FCGI_RESPONDER = 1
FCGI_AUTHORIZER = 2
FCGI_FILTER = 3

FCGI_REQUEST_COMPLETE = 0
FCGI_CANT_MPX_CONN = 1
FCGI_OVERLOADED = 2
FCGI_UNKNOWN_ROLE = 3

FCGI_MAX_CONNS = 'FCGI_MAX_CONNS'
FCGI_MAX_REQS = 'FCGI_MAX_REQS'
FCGI_MPXS_CONNS = 'FCGI_MPXS_CONNS'

_HDR = struct.Struct('!BBHHBx')        # version, type, requestId, contentLength, paddingLength
_BEGIN_BODY = struct.Struct('!HB5x')   # role, flags
_END_BODY = struct.Struct('!IB3x')     # appStatus, protocolStatus
_UNKNOWN_BODY = struct.Struct('!B7x')  # type
_U32 = struct.Struct('!I')
_PAD = bytes(8)

CHUNK = 65528            # largest multiple of 8 <= 65535: full records need no padding
RECV_SIZE = 65536        # recv in big chunks
FLUSH_AT = 65536         # flush the response buffer beyond this many bytes
INPUT_LIMIT = 1 << 20    # threaded mode: STDIN buffered ahead of the app, per request
SPOOL_MAX = 1 << 20      # single-threaded multiplexed: STDIN kept in memory up to this
READ_CHUNK = 65536
LINGER_TIME = 2.0        # closing with STDIN still arriving: drain it this long at most


class ProtocolError(Exception):
    """The peer sent something that is not FastCGI."""


class PeerGone(ConnectionError):
    """The connection to the peer is closed or broken."""


def log(msg):
    try:
        sys.stderr.write('fcgi: %s\n' % msg)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# --- records and name-value pairs -------------------------------------------

def record(rtype, rid, content=b''):
    """One record (content <= 65535 bytes), padded to a multiple of 8."""
    n = len(content)
    pad = -n & 7
    return _HDR.pack(FCGI_VERSION_1, rtype, rid, n, pad) + bytes(content) + _PAD[:pad]


def records(rtype, rid, data):
    """A list of byte strings: `data` as records of at most CHUNK bytes of content."""
    out = []
    n = len(data)
    if n <= CHUNK:
        pad = -n & 7
        out.append(_HDR.pack(FCGI_VERSION_1, rtype, rid, n, pad))
        out.append(data)
        if pad:
            out.append(_PAD[:pad])
        return out
    mv = memoryview(data)
    for off in range(0, n, CHUNK):
        piece = mv[off:off + CHUNK]
        m = len(piece)
        pad = -m & 7
        out.append(_HDR.pack(FCGI_VERSION_1, rtype, rid, m, pad))
        out.append(piece)
        if pad:
            out.append(_PAD[:pad])
    return out


def _enc_len(n):
    return bytes((n,)) if n < 128 else _U32.pack(n | 0x80000000)


def encode_pairs(pairs):
    """Encode (name, value) pairs (str or bytes) as FastCGI name-value pairs."""
    out = []
    for name, value in pairs:
        if isinstance(name, str):
            name = name.encode('latin-1')
        if isinstance(value, str):
            value = value.encode('latin-1')
        out.append(_enc_len(len(name)))
        out.append(_enc_len(len(value)))
        out.append(name)
        out.append(value)
    return b''.join(out)


def decode_pairs(buf):
    """Decode name-value pairs into a dict of str (latin-1, as PEP 3333 wants)."""
    out = {}
    text = buf.decode('latin-1')   # one decode; names and values are str slices of it
    n = len(buf)
    pos = 0
    unpack = _U32.unpack_from
    try:
        while pos < n:
            nl = buf[pos]
            if nl & 0x80:
                nl = unpack(buf, pos)[0] & 0x7fffffff
                pos += 4
            else:
                pos += 1
            vl = buf[pos]
            if vl & 0x80:
                vl = unpack(buf, pos)[0] & 0x7fffffff
                pos += 4
            else:
                pos += 1
            mid = pos + nl
            end = mid + vl
            if end > n:
                raise ProtocolError('truncated name-value pair')
            out[text[pos:mid]] = text[mid:end]
            pos = end
    except (IndexError, struct.error):
        raise ProtocolError('truncated name-value pair') from None
    return out


def decode_pair_list(buf):
    """Like decode_pairs, keeping order and duplicates (for GET_VALUES)."""
    out = []
    n = len(buf)
    pos = 0
    try:
        while pos < n:
            nl = buf[pos]
            if nl & 0x80:
                nl = _U32.unpack_from(buf, pos)[0] & 0x7fffffff
                pos += 4
            else:
                pos += 1
            vl = buf[pos]
            if vl & 0x80:
                vl = _U32.unpack_from(buf, pos)[0] & 0x7fffffff
                pos += 4
            else:
                pos += 1
            if pos + nl + vl > n:
                raise ProtocolError('truncated name-value pair')
            out.append((buf[pos:pos + nl].decode('latin-1'),
                        buf[pos + nl:pos + nl + vl].decode('latin-1')))
            pos += nl + vl
    except (IndexError, struct.error):
        raise ProtocolError('truncated name-value pair') from None
    return out


# --- wsgi.input ---------------------------------------------------------------

class _Input:
    """File-like reading on top of _next(), which returns the next chunk or b''."""

    def __init__(self):
        self._buf = b''
        self.eof = False

    def _next(self):  # pragma: no cover - overridden
        return b''

    def read(self, size=-1):
        buf = self._buf
        if size is None or size < 0:
            parts = [buf]
            while True:
                c = self._next()
                if not c:
                    break
                parts.append(c)
            self._buf = b''
            return b''.join(parts)
        if len(buf) >= size:
            if len(buf) == size:
                self._buf = b''
                return buf
            self._buf = buf[size:]
            return buf[:size]
        parts = [buf] if buf else []
        have = len(buf)
        while have < size:
            c = self._next()
            if not c:
                break
            parts.append(c)
            have += len(c)
        data = parts[0] if len(parts) == 1 else b''.join(parts)
        if have > size:
            self._buf = data[size:]
            return data[:size]
        self._buf = b''
        return data

    def readline(self, size=-1):
        if size is None:
            size = -1
        while True:
            buf = self._buf
            i = buf.find(b'\n')
            if i >= 0 or (0 <= size <= len(buf)):
                end = i + 1 if i >= 0 else size
                if 0 <= size < end:
                    end = size
                self._buf = buf[end:]
                return buf[:end]
            c = self._next()
            if not c:
                self._buf = b''
                return buf
            self._buf = buf + c

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass


class _PullInput(_Input):
    """Single-threaded, not multiplexed: reading pulls records off the socket."""

    def __init__(self, conn):
        _Input.__init__(self)
        self._conn = conn
        self._chunks = deque()
        self._discard = False

    def feed(self, data):
        if not self._discard:
            self._chunks.append(data)

    def end(self):
        self.eof = True

    def abort(self, error=None):
        self.eof = True
        self._discard = True
        self._chunks.clear()

    def discard(self):
        self._discard = True
        self._chunks.clear()

    def _next(self):
        chunks = self._chunks
        while not chunks:
            if self.eof:
                return b''
            if not self._conn.pump():
                raise PeerGone('peer closed the connection before the end of STDIN')
        return chunks.popleft()


class _SpoolInput(_Input):
    """Single-threaded, multiplexed: STDIN spooled, the app runs once it is complete."""

    def __init__(self):
        _Input.__init__(self)
        self._file = None

    def feed(self, data):
        if self._file is None:
            self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
        self._file.write(data)

    def end(self):
        self.eof = True
        if self._file is not None:
            self._file.seek(0)

    def abort(self, error=None):
        self.eof = True
        self.discard()

    def discard(self):
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def _next(self):
        f = self._file
        if f is None:
            return b''
        return f.read(READ_CHUNK)


class _PushInput(_Input):
    """Threaded: the connection's reader thread feeds, the app's thread reads."""

    def __init__(self):
        _Input.__init__(self)
        self._cond = threading.Condition(threading.Lock())
        self._chunks = deque()
        self._size = 0
        self._discard = False
        self._error = None

    def feed(self, data):
        with self._cond:
            while self._size >= INPUT_LIMIT and not self._discard:
                self._cond.wait()
            if self._discard:
                return
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify_all()

    def end(self):
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def abort(self, error=None):
        with self._cond:
            self.eof = True
            self._discard = True
            self._error = error
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    def discard(self):
        with self._cond:
            self._discard = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    def _next(self):
        with self._cond:
            while not self._chunks:
                if self.eof:
                    if self._error is not None:
                        raise self._error
                    return b''
                self._cond.wait()
            c = self._chunks.popleft()
            self._size -= len(c)
            self._cond.notify_all()
            return c


class _Errors:
    """wsgi.errors: writes become FCGI_STDERR records of the request."""

    __slots__ = ('_req',)

    def __init__(self, req):
        self._req = req

    def write(self, s):
        if isinstance(s, str):
            s = s.encode('utf-8', 'replace')
        if s:
            self._req.stderr(s)
        return len(s)

    def writelines(self, seq):
        for s in seq:
            self.write(s)

    def flush(self):
        pass


# --- one request ---------------------------------------------------------------

class _Request:
    __slots__ = ('conn', 'id', 'keep_conn', 'pbuf', 'environ', 'input', 'aborted',
                 'stdin_done', 'started', 'ended', 'obuf', 'olen', 'stderr_used')

    def __init__(self, conn, rid, keep_conn, inp):
        self.conn = conn
        self.id = rid
        self.keep_conn = keep_conn
        self.pbuf = []
        self.environ = None
        self.input = inp
        self.aborted = threading.Event()
        self.stdin_done = False
        self.started = False
        self.ended = False
        self.obuf = []
        self.olen = 0
        self.stderr_used = False

    def _out(self, rtype, data):
        n = len(data)
        if n <= CHUNK:
            pad = -n & 7
            obuf = self.obuf
            obuf.append(_HDR.pack(FCGI_VERSION_1, rtype, self.id, n, pad))
            obuf.append(data)
            if pad:
                obuf.append(_PAD[:pad])
        else:
            self.obuf.extend(records(rtype, self.id, data))
        self.olen += n + 8
        if self.olen >= FLUSH_AT:
            self.flush()

    def stdout(self, data):
        self._out(FCGI_STDOUT, data)

    def stderr(self, data):
        self.stderr_used = True
        self._out(FCGI_STDERR, data)

    def flush(self):
        if self.obuf:
            data = b''.join(self.obuf)
            self.obuf = []
            self.olen = 0
            self.conn.send(data)


# --- one connection ------------------------------------------------------------

class _Conn:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.threaded = server.multithreaded
        self.mpx = server.multiplexed
        self.rbuf = b''
        self.rpos = 0
        # single-threaded: one receive buffer for the process; threaded: one per connection
        self.rmem = server._rmem if not self.threaded else None
        self.receiving = {}     # id -> request whose PARAMS/STDIN are still arriving
        self.live = []          # requests not ended yet, in arrival order
        self.ready = deque()    # single-threaded: requests to run, in order
        self.pending = deque()  # threaded, not multiplexed: requests behind `current`
        self.current = None
        self.lock = threading.Lock() if self.threaded else None
        self.wlock = threading.Lock() if self.threaded else None
        self.broken = False
        self.want_close = False
        self.reader_done = False
        self.closed = False
        self.slot_released = False

    # -- writing --
    def send(self, data):
        if self.broken:
            raise PeerGone('connection already broken')
        try:
            if self.wlock is not None:
                with self.wlock:
                    self.sock.sendall(data)
            else:
                self.sock.sendall(data)
        except OSError as e:
            self.broken = True
            raise PeerGone('send failed: %s' % (e.strerror or e)) from None

    def send_end(self, rid, app_status, proto_status):
        self.send(_HDR.pack(FCGI_VERSION_1, FCGI_END_REQUEST, rid, 8, 0)
                  + _END_BODY.pack(app_status, proto_status))

    # -- reading --
    def _need(self, n):
        """Make at least n unread bytes available; False at EOF."""
        buf = self.rbuf
        pos = self.rpos
        avail = len(buf) - pos
        parts = [buf[pos:]] if avail else []
        mem = self.rmem
        if mem is None:
            mem = self.rmem = memoryview(bytearray(RECV_SIZE))
        recv_into = self.sock.recv_into
        while avail < n:
            # recv_into a buffer kept for the connection: no allocation of a
            # big bytes object (and no mmap/munmap) per recv
            got = recv_into(mem)
            if not got:
                self.rbuf = b''.join(parts)
                self.rpos = 0
                return False
            parts.append(mem[:got].tobytes())
            avail += got
        self.rbuf = parts[0] if len(parts) == 1 else b''.join(parts)
        self.rpos = 0
        return True

    def pump(self):
        """Read one record and act on it. False at EOF (between records)."""
        buf = self.rbuf
        pos = self.rpos
        if len(buf) - pos < 8:
            if not self._need(8):
                if len(self.rbuf):
                    raise PeerGone('peer closed the connection mid-record')
                return False
            buf = self.rbuf
            pos = 0
        ver, rtype, rid, clen, plen = _HDR.unpack_from(buf, pos)
        if ver != FCGI_VERSION_1:
            raise ProtocolError('bad record version %d (type %d)' % (ver, rtype))
        total = 8 + clen + plen
        if len(buf) - pos < total:
            if not self._need(total):
                raise PeerGone('peer closed the connection mid-record')
            buf = self.rbuf
            pos = 0
        content = buf[pos + 8:pos + 8 + clen]
        self.rpos = pos + total

        if rtype == FCGI_STDIN:
            req = self.receiving.get(rid)
            if req is not None and req.environ is not None:
                if clen:
                    req.input.feed(content)
                else:
                    self._stdin_done(req)
        elif rtype == FCGI_PARAMS:
            req = self.receiving.get(rid)
            if req is not None and req.environ is None:
                if clen:
                    req.pbuf.append(content)
                else:
                    self._params_done(req)
        elif rtype == FCGI_BEGIN_REQUEST:
            self._begin(rid, content)
        elif rtype == FCGI_ABORT_REQUEST:
            self._abort(rid)
        elif rid == 0:
            if rtype == FCGI_GET_VALUES:
                self._get_values(content)
            else:
                self.send(record(FCGI_UNKNOWN_TYPE, 0, _UNKNOWN_BODY.pack(rtype)))
        # DATA, and anything else for a request id: ignored (responder role only)
        return True

    def _pump_buffered(self, req):
        """Act on the records already received (no recv) until req's STDIN ends:
        usually just the empty STDIN record that came with the PARAMS."""
        while not req.stdin_done:
            buf = self.rbuf
            pos = self.rpos
            if len(buf) - pos < 8:
                return
            clen = (buf[pos + 4] << 8) | buf[pos + 5]
            if len(buf) - pos < 8 + clen + buf[pos + 6]:
                return
            self.pump()

    # -- record handlers --
    def _new_input(self):
        if self.threaded:
            return _PushInput()
        if self.mpx:
            return _SpoolInput()
        return _PullInput(self)

    def _begin(self, rid, content):
        if len(content) < 8:
            raise ProtocolError('short BEGIN_REQUEST body')
        role, flags = _BEGIN_BODY.unpack_from(content)
        keep = bool(flags & FCGI_KEEP_CONN)
        if rid == 0:
            return
        receiving = self.receiving
        if receiving:
            old = receiving.get(rid)
            if old is not None:
                if not old.ended:
                    log('duplicate BEGIN_REQUEST for request_id=%d ignored' % rid)
                    return
                # the old request ended before its STDIN did: the id is reused
                del receiving[rid]
        if role != FCGI_RESPONDER:
            self.send_end(rid, 0, FCGI_UNKNOWN_ROLE)
            self._close_if_idle(keep)
            return
        if not self.mpx and receiving:
            for other in receiving.values():
                if not other.ended:
                    # another request's input is still arriving: this peer multiplexes
                    self.send_end(rid, 0, FCGI_CANT_MPX_CONN)
                    return
        req = _Request(self, rid, keep, self._new_input())
        self.receiving[rid] = req
        if self.lock is not None:
            with self.lock:
                self.live.append(req)
        else:
            self.live.append(req)

    def _close_if_idle(self, keep):
        if keep:
            return
        if self.lock is not None:
            with self.lock:
                idle = not self.live
        else:
            idle = not self.live
        if idle:
            self.want_close = True
            if self.threaded:
                self._shutdown()

    def _make_environ(self, req):
        server = self.server
        raw = b''.join(req.pbuf)
        req.pbuf = None
        env = decode_pairs(raw)
        if server.extra_environ:
            for k, v in server.extra_environ.items():
                env.setdefault(k, v)
        env.update(server.base_environ)
        env['wsgi.input'] = req.input
        env['wsgi.errors'] = _Errors(req)
        env['fcgi.aborted'] = req.aborted
        env['fcgi.request_id'] = req.id
        if env.get('HTTPS', 'off').lower() in ('on', '1'):
            env['wsgi.url_scheme'] = 'https'
        # as flup's _sanitizeEnv: SCRIPT_NAME, PATH_INFO, QUERY_STRING always present
        if 'SCRIPT_NAME' not in env:
            env['SCRIPT_NAME'] = ''
        if not env.get('PATH_INFO') or not env.get('QUERY_STRING'):
            uri = env.get('REQUEST_URI')
            parts = uri.split('?', 1) if uri is not None else None
            if not env.get('PATH_INFO'):
                if parts is not None:
                    script = env['SCRIPT_NAME']
                    env['PATH_INFO'] = parts[0][len(script):] if parts[0].startswith(script) else parts[0]
                else:
                    env['PATH_INFO'] = ''
            if not env.get('QUERY_STRING'):
                env['QUERY_STRING'] = parts[1] if parts is not None and len(parts) == 2 else ''
        return env

    def _params_done(self, req):
        try:
            req.environ = self._make_environ(req)
        except ProtocolError as e:
            log('bad PARAMS for request_id=%d: %s' % (req.id, e))
            self.receiving.pop(req.id, None)
            req.input.abort()
            self._forget(req)
            req.ended = True
            req.stdout(b'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
                       b'bad FastCGI PARAMS\n')
            req.obuf.append(_HDR.pack(FCGI_VERSION_1, FCGI_STDOUT, req.id, 0, 0))
            req.obuf.append(_HDR.pack(FCGI_VERSION_1, FCGI_END_REQUEST, req.id, 8, 0)
                            + _END_BODY.pack(1, FCGI_REQUEST_COMPLETE))
            req.flush()
            self._close_if_idle(req.keep_conn)
            return
        if not self.threaded:
            if not self.mpx:
                self.ready.append(req)   # streaming: the app starts now
            return                       # multiplexed: runs when STDIN completes
        server = self.server
        if self.mpx:
            with self.lock:
                # the same id written again behind a request still running
                # (pipelining): it waits for that one, served in order
                same_id_busy = False
                for other in self.live:
                    if other is not req and other.id == req.id and other.started and not other.ended:
                        same_id_busy = True
                        break
                if same_id_busy:
                    self.pending.append(req)
                    return
            if not server._acquire(limit=True):
                self.receiving.pop(req.id, None)
                req.input.abort()
                self._forget(req)
                req.ended = True
                self.send_end(req.id, 0, FCGI_OVERLOADED)
                return
            req.started = True
            server.workers.submit(self._run_threaded, req)
            return
        with self.lock:
            if self.current is None:
                self.current = req
                req.started = True
                start = True
            else:
                self.pending.append(req)
                start = False
        if start:
            server._acquire(limit=False)
            server.workers.submit(self._run_threaded, req)

    def _stdin_done(self, req):
        req.stdin_done = True
        del self.receiving[req.id]
        req.input.end()
        if self.mpx and not self.threaded and not req.ended:
            self.ready.append(req)

    def _forget(self, req):
        if self.lock is not None:
            with self.lock:
                if req in self.live:
                    self.live.remove(req)
        elif req in self.live:
            self.live.remove(req)

    def _abort(self, rid):
        log('ABORT_REQUEST request_id=%d pid=%d' % (rid, os.getpid()))
        if self.lock is not None:
            with self.lock:
                req = self._find_live(rid)
                if req is None:
                    return
                req.aborted.set()
                unstarted = not req.started and not req.ended
                if unstarted:
                    req.ended = True
                    self.live.remove(req)
                    if req in self.pending:
                        self.pending.remove(req)
        else:
            req = self._find_live(rid)
            if req is None:
                return
            req.aborted.set()
            unstarted = not req.started and not req.ended
            if unstarted:
                req.ended = True
                self.live.remove(req)
                if req in self.ready:
                    self.ready.remove(req)
        if self.receiving.get(rid) is req:
            del self.receiving[rid]
            req.stdin_done = True
        req.input.abort()
        if unstarted:
            # never ran: end it now
            self.send_end(rid, 1, FCGI_REQUEST_COMPLETE)
            self._close_if_idle(req.keep_conn)

    def _find_live(self, rid):
        for req in self.live:
            if req.id == rid and not req.ended:
                return req
        return None

    def _get_values(self, content):
        mode = self.server.get_values
        if mode == 'none':
            return
        if mode == 'empty':
            self.send(record(FCGI_GET_VALUES_RESULT, 0, b''))
            return
        known = self.server.capability
        asked = decode_pair_list(content)
        answer = [(name, known[name]) for name, _ in asked if name in known]
        body = encode_pairs(answer)
        self.send(b''.join(records(FCGI_GET_VALUES_RESULT, 0, body)))

    # -- running the app --
    def run_request(self, req):
        """Run the WSGI app for req, write its response and END_REQUEST."""
        env = req.environ
        status_headers = None
        headers_sent = False
        app_status = 0

        def write(data):
            nonlocal headers_sent
            if data.__class__ is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError('a WSGI app must write/yield bytes, not %s' % type(data).__name__)
            if not headers_sent:
                if status_headers is None:
                    raise AssertionError('write() before start_response()')
                status, headers = status_headers
                lines = ['Status: ', status, '\r\n']
                for name, value in headers:
                    lines.append(name)
                    lines.append(': ')
                    lines.append(value)
                    lines.append('\r\n')
                lines.append('\r\n')
                head = ''.join(lines).encode('latin-1')
                headers_sent = True
                if len(data) <= 16384:
                    req.stdout(head + data)
                    return
                req.stdout(head)
            if data:
                req.stdout(data)

        def start_response(status, headers, exc_info=None):
            nonlocal status_headers
            if exc_info:
                try:
                    if headers_sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif status_headers is not None:
                raise AssertionError('start_response() called twice')
            status_headers = (status, headers)
            return write

        try:
            result = self.server.app(env, start_response)
            try:
                for data in result:
                    if data:
                        write(data)
                if not headers_sent:
                    write(b'')
            finally:
                close = getattr(result, 'close', None)
                if close is not None:
                    close()
        except PeerGone:
            raise
        except Exception as e:
            if self.broken:
                raise PeerGone('connection broken while the app ran') from None
            app_status = 1
            log('app error request_id=%d pid=%d %s %s: %s: %s' % (
                req.id, os.getpid(), env.get('REQUEST_METHOD', '-'),
                env.get('REQUEST_URI') or env.get('PATH_INFO', '-'),
                type(e).__name__, str(e).replace('\n', ' ')[:300]))
            if not headers_sent:
                headers_sent = True
                req.stdout(b'Status: 500 Internal Server Error\r\n'
                           b'Content-Type: text/plain; charset=utf-8\r\n\r\n'
                           b'Internal Server Error\n')

        # STDIN the app did not read is dropped as it arrives (the request stays
        # in `receiving` until its empty STDIN record, or a new BEGIN_REQUEST
        # for its id). END_REQUEST does not wait for it, as in flup: a peer may
        # stop sending the body once the response has started (nginx does).
        req.input.discard()
        if not self.threaded and not req.stdin_done:
            self._pump_buffered(req)

        if req.aborted.is_set() and not app_status:
            app_status = 1
        rid = req.id
        obuf = req.obuf
        obuf.append(_HDR.pack(FCGI_VERSION_1, FCGI_STDOUT, rid, 0, 0))
        if req.stderr_used:
            obuf.append(_HDR.pack(FCGI_VERSION_1, FCGI_STDERR, rid, 0, 0))
        obuf.append(_HDR.pack(FCGI_VERSION_1, FCGI_END_REQUEST, rid, 8, 0)
                    + _END_BODY.pack(app_status, FCGI_REQUEST_COMPLETE))
        req.ended = True
        if self.threaded and not req.keep_conn:
            # the connection ends with this END_REQUEST: free its slot first, so
            # that the peer's next connection (it may connect as soon as it reads
            # END_REQUEST) is not refused as one too many
            self._release_slot()
        req.flush()

    # -- single-threaded serving (both multiplexed and not) --
    def serve_single(self):
        server = self.server
        ready = self.ready
        rid = 0
        try:
            while True:
                while not ready:
                    if self.want_close or not self.pump():
                        return
                req = ready.popleft()
                if req.ended:
                    continue
                req.started = True
                rid = req.id
                server._busy = True
                try:
                    self.run_request(req)
                finally:
                    server._busy = False
                self.live.remove(req)
                if server._stopping:
                    server._exit(0)
                if not req.keep_conn:
                    if not req.stdin_done:
                        self._linger()
                    return
        except PeerGone as e:
            if self.live:
                log('connection lost mid-request request_id=%d pid=%d: %s' % (rid, os.getpid(), e))
        except ProtocolError as e:
            log('protocol error, closing connection pid=%d: %s' % (os.getpid(), e))
        except OSError as e:
            log('connection error pid=%d: %s' % (os.getpid(), e))
        finally:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    # -- threaded serving --
    def serve_threaded(self):
        """The connection's reader thread."""
        error = None
        try:
            while self.pump():
                if self.want_close and not self.receiving:
                    # the last request ended without FCGI_KEEP_CONN and its
                    # STDIN is all in: nothing more to read
                    break
        except PeerGone as e:
            error = e
        except ProtocolError as e:
            log('protocol error, closing connection pid=%d: %s' % (os.getpid(), e))
            error = PeerGone(str(e))
        except OSError as e:
            if not self.broken and not self.want_close:
                log('connection error pid=%d: %s' % (os.getpid(), e))
            error = PeerGone(str(e))
        finally:
            self._reader_exit(error)

    def _reader_exit(self, error):
        gone = error or PeerGone('peer closed the connection before the end of STDIN')
        with self.lock:
            self.reader_done = True
            # requests already ended (their unread STDIN was being dropped) do not count
            incomplete = [r for r in self.receiving.values() if not r.ended]
            self.receiving.clear()
            for req in incomplete:
                if not req.started and req in self.live:
                    # cannot run without its input, nobody to answer
                    req.ended = True
                    self.live.remove(req)
                    if req in self.pending:
                        self.pending.remove(req)
            close_now = not self.live
        for req in incomplete:
            req.input.abort(gone)
        if incomplete and error is not None:
            log('connection lost mid-request pid=%d: %s' % (os.getpid(), error))
        if close_now:
            self._close()

    def _run_threaded(self, req):
        server = self.server
        try:
            self.run_request(req)
        except PeerGone as e:
            if not req.aborted.is_set():
                log('connection lost mid-request request_id=%d pid=%d: %s' % (req.id, os.getpid(), e))
            self._shutdown()
        except Exception as e:  # a bug of ours: never kill the worker
            log('internal error request_id=%d pid=%d: %r' % (req.id, os.getpid(), e))
            self._shutdown()
        nxt = None
        with self.lock:
            req.ended = True
            if req in self.live:
                self.live.remove(req)
            if not self.mpx:
                self.current = None
                while self.pending:
                    cand = self.pending.popleft()
                    if not cand.ended:
                        self.current = nxt = cand
                        cand.started = True
                        break
            else:
                for cand in self.pending:
                    if cand.id == req.id and not cand.ended:
                        self.pending.remove(cand)
                        nxt = cand
                        cand.started = True
                        break
            close_now = self.reader_done and not self.live
        server._release()
        if nxt is not None:
            server._acquire(limit=False)
            server.workers.submit(self._run_threaded, nxt)
        if not req.keep_conn:
            self.want_close = True
            if req.stdin_done:
                self._shutdown()
            else:
                # STDIN still arriving: closing now would reset the connection
                # before the peer reads the response (see _linger); stop
                # writing, let the reader drop what still comes until the peer
                # closes, and shut down within LINGER_TIME anyway
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                t = threading.Timer(LINGER_TIME, self._shutdown)
                t.daemon = True
                t.start()
        if close_now:
            self._close()

    def _linger(self):
        """Close with the peer's STDIN still arriving (single-threaded): stop
        writing, then read and drop until the peer closes, for at most
        LINGER_TIME. Closing with unread data would reset the connection (unix
        sockets too: the peer's read fails with ECONNRESET) and the peer could
        lose the response it has not read yet."""
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_TIME
            mem = self.rmem or memoryview(bytearray(RECV_SIZE))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(min(left, 1.0))
                if not sock.recv_into(mem):
                    break
        except OSError:
            pass

    def _shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _release_slot(self):
        with self.lock:
            if self.slot_released:
                return
            self.slot_released = True
        self.server._conn_closed()

    def _close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        self._release_slot()


# --- worker threads --------------------------------------------------------------

class _Workers:
    """Daemon worker threads, created on demand and reused."""

    def __init__(self):
        self._q = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn, *args):
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            threading.Thread(target=self._loop, args=((fn, args),), daemon=True).start()
        else:
            self._q.put((fn, args))

    def _loop(self, task):
        while True:
            fn, args = task
            try:
                fn(*args)
            except BaseException as e:  # pragma: no cover
                log('worker error pid=%d: %r' % (os.getpid(), e))
            task = None
            with self._lock:
                self._idle += 1
            task = self._q.get()


# --- the server -------------------------------------------------------------------

def _hello_app(environ, start_response):
    body = b'Hello, World!\n'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


class WSGIServer:
    """FastCGI responder for a WSGI app, with flup's switches.

    bind=None serves on fd 0 (FCGI_LISTENSOCK_FILENO): the already listening
    socket a parent handed over; it is never bound or listened on here.
    `bindAddress` and `maxThreads` are accepted as flup-style aliases.
    """

    def __init__(self, application, multithreaded=False, multiplexed=False,
                 max_threads=8, backlog=1024, bind=None, get_values='answer',
                 environ=None, bindAddress=None, maxThreads=None, **_ignored):
        if bind is None and bindAddress is not None:
            bind = bindAddress
        if maxThreads is not None:
            max_threads = maxThreads
        if get_values not in ('answer', 'none', 'empty'):
            raise ValueError('get_values must be answer, none or empty')
        if int(max_threads) < 1:
            raise ValueError('max_threads must be >= 1')
        self.app = application
        self.multithreaded = bool(multithreaded)
        self.multiplexed = bool(multiplexed)
        self.max_threads = int(max_threads)
        self.backlog = int(backlog)
        self.bind = bind
        self.get_values = get_values
        if self.multithreaded:
            n = str(self.max_threads)
            self.capability = {FCGI_MAX_CONNS: n, FCGI_MAX_REQS: n,
                               FCGI_MPXS_CONNS: '1' if self.multiplexed else '0'}
        else:
            self.capability = {FCGI_MAX_CONNS: '1', FCGI_MAX_REQS: '1',
                               FCGI_MPXS_CONNS: '1' if self.multiplexed else '0'}
        self.extra_environ = dict(environ or {})
        base = {}
        base.update({
            'wsgi.version': (1, 0),
            'wsgi.multithread': self.multithreaded,
            'wsgi.multiprocess': True,
            'wsgi.run_once': False,
            'wsgi.url_scheme': 'http',
        })
        self.base_environ = base
        self.workers = _Workers() if self.multithreaded else None
        self._rmem = None if self.multithreaded else memoryview(bytearray(RECV_SIZE))
        self._lock = threading.Lock()
        self._conns = 0
        self._inflight = 0
        self._busy = False
        self._stopping = False
        self._lsock = None
        self._bound_path = None

    # -- counters (threaded mode) --
    def _acquire(self, limit):
        with self._lock:
            if limit and self._inflight >= self.max_threads:
                return False
            self._inflight += 1
            return True

    def _release(self):
        with self._lock:
            self._inflight -= 1

    def _conn_closed(self):
        with self._lock:
            self._conns -= 1

    # -- listening socket --
    def _open_listener(self):
        if self.bind:
            path = self.bind
            try:
                import stat
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            except FileNotFoundError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(self.backlog)
            self._bound_path = path
            return s, path
        try:
            s = socket.socket(fileno=FCGI_LISTENSOCK_FILENO)
        except OSError as e:
            raise SystemExit('fcgi: fd 0 is not a socket (%s); run under spawn-fcgi/upfront '
                             'or pass --bind PATH' % (e.strerror or e))
        try:
            listening = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            listening = 0
        if not listening:
            s.detach()
            raise SystemExit('fcgi: fd 0 is a socket but not a listening one; '
                             'run under spawn-fcgi/upfront or pass --bind PATH')
        return s, 'fd 0'

    def _accept(self):
        """accept() that works whether the inherited fd 0 is blocking or not
        (its O_NONBLOCK flag is shared with the parent: never changed here)."""
        lsock = self._lsock
        while True:
            try:
                csock, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                try:
                    select.select([lsock], [], [])
                except InterruptedError:
                    pass
                continue
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log('accept: %s; retrying' % e.strerror)
                    time.sleep(0.1)
                    continue
                raise
            if csock.gettimeout() is not None:   # inherited a non-blocking fd 0
                csock.setblocking(True)
            if self._allowed is not None and csock.family in (socket.AF_INET, socket.AF_INET6):
                if (addr[0] if addr else None) not in self._allowed:
                    log('connection from %s refused by FCGI_WEB_SERVER_ADDRS' % (addr,))
                    csock.close()
                    continue
            return csock

    # -- signals --
    def _exit(self, code):
        if self._bound_path:
            try:
                os.unlink(self._bound_path)
            except OSError:
                pass
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)

    def _on_signal(self, signum, frame):
        if self._stopping:
            return
        self._stopping = True
        busy = self._inflight > 0 if self.multithreaded else self._busy
        log('signal %d, exiting pid=%d%s' % (signum, os.getpid(),
                                             ' (after the current request, 2 s at most)' if busy else ''))
        if self.multithreaded:
            deadline = time.monotonic() + 2.0
            while self._inflight > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            self._exit(0)
        elif not self._busy:
            self._exit(0)
        else:
            # let the current request finish if it is quick
            t = threading.Timer(2.0, self._exit, (0,))
            t.daemon = True
            t.start()

    # -- main loop --
    def run(self):
        addrs = os.environ.get('FCGI_WEB_SERVER_ADDRS')
        self._allowed = set(a.strip() for a in addrs.split(',') if a.strip()) if addrs else None
        self._lsock, where = self._open_listener()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            if hasattr(signal, 'SIGPIPE'):
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        log('serving on %s pid=%d multithreaded=%s multiplexed=%s max_threads=%d' % (
            where, os.getpid(), str(self.multithreaded).lower(),
            str(self.multiplexed).lower(), self.max_threads))
        try:
            if self.multithreaded:
                self._serve_threaded()
            else:
                self._serve_single()
        finally:
            if self._bound_path:
                try:
                    os.unlink(self._bound_path)
                except OSError:
                    pass
        return 0

    def _serve_single(self):
        while True:
            csock = self._accept()
            _Conn(self, csock).serve_single()
            if self._stopping:
                self._exit(0)

    def _serve_threaded(self):
        while True:
            csock = self._accept()
            with self._lock:
                full = self._conns >= self.max_threads
                if not full:
                    self._conns += 1
            if full:
                csock.close()   # flup: at the thread limit, accept and close at once
                continue
            conn = _Conn(self, csock)
            try:
                self.workers.submit(conn.serve_threaded)
            except RuntimeError as e:
                log('cannot start a thread: %s' % e)
                csock.close()
                self._conn_closed()


# --- command line ---------------------------------------------------------------

def _bool(s):
    v = str(s).strip().lower()
    if v in ('true', '1', 'yes', 'on'):
        return True
    if v in ('false', '0', 'no', 'off'):
        return False
    raise argparse.ArgumentTypeError('expected true or false, got %r' % s)


def _positive(s):
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError('expected an integer, got %r' % s) from None
    if n < 1:
        raise argparse.ArgumentTypeError('expected an integer >= 1, got %r' % s)
    return n


def add_arguments(p):
    p.add_argument('--multithreaded', type=_bool, default=False, metavar='true|false',
                   help='serve several connections/requests at once (default false)')
    p.add_argument('--multiplexed', type=_bool, default=False, metavar='true|false',
                   help='accept several requests on one connection (default false)')
    p.add_argument('--max-threads', type=_positive, default=8, metavar='N',
                   help='multithreaded: max connections, and max requests in flight (default 8)')
    p.add_argument('--backlog', type=_positive, default=1024, metavar='N',
                   help='listen backlog, only with --bind (default 1024)')
    p.add_argument('--bind', default=None, metavar='PATH',
                   help='bind this unix socket path; default: serve on fd 0 (FCGI_LISTENSOCK_FILENO)')
    p.add_argument('--get-values', choices=('answer', 'none', 'empty'), default='answer',
                   help='how to answer FCGI_GET_VALUES (default answer)')
    return p


def parse_args(argv=None, prog=None, description=None, with_app=False):
    p = argparse.ArgumentParser(prog=prog, description=description)
    if with_app:
        p.add_argument('app', nargs='?', default=None, metavar='module:callable',
                       help='the WSGI app to serve (default: a hello-world app)')
    add_arguments(p)
    return p.parse_args(argv)


def _load_app(spec):
    import importlib
    mod_name, _, attr = spec.partition(':')
    sys.path.insert(0, os.getcwd())
    mod = importlib.import_module(mod_name)
    return getattr(mod, attr or 'application')


def main(app=None, argv=None, prog=None, description=None):
    args = parse_args(argv, prog=prog, description=description, with_app=app is None)
    if app is None:
        app = _load_app(args.app) if args.app else _hello_app
    server = WSGIServer(app, multithreaded=args.multithreaded, multiplexed=args.multiplexed,
                        max_threads=args.max_threads, backlog=args.backlog, bind=args.bind,
                        get_values=args.get_values)
    return server.run()


if __name__ == '__main__':
    sys.exit(main())
