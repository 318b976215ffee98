import { pino, type Logger } from 'pino';

export type { Logger };

const LEVELS: Record<string, string> = {
  DEBUG: 'debug', INFO: 'info', WARNING: 'warn', WARN: 'warn', ERROR: 'error', CRITICAL: 'fatal', FATAL: 'fatal', NONE: 'silent',
};

/** Typha's severity names (DEBUG, INFO, WARNING, ERROR, CRITICAL) mapped onto pino levels. */
export function pinoLevel(severity: string): string | undefined {
  return LEVELS[severity.toUpperCase()];
}

/** JSON lines; `fd` 2 keeps stdout free for commands whose output is data (watch, dump). */
export function createLogger(severity = 'INFO', fd: 1 | 2 = 1): Logger {
  return pino(
    { level: pinoLevel(severity) ?? 'info', base: { app: 'calico-fanout' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd, sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * Logs at most once per interval for each reason, with the number suppressed since the last
 * line: bad datastore content can arrive thousands of times a second, and the log must survive it.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(private readonly logger: Logger, private readonly intervalMs = 10_000) {}

  warn(reason: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const s = this.last.get(reason);
    if (s && now - s.at < this.intervalMs) { s.suppressed++; return; }
    this.logger.warn({ ...fields, reason, suppressedSinceLast: s?.suppressed ?? 0 }, msg);
    this.last.set(reason, { at: now, suppressed: 0 });
  }
}
