/**
 * Breaker state shared by the fleet, answering the two objections to distributed breakers:
 * - "a network call per request": outcomes are counted in process and flushed once per
 *   `flushMs` in one script run; requests never wait on Redis (a half-open probe asks once).
 * - "one bad node trips the breaker for all": the fleet opens on the fleet's failure rate over
 *   at least `minimumRequests` calls, per backend (one name per backend), not on one replica.
 * When the fleet is open, every attached breaker still closed is isolated; a replica whose own
 * breaker is half-open asks `probeGate`, and `SET NX PX` lets one probe through per
 * `probeIntervalMs` across the fleet. A successful probe closes the fleet; the isolated
 * breakers are reset at their next flush. Redis unreachable: each breaker decides alone.
 */
import { describeValue, expectOptions, invalidArgument, type TypedEmitter } from '@towerline/core';
import { type FleetEvents, type FleetRedisOptions, RedisLink } from './link.js';
import { BREAKER, BREAKER_CLOSE } from './scripts.js';

export type BreakerState = 'closed' | 'open' | 'halfOpen' | 'isolated';

/** What a shared breaker needs of a local one (`CircuitBreakerLayer` from @towerline/policies). */
export interface SharableBreaker {
  readonly state: BreakerState;
  isolate(): void;
  reset(): void;
  on(
    event: 'stateChange',
    listener: (e: { from: BreakerState; to: BreakerState }) => void,
  ): unknown;
  on(event: 'outcome', listener: (e: { ok: boolean; durationMs: number }) => void): unknown;
}

export interface SharedBreakerOptions extends FleetRedisOptions {
  /** The backend's name: Redis keys `towerline:breaker:{name}:…`. */
  name: string;
  /** Fleet failure rate (0..1] that opens the fleet. Default 0.5. */
  failureRateThreshold?: number;
  /** Calls the fleet must have made in the window before its rate counts. Default 20. */
  minimumRequests?: number;
  /** Window of the fleet's failure rate, ms. Default 10 000. */
  windowMs?: number;
  /** How often outcomes are sent and the fleet's state read, ms. Default 500. */
  flushMs?: number;
  /** How long the fleet stays open once tripped (refreshed while it keeps failing), ms. Default 10 000. */
  openMs?: number;
  /** One half-open probe per this many ms across the fleet. Default 1 000. */
  probeIntervalMs?: number;
}

/** Payloads of the shared breaker's own events (beside `fallback` and `recovered`). */
export type SharedBreakerEvents = FleetEvents & {
  fleetOpen: { name: string; ok: number; failed: number };
  fleetClosed: { name: string };
  probe: { name: string; granted: boolean };
};

/**
 * @example
 * ```ts
 * const shared = new SharedBreaker({ redis, name: 'payments-api' });
 * const breaker = new CircuitBreakerLayer({ halfOpenProbes: 1, probeGate: shared.probeGate });
 * shared.attach(breaker);
 * ```
 */
/** The most window slots a breaker sums per decision (one Redis script loop). */
const MAX_SLOTS = 1_200;

export class SharedBreaker {
  readonly name: string;
  readonly #link: RedisLink;
  readonly #threshold: number;
  readonly #minimum: number;
  readonly #slotMs: number;
  readonly #slots: number;
  readonly #openMs: number;
  readonly #probeMs: number;
  readonly #keys: { window: string; open: string; probe: string };
  readonly #breakers = new Set<SharableBreaker>();
  /** Breakers this object isolated (and will reset when the fleet closes). */
  readonly #isolated = new Set<SharableBreaker>();
  readonly #timer: ReturnType<typeof setInterval>;
  #ok = 0;
  #failed = 0;
  #open = false;
  #flushing: Promise<void> | undefined;

