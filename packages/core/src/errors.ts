/**
 * Every error code towerline throws. The string is stable API: match on `error.code`, never on
 * the message.
 */
export type ErrorCode =
  /** A parameter is out of range, not finite, or of the wrong type. */
  | 'ERR_INVALID_ARGUMENT'
  /** A retry loop used up its attempts; `cause` is the last error, `attempts` the count. */
  | 'ERR_RETRY_EXHAUSTED'
  /** A reconnector used up its attempts; `cause` is the last connect error. */
  | 'ERR_RECONNECT_GAVE_UP'
  /** The object was closed; the operation can never succeed. */
  | 'ERR_CLOSED'
  /** A bounded queue is full; the request never reached the wire. */
  | 'ERR_QUEUE_FULL'
  /** A connection died with the request in flight; see `mayHaveExecuted`. */
  | 'ERR_CONNECTION_LOST'
  /** The request never left the client (its connection was already unusable); it did not run. */
  | 'ERR_NOT_SENT'
  /** A connect attempt did not finish within `connectTimeout`. */
  | 'ERR_CONNECT_TIMEOUT'
  /** An operation did not finish within its time limit. */
  | 'ERR_TIMEOUT'
  /** A TLS certificate, key or CA bundle is unusable. */
  | 'ERR_TLS_INVALID'
  /** A configuration value failed validation. */
  | 'ERR_CONFIG_INVALID'
  /** A rate limit refused the request; see `retryAfterMs`. */
  | 'ERR_RATE_LIMITED'
  /** A circuit breaker is open (or isolated) and refused the request; `retryAfterMs` is the time until its next probe. */
  | 'ERR_CIRCUIT_OPEN'
  /** A concurrency limit was reached and the request could not wait (queue full or wait too long). */
  | 'ERR_CONCURRENCY_LIMIT'
  /** The service below is saturated and a load shedder refused the request at once. */
  | 'ERR_OVERLOADED'
  /** A request body is larger than allowed. */
  | 'ERR_BODY_TOO_LARGE'
  /** A value was asked for before there was one (call `start()` first). */
  | 'ERR_NOT_READY'
  /** An optional dependency a feature needs is not installed; the message says which. */
  | 'ERR_DEPENDENCY_MISSING';

/** Extra, serialisable facts attached to a {@link TowerlineError}. */
export interface TowerlineErrorDetails {
  /** The error that caused this one. */
  cause?: unknown;
  /** How many attempts were made (retry and reconnect errors). */
  attempts?: number;
  /** True when a request may have reached the peer before the failure. */
  mayHaveExecuted?: boolean;
  /** How long the caller should wait before trying again. */
  retryAfterMs?: number;
  /** The parameter or field the error is about. */
  parameter?: string;
  /** Every problem found, for validation errors. */
  problems?: readonly string[];
}

/**
 * The brand every `TowerlineError` carries, a registered symbol: the same in every copy of
 * `@towerline/core` loaded in one process (its CommonJS and its ESM build, or two versions), so
 * an error made by one copy is recognised by the others.
 */
const TOWERLINE_ERROR_BRAND = Symbol.for('towerline.TowerlineError');

/**
 * The one error class towerline throws. `code` says what happened, `cause` holds the original
 * error, and the message never contains secrets (no keys, no credentials, no request bodies).
 *
 * @example
 * ```ts
 * try { await service.call(req) } catch (e) {
 *   if (isTowerlineError(e, 'ERR_RETRY_EXHAUSTED')) console.log(e.attempts, e.cause)
 * }
 * ```
 */
