import {
  attemptThrough,
  type CallContext,
  callTracer,
  contextProblem,
  type FusableService,
  type FusedPath,
  fused,
  fusedPathOf,
  isRequestContext,
  isTowerlineError,
  ownedPathOf,
  RequestContext,
  type Service,
  type ServiceLayer,
  TypedEmitter,
  usesRequestContext,
  warnListenerError,
} from '@towerline/core';
import { pause } from './pause.js';
import {
  type RetryEvent,
  type RetryEvents,
  type RetryOptions,
  type RetryPolicy,
  toPolicy,
} from './policy.js';
import { verdict } from './verdict.js';

/** `towerline:retry:call`: every call through a retry service, for spans and durations. */
const tracer = callTracer('retry');

/**
 * A service that retries its inner service's failures, deciding per request on the request's
 * context (tower's `Policy::retry(req, result)`): its signal, deadline and idempotency, and the
 * attempts already made for it by any layer.
 *
 * The happy path is one call to the inner service and one promise reaction — shared with the
 * inner service's own when it is a towerline layer that offers a fused path (a reconnect
 * service: a retry over a reconnect costs one reaction, not two), or none of its own over a
 * layer that takes the layers above into its reaction (an owned path: a breaker, an attempt
 * timeout). The loop, its waits and its events exist only after a first failure.
 *
 * Over a towerline layer that wants a shared context (a connector, or a breaker or timeout
 * over one: fused, or marked `[contextual]: true`), or when the caller passes a
 * `RequestContext`, every layer shares one context from the first attempt on. Over any other
 * service, none is made until the first failure (the happy path allocates nothing): a service
 * of your own between a retry and a towerline connector should forward `ctx` and be marked
 * `[contextual]: true`, or the connector's resend within the first attempt goes uncounted.
 */
export class RetryService<Req, Res> implements FusableService<Req, Res> {
  /** @internal The split call an outer towerline layer fuses with. */
  readonly [fused]: FusedPath<Req, Res>;
  readonly #inner: Service<Req, Res>;
  readonly #path: FusedPath<Req, Res> | undefined;
  /** The inner service reads the request context: share one from the first attempt. */
  readonly #eager: boolean;
  readonly #policy: RetryPolicy;
  /** A plain service below and no budget: a call without a context needs nothing but the call. */
  readonly #plain: boolean;
  /**
   * Over a service that takes the layers above into its own reaction (a breaker, an attempt
   * timeout) and wants no context: the first attempt with this layer's recovery fused in.
   */
  readonly #owned: ((req: Req, ctx: CallContext | undefined) => Promise<Res>) | undefined;