  constructor(options: SharedBreakerOptions) {
    expectOptions(options, false);
    const { name } = options;
    if (typeof name !== 'string' || name === '') invalidArgument('name', 'expected a name');
    this.name = name;
    this.#threshold = options.failureRateThreshold ?? 0.5;
    if (typeof this.#threshold !== 'number' || !(this.#threshold > 0 && this.#threshold <= 1))
      invalidArgument(
        'failureRateThreshold',
        `expected (0, 1], got ${describeValue(this.#threshold)}`,
      );
    this.#minimum = options.minimumRequests ?? 20;
    if (!(Number.isInteger(this.#minimum) && this.#minimum >= 1))
      invalidArgument(
        'minimumRequests',
        `expected an integer >= 1, got ${describeValue(this.#minimum)}`,
      );
    // The window is summed slot by slot inside Redis, in one script every instance waits on:
    // bounded, so that no option can make that loop long (an Infinity once never ended).
    const windowMs = options.windowMs ?? 10_000;
    if (typeof windowMs !== 'number' || !(windowMs >= 1_000 && windowMs <= 600_000))
      invalidArgument('windowMs', `expected 1000..600000 ms, got ${describeValue(windowMs)}`);
    this.#slotMs = options.flushMs ?? 500;
    if (typeof this.#slotMs !== 'number' || !(this.#slotMs >= 10 && this.#slotMs <= windowMs))
      invalidArgument('flushMs', `expected 10..windowMs ms, got ${describeValue(this.#slotMs)}`);
    this.#slots = Math.max(1, Math.round(windowMs / this.#slotMs));
    if (this.#slots > MAX_SLOTS)
      invalidArgument(
        'flushMs',
        `expected at most ${MAX_SLOTS} slots per window (windowMs / flushMs)`,
      );
    this.#openMs = options.openMs ?? 10_000;
    this.#probeMs = options.probeIntervalMs ?? 1_000;
    for (const [field, ms] of [
      ['openMs', this.#openMs],
      ['probeIntervalMs', this.#probeMs],
    ] as const) {
      if (typeof ms !== 'number' || !(ms >= 1 && ms <= 86_400_000))
        invalidArgument(field, `expected 1..86400000 ms, got ${describeValue(ms)}`);
    }
    const base = `towerline:breaker:{${name}}`;
    this.#keys = { window: `${base}:w`, open: `${base}:open`, probe: `${base}:probe` };
    this.#link = new RedisLink(name, options, 'towerline:fleet:breaker');
    this.#timer = setInterval(() => void this.flush(), this.#slotMs);
    this.#timer.unref?.();
  }

  get events(): TypedEmitter<SharedBreakerEvents> {
    return this.#link.events as unknown as TypedEmitter<SharedBreakerEvents>;
  }

  /** The fleet is open (as of the last flush). */
  get fleetOpen(): boolean {
    return this.#open;
  }

  /**
   * For `CircuitBreakerLayer({ probeGate })`: true for one caller across the fleet per
   * `probeIntervalMs`; true (a local decision) when Redis is unreachable.
   */
  readonly probeGate = async (): Promise<boolean> => {
    if (!this.#link.usable) return true;
    const out = await this.#link.command('SET', this.#keys.probe, '1', 'NX', 'PX', this.#probeMs);
    const granted = out === undefined || out === 'OK';
    this.events.emit('probe', { name: this.name, granted });
    return granted;
  };

  /** Counts `breaker`'s outcomes into the fleet's and applies the fleet's state to it. */
  attach(breaker: SharableBreaker): this {
    this.#breakers.add(breaker);
    breaker.on('outcome', ({ ok }) => {
      if (ok) this.#ok++;
      else this.#failed++;
    });
    breaker.on('stateChange', ({ from, to }) => {
      if (to !== 'isolated') this.#isolated.delete(breaker);
      // A probe got through and succeeded: the backend is back, for the whole fleet.
      if (from === 'halfOpen' && to === 'closed') void this.#close();
    });
    if (this.#open) this.#isolate(breaker);
    return this;
  }

  #isolate(b: SharableBreaker): void {
    if (b.state !== 'closed') return;
    b.isolate();
    this.#isolated.add(b);
  }

  async #close(): Promise<void> {
    if (!this.#link.usable) return;
    await this.#link.run(
      BREAKER_CLOSE,
      [this.#keys.window, this.#keys.open],
      [this.#slotMs, this.#slots],
    );
    this.#setOpen(false, 0, 0);
  }

  /** Sends the outcomes counted and reads the fleet's state (runs every `flushMs` by itself). */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    const ok = this.#ok;
    const failed = this.#failed;
    if (!this.#link.usable) {
      // Local decisions: the fleet's isolation no longer holds a breaker shut.
      this.#setOpen(false, 0, 0);
      return;
    }
    const out = await this.#link.run(
      BREAKER,
      [this.#keys.window, this.#keys.open],
      [this.#slotMs, this.#slots, ok, failed, this.#threshold, this.#minimum, this.#openMs],
    );
    if (out === undefined) return this.#setOpen(false, 0, 0);
    this.#ok -= ok;
    this.#failed -= failed;
    this.#setOpen(Number(out[2]) > 0, Number(out[0]), Number(out[1]));
  }

  #setOpen(open: boolean, ok: number, failed: number): void {
    if (open) {
      for (const b of this.#breakers) this.#isolate(b);
      if (!this.#open) this.events.emit('fleetOpen', { name: this.name, ok, failed });
    } else {
      for (const b of this.#isolated) if (b.state === 'isolated') b.reset();
      this.#isolated.clear();
      if (this.#open) this.events.emit('fleetClosed', { name: this.name });
    }
    this.#open = open;
  }

  /** Stops the flush timer (attached breakers keep their state). */
  close(): void {
    clearInterval(this.#timer);
  }
}
