/**
 * Logging through pino, one JSON line per event with Elastic Common Schema field names
 * (`@timestamp`, `log.level`, `message`, `http.request.method`, `url.path`,
 * `http.response.status_code`, `client.address`, `event.duration` in ns — the OpenTelemetry
 * semantic conventions use the same HTTP names). An embedder passes its own pino logger, or any
 * object with the five level methods.
 */

import { hostname } from 'node:os';
import { describeValue, expectOptions, invalidArgument } from '@towerline/core';
import pino, { type DestinationStream } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** A structured logger: pino's, or anything with these methods (`(fields, message)`). */
export interface StreamsLogger {
  trace(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
}

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, off: 100 } as const;

/** The first directive of a `RUST_LOG`-style filter (`info`, `debug,hyper=warn`) as a level. */
export function levelOf(filter: string): LogLevel | 'off' {
  const first = filter.split(',')[0]!.trim().toLowerCase();
  return first in LEVELS ? (first as LogLevel | 'off') : 'info';
}

export interface LoggerOptions {
  /** `trace` … `error`, or `off`. Default `info`. */
  level?: LogLevel | 'off';
  /** Where lines go. Default stdout. */
  destination?: DestinationStream;
}

/** A pino logger writing ECS JSON lines. */
export function createLogger(options: LoggerOptions = {}): pino.Logger {
  expectOptions(options, true);
  const level = options.level ?? 'info';
  return pino(
    {
      level: level === 'off' ? 'silent' : level,
      messageKey: 'message',
      base: { 'ecs.version': '8.11.0', 'process.pid': process.pid, 'host.hostname': hostname() },
      timestamp: () => `,"@timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ 'log.level': label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * One JSON line per event, with OpenTelemetry-style field names.
 *
 * @deprecated Pass a pino logger (see {@link createLogger}) or a {@link StreamsLogger}.
 */
export type Logger = (level: keyof typeof LEVELS, fields: Record<string, unknown>) => void;

/** @deprecated Use {@link createLogger}. */
export function jsonLogger(
  rustLog: string,
  write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  if (typeof rustLog !== 'string')
    invalidArgument('rustLog', `expected a string, got ${describeValue(rustLog)}`);
  if (typeof write !== 'function') invalidArgument('write', 'expected a function');
  const threshold = LEVELS[levelOf(rustLog)];
  return (level, fields) => {
    if (LEVELS[level] < threshold) return;
    write(
      `${JSON.stringify({ timestamp: new Date().toISOString(), 'log.level': level, ...fields })}\n`,
    );
  };
}

/** A {@link StreamsLogger} over either kind of logger. */
export function asStreamsLogger(log: Logger | StreamsLogger): StreamsLogger {
  if (typeof log !== 'function') return log;
  const at =
    (level: LogLevel) =>
    (fields: object, message?: string): void =>
      log(level, message === undefined ? { ...fields } : { message, ...fields });
  return {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}
