// Structured logs: one JSON object a line (pino), as the service logs (services/log.ts).
import { createLogger, type Logger } from '../services/log.ts';

export type { Logger };

export function agentLogger(level: string): Logger {
  return createLogger(level, 'weighbridge');
}
