import {
  type CallContext,
  type Clock,
  describeError,
  ExponentialRandomBackoff,
  type IntervalFunction,
  invalidArgument,
  isAbortError,
  type Service,
  type ServiceLayer,
  sleep,
  systemClock,
  TowerlineError,
  TypedEmitter,
  warnListenerError,
} from '@towerline/core';
import pRetry from 'p-retry';
import type { RetryBudget } from './budget.js';

/** Payload of the `retry` event: attempt `attempt` failed and the next starts after `delayMs`. */
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
  /** Attempts in all, the first included; >= 1. Default 3. */
  maxAttempts?: number;
  /** Delay between attempts. Default: exponential, full jitter, 100 ms doubling to 10 s. */
  backoff?: IntervalFunction;
  /**
   * Whether `error` (from attempt `attempt`) is worth another attempt. Default: every error
   * except an `AbortError`. An `AbortError` is never retried, whatever this says.
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
  /** Shared retry budget; every call deposits, every retry withdraws. */
  budget?: RetryBudget;
  /** Names this layer in events and metrics. Default `retry`. */
  name?: string;
  /**
   * Called before each wait; a throwing callback is reported (as a process warning, like a
   * throwing event listener), never propagated.
   */
  onRetry?: (event: RetryEvent) => void;
  clock?: Clock;
}

const defaultBackoff = () =>
  new ExponentialRandomBackoff({ initial: 100, multiplier: 2, max: 10_000, jitter: 'full' });

const retryAll = () => true;

/** Carries a failure through p-retry untouched: p-retry rewrites non-`Error`s and `TypeError`s. */
class AttemptFailure extends Error {
  constructor(readonly original: unknown) {
    super('attempt failed');
  }
}

function markBudgetExhausted(error: unknown): void {
  if (typeof error === 'object' && error !== null && Object.isExtensible(error)) {
    (error as { budgetExhausted?: boolean }).budgetExhausted = true;
  }
}

/** Settings shared by every service a {@link RetryLayer} wraps, validated once. */
interface RetryPolicy {
  readonly maxAttempts: number;
  readonly backoff: IntervalFunction;
  readonly retryOn: (error: unknown, attempt: number) => boolean;
  readonly delayFromError: ((error: unknown, attempt: number) => number | undefined) | undefined;
  readonly maxDelay: number;
  readonly budget: RetryBudget | undefined;
  readonly onRetry: ((event: RetryEvent) => void) | undefined;
  readonly clock: Clock;
  readonly events: TypedEmitter<RetryEvents>;
}

function toPolicy(options: RetryOptions, events: TypedEmitter<RetryEvents>): RetryPolicy {
  const { maxAttempts = 3 } = options;
  if (!(Number.isInteger(maxAttempts) || maxAttempts === Number.POSITIVE_INFINITY)) {
    invalidArgument('maxAttempts', `expected an integer >= 1, got ${String(maxAttempts)}`);
  }
  if (maxAttempts < 1) invalidArgument('maxAttempts', `expected >= 1, got ${maxAttempts}`);
  const backoff = options.backoff ?? defaultBackoff();
  if (typeof backoff?.next !== 'function')
    invalidArgument('backoff', 'expected an IntervalFunction');
  const maxDelay = options.maxDelay ?? backoff.max ?? 10_000;
  if (!(maxDelay >= 0) || !Number.isFinite(maxDelay)) {
    invalidArgument('maxDelay', `expected a finite number >= 0, got ${String(maxDelay)}`);
  }
  for (const name of ['retryOn', 'delayFromError', 'onRetry'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      invalidArgument(name, 'expected a function');
    }
  }
  return {
    maxAttempts,
    backoff,
    retryOn: options.retryOn ?? retryAll,
    delayFromError: options.delayFromError,
    maxDelay,
    budget: options.budget,
    onRetry: options.onRetry,
    clock: options.clock ?? systemClock,
    events,
  };
}

/**
 * A service that retries its inner service's failures.
 *
 * The happy path is one call to the inner service and one promise hop: p-retry, the retry
 * state and every wait come into being only after the first failure.
 */
