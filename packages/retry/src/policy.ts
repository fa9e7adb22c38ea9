import {
  type Clock,
  describeValue,
  ExponentialRandomBackoff,
  expectClock,
  expectOptions,
  type IntervalFunction,
  invalidArgument,
  isAbortError,
  isTowerlineError,
  systemClock,
  type TypedEmitter,
} from '@towerline/core';
import type { RetryBudget, RetryBudgetLike } from './budget.js';

/** Payload of the `retry` event: attempt `attempt` failed and the next starts after `delayMs` at the latest. */
export interface RetryEvent {
  attempt: number;
  delayMs: number;
  error: unknown;
}

/** Payload of the `exhausted` event: every attempt failed. */
export interface ExhaustedEvent {
  attempts: number;
  error: unknown;
}

/** Payload of the `budgetExhausted` event: a retry was refused by the {@link RetryBudget}. */
export interface BudgetExhaustedEvent {
  attempt: number;
  error: unknown;
}

export type RetryEvents = {
  retry: RetryEvent;
  exhausted: ExhaustedEvent;
  budgetExhausted: BudgetExhaustedEvent;
};

export interface RetryOptions {
  /**
   * Attempts in all, the first included, across every layer of the stack (reconnect resends
   * count too); >= 1. Default 3.
   */
  maxAttempts?: number;
  /** Delay between attempts. Default: exponential, full jitter, 100 ms doubling to 10 s. */
  backoff?: IntervalFunction;
  /**
   * Whether `error` (from attempt `attempt`) is worth another attempt. Default: every error.
   * It narrows, never widens, what is safe: aborts, `ERR_CLOSED`, `ERR_RECONNECT_GAVE_UP`,
   * `ERR_INVALID_ARGUMENT` (and the other final codes) are never retried, and a request that
   * may have executed is retried only when it is idempotent, whatever this says.
   */
  retryOn?: (error: unknown, attempt: number) => boolean;
  /**
   * A delay the error itself asks for (a `Retry-After` header, a server hint), in ms. It wins
   * over `backoff` for that attempt and is still capped at `maxDelay`. Return `undefined` to
   * use the backoff.
   */
  delayFromError?: (error: unknown, attempt: number) => number | undefined;
  /** The largest delay ever waited. Default: `backoff.max`, else 10 000 ms. */
  maxDelay?: number;
  /** Shared retry budget; every call deposits, every repeat (retry or resend) withdraws. */
  budget?: RetryBudgetLike;
  /**
   * Treats requests through this layer as idempotent unless their context says otherwise.
   * Default `false`: a request that may have executed is retried only when the caller
   * (`ctx.idempotent`) or the connector below (Redis command flags, …) says it is idempotent.
   */
  idempotent?: boolean;
  /** Names this layer in events and metrics. Default `retry`. */
  name?: string;
  /**
   * Called before each wait; a throwing callback is reported (as a process warning, like a
   * throwing event listener), never propagated.
   */
  onRetry?: (event: RetryEvent) => void;
  clock?: Clock;
}

/** Settings shared by every service a `RetryLayer` wraps, validated once. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly backoff: IntervalFunction;
  readonly retryOn: ((error: unknown, attempt: number) => boolean) | undefined;
  readonly delayFromError: ((error: unknown, attempt: number) => number | undefined) | undefined;
  readonly maxDelay: number;
  readonly budget: RetryBudgetLike | undefined;
  readonly idempotent: boolean;
  readonly onRetry: ((event: RetryEvent) => void) | undefined;
  readonly clock: Clock;
  readonly events: TypedEmitter<RetryEvents>;
}

const defaultBackoff = () =>
  new ExponentialRandomBackoff({ initial: 100, multiplier: 2, max: 10_000, jitter: 'full' });

export function toPolicy(options: RetryOptions, events: TypedEmitter<RetryEvents>): RetryPolicy {
  expectOptions(options, true);
  const { maxAttempts = 3 } = options;
  if (!(Number.isInteger(maxAttempts) || maxAttempts === Number.POSITIVE_INFINITY)) {
    invalidArgument('maxAttempts', `expected an integer >= 1, got ${describeValue(maxAttempts)}`);
  }
  if (maxAttempts < 1)
    invalidArgument('maxAttempts', `expected >= 1, got ${describeValue(maxAttempts)}`);
  const backoff = options.backoff ?? defaultBackoff();
  if (typeof backoff?.next !== 'function')
    invalidArgument('backoff', 'expected an IntervalFunction');
  const maxDelay = options.maxDelay ?? backoff.max ?? 10_000;
  if (typeof maxDelay !== 'number' || !(maxDelay >= 0) || !Number.isFinite(maxDelay)) {
    invalidArgument('maxDelay', `expected a finite number >= 0, got ${describeValue(maxDelay)}`);
  }
  for (const name of ['retryOn', 'delayFromError', 'onRetry'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      invalidArgument(name, 'expected a function');
    }
  }
  expectClock(options.clock);
  if (options.idempotent !== undefined && typeof options.idempotent !== 'boolean') {
    invalidArgument('idempotent', 'expected a boolean');
  }
  if (options.budget !== undefined && typeof options.budget?.withdraw !== 'function') {
    invalidArgument('budget', 'expected a RetryBudget');
  }
  return {
    maxAttempts,
    backoff,
    retryOn: options.retryOn,
    delayFromError: options.delayFromError,
    maxDelay,
    budget: options.budget,
    idempotent: options.idempotent === true,
    onRetry: options.onRetry,
    clock: options.clock ?? systemClock,
    events,
  };
}

/** Codes that no attempt can change: the object is closed or gave up, or the request is wrong. */
const FINAL_CODES = new Set<string>([
  'ERR_CLOSED',
  'ERR_RECONNECT_GAVE_UP',
  'ERR_INVALID_ARGUMENT',
  'ERR_RETRY_EXHAUSTED',
  'ERR_CONFIG_INVALID',
  'ERR_TLS_INVALID',
  'ERR_BODY_TOO_LARGE',
]);

/** True for an error no retry can help: an abort, or a towerline error with a final code. */
export function isFinalError(error: unknown): boolean {
  return isAbortError(error) || (isTowerlineError(error) && FINAL_CODES.has(error.code));
}

/** True when the error says its request may have reached the peer and run. */
export function saysMayHaveExecuted(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { mayHaveExecuted?: unknown }).mayHaveExecuted === true
  );
}

/** The delay before the next attempt: the error's hint if it gives one, else the backoff; capped. */
export function delayFor(policy: RetryPolicy, error: unknown, attempt: number): number {
  const hinted = policy.delayFromError?.(error, attempt);
  const raw =
    typeof hinted === 'number' && hinted >= 0 && Number.isFinite(hinted)
      ? hinted
      : policy.backoff.next(attempt, error);
  if (!(raw >= 0)) return 0; // NaN or negative from a user's IntervalFunction
  return Math.min(raw, policy.maxDelay);
}
