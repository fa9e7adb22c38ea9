/**
 * Overload, answered instead of suffered: a request that would take memory past
 * `max_memory_bytes` (stored data in memory mode, indexes, write windows, the read cache,
 * bodies in flight), a live read past `max_live_connections`, or any request while the event
 * loop lags past its threshold, gets `503` with problem+json and a `Retry-After` spread over a
 * few seconds (so refused clients do not come back together) — never an OOM, a crash or an
 * unbounded queue. The read cache gives way first: it is the only memory that can be freed.
 */
import { type Clock, type RandomSource, systemClock } from '@towerline/core';
import { type Problem, problem } from '../protocol/problem.js';

export interface OverloadOptions {
  /** All memory the server's data may take, bytes. Default unlimited. */
  maxMemoryBytes?: number | undefined;
  /** Long-poll and SSE connections at once. Default unlimited. */
  maxLiveConnections?: number | undefined;
  /** Refuse requests while the event loop lags more than this, ms. Default unlimited. */
  maxEventLoopLagMs?: number | undefined;
  /** How often the event loop lag is sampled, ms. Default 50. */
  lagSampleMs?: number;
  clock?: Clock;
  random?: RandomSource;
}

/** What overload control needs to know about memory. */
export interface MemorySources {
  /** Bytes held that cannot be given back on demand. */
  held(): number;
  /** Frees cached bytes until at most `bytes` remain cached; returns the bytes still cached. */
  shrinkCache(bytes: number): number;
  cached(): number;
}

export class OverloadGuard {
  readonly #o: OverloadOptions;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  #lag = 0;
  #timer: unknown;
  #expected = 0;
  /** Live reads open now. */
  live = 0;

  constructor(
    options: OverloadOptions,
    private readonly memory: MemorySources,
  ) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    if (options.maxEventLoopLagMs !== undefined) this.#sample();
  }

  /** The event loop lag measured last, ms. */
  get lag(): number {
    return this.#lag;
  }

  #sample(): void {
    const every = this.#o.lagSampleMs ?? 50;
    this.#expected = this.#clock.now() + every;
    this.#timer = this.#clock.setTimeout(() => {
      this.#lag = Math.max(0, this.#clock.now() - this.#expected);
      this.#sample();
    }, every);
    this.#clock.unref?.(this.#timer);
  }

  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** `Retry-After` in whole seconds, spread over 1–4 s. */
  #refuse(title: string): Problem {
    return problem(503, title, ['retry-after', String(1 + Math.floor(this.#random() * 4))]);
  }

  /** Any request: refused while the event loop lags. */
  admit(): Problem | undefined {
    const max = this.#o.maxEventLoopLagMs;
    if (max !== undefined && this.#lag > max)
      return this.#refuse('the server is overloaded: its event loop is lagging');
    return undefined;
  }

  /** The memory budget, bytes: a body larger can never be admitted. */
  get maxBytes(): number {
    return this.#o.maxMemoryBytes ?? Number.POSITIVE_INFINITY;
  }

  /** A request that will hold `bytes` more: refused past the memory budget, cache given up first. */
  admitBytes(bytes: number): Problem | undefined {
    const max = this.#o.maxMemoryBytes;
    if (max === undefined) return undefined;
    const held = this.memory.held();
    if (held + this.memory.cached() + bytes <= max) return undefined;
    const left = this.memory.shrinkCache(Math.max(0, max - held - bytes));
    if (held + left + bytes <= max) return undefined;
    return this.#refuse('the server is out of memory for data: try again later');
  }

  /** A live read (long-poll, SSE): refused past the connection limit. */
  admitLive(): Problem | undefined {
    const max = this.#o.maxLiveConnections;
    if (max !== undefined && this.live >= max)
      return this.#refuse('the server holds as many live reads as it may');
    return undefined;
  }
}
