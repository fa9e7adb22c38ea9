import {
  abortedBeforeStart,
  type CallContext,
  type Clock,
  contextual,
  describeValue,
  expectClock,
  expectOptions,
  invalidArgument,
  isRequestContext,
  type OwnedPath,
  owned,
  type Service,
  type ServiceLayer,
  systemClock,
  type Tail,
  TypedEmitter,
  usesRequestContext,
} from '@towerline/core';
import { expectName } from './check.js';
import { DeadlineQueue, type DeadlineWindow } from './deadline-queue.js';

/** Payload of the `timeout` event: calls rejected because their deadline passed. */
export interface TimeoutEvent {
  timeoutMs: number;
  /** How many calls this expiry rejected (exact mode; 0 in optimistic mode). */
  calls: number;
}

export type TimeoutEvents = { timeout: TimeoutEvent };

export interface TimeoutOptions {
  /** The time a call may take, in ms (> 0). */
  ms: number;
  /**
   * `'exact'` (default): the call rejects with `ERR_TIMEOUT` when its deadline passes, whether
   * or not the inner service honours its signal. `'optimistic'` (Polly v8's only mode): the
   * deadline aborts the signal and the inner service rejects on its own; cheaper (no promise of
   * the layer's own), for services that honour their signal.
   */
  mode?: 'exact' | 'optimistic';
  clock?: Clock;
  /** Names the layer in events and diagnostics messages. */
  name?: string;
}

/**
 * A service whose calls get a deadline `ms` from their start (or the caller's, when earlier):
 * it is written to the request's context (`ctx.deadline`, `ctx.signal` aborts when it passes),
 * and in exact mode the call rejects with `ERR_TIMEOUT` then, even if the inner service ignores
 * its signal.
 *
 * No timer is made per call: calls that start within a millisecond (or 32 calls) share one
 * deadline window, read the clock once between them, and one timer per layer serves every
 * window. A deadline fires within about 2 ms of its time. A window's deadline is taken from its
 * opening, so a call may get up to one tick less than `ms`, never more — or, on an event loop
 * blocked between two calls of one window (no timer could run to close it), up to that block
 * less.
 */
export class TimeoutService<Req, Res> implements Service<Req, Res> {
  /** A retry above shares a context from the first attempt on only if a layer below wants one. */
  readonly [contextual]: boolean;
  /** @internal The call with the layers above fused in (see `OwnedPath`). */
  readonly [owned]: OwnedPath<Req, Res>;
  readonly #inner: Service<Req, Res>;
  readonly #queue: DeadlineQueue;
  readonly #optimistic: boolean;

