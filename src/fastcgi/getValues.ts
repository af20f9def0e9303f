// FCGI_GET_VALUES on a connection of its own (readiness probes): what an application
// says it can do. A hint only: some say more than they do.
import type { Socket } from 'node:net';
import { decodePairs, encodePairs } from './nameValue.js';
import { RecordType } from './protocol.js';
import { RecordDecoder, encodeRecord } from './records.js';

export const VALUE_NAMES = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS'] as const;

/**
 * Sends GET_VALUES for `names` on a connected socket; resolves with the pairs of the
 * GET_VALUES_RESULT, or null when the application closes or sends something else.
 * The caller bounds the wait and destroys the socket.
 */
export function getValues(socket: Socket, names: readonly string[] = VALUE_NAMES): Promise<Array<[string, string]> | null> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (pairs: Array<[string, string]> | null) => {
      if (done) return;
      done = true;
      socket.removeListener('data', onData);
      resolve(pairs);
    };
    const decoder = new RecordDecoder({
      onRecord: (type, requestId, content) => {
        if (requestId !== 0 || type !== RecordType.GetValuesResult) return finish(null);
        try {
          finish(decodePairs(content));
        } catch {
          finish(null);
        }
      },
      onProtocolError: () => finish(null),
    });
    const onData = (chunk: Buffer) => decoder.push(chunk);
    socket.on('data', onData);
    socket.once('close', () => finish(null));
    socket.on('error', () => finish(null));
    const flat: string[] = [];
    for (const n of names) flat.push(n, '');
    socket.write(encodeRecord(RecordType.GetValues, 0, encodePairs(flat)));
  });
}
