import { type Logger, pino } from 'pino';
import { logLevels } from './config.js';

export type { Logger };

/** A logger at LOG_LEVEL; an unknown level logs at info here and is refused by the config loaders. */
export function createLogger(name: string): Logger {
  const level = process.env.LOG_LEVEL?.trim() || 'info';
  return pino({ name, level: (logLevels as readonly string[]).includes(level) ? level : 'info' });
}
