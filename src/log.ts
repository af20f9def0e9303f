import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

/**
 * pino: JSON lines on stdout, structured, with backend id and pid where they apply.
 * On a terminal (or --log-format pretty) the same records, readable by a person.
 */
export function createLogger(level: string, format?: LogFormat, destination?: pino.DestinationStream): Logger {
  const useful = { level, base: { name: 'upfront' } };
  if (destination) return pino(useful, destination);
  const asPretty = format === 'pretty' || (format === undefined && process.stdout.isTTY === true);
  if (asPretty) {
    return pino(useful, pretty({ colorize: process.stdout.isTTY === true, sync: true, ignore: 'name,hostname', translateTime: 'HH:MM:ss.l', singleLine: true }));
  }
  return pino(useful, pino.destination({ dest: 1, sync: false }));
}
