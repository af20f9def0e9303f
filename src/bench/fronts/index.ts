// The peer fronts, in the order tables list them.
import type { PeerFrontName } from '../results.js';
import { caddy } from './caddy.js';
import { h2o } from './h2o.js';
import { haproxy } from './haproxy.js';
import { lighttpd } from './lighttpd.js';
import { nginx } from './nginx.js';
import type { PeerFront } from './peer.js';

export type { PeerFront, PeerHttpSetup, PeerSetup } from './peer.js';

export const PEERS: Record<PeerFrontName, PeerFront> = { nginx, h2o, haproxy, lighttpd, caddy };
