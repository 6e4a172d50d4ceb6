// Structured logs: one JSON object per line on stdout (pino), with the service name on each line.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'waste-telemetry'): Logger {
  return pino({ name, level, base: { pid: process.pid } , timestamp: pino.stdTimeFunctions.isoTime });
}
