import {
  abortedBeforeStart,
  type CallContext,
  type Clock,
  describeValue,
  expectClock,
  expectOptions,
  invalidArgument,
  isTowerlineError,
  type Service,
  type ServiceLayer,
  systemClock,
  type TimerHandle,
  TowerlineError,
  TypedEmitter,
  warnListenerError,
} from '@towerline/core';
import type { LimitAlgorithm } from './adaptive.js';
import { expectName } from './check.js';

export type ConcurrencyEvents = {
  /** A call was refused with `ERR_CONCURRENCY_LIMIT`. */
  rejected: { inflight: number; queued: number; reason: 'queueFull' | 'waitTooLong' };
  /** An adaptive limit moved (by at least one whole call). */
  limitChanged: { from: number; to: number };
};

export interface ConcurrencyLimitOptions {
  /** The most calls in flight: a number (a bulkhead), or an adaptive {@link LimitAlgorithm}. */
  limit: number | LimitAlgorithm;
  /** Calls that may wait for a slot beyond the limit; default 0 (refuse at once). */
  queue?: number;
  /** The longest a call waits in the queue, in ms; default no bound but the call's signal and deadline. */
  maxWaitMs?: number;
  /** Whether a failure says "too much load" to an adaptive limit; default `ERR_TIMEOUT` and `ERR_OVERLOADED`. */
  isDrop?: (error: unknown) => boolean;
  clock?: Clock;
  name?: string;
}

/** Something that can say it would refuse or queue a call now: what a load shedder reads. */
export interface Saturable {
  /** True while a new call would wait or be refused. */
  readonly saturated: boolean;
}

interface Waiter {
  grant: () => void;
  reject: (error: unknown) => void;
  timer: TimerHandle | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const defaultIsDrop = (error: unknown) =>
  isTowerlineError(error, 'ERR_TIMEOUT') || isTowerlineError(error, 'ERR_OVERLOADED');

function refused(reason: 'queueFull' | 'waitTooLong', limit: number): TowerlineError {
  return new TowerlineError(
    'ERR_CONCURRENCY_LIMIT',
    reason === 'queueFull'
      ? `the concurrency limit (${limit}) is reached and its queue is full`
      : `no slot under the concurrency limit (${limit}) became free in time`,
    { mayHaveExecuted: false },
  );
}

/**
 * Bounds the calls in flight (a bulkhead: tower's `ConcurrencyLimit`, resilience4j's
 * `Bulkhead`): past the limit a call waits in a bounded queue (by count and by time, and its
 * signal and deadline) and is refused with `ERR_CONCURRENCY_LIMIT` beyond that. Every service
 * the layer wraps shares its slots. With a {@link LimitAlgorithm} (`AimdLimit`,
 * `Gradient2Limit`) the limit follows the latency the inner service shows.
 *
 * @example
 * ```ts
 * const bulkhead = new ConcurrencyLimitLayer({ limit: 32, queue: 64, maxWaitMs: 100 });
 * const adaptive = new ConcurrencyLimitLayer({ limit: new Gradient2Limit({ max: 256 }), queue: 256 });
 * ```
 */
export class ConcurrencyLimitLayer implements ServiceLayer, Saturable {
  readonly events = new TypedEmitter<ConcurrencyEvents>({ channel: 'towerline:concurrency' });
  readonly #static: number;
  readonly #algorithm: LimitAlgorithm | undefined;
  readonly #queueMax: number;
  readonly #maxWait: number;
  readonly #isDrop: (error: unknown) => boolean;
  readonly #clock: Clock;
  readonly #queue: Waiter[] = [];
  #head = 0;
  #inflight = 0;
  #reported: number;

