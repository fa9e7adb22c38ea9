import {
  type CallContext,
  describeValue,
  invalidArgument,
  type TimerHandle,
  TowerlineError,
} from '@towerline/core';
import type { Reconnector } from './reconnector.js';
import type { RejectionReason } from './service.js';

export interface QueueOptions<Req> {
  maxQueued?: number;
  maxQueuedBytes?: number;
  sizeOf?: (req: Req) => number;
  queueTimeout?: number;
}

interface Hooks<C, Req, Res> {
  /** Runs a request taken from the queue on the new connection. */
  run(conn: C, req: Req, ctx: CallContext | undefined, retried: boolean): Promise<Res>;
  /** Announces a refusal and returns the error to reject with. */
  rejected(reason: RejectionReason, error: TowerlineError): TowerlineError;
}

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

/** A request's size for `maxQueuedBytes`: strings and bytes by length, arrays by their parts, else JSON. */
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

/**
 * The requests waiting for a connection: bounded by count and bytes, each by a timeout (the
 * earlier of `queueTimeout` and its context's deadline) and by its signal, run in order on the
 * next connection. Nothing in it is ever left pending: close and give-up reject them all.
 */
export class RequestQueue<C, Req, Res> {
  readonly stats = { queued: 0, queuedBytes: 0, queueFull: 0, queueTimeouts: 0 };
  readonly #reconnector: Reconnector<C>;
  readonly #hooks: Hooks<C, Req, Res>;
  readonly #maxQueued: number;
  readonly #maxQueuedBytes: number;
  readonly #sizeOf: (req: Req) => number;
  readonly #queueTimeout: number;
  #items: Queued<Req, Res>[] = [];
  #waiting = false;

  constructor(reconnector: Reconnector<C>, options: QueueOptions<Req>, hooks: Hooks<C, Req, Res>) {
    const { maxQueued = 1_000, maxQueuedBytes = 16 * 1024 * 1024, queueTimeout = 30_000 } = options;
    if (!(Number.isInteger(maxQueued) && maxQueued >= 0)) {
      invalidArgument('maxQueued', `expected an integer >= 0, got ${describeValue(maxQueued)}`);
    }
    if (typeof maxQueuedBytes !== 'number' || !(maxQueuedBytes >= 0)) {
      invalidArgument('maxQueuedBytes', `expected >= 0, got ${describeValue(maxQueuedBytes)}`);
    }
    if (typeof queueTimeout !== 'number' || !(queueTimeout > 0)) {
      invalidArgument(
        'queueTimeout',
        `expected ms > 0 or Infinity, got ${describeValue(queueTimeout)}`,
      );
    }
    this.#reconnector = reconnector;
    this.#hooks = hooks;
    this.#maxQueued = maxQueued;
    this.#maxQueuedBytes = maxQueuedBytes;
    this.#sizeOf = options.sizeOf ?? defaultSizeOf;
    this.#queueTimeout = queueTimeout;
  }

  /**
   * Holds `req` until the next connection. `retried`: it was in flight once already (admitted
   * before, so never refused for room, and "may have executed" if it times out here).
   */
  add(req: Req, ctx: CallContext | undefined, retried: boolean): Promise<Res> {
    const r = this.#reconnector;
    if (r.state === 'closed') {
      return Promise.reject(new TowerlineError('ERR_CLOSED', 'the service is closed'));
    }
    if (r.state === 'failed') return Promise.reject(r.failure);
    const signal = ctx?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const timeout = this.#timeoutFor(ctx);
    if (!(timeout > 0)) return Promise.reject(this.#timedOut(retried, 0));
    const size = retried ? 0 : this.#sizeOf(req);
    if (
      !retried &&
      (this.#items.length >= this.#maxQueued ||
        this.stats.queuedBytes + size > this.#maxQueuedBytes)
    ) {
      this.stats.queueFull++;
      return Promise.reject(
        this.#hooks.rejected(
          'queue_full',
          new TowerlineError(
            'ERR_QUEUE_FULL',
            `no connection and the queue is full (${this.#items.length} requests, ${this.stats.queuedBytes} bytes)`,
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
      if (Number.isFinite(timeout)) {
        item.timer = r.clock.setTimeout(() => {
          item.timer = undefined;
          this.#drop(item, this.#timedOut(retried, timeout));
        }, timeout);
      }
      this.#items.push(item);
      this.stats.queued++;
      this.stats.queuedBytes += size;
    });
    this.#awaitConnection();
    return promise;
  }

  /** Rejects everything queued (with `error`, the reconnector's failure, or `ERR_CLOSED`). */
  failAll(error?: unknown): void {
    const reason =
      error ??
      this.#reconnector.failure ??
      new TowerlineError('ERR_CLOSED', 'the service is closed');
    const items = this.#items;
    this.#items = [];
    for (const item of items) {
      this.#release(item);
      item.reject(reason);
    }
  }

  /** The earlier of `queueTimeout` and the time left to the context's deadline. */
  #timeoutFor(ctx: CallContext | undefined): number {
    const deadline = ctx?.deadline;
    if (deadline === undefined) return this.#queueTimeout;
    return Math.min(this.#queueTimeout, deadline - this.#reconnector.clock.now());
  }

  #timedOut(retried: boolean, ms: number): TowerlineError {
    this.stats.queueTimeouts++;
    return this.#hooks.rejected(
      'queue_timeout',
      new TowerlineError(
        'ERR_TIMEOUT',
        `no connection within ${Math.round(ms)} ms; the request was not ${retried ? 'sent again' : 'sent'}`,
        { mayHaveExecuted: retried },
      ),
    );
  }

  #awaitConnection(): void {
    if (this.#waiting) return;
    this.#waiting = true;
    this.#reconnector.acquire().then(
      (conn) => {
        this.#waiting = false;
        this.#drain(conn);
      },
      (error: unknown) => {
        this.#waiting = false;
        this.failAll(error);
      },
    );
  }

  /** Runs queued requests in order while `conn` is still the live connection. */
  #drain(conn: C): void {
    const r = this.#reconnector;
    while (this.#items.length > 0 && r.current === conn) {
      const item = this.#items.shift()!;
      this.#release(item);
      item.resolve(this.#hooks.run(conn, item.req, item.ctx, item.retried));
    }
    if (this.#items.length > 0) this.#awaitConnection();
  }

  #drop(item: Queued<Req, Res>, reason: unknown): void {
    const i = this.#items.indexOf(item);
    if (i === -1) return;
    this.#items.splice(i, 1);
    this.#release(item);
    item.reject(reason);
  }

  #release(item: Queued<Req, Res>): void {
    item.cleanup?.();
    if (item.timer !== undefined) this.#reconnector.clock.clearTimeout(item.timer);
    this.stats.queued--;
    this.stats.queuedBytes -= item.size;
  }
}
