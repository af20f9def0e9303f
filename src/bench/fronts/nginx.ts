// nginx, as `upfront nginx-conf` prints it: one worker, nginx's defaults (a new
// FastCGI connection per request, no upstream keepalive). EAGAIN on connect() is
// logged as "(11: Resource temporarily unavailable) while connecting to upstream".
// Started as root, its workers would run as nobody / www-data, who may not reach
// a socket under a private TMPDIR: `user root` keeps them with the user who ran
// the bench, as every other front stays.
// HTTP: proxy_pass to an upstream of the N sockets with `keepalive 32`,
// `proxy_http_version 1.1` and `Connection ""`, as its users set it for app
// servers (see nginxProxyConf); round-robin, nginx's default.
import { nginxConf, nginxProxyConf } from '../nginxConf.js';
import type { PeerFront } from './peer.js';

export const nginx: PeerFront = {
  name: 'nginx',
  binary: 'nginx',
  debianPackage: 'nginx-light',
  configFile: 'nginx.conf',
  config: (s) => (s.asRoot ? 'user root;\n' : '') + nginxConf({ listenHost: '127.0.0.1', listenPort: s.port, sockets: [s.socket], procsPerSocket: 1, backlog: 0, command: [], documentRoot: s.documentRoot, prefixRelative: true }),
  http: {
    config: (s) => (s.asRoot ? 'user root;\n' : '') + nginxProxyConf({ listenHost: '127.0.0.1', listenPort: s.port, sockets: s.sockets, keepalive: 32, prefixRelative: true }),
  },
  // -p: pid file, error log and temp dirs relative to the cell's dir.
  args: (s) => ['-p', `${s.dir}/`, '-c', 'nginx.conf'],
  errorLog: 'error.log',
  eagainLine: /Resource temporarily unavailable/,
  notice: /\[(notice|info)\]/,
  versionArgs: ['-v'],
  version: (out) => out.trim().split('\n')[0].replace(/^nginx version: /, ''),
};