  constructor(options: ConcurrencyLimitOptions) {
    expectOptions(options, false);
    const { limit } = options;
    if (typeof limit === 'number') {
      if (!(Number.isInteger(limit) && limit >= 1)) {
        invalidArgument('limit', `expected an integer >= 1, got ${describeValue(limit)}`);
      }
      this.#static = limit;
    } else {
      if (typeof limit?.sample !== 'function')
        invalidArgument('limit', 'expected a number or a LimitAlgorithm');
      this.#algorithm = limit;
      this.#static = 0;
    }
    const queue = options.queue === undefined ? 0 : options.queue;
    if (!(Number.isInteger(queue) && queue >= 0)) {
      invalidArgument('queue', `expected an integer >= 0, got ${describeValue(queue)}`);
    }
    this.#queueMax = queue;
    this.#maxWait = options.maxWaitMs === undefined ? Number.POSITIVE_INFINITY : options.maxWaitMs;
    if (typeof this.#maxWait !== 'number' || !(this.#maxWait >= 0))
      invalidArgument('maxWaitMs', `expected >= 0, got ${describeValue(this.#maxWait)}`);
    if (options.isDrop !== undefined && typeof options.isDrop !== 'function')
      invalidArgument('isDrop', 'expected a function');
    expectClock(options.clock);
    this.#isDrop = options.isDrop ?? defaultIsDrop;
    this.#clock = options.clock ?? systemClock;
    this.#reported = this.limit;
    expectName(options.name);
    this.events.source = options.name ?? 'concurrency';
  }

  /** The limit in force now (whole calls). */
  get limit(): number {
    if (this.#algorithm === undefined) return this.#static;
    // An algorithm answering NaN (or nothing) must not close every slot: 1 at the least.
    let limit: number;
    try {
      limit = Math.floor(this.#algorithm.limit);
    } catch {
      limit = 1;
    }
    // biome-ignore lint/complexity/useMathMinMax: Math.max(1, NaN) is NaN; this is 1.
    return limit >= 1 ? limit : 1;
  }

  /** Calls in flight now. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Calls waiting for a slot now. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  get saturated(): boolean {
    return this.#inflight >= this.limit;
  }

  wrap<Req, Res>(inner: Service<Req, Res>): Service<Req, Res> & Saturable {
    const layer = this;
    return {
      call: (req: Req, ctx?: CallContext) => this.#call(inner, req, ctx),
      close: () => inner.close?.() ?? Promise.resolve(),
      get saturated() {
        return layer.saturated;
      },
    };
  }

  readonly #release = <T>(value: T): T => {
    this.#done();
    return value;
  };

  readonly #releaseError = (error: unknown): never => {
    this.#done();
    throw error;
  };

  #call<Req, Res>(inner: Service<Req, Res>, req: Req, ctx: CallContext | undefined): Promise<Res> {
    const aborted = abortedBeforeStart(ctx);
    if (aborted !== undefined) return aborted;
    if (this.#inflight < this.limit && this.queued === 0) {
      this.#inflight++;
      return this.#run(inner, req, ctx);
    }
    return this.#wait(ctx).then(() => this.#run(inner, req, ctx));
  }

  #run<Req, Res>(inner: Service<Req, Res>, req: Req, ctx: CallContext | undefined): Promise<Res> {
    let started: Promise<Res>;
    const algorithm = this.#algorithm;
    let t0 = 0;
    const inflight = this.#inflight;
    try {
      // A user's clock that throws fails this call, never keeps its slot.
      if (algorithm !== undefined) t0 = this.#clock.now();
      started = inner.call(req, ctx);
    } catch (error) {
      started = Promise.reject(error);
    }
    if (algorithm === undefined) return started.then(this.#release, this.#releaseError);
    return started.then(
      (value) => {
        this.#sample(algorithm, t0, inflight, false, undefined);
        return this.#release(value);
      },
      (error: unknown) => {
        this.#sample(algorithm, t0, inflight, true, error);
        return this.#releaseError(error);
      },
    );
  }

  /**
   * Tells the algorithm of a finished call. A drop classifier, a clock or an algorithm that
   * throws is reported as a throwing listener is (`warnListenerError`), never the call's
   * outcome: the caller still gets the inner answer and the slot is freed (a lost slot would
   * hang every queued call). A throwing classifier says "not a drop".
   */
  #sample(
    algorithm: LimitAlgorithm,
    t0: number,
    inflight: number,
    failed: boolean,
    error: unknown,
  ): void {
    let dropped = false;
    if (failed) {
      try {
        dropped = this.#isDrop(error) === true;
      } catch (thrown) {
        warnListenerError({ event: 'isDrop', error: thrown });
      }
    }
    try {
      algorithm.sample(this.#clock.now() - t0, inflight, dropped);
    } catch (thrown) {
      warnListenerError({ event: 'sample', error: thrown });
    }
    const limit = this.limit;
    if (limit !== this.#reported) {
      const from = this.#reported;
      this.#reported = limit;
      this.events.emit('limitChanged', { from, to: limit });
    }
  }

  /** A slot came free: hand it (and any an adaptive limit added) to the next waiters. */
  #done(): void {
    this.#inflight--;
    const queue = this.#queue;
    // Bounded by the queue's length: each pass removes one waiter.
    while (this.#head < queue.length && this.#inflight < this.limit) {
      const next = queue[this.#head]!;
      queue[this.#head++] = undefined as never;
      if (this.#head === queue.length) {
        queue.length = 0;
        this.#head = 0;
      }
      this.#inflight++;
      next.grant();
    }
  }

  #wait(ctx: CallContext | undefined): Promise<void> {
    const limit = this.limit;
    if (this.queued >= this.#queueMax) {
      this.events.emit('rejected', {
        inflight: this.#inflight,
        queued: this.queued,
        reason: 'queueFull',
      });
      return Promise.reject(refused('queueFull', limit));
    }
    const clock = this.#clock;
    const deadline = ctx?.deadline;
    const wait = Math.min(
      this.#maxWait,
      deadline === undefined ? Number.POSITIVE_INFINITY : deadline - clock.now(),
    );
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        reject,
        timer: undefined,
        signal: ctx?.signal,
        onAbort: undefined,
      };
      const leave = () => {
        const i = this.#queue.indexOf(waiter, this.#head);
        if (i >= 0) this.#queue.splice(i, 1);
        if (waiter.timer !== undefined) clock.clearTimeout(waiter.timer);
        if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
      };
      waiter.grant = () => {
        if (waiter.timer !== undefined) clock.clearTimeout(waiter.timer);
        if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
        resolve();
      };
      if (Number.isFinite(wait)) {
        waiter.timer = clock.setTimeout(
          () => {
            waiter.timer = undefined;
            leave();
            this.events.emit('rejected', {
              inflight: this.#inflight,
              queued: this.queued,
              reason: 'waitTooLong',
            });
            reject(refused('waitTooLong', this.limit));
          },
          Math.max(0, wait),
        );
      }
      if (waiter.signal !== undefined) {
        const signal = waiter.signal;
        waiter.onAbort = () => {
          leave();
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#queue.push(waiter);
    });
  }
}