export class RetryService<Req, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #policy: RetryPolicy;

  constructor(inner: Service<Req, Res>, policy: RetryPolicy) {
    this.#inner = inner;
    this.#policy = policy;
  }

  /** Events of the layer this service came from. */
  get events(): TypedEmitter<RetryEvents> {
    return this.#policy.events;
  }

  call(req: Req, ctx?: CallContext): Promise<Res> {
    this.#policy.budget?.deposit();
    let first: Promise<Res>;
    try {
      first = this.#inner.call(req, ctx);
    } catch (error) {
      return this.#retry(error, req, ctx);
    }
    return first.then(undefined, (error: unknown) => this.#retry(error, req, ctx));
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Attempts 2..maxAttempts, run by p-retry; attempt 1 already failed with `firstError`. */
  async #retry(firstError: unknown, req: Req, ctx: CallContext | undefined): Promise<Res> {
    const policy = this.#policy;
    const signal = ctx?.signal;
    let stopped = false;
    let lastAttempt = 1;
    try {
      return await pRetry(
        (attempt) => {
          lastAttempt = attempt;
          if (attempt === 1) return Promise.reject(new AttemptFailure(firstError));
          let result: Promise<Res>;
          try {
            result = this.#inner.call(req, ctx);
          } catch (error) {
            return Promise.reject(new AttemptFailure(error));
          }
          return result.then(undefined, (error: unknown) => {
            throw new AttemptFailure(error);
          });
        },
        {
          retries: policy.maxAttempts - 1,
          minTimeout: 0,
          maxTimeout: 0,
          factor: 1,
          randomize: false,
          ...(signal ? { signal } : {}),
          shouldRetry: async ({ error, attemptNumber }) => {
            // p-retry reports an abort that lands while an attempt is in flight as that
            // attempt's failure (even when the attempt succeeded): stop with the reason, without
            // asking retryOn about it or announcing a retry that will never happen.
            signal?.throwIfAborted();
            const original = (error as AttemptFailure).original;
            if (!this.#retryable(original, attemptNumber)) {
              stopped = true;
              return false;
            }
            if (policy.budget && !policy.budget.withdraw()) {
              stopped = true;
              markBudgetExhausted(original);
              policy.events.emit('budgetExhausted', { attempt: attemptNumber, error: original });
              return false;
            }
            const delayMs = this.#delay(original, attemptNumber);
            const event: RetryEvent = { attempt: attemptNumber, delayMs, error: original };
            policy.events.emit('retry', event);
            if (policy.onRetry) {
              try {
                policy.onRetry(event);
              } catch (error) {
                // A callback is an observer: it cannot change or break the loop.
                warnListenerError({ event: 'retry', error });
              }
            }
            // A caller is awaiting this wait, so it keeps the process alive (unref: false).
            await sleep(delayMs, { signal, clock: policy.clock, unref: false });
            return true;
          },
        },
      );
    } catch (error) {
      // Not an attempt's failure: the abort reason (which p-retry turns into a TypeError when
      // it is not an Error), or a hook's bug.
      if (!(error instanceof AttemptFailure)) throw signal?.aborted ? signal.reason : error;
      const original = error.original;
      if (stopped || !this.#retryable(original, lastAttempt)) throw original;
      policy.events.emit('exhausted', { attempts: lastAttempt, error: original });
      throw new TowerlineError(
        'ERR_RETRY_EXHAUSTED',
        `retry exhausted after ${lastAttempt} attempts (last error: ${describeError(original)})`,
        { cause: original, attempts: lastAttempt },
      );
    }
  }

  #retryable(error: unknown, attempt: number): boolean {
    return !isAbortError(error) && this.#policy.retryOn(error, attempt);
  }

  #delay(error: unknown, attempt: number): number {
    const { delayFromError, backoff, maxDelay } = this.#policy;
    const hinted = delayFromError?.(error, attempt);
    const raw =
      typeof hinted === 'number' && hinted >= 0 && Number.isFinite(hinted)
        ? hinted
        : backoff.next(attempt, error);
    if (!(raw >= 0)) return 0; // NaN or negative from a user's IntervalFunction
    return Math.min(raw, maxDelay);
  }
}

/**
 * Retries failed calls with backoff. The defaults are what a user expects: 3 attempts,
 * exponential backoff with full jitter from 100 ms capped at 10 s, every error retried except an
 * `AbortError`. Exhaustion throws `ERR_RETRY_EXHAUSTED` with the last error as `cause` and
 * `attempts` on it; an error `retryOn` refuses, and one refused by the budget (marked
 * `budgetExhausted: true`), is thrown as it is. `ctx.signal` aborts a pending wait at once.
 *
 * @example
 * ```ts
 * const layer = new RetryLayer({
 *   maxAttempts: 5,
 *   retryOn: (e) => (e as { status?: number }).status !== 400,
 *   delayFromError: (e) => (e as { retryAfterMs?: number }).retryAfterMs,
 * });
 * layer.events.on('retry', ({ attempt, delayMs }) => console.log(attempt, delayMs));
 * const svc = layer.wrap(httpService);
 * ```
 */
export class RetryLayer implements ServiceLayer {
  /** `retry`, `exhausted` and `budgetExhausted` for every service this layer wrapped. */
  readonly events = new TypedEmitter<RetryEvents>({ channel: 'towerline:retry' });
  readonly #policy: RetryPolicy;

  constructor(options: RetryOptions = {}) {
    this.#policy = toPolicy(options, this.events);
    this.events.source = options.name ?? 'retry';
  }

  wrap<Req, Res>(inner: Service<Req, Res>): RetryService<Req, Res> {
    return new RetryService(inner, this.#policy);
  }
}

/** `new RetryLayer(options).wrap(service)`. */
export function retry<Req, Res>(
  service: Service<Req, Res>,
  options: RetryOptions = {},
): RetryService<Req, Res> {
  return new RetryLayer(options).wrap(service);
}