  constructor(inner: Service<Req, Res>, policy: RetryPolicy) {
    this.#inner = inner;
    this.#policy = policy;
    const path = fusedPathOf(inner);
    this.#path = path;
    this.#eager = usesRequestContext(inner as Service<unknown, unknown>);
    this.#owned = this.#eager
      ? undefined
      : ownedPathOf(inner)?.({ recover: (error, req) => this.#retryAfter(error, req, undefined) });
    this.#plain =
      path === undefined &&
      !this.#eager &&
      policy.budget === undefined &&
      this.#owned === undefined;
    this[fused] = {
      start: (req, c) => {
        this.#enter(c);
        if (path !== undefined) return path.start(req, c);
        if (c.signal?.aborted) return Promise.reject(c.signal.reason);
        return inner.call(req, c);
      },
      recover: (error, req, c) =>
        path === undefined
          ? this.#retry(error, req, c)
          : path.recover(error, req, c).then(undefined, (e: unknown) => this.#retry(e, req, c)),
    };
    // Observers below (a breaker) see each attempt's success in the reaction of whichever layer attaches it.
    if (path?.succeeded !== undefined) this[fused].succeeded = path.succeeded;
    // Every instance gets an own `call` (one hidden class for all): the specialised ones for
    // the two happy paths that need no context, the general one otherwise — or a subclass's
    // own `call`, which must not be shadowed.
    const general = this.call;
    this.call =
      general !== RetryService.prototype.call
        ? general
        : this.#plain
          ? this.#plainDirect
          : this.#owned !== undefined
            ? this.#ownedDirect
            : general;
  }

  /** Events of the layer this service came from. */
  get events(): TypedEmitter<RetryEvents> {
    return this.#policy.events;
  }

  // No closure is made in `call` itself: a closure there, even on a branch not taken, would
  // make every call allocate the scope it captures.
  call(req: Req, ctx?: CallContext): Promise<Res> {
    if (tracer.active) return this.#traced(req, ctx);
    if (ctx === undefined && this.#plain) return this.#plainCall(req);
    if (ctx === undefined && this.#owned !== undefined) return this.#ownedCall(req);
    return this.#call(req, ctx);
  }

  /**
   * `call` over a plain service with no budget. An own property of such an instance (see the
   * constructor): its type feedback is its own, so the happy path is not slowed down by the
   * stacks other instances run through the general `call`.
   */
  #plainDirect(req: Req, ctx?: CallContext): Promise<Res> {
    if (tracer.active) return this.#traced(req, ctx);
    return ctx === undefined ? this.#plainCall(req) : this.#call(req, ctx);
  }

  /** `call` over a service with an owned path (see `#plainDirect`). */
  #ownedDirect(req: Req, ctx?: CallContext): Promise<Res> {
    if (tracer.active) return this.#traced(req, ctx);
    return ctx === undefined ? this.#ownedCall(req) : this.#call(req, ctx);
  }

  /** The happy path in full: the call and one failure handler capturing only the request. */
  #plainCall(req: Req): Promise<Res> {
    let first: Promise<Res>;
    try {
      first = this.#inner.call(req, undefined);
    } catch (error) {
      return this.#retryAfter(error, req, undefined);
    }
    return this.#thenRetry(first, req);
  }

  /** One reaction for the whole stack: the one the layer below attaches anyway. */
  #ownedCall(req: Req): Promise<Res> {
    this.#policy.budget?.deposit();
    return this.#owned!(req, undefined);
  }

  #traced(req: Req, ctx: CallContext | undefined): Promise<Res> {
    const events = this.#policy.events;
    return tracer.channel.tracePromise(() => this.#call(req, ctx), {
      events,
      source: events.source,
      request: req,
    });
  }

  #call(req: Req, ctx?: CallContext): Promise<Res> {
    if (ctx !== undefined && !isRequestContext(ctx)) {
      const problem = contextProblem(ctx);
      if (problem !== undefined) return Promise.reject(problem);
    }
    const path = this.#path;
    if (path !== undefined && ctx === undefined && path.succeeded === undefined) {
      // A context made here: no scope to save, and a failure handler capturing only the request.
      const c = new RequestContext();
      this.#enter(c);
      let first: Promise<Res>;
      try {
        first = path.start(req, c);
      } catch (error) {
        return this.#recoverFresh(error, req, c);
      }
      return first.then(undefined, (error: unknown) => this.#recoverFresh(error, req, c));
    }
    if (path !== undefined) {
      // A towerline layer below reads and writes the context: share one from the start.
      const c = ctx === undefined ? new RequestContext() : RequestContext.from(ctx);
      this.#enter(c);
      // What an attempt-scoped layer below (an attempt timeout) sets is undone before the next
      // attempt (a context made here had neither: nothing to read).
      const deadline = ctx === undefined ? undefined : c.deadline;
      const signal = ctx === undefined ? undefined : c.signal;
      let first: Promise<Res>;
      try {
        first = path.start(req, c);
      } catch (error) {
        return path
          .recover(error, req, c)
          .then(undefined, (e: unknown) => this.#retry(e, req, c, true, deadline, signal));
      }
      const succeeded = path.succeeded;
      return first.then(
        succeeded === undefined
          ? undefined
          : (value: Res) => {
              succeeded(value, req, c);
              return value;
            },
        (error: unknown) =>
          path
            .recover(error, req, c)
            .then(undefined, (e: unknown) => this.#retry(e, req, c, true, deadline, signal)),
      );
    }
    if (ctx?.signal?.aborted) return Promise.reject(ctx.signal.reason);
    if (this.#eager || isRequestContext(ctx)) {
      const c = RequestContext.from(ctx);
      this.#enter(c);
      return this.#first(req, c, c, c.deadline, c.signal);
    }
    // A plain service below: nothing there shares a context, so none is made unless it fails.
    this.#policy.budget?.deposit();
    return this.#first(req, ctx, undefined);
  }

  /** Attempt 1 of a request whose context this layer made failed on the fused path below. */
  #recoverFresh(error: unknown, req: Req, c: RequestContext): Promise<Res> {
    return this.#path!.recover(error, req, c).then(undefined, (e: unknown) =>
      this.#retry(e, req, c, true, undefined, undefined),
    );
  }

  /** Attempt 1 on a service with no fused path; `c` is the shared context, if there is one yet. */
  #first(
    req: Req,
    ctx: CallContext | undefined,
    c: RequestContext | undefined,
    deadline?: number,
    signal?: AbortSignal,
  ): Promise<Res> {
    let first: Promise<Res>;
    try {
      first = this.#inner.call(req, ctx);
    } catch (error) {
      return c === undefined
        ? this.#retryAfter(error, req, ctx)
        : this.#retry(error, req, c, true, deadline, signal);
    }
    return first.then(undefined, (error: unknown) =>
      c === undefined
        ? this.#retryAfter(error, req, ctx)
        : this.#retry(error, req, c, true, deadline, signal),
    );
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The request is about to make its first attempt through this layer. */
  #enter(c: RequestContext, deposit = true): void {
    const policy = this.#policy;
    if (c.attempts === 0) c.attempts = 1;
    if (policy.maxAttempts < c.maxAttempts) c.maxAttempts = policy.maxAttempts;
    if (policy.idempotent && c.idempotent === undefined) c.idempotent = true;
    if (policy.budget !== undefined) {
      if (deposit) policy.budget.deposit();
      c.budget ??= policy.budget;
    }
  }

  /**
   * The context for a request whose first attempt ran without one: the attempts that attempt
   * made below (a resend reports them on its error) count too.
   */
  #contextAfter(error: unknown, ctx: CallContext | undefined): RequestContext {
    const c = new RequestContext(ctx);
    this.#enter(c, false);
    const below = (error as { attempts?: unknown } | undefined)?.attempts;
    if (typeof below === 'number' && below > c.attempts && isTowerlineError(error)) {
      c.attempts = below;
    }
    return c;
  }

  /** `first`, with the retry after a failure (the handler captures only the request). */
  #thenRetry(first: Promise<Res>, req: Req): Promise<Res> {
    return first.then(undefined, (error: unknown) => this.#retryAfter(error, req, undefined));
  }

  /**
   * The first attempt, made without a context, failed: make one now. What a layer below writes
   * to it on later attempts (an attempt timeout's deadline and signal) is undone before each
   * verdict, as on the paths that made one first.
   */
  #retryAfter(error: unknown, req: Req, ctx: CallContext | undefined): Promise<Res> {
    const c = this.#contextAfter(error, ctx);
    return this.#retry(error, req, c, true, c.deadline, c.signal);
  }

  /**
   * Attempt `c.attempts` failed with `error`: repeat while it is safe, allowed and useful.
   * `saved`: the deadline and signal in force before the first attempt, put back before each
   * verdict so that an attempt timeout's end with its attempt (not known on the fused path,
   * where the layer above started the attempt).
   */
  async #retry(
    error: unknown,
    req: Req,
    c: RequestContext,
    saved = false,
    deadline?: number,
    signal?: AbortSignal,
  ): Promise<Res> {
    const policy = this.#policy;
    for (;;) {
      if (saved) {
        c.deadline = deadline;
        c.signal = signal;
      }
      const delayMs = verdict(policy, error, c);
      const event: RetryEvent = { attempt: c.attempts, delayMs, error };
      policy.events.emit('retry', event);
      if (policy.onRetry) {
        try {
          policy.onRetry(event);
        } catch (thrown) {
          // A callback is an observer: it cannot change or break the loop.
          warnListenerError({ event: 'retry', error: thrown });
        }
      }
      await pause(delayMs, c, policy.clock);
      c.attempts++;
      c.definitive = false;
      try {
        return await attemptThrough(this.#inner, this.#path, req, c);
      } catch (next) {
        error = next;
      }
    }
  }
}

/**
 * Retries failed calls with backoff, deciding per request on its context. The defaults are
 * what a user expects: 3 attempts in all (counted across the stack, reconnect resends
 * included), exponential backoff with full jitter from 100 ms capped at 10 s, and every error
 * retried except:
 * - aborts (`ctx.signal` fired, or an `AbortError`), `ERR_CLOSED`, `ERR_RECONNECT_GAVE_UP`,
 *   `ERR_INVALID_ARGUMENT` and the other final codes — never, whatever `retryOn` says;
 * - a request that may have executed (an error with `mayHaveExecuted: true`), unless it is
 *   idempotent (`ctx.idempotent`, the connector's classifier, or the `idempotent` option).
 *
 * When the attempt failed because its connection was lost, the wait ends as soon as the
 * connection is back (at the latest after the backoff). Exhaustion throws
 * `ERR_RETRY_EXHAUSTED` with the last error as `cause` and `attempts` on it; a deadline that
 * falls before the next attempt throws `ERR_TIMEOUT`; an error `retryOn` refuses, and one
 * refused by the budget (marked `budgetExhausted: true`), is thrown as it is. `ctx.signal`
 * aborts a pending wait at once.
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
