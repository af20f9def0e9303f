// The read path of the public listener alone: a minimal HTTP responder (a fixed 2000-byte
// answer per request head) reading each accepted socket either as a stream ('data': a new
// buffer and a stream push per read) or into one shared buffer (net's onread, given to
// accepted sockets the way src/server/http1/server.ts does). Run by bench/shared-reads.sh.
//   node bench/shared-reads.mjs data|shared PORT
import net from 'node:net';

const mode = process.argv[2];
const port = Number(process.argv[3]);
const RESPONSE = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 2000\r\nContent-Type: text/html\r\n\r\n${'x'.repeat(2000)}`);

function answer(socket, bytes) {
  let i = 0;
  while ((i = bytes.indexOf('\r\n\r\n', i)) !== -1) {
    socket.write(RESPONSE);
    i += 4;
  }
}

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {});
  socket.on('data', (chunk) => answer(socket, chunk));
});
server.listen(port, '127.0.0.1', () => {
  if (mode !== 'shared') return;
  const shared = Buffer.allocUnsafeSlow(64 * 1024);
  server._handle.onconnection = (status, handle) => {
    if (status < 0) return;
    const socket = new net.Socket({ handle, readable: true, writable: true, onread: { buffer: shared, callback: (n, buf) => answer(socket, buf.subarray(0, n)) } });
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.resume();
  };
});
process.on('SIGTERM', () => process.exit(0));
