import {
  type CallContext,
  invalidArgument,
  type Layer,
  type Service,
  type TimerHandle,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
import type { Reconnector } from './reconnector.js';

export interface ReconnectServiceOptions<C, Req, Res> {
  /** Runs one request on a live connection. Must settle once the connection is disposed. */
  call: (conn: C, req: Req, ctx?: CallContext) => Promise<Res>;
  /**
   * Whether a request that was in flight when the link died may run again on the next
   * connection (it is idempotent). Default `false`: it rejects with `ERR_CONNECTION_LOST` and
   * `mayHaveExecuted: true`, and the caller decides.
   */
  retryOnReconnect?: boolean | ((req: Req) => boolean);
  /** Whether a request's error means the connection broke. Default: the reconnector's. */
  isConnectionError?: (error: unknown) => boolean;
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
}

/** Why a request was refused without a result. */
export type RejectionReason = 'queue_full' | 'queue_timeout' | 'may_have_executed';

export type ReconnectServiceEvents = {
  /** A request was refused; `reason` says why. */
  rejected: { reason: RejectionReason; error: TowerlineError };
  /** An idempotent request in flight on a lost connection runs again on the next one. */
  retriedOnReconnect: Record<string, never>;
};

interface Queued<Req, Res> {
  req: Req;
  ctx: CallContext | undefined;
  retried: boolean;
  size: number;
  resolve: (res: Res | Promise<Res>) => void;
  reject: (error: unknown) => void;
  cleanup: (() => void) | undefined;
  timer: TimerHandle | undefined;
}

export function defaultSizeOf(req: unknown): number {
  if (typeof req === 'string') return req.length;
  if (ArrayBuffer.isView(req)) return req.byteLength;
  if (Array.isArray(req)) {
    let n = 0;
    for (const part of req)
      n += typeof part === 'string' || ArrayBuffer.isView(part) ? defaultSizeOf(part) : 8;
    return n;
  }
  if (req === null || typeof req !== 'object') return 8;
  try {
    return JSON.stringify(req)?.length ?? 8;
  } catch {
    return 64;
  }
}

const mayHaveExecuted = (error: unknown) =>
  new TowerlineError(
    'ERR_CONNECTION_LOST',
    'the connection was lost with the request in flight; it may have executed',
    { cause: error, mayHaveExecuted: true },
  );

/**
 * A service whose requests run on the connection a {@link Reconnector} holds.
 *
 * - Connected: the request runs at once on `reconnector.current` — no `await acquire()`, one
 *   failure handler.
 * - Not connected: it waits in a queue bounded by count and bytes (`ERR_QUEUE_FULL` beyond;
 *   the request never reaches the wire) and by `queueTimeout`; queued requests run in order
 *   on the next connection, after the connection's own setup.
 * - In flight when the link died: run once more on the new connection if `retryOnReconnect`
 *   says it is idempotent, else rejected with `ERR_CONNECTION_LOST`, `mayHaveExecuted: true`.
 * - Closed or given up: every queued request is rejected; none is ever left pending.
 */
export class ReconnectService<C, Req, Res> implements Service<Req, Res> {
  readonly reconnector: Reconnector<C>;
  /** `rejected {reason}` and `retriedOnReconnect`, on channel `towerline:reconnect:*` too. */
  readonly events = new TypedEmitter<ReconnectServiceEvents>({ channel: 'towerline:reconnect' });
  readonly #call: (conn: C, req: Req, ctx?: CallContext) => Promise<Res>;
  readonly #idempotent: (req: Req) => boolean;
  readonly #isConnectionError: (error: unknown) => boolean;
  readonly #maxQueued: number;
  readonly #maxQueuedBytes: number;
  readonly #sizeOf: (req: Req) => number;
  readonly #queueTimeout: number;
  #queue: Queued<Req, Res>[] = [];
  #waiting = false;
  readonly #stats: ReconnectServiceStats = {
    queued: 0,
    queuedBytes: 0,
    queueFull: 0,
    queueTimeouts: 0,
    retriedOnReconnect: 0,
    mayHaveExecuted: 0,
  };

  constructor(reconnector: Reconnector<C>, options: ReconnectServiceOptions<C, Req, Res>) {
    if (typeof options?.call !== 'function') invalidArgument('call', 'expected a function');
    const {
      retryOnReconnect = false,
      maxQueued = 1_000,
      maxQueuedBytes = 16 * 1024 * 1024,
      queueTimeout = 30_000,
    } = options;
    if (!(Number.isInteger(maxQueued) && maxQueued >= 0)) {
      invalidArgument('maxQueued', `expected an integer >= 0, got ${maxQueued}`);
    }
    if (!(maxQueuedBytes >= 0)) {
      invalidArgument('maxQueuedBytes', `expected >= 0, got ${maxQueuedBytes}`);
    }
    if (!(queueTimeout > 0)) {
      invalidArgument('queueTimeout', `expected ms > 0 or Infinity, got ${queueTimeout}`);
    }
    if (typeof retryOnReconnect !== 'boolean' && typeof retryOnReconnect !== 'function') {
      invalidArgument('retryOnReconnect', 'expected a boolean or a function');
    }
    this.reconnector = reconnector;
    this.events.source = reconnector.name;
    this.#call = options.call;
    this.#idempotent =
      typeof retryOnReconnect === 'function' ? retryOnReconnect : () => retryOnReconnect;
    this.#isConnectionError = options.isConnectionError ?? reconnector.isConnectionError;
    this.#maxQueued = maxQueued;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.#sizeOf = options.sizeOf ?? defaultSizeOf;
    this.#queueTimeout = queueTimeout;
  }

  get stats(): Readonly<ReconnectServiceStats> {
    return { ...this.#stats };
  }

  call(req: Req, ctx?: CallContext): Promise<Res> {
    const conn = this.reconnector.current;
    if (conn === undefined) return this.#enqueue(req, ctx, false);
    return this.#run(conn, req, ctx, false);
  }

  /** Rejects every queued request with `ERR_CLOSED` and closes the reconnector. */
  close(): Promise<void> {
    return this.reconnector.close().finally(() => this.#failQueue());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The connected path: one call on the live connection and one failure handler. */
  #run(conn: C, req: Req, ctx: CallContext | undefined, retried: boolean): Promise<Res> {
    let result: Promise<Res>;
    try {
      result = this.#call(conn, req, ctx);
    } catch (error) {
      return this.#failed(error, conn, req, ctx, retried);
    }
    return result.then(undefined, (error: unknown) => this.#failed(error, conn, req, ctx, retried));
  }

  #failed(
    error: unknown,
    conn: C,
    req: Req,
    ctx: CallContext | undefined,
    retried: boolean,
  ): Promise<Res> {
    const r = this.reconnector;
    const brokenByError = this.#isConnectionError(error);
    // The connection the request ran on is no longer the live one: it was lost meanwhile.
    const linkGone = r.current !== conn;
    if (!brokenByError && !linkGone) return Promise.reject(error);
    if (brokenByError && !linkGone) r.reportLost(r.generation, error);
    if (ctx?.signal?.aborted) return Promise.reject(ctx.signal.reason);
    if (!retried && this.#idempotent(req) && r.state !== 'closed' && r.state !== 'failed') {
      this.#stats.retriedOnReconnect++;
      this.events.emit('retriedOnReconnect', {});
      const next = r.current;
      return next !== undefined && next !== conn
        ? this.#run(next, req, ctx, true)
        : this.#enqueue(req, ctx, true);
    }
    this.#stats.mayHaveExecuted++;
    return Promise.reject(this.#rejected('may_have_executed', mayHaveExecuted(error)));
  }

  #enqueue(req: Req, ctx: CallContext | undefined, retried: boolean): Promise<Res> {
    const r = this.reconnector;
    if (r.state === 'closed') {
      return Promise.reject(new TowerlineError('ERR_CLOSED', 'the service is closed'));
    }
    if (r.state === 'failed') return Promise.reject(r.failure);
    const signal = ctx?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const size = retried ? 0 : this.#sizeOf(req);
    // A retried request was admitted once already; it is not refused for room.
    if (
      !retried &&
      (this.#queue.length >= this.#maxQueued ||
        this.#stats.queuedBytes + size > this.#maxQueuedBytes)
    ) {
      this.#stats.queueFull++;
      return Promise.reject(
        this.#rejected(
          'queue_full',
          new TowerlineError(
            'ERR_QUEUE_FULL',
            `no connection and the queue is full (${this.#queue.length} requests, ${this.#stats.queuedBytes} bytes)`,
          ),
        ),
      );
    }
    const promise = new Promise<Res>((resolve, reject) => {
      const item: Queued<Req, Res> = {
        req,
        ctx,
        retried,
        size,
        resolve,
        reject,
        cleanup: undefined,
        timer: undefined,
      };
      if (signal) {
        const onAbort = () => this.#drop(item, signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        item.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      if (Number.isFinite(this.#queueTimeout)) {
        item.timer = r.clock.setTimeout(() => {
          item.timer = undefined;
          this.#stats.queueTimeouts++;
          this.#drop(
            item,
            this.#rejected(
              'queue_timeout',
              new TowerlineError(
                'ERR_TIMEOUT',
                `no connection within ${this.#queueTimeout} ms; the request was not sent`,
                { mayHaveExecuted: retried },
              ),
            ),
          );
        }, this.#queueTimeout);
      }
      this.#queue.push(item);
      this.#stats.queued++;
      this.#stats.queuedBytes += size;
    });
    this.#awaitConnection();
    return promise;
  }

  #awaitConnection(): void {
    if (this.#waiting) return;
    this.#waiting = true;
    this.reconnector.acquire().then(
      (conn) => {
        this.#waiting = false;
        this.#drain(conn);
      },
      (error: unknown) => {
        this.#waiting = false;
        this.#failQueue(error);
      },
    );
  }

  /** Runs queued requests in order while `conn` is still the live connection. */
  #drain(conn: C): void {
    const r = this.reconnector;
    while (this.#queue.length > 0 && r.current === conn) {
      const item = this.#queue.shift()!;
      this.#release(item);
      item.resolve(this.#run(conn, item.req, item.ctx, item.retried));
    }
    if (this.#queue.length > 0) this.#awaitConnection();
  }

  #rejected(reason: RejectionReason, error: TowerlineError): TowerlineError {
    this.events.emit('rejected', { reason, error });
    return error;
  }

  #drop(item: Queued<Req, Res>, reason: unknown): void {
    const i = this.#queue.indexOf(item);
    if (i === -1) return;
    this.#queue.splice(i, 1);
    this.#release(item);
    item.reject(reason);
  }

  #release(item: Queued<Req, Res>): void {
    item.cleanup?.();
    if (item.timer !== undefined) this.reconnector.clock.clearTimeout(item.timer);
    this.#stats.queued--;
    this.#stats.queuedBytes -= item.size;
  }

  #failQueue(error?: unknown): void {
    const reason =
      error ??
      this.reconnector.failure ??
      new TowerlineError('ERR_CLOSED', 'the service is closed');
    const queue = this.#queue;
    this.#queue = [];
    for (const item of queue) {
      this.#release(item);
      item.reject(reason);
    }
  }
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
