import {
  type CallContext,
  callTracer,
  contextProblem,
  type FusableService,
  type FusedPath,
  fused,
  invalidArgument,
  isRequestContext,
  isTowerlineError,
  type Layer,
  type RequestContext,
  TowerlineError,
  TypedEmitter,
  untilAborted,
} from '@towerline/core';
import { RequestQueue } from './queue.js';
import type { Reconnector } from './reconnector.js';

export interface ReconnectServiceOptions<C, Req, Res> {
  /** Runs one request on a live connection. Must settle once the connection is disposed. */
  call: (conn: C, req: Req, ctx?: CallContext) => Promise<Res>;
  /**
   * Whether a request is idempotent (safe to run twice), asked when the context does not say
   * (`ctx.idempotent` wins). An idempotent request in flight when the link died runs once more
   * on the next connection, within the request's attempts and budget; any other rejects with
   * `ERR_CONNECTION_LOST` and `mayHaveExecuted: true`, and the caller decides. Default `false`.
   */
  retryOnReconnect?: boolean | ((req: Req) => boolean);
  /** Whether a request's error means the connection broke. Default: the reconnector's. */
  isConnectionError?: (error: unknown) => boolean;
  /**
   * Whether an error proves the request never left the client (the socket was already
   * unwritable). Such a request waits for the next connection like any queued request, and is
   * never reported as "may have executed". `ERR_NOT_SENT` errors always count.
   */
  neverWritten?: (error: unknown) => boolean;
  /**
   * Whether a request's error is the peer's definitive answer: the request context is marked
   * so, and no retry layer above repeats it. Default: none is.
   */
  isDefinitive?: (error: unknown) => boolean;
  /** Requests held while there is no connection; beyond it `ERR_QUEUE_FULL`. Default 1 000. */
  maxQueued?: number;
  /** Bytes held while there is no connection (by `sizeOf`). Default 16 MiB. */
  maxQueuedBytes?: number;
  /** A request's size for `maxQueuedBytes`. Default: strings and bytes by length, else JSON. */
  sizeOf?: (req: Req) => number;
  /** Longest wait in the queue before `ERR_TIMEOUT` (never sent), ms. Default 30 000. */
  queueTimeout?: number;
}

/** Counters for dashboards and tests. */
export interface ReconnectServiceStats {
  /** Requests waiting for a connection now. */
  queued: number;
  queuedBytes: number;
  /** Requests refused with `ERR_QUEUE_FULL`. */
  queueFull: number;
  /** Requests that timed out in the queue. */
  queueTimeouts: number;
  /** In-flight requests run again on a new connection (idempotent). */
  retriedOnReconnect: number;
  /** In-flight requests rejected with `mayHaveExecuted: true`. */
  mayHaveExecuted: number;
  /** Requests the client provably never wrote, queued again for the next connection. */
  requeued: number;
}

/** Why a request was refused without a result. */
export type RejectionReason = 'queue_full' | 'queue_timeout' | 'may_have_executed';

export type ReconnectServiceEvents = {
  /** A request was refused; `reason` says why. */
  rejected: { reason: RejectionReason; error: TowerlineError };
  /** An idempotent request in flight on a lost connection runs again on the next one. */
  retriedOnReconnect: Record<string, never>;
};

export { defaultSizeOf } from './queue.js';

const mayHaveExecuted = (error: unknown, attempts: number) =>
  new TowerlineError(
    'ERR_CONNECTION_LOST',
    'the connection was lost with the request in flight; it may have executed',
    { cause: error, mayHaveExecuted: true, attempts },
  );

/** `towerline:reconnect:call`: every call made on a reconnect service, for spans and durations. */
const tracer = callTracer('reconnect');

const notSentByTowerline = (error: unknown) => isTowerlineError(error, 'ERR_NOT_SENT');

/**
 * A service whose requests run on the connection a {@link Reconnector} holds.
 *
 * - Connected: the request runs at once on `reconnector.current` — no `await acquire()`, one
 *   failure handler.
 * - Not connected: it waits in a queue bounded by count and bytes (`ERR_QUEUE_FULL` beyond;
 *   the request never reaches the wire), by `queueTimeout` and by the context's deadline;
 *   queued requests run in order on the next connection, after the connection's own setup.
 * - Never written (the connector proves it): queued again for the next connection, never
 *   "may have executed".
 * - In flight when the link died: run once more on the new connection if the request is
 *   idempotent (the context's `idempotent`, else `retryOnReconnect`) and the request's context
 *   allows another attempt (its `attempts`, `maxAttempts` and `budget`, shared with any retry
 *   layer above); else rejected with `ERR_CONNECTION_LOST`, `mayHaveExecuted: true`, and the
 *   context marked so (a retry layer above then repeats it only if it is idempotent).
 * - Aborted: before it starts it never reaches the wire; while queued it leaves the queue at
 *   once (its count and bytes freed); in flight it rejects at once with the signal's reason and
 *   the context is marked "may have executed".
 * - Closed or given up: every queued request is rejected; none is ever left pending.
 */