  constructor(inner: Service<Req, Res>, queue: DeadlineQueue, optimistic: boolean) {
    this.#inner = inner;
    this.#queue = queue;
    this.#optimistic = optimistic;
    this[contextual] = usesRequestContext(inner as Service<unknown, unknown>);
    // The tail sees the context the layers above called with, not the one made here for the
    // inner service: a breaker must not take the window's signal for its caller's.
    this[owned] = optimistic
      ? (tail) => (req, ctx) =>
          this.#call(req, ctx, undefined).then(tail.succeeded, (error: unknown) =>
            tail.recover(error, req, ctx),
          )
      : (tail) => (req, ctx) => this.#call(req, ctx, tail);
  }

  call(req: Req, ctx?: CallContext): Promise<Res> {
    if (ctx !== undefined) return this.#call(req, ctx, undefined);
    // No context: the window is the inner call's (its deadline, its lazily made signal).
    const window = this.#queue.join();
    return this.#optimistic ? this.#start(req, window) : this.#alone(req, window);
  }

  /** One call; `tail`: the layers above fused into an exact-mode call's reaction. */
  #call(req: Req, ctx: CallContext | undefined, tail: Tail<Req, Res> | undefined): Promise<Res> {
    if (ctx === undefined) {
      const window = this.#queue.join();
      if (this.#optimistic) return this.#start(req, window);
      return tail === undefined
        ? this.#alone(req, window)
        : this.#exact(req, window, window, undefined, tail);
    }
    const aborted = abortedBeforeStart(ctx);
    if (aborted !== undefined)
      return tail === undefined ? aborted : this.#fail(aborted, req, ctx, tail);
    let window = this.#queue.join();
    const outer = ctx.deadline;
    if (outer !== undefined && outer < window.deadline) {
      // The caller's deadline is earlier: it is the one to enforce, on a window of its own.
      window = this.#queue.single(outer);
      if (this.#queue.passed(outer)) {
        const late = this.#queue.error();
        return tail === undefined ? Promise.reject(late) : tail.recover(late, req, ctx);
      }
    }
    let inner: CallContext;
    if (isRequestContext(ctx)) {
      // The signal is made only if a layer below reads it. Both stay after the call: a layer
      // above that starts attempts (a retry) puts back its own before the next one.
      ctx.tighten(window.deadline);
      ctx.linkSignal(window);
      inner = ctx;
    } else {
      inner = {
        signal: window.link(ctx.signal),
        deadline: window.deadline,
        idempotent: ctx.idempotent,
      };
    }
    if (this.#optimistic) return this.#start(req, inner);
    return tail === undefined
      ? this.#alone(req, inner, window)
      : this.#exact(req, inner, window, ctx, tail);
  }

  #fail(refused: Promise<Res>, req: Req, ctx: CallContext, tail: Tail<Req, Res>): Promise<Res> {
    return refused.then(undefined, (error: unknown) => tail.recover(error, req, ctx));
  }

  #start(req: Req, ctx: CallContext): Promise<Res> {
    try {
      return this.#inner.call(req, ctx);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The exact mode with no layer fused above: a promise of the layer's own, settled by the inner
   * call or by the deadline, whichever comes first. Apart from {@link #exact} so that its
   * closures capture only what they use (a smaller scope per call).
   */
  #alone(req: Req, ctx: CallContext, window: DeadlineWindow = ctx as DeadlineWindow): Promise<Res> {
    let resolve!: (value: Res) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<Res>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const failed = (error: unknown): void => {
      if (window.take(slot)) reject(error);
    };
    const slot = window.add(failed);
    let started: Promise<Res>;
    try {
      started = this.#inner.call(req, ctx);
    } catch (error) {
      failed(error);
      return promise;
    }
    started.then((value) => {
      if (window.take(slot)) resolve(value);
    }, failed);
    return promise;
  }

  /**
   * The exact mode under layers fused into this one reaction (`tail`; `outer`: the context they
   * were called with): a promise of the layer's own, settled through them by the inner call or
   * by the deadline, whichever comes first.
   */
  #exact(
    req: Req,
    ctx: CallContext,
    window: DeadlineWindow,
    outer: CallContext | undefined,
    tail: Tail<Req, Res>,
  ): Promise<Res> {
    // A closure per call, not a shared executor writing to a module-level object: a store of a
    // new function into an old object costs more (a write barrier) than the closure does.
    let resolve!: (value: Res | Promise<Res>) => void;
    const promise = new Promise<Res>((res) => {
      resolve = res;
    });
    const succeeded = tail.succeeded;
    // Also what the deadline calls: the first of the two settles the call (`take` says which).
    const failed = (error: unknown): void => {
      if (window.take(slot)) resolve(tail.recover(error, req, outer));
    };
    const slot = window.add(failed);
    let started: Promise<Res>;
    try {
      started = this.#inner.call(req, ctx);
    } catch (error) {
      failed(error);
      return promise;
    }
    started.then((value) => {
      if (window.take(slot)) resolve(succeeded === undefined ? value : succeeded(value));
    }, failed);
    return promise;
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Bounds every call's time (tower's `Timeout`, Polly's timeout strategy): `ms` from its start,
 * or the caller's `ctx.deadline` when that is earlier (the earliest deadline wins, so nested
 * timeouts compose). The deadline is written to the request's context for the layers below
 * (`ctx.deadline`, and `ctx.signal` aborts with `ERR_TIMEOUT` when it passes); in exact mode
 * the call rejects with `ERR_TIMEOUT` then even if its inner service never settles.
 *
 * Place a total timeout outside a `RetryLayer` and an attempt timeout inside it: the retry
 * undoes what the attempt timeout set before its next attempt.
 *
 * @example
 * ```ts
 * const svc = new ServiceBuilder()
 *   .layer(new TimeoutLayer({ ms: 5_000 }))                      // total
 *   .layer(new RetryLayer({ maxAttempts: 3 }))
 *   .layer(new TimeoutLayer({ ms: 1_000, mode: 'optimistic' })) // per attempt
 *   .service(http);
 * ```
 */
export class TimeoutLayer implements ServiceLayer {
  readonly events = new TypedEmitter<TimeoutEvents>({ channel: 'towerline:timeout' });
  readonly #queue: DeadlineQueue;
  readonly #optimistic: boolean;
  readonly ms: number;

  constructor(options: TimeoutOptions) {
    expectOptions(options, false);
    const { ms } = options;
    if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms))
      invalidArgument('ms', `expected > 0, got ${describeValue(ms)}`);
    expectClock(options.clock);
    this.ms = ms;
    if (options.mode !== undefined && options.mode !== 'exact' && options.mode !== 'optimistic') {
      invalidArgument('mode', "expected 'exact' or 'optimistic'");
    }
    this.#optimistic = options.mode === 'optimistic';
    expectName(options.name);
    this.events.source = options.name ?? 'timeout';
    this.#queue = new DeadlineQueue(options.clock ?? systemClock, ms, !this.#optimistic, (calls) =>
      this.events.emit('timeout', { timeoutMs: ms, calls }),
    );
  }

  wrap<Req, Res>(inner: Service<Req, Res>): TimeoutService<Req, Res> {
    return new TimeoutService(inner, this.#queue, this.#optimistic);
  }
}