export class TowerlineError extends Error {
  /**
   * `instanceof TowerlineError` asks for the brand, not the prototype chain, so it holds across
   * module systems and duplicated installs (the dual-package hazard). A subclass keeps the
   * ordinary prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class `instanceof` was asked about
    if (this !== TowerlineError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return hasBrand(value);
  }

  override readonly name = 'TowerlineError';
  readonly code: ErrorCode;
  readonly attempts?: number;
  readonly mayHaveExecuted?: boolean;
  readonly retryAfterMs?: number;
  readonly parameter?: string;
  readonly problems?: readonly string[];

  constructor(code: ErrorCode, message: string, details: TowerlineErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    // Not enumerable: a spread or JSON.stringify of the error stays as it was.
    Object.defineProperty(this, TOWERLINE_ERROR_BRAND, { value: true });
    this.code = code;
    if (details.attempts !== undefined) this.attempts = details.attempts;
    if (details.mayHaveExecuted !== undefined) this.mayHaveExecuted = details.mayHaveExecuted;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
    if (details.parameter !== undefined) this.parameter = details.parameter;
    if (details.problems !== undefined) this.problems = Object.freeze([...details.problems]);
  }

  /** A plain object for logs and events: code, message and the facts, never the cause's body. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      attempts: this.attempts,
      mayHaveExecuted: this.mayHaveExecuted,
      retryAfterMs: this.retryAfterMs,
      parameter: this.parameter,
      problems: this.problems,
      cause: describeError(this.cause),
    };
  }
}

function hasBrand(value: unknown): value is TowerlineError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[TOWERLINE_ERROR_BRAND] === true
  );
}

/**
 * True when `error` is a {@link TowerlineError} made by any copy of `@towerline/core` (it
 * carries the brand `Symbol.for('towerline.TowerlineError')`), and, if given, carries `code`.
 */
export function isTowerlineError(error: unknown, code?: ErrorCode): error is TowerlineError {
  return hasBrand(error) && (code === undefined || error.code === code);
}

/**
 * `ERR_NOT_SENT`: the request provably never left the client, so it did not run and may be
 * sent on the next connection like any waiting request (`mayHaveExecuted: false`).
 */
export function notSent(
  cause: unknown,
  message = 'the request was not sent: the connection was unusable',
): TowerlineError {
  return new TowerlineError('ERR_NOT_SENT', message, { cause, mayHaveExecuted: false });
}

/** `ERR_INVALID_ARGUMENT` naming `parameter`, made, not thrown (for a rejected promise). */
export function invalidArgumentError(parameter: string, problem: string): TowerlineError {
  return new TowerlineError('ERR_INVALID_ARGUMENT', `invalid ${parameter}: ${problem}`, {
    parameter,
  });
}

/** Throws `ERR_INVALID_ARGUMENT` naming `parameter`. */
export function invalidArgument(parameter: string, problem: string): never {
  throw invalidArgumentError(parameter, problem);
}

/**
 * @internal What an error message may say of a value it refused: a number, a boolean, `null`
 * or `undefined` as it is; anything else by its kind only (a string may be a key or a secret).
 */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * @internal Throws `ERR_INVALID_ARGUMENT` unless `value` is an object (not null, not an array):
 * the type check of {@link expectOptions} alone, cheap enough for a call path. Names the type it
 * got, never a value.
 */
export function expectObject(value: unknown, parameter: string): asserts value is object {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    invalidArgument(parameter, `expected an options object, got ${got}`);
  }
}

/**
 * @internal Throws `ERR_INVALID_ARGUMENT` unless `options` is a plain options object (or
 * `undefined`, when `optional`) with no symbol or bigint field. Names the type it got, never a
 * value.
 */
export function expectOptions(options: unknown, optional: boolean, parameter = 'options'): void {
  if (options === undefined && optional) return;
  expectObject(options, parameter);
  // No option takes a symbol or a bigint, and either one makes the numeric checks that follow
  // throw V8's own TypeError (a symbol compared, a bigint mixed with a number).
  for (const key of Object.keys(options)) {
    const kind = typeof (options as Record<string, unknown>)[key];
    if (kind === 'symbol' || kind === 'bigint') {
      invalidArgument(key, `got a ${kind}`);
    }
  }
}

/**
 * @internal Throws `ERR_INVALID_ARGUMENT` unless `clock` is undefined or has the functions of a
 * `Clock` (`now`, `setTimeout`, `clearTimeout`; `unref` optional; only `now` with `nowOnly`, for
 * a user that never waits): a clock of the wrong shape would otherwise fail only inside the
 * first wait.
 */
export function expectClock(clock: unknown, parameter = 'clock', nowOnly = false): void {
  if (clock === undefined) return;
  const c = clock as Record<string, unknown> | null;
  if (typeof c !== 'object' || c === null || typeof c.now !== 'function')
    invalidArgument(parameter, 'expected a Clock (a now function)');
  if (nowOnly) return;
  if (
    typeof c.setTimeout !== 'function' ||
    typeof c.clearTimeout !== 'function' ||
    (c.unref !== undefined && typeof c.unref !== 'function')
  ) {
    invalidArgument(parameter, 'expected a Clock (now, setTimeout and clearTimeout functions)');
  }
}

/**
 * A short, secret-free description of an error for messages and events: its code or name,
 * never its full message (which may quote a request, a URL with credentials or a key).
 */
export function describeError(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined;
  if (typeof error === 'object') {
    const e = error as { code?: unknown; name?: unknown };
    if (typeof e.code === 'string' && e.code) return e.code;
    if (typeof e.name === 'string' && e.name) return e.name;
    return 'Error';
  }
  return typeof error;
}

/** True for the errors that mean "the caller gave up": DOM `AbortError`s and p-retry's. */
export function isAbortError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    ((error as { name?: unknown }).name === 'AbortError' ||
      (error as { code?: unknown }).code === 'ABORT_ERR')
  );
}