export class ReconnectService<C, Req, Res> implements FusableService<Req, Res> {
  readonly reconnector: Reconnector<C>;
  /** `rejected {reason}` and `retriedOnReconnect`, on channel `towerline:reconnect:*` too. */
  readonly events = new TypedEmitter<ReconnectServiceEvents>({ channel: 'towerline:reconnect' });
  /** @internal The split call {@link RetryLayer} and other towerline layers fuse with. */
  readonly [fused]: FusedPath<Req, Res>;
  readonly #call: (conn: C, req: Req, ctx?: CallContext) => Promise<Res>;
  readonly #idempotent: (req: Req) => boolean;
  readonly #isConnectionError: (error: unknown) => boolean;
  readonly #neverWritten: (error: unknown) => boolean;
  readonly #isDefinitive: ((error: unknown) => boolean) | undefined;
  readonly #queue: RequestQueue<C, Req, Res>;
  readonly #counts = { retriedOnReconnect: 0, mayHaveExecuted: 0, requeued: 0 };

  constructor(reconnector: Reconnector<C>, options: ReconnectServiceOptions<C, Req, Res>) {
    if (typeof options?.call !== 'function') invalidArgument('call', 'expected a function');
    const { retryOnReconnect = false } = options;
    if (typeof retryOnReconnect !== 'boolean' && typeof retryOnReconnect !== 'function') {
      invalidArgument('retryOnReconnect', 'expected a boolean or a function');
    }
    for (const name of ['isConnectionError', 'neverWritten', 'isDefinitive', 'sizeOf'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') {
        invalidArgument(name, 'expected a function');
      }
    }
    this.reconnector = reconnector;
    this.events.source = reconnector.name;
    this.#call = options.call;
    this.#idempotent =
      typeof retryOnReconnect === 'function' ? retryOnReconnect : () => retryOnReconnect;
    this.#isConnectionError = options.isConnectionError ?? reconnector.isConnectionError;
    const neverWritten = options.neverWritten;
    this.#neverWritten = neverWritten
      ? (error) => notSentByTowerline(error) || neverWritten(error)
      : notSentByTowerline;
    this.#isDefinitive = options.isDefinitive;
    this.#queue = new RequestQueue(reconnector, options, {
      run: (conn, req, ctx, retried) => this.#run(conn, req, ctx, retried),
      rejected: (reason, error) => this.#rejected(reason, error),
    });
    this[fused] = {
      start: (req, c) => {
        const signal = c.signal;
        if (signal?.aborted) {
          c.wire = undefined;
          return Promise.reject(signal.reason);
        }
        const r = this.reconnector;
        const conn = r.current;
        if (conn === undefined) {
          c.wire = undefined;
          return this.#queue.add(req, c, false);
        }
        c.wire = r.generation;
        if (signal === undefined) return this.#call(conn, req, c);
        // The reply, if it comes, is dropped: the caller has gone.
        return untilAborted(this.#call(conn, req, c), signal);
      },
      // `wire` unset: the promise was the queue's, whose requests carry their own recovery.
      recover: (error, req, c) =>
        c.wire === undefined ? Promise.reject(error) : this.#failed(error, c.wire, req, c, false),
    };
  }

  get stats(): Readonly<ReconnectServiceStats> {
    return { ...this.#queue.stats, ...this.#counts };
  }

  // No closure is made in `call` itself: a closure there, even on a branch not taken, would
  // make every call allocate the scope it captures.
  call(req: Req, ctx?: CallContext): Promise<Res> {
    if (tracer.active) return this.#traced(req, ctx);
    if (ctx === undefined) {
      const r = this.reconnector;
      const live = r.current;
      if (live !== undefined) {
        // The connected path without a context: one call on the live connection and one
        // failure handler, capturing as little as it can (a closure is most of its cost).
        const generation = r.generation;
        let result: Promise<Res>;
        try {
          result = this.#call(live, req, undefined);
        } catch (error) {
          return this.#failed(error, generation, req, undefined, false);
        }
        return this.#thenFailed(result, generation, req);
      }
    }
    return this.#enqueueOrRun(req, ctx);
  }

  #traced(req: Req, ctx: CallContext | undefined): Promise<Res> {
    const events = this.events;
    return tracer.channel.tracePromise(() => this.#enqueueOrRun(req, ctx), {
      events,
      source: events.source,
      request: req,
    });
  }

  /** `result`, with the failure handling of a call made without a context. */
  #thenFailed(result: Promise<Res>, generation: number, req: Req): Promise<Res> {
    return result.then(undefined, (error: unknown) =>
      this.#failed(error, generation, req, undefined, false),
    );
  }

  #enqueueOrRun(req: Req, ctx?: CallContext): Promise<Res> {
    if (ctx !== undefined && !isRequestContext(ctx)) {
      const problem = contextProblem(ctx);
      if (problem !== undefined) return Promise.reject(problem);
    }
    if (ctx?.signal?.aborted) return Promise.reject(ctx.signal.reason);
    const conn = this.reconnector.current;
    if (conn === undefined) return this.#queue.add(req, ctx, false);
    return this.#run(conn, req, ctx, false);
  }

  /** Rejects every queued request with `ERR_CLOSED` and closes the reconnector. */
  close(): Promise<void> {
    return this.reconnector.close().finally(() => this.#queue.failAll());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The connected path: one call on the live connection and one failure handler. */
  #run(conn: C, req: Req, ctx: CallContext | undefined, retried: boolean): Promise<Res> {
    const generation = this.reconnector.generation;
    let result: Promise<Res>;
    try {
      result = this.#send(conn, req, ctx);
    } catch (error) {
      return this.#failed(error, generation, req, ctx, retried);
    }
    return result.then(undefined, (error: unknown) =>
      this.#failed(error, generation, req, ctx, retried),
    );
  }

  /** One write to the wire; with a signal, an abort in flight rejects at once. */
  #send(conn: C, req: Req, ctx: CallContext | undefined): Promise<Res> {
    const signal = ctx?.signal;
    if (signal === undefined) return this.#call(conn, req, ctx);
    if (signal.aborted) return Promise.reject(signal.reason);
    // The reply, if it comes, is dropped: the caller has gone.
    return untilAborted(this.#call(conn, req, ctx), signal);
  }

  #failed(
    error: unknown,
    generation: number,
    req: Req,
    ctx: CallContext | undefined,
    retried: boolean,
  ): Promise<Res> {
    const r = this.reconnector;
    const c = isRequestContext(ctx) ? ctx : undefined;
    if (c !== undefined && c.attempts === 0) c.attempts = 1;
    if (ctx?.signal?.aborted) {
      // Aborted in flight: the request was written and may run; the caller is told at once.
      if (c !== undefined) c.mayHaveExecuted = true;
      return Promise.reject(ctx.signal.reason);
    }
    const unwritten = this.#neverWritten(error);
    const broken = unwritten || this.#isConnectionError(error);
    // The connection the request ran on is no longer the live one: it was lost meanwhile.
    const linkGone = r.current === undefined || r.generation !== generation;
    if (!broken && !linkGone) {
      if (c !== undefined && this.#isDefinitive?.(error) === true) c.definitive = true;
      return Promise.reject(error);
    }
    if (broken && !linkGone) r.reportLost(generation, error);
    if (unwritten) {
      this.#counts.requeued++;
      return this.#queue.add(req, ctx, retried);
    }
    const idempotent = this.#isIdempotent(req, c ?? ctx);
    if (c !== undefined) {
      c.mayHaveExecuted = true;
      c.connection = r;
    }
    if (!retried && idempotent && r.state !== 'closed' && r.state !== 'failed' && mayRepeat(c)) {
      this.#counts.retriedOnReconnect++;
      this.events.emit('retriedOnReconnect', {});
      const next = r.current;
      return next !== undefined && r.generation !== generation
        ? this.#run(next, req, ctx, true)
        : this.#queue.add(req, ctx, true);
    }
    this.#counts.mayHaveExecuted++;
    // Attempts made for it so far: the context's count, or this layer's own (send and resend).
    const attempts = c !== undefined ? c.attempts : retried ? 2 : 1;
    return Promise.reject(this.#rejected('may_have_executed', mayHaveExecuted(error, attempts)));
  }

  /** The context's word, else the classifier's, written back to a request context for the layers above. */
  #isIdempotent(req: Req, ctx: CallContext | undefined): boolean {
    if (ctx?.idempotent !== undefined) return ctx.idempotent;
    let idempotent = false;
    try {
      idempotent = this.#idempotent(req) === true;
    } catch {
      // A broken classifier makes nothing idempotent.
    }
    if (isRequestContext(ctx)) ctx.idempotent = idempotent;
    return idempotent;
  }

  #rejected(reason: RejectionReason, error: TowerlineError): TowerlineError {
    this.events.emit('rejected', { reason, error });
    return error;
  }
}

/** Whether the request's context allows one more attempt, and its budget pays for it. */
function mayRepeat(c: RequestContext | undefined): boolean {
  if (c === undefined) return true;
  if (!(c.attempts < c.maxAttempts)) return false;
  if (c.budget !== undefined && !c.budget.withdraw()) return false;
  c.attempts++;
  c.connection = undefined;
  return true;
}

/**
 * Turns a {@link Reconnector} into a {@link Service}.
 *
 * @example
 * ```ts
 * const kv = new ReconnectLayer<LineClient, string, string>({
 *   call: (client, line) => client.send(line),
 *   retryOnReconnect: (line) => line.startsWith('GET '),
 * }).wrap(reconnector);
 * ```
 */
export class ReconnectLayer<C, Req, Res>
  implements Layer<Reconnector<C>, ReconnectService<C, Req, Res>>
{
  readonly #options: ReconnectServiceOptions<C, Req, Res>;

  constructor(options: ReconnectServiceOptions<C, Req, Res>) {
    if (typeof options?.call !== 'function') invalidArgument('call', 'expected a function');
    this.#options = options;
  }

  wrap(reconnector: Reconnector<C>): ReconnectService<C, Req, Res> {
    return new ReconnectService(reconnector, this.#options);
  }
}
