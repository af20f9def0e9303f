import pino, { type Logger } from 'pino';

/** JSON lines on stdout (pino): structured, with backend id and pid where they apply. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { name: 'upfront' } }, destination ?? pino.destination({ dest: 1, sync: false }));
}
