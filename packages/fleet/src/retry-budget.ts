/**
 * A retry budget for the whole fleet: tower's deposit-per-request, withdraw-per-retry budget
 * with the sums kept in Redis per window slot. The happy path is local: deposits and
 * withdrawals are counted in process and flushed once per slot in one script run, which
 * answers the fleet's sums; until the next flush each replica may spend its share of the
 * fleet's balance (its share of the fleet's deposits), plus what its own new deposits earn.
 * Redis unreachable: a local budget (the reserve divided among the expected replicas).
 */
import { describeValue, expectOptions, invalidArgument, type TypedEmitter } from '@towerline/core';
import { RetryBudget } from '@towerline/retry';
import { type FleetEvents, type FleetRedisOptions, RedisLink } from './link.js';
import { BUDGET } from './scripts.js';

export interface FleetRetryBudgetOptions extends FleetRedisOptions {
  /** The budget's name: Redis keys `towerline:budget:{name}:<slot>`. */
  name: string;
  /** Replicas sharing it: each one's share of the reserve when Redis is unreachable. */
  expectedReplicas: number;
  /** How long a deposit counts, ms (1 s to 60 s). Default 10 000. */
  ttl?: number;
  /** Retries per second always allowed, fleet-wide. Default 10. */
  minPerSecond?: number;
  /** Retries per request, fleet-wide (0.2: one per five requests). Default 0.2. */
  retryPercent?: number;
  /** Flush period (one window slot), ms. Default `ttl / 10`. */
  flushMs?: number;
}

/**
 * The fleet's retry budget, accepted wherever `RetryLayer` takes `budget`.
 *
 * @example
 * ```ts
 * const budget = new FleetRetryBudget({ redis, name: 'payments', expectedReplicas: 20 });
 * const layer = new RetryLayer({ maxAttempts: 3, budget });
 * ```
 */
export class FleetRetryBudget {
  readonly name: string;
  readonly retryPercent: number;
  readonly #link: RedisLink;
  readonly #local: RetryBudget;
  readonly #reserve: number;
  readonly #replicas: number;
  readonly #slotMs: number;
  readonly #slots: number;
  readonly #timer: ReturnType<typeof setInterval>;
  /** This replica's flushed deposits per slot (newest last), for its share. */
  readonly #mine: number[];
  #deposits = 0;
  #withdrawals = 0;
  /** Withdrawals claimed from the fleet's balance until the next flush. */
  #claim = 0;
  #synced = false;
  #flushing: Promise<void> | undefined;

  constructor(options: FleetRetryBudgetOptions) {
    expectOptions(options, false);
    const { name, expectedReplicas, ttl = 10_000, minPerSecond = 10, retryPercent = 0.2 } = options;
    if (typeof name !== 'string' || name === '') invalidArgument('name', 'expected a name');
    if (!(Number.isInteger(expectedReplicas) && expectedReplicas >= 1))
      invalidArgument(
        'expectedReplicas',
        `expected an integer >= 1, got ${describeValue(expectedReplicas)}`,
      );
    this.#local = new RetryBudget({
      ttl,
      retryPercent,
      minPerSecond: Math.ceil(minPerSecond / expectedReplicas),
      ...(options.clock ? { clock: options.clock } : {}),
    });
    this.name = name;
    this.retryPercent = retryPercent;
    this.#reserve = minPerSecond * Math.floor(ttl / 1000);
    this.#replicas = expectedReplicas;
    this.#slotMs = options.flushMs ?? ttl / 10;
    if (!(this.#slotMs >= 10 && this.#slotMs <= ttl))
      invalidArgument('flushMs', `expected 10..ttl ms, got ${describeValue(this.#slotMs)}`);
    this.#slots = Math.max(1, Math.round(ttl / this.#slotMs));
    this.#mine = new Array<number>(this.#slots).fill(0);
    this.#link = new RedisLink(name, options, 'towerline:fleet:retry-budget');
    this.#timer = setInterval(() => void this.flush(), this.#slotMs);
    this.#timer.unref?.();
  }

  /** `fallback` and `recovered`. */
  get events(): TypedEmitter<FleetEvents> {
    return this.#link.events;
  }

  /** Decisions are local (Redis unreachable). */
  get degraded(): boolean {
    return this.#link.down || !this.#synced;
  }

  /** Records a request (called by `RetryLayer` once per call). */
  deposit(): void {
    this.#deposits++;
    this.#local.deposit();
  }

  /** Takes one retry; false (and nothing taken) when the fleet's budget is spent. */
  withdraw(): boolean {
    if (this.degraded) {
      if (!this.#local.withdraw()) return false;
      this.#withdrawals++;
      return true;
    }
    if (this.#withdrawals + 1 > this.#claim + this.#deposits * this.retryPercent) return false;
    this.#withdrawals++;
    return true;
  }

  /** Retries this replica may take now. */
  get remaining(): number {
    if (this.degraded) return this.#local.remaining;
    return Math.max(
      0,
      Math.floor(this.#claim + this.#deposits * this.retryPercent - this.#withdrawals),
    );
  }

  /** Sends this replica's counts and takes the fleet's sums (runs every `flushMs` by itself). */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    const d = this.#deposits;
    const w = this.#withdrawals;
    if (!this.#link.usable) return;
    const mine = this.#mine.slice(1).reduce((a, b) => a + b, 0) + d;
    const out = await this.#link.run(
      BUDGET,
      [`towerline:budget:{${this.name}}`],
      [
        this.#slotMs,
        this.#slots,
        d,
        w - this.#claim,
        this.retryPercent,
        this.#reserve,
        mine,
        this.#replicas,
      ],
    );
    if (out === undefined) return;
    // Counted in the fleet's sums now; what arrived during the round trip stays for the next.
    this.#deposits -= d;
    this.#withdrawals -= w;
    this.#mine.shift();
    this.#mine.push(d);
    this.#claim = Number(out[2]);
    this.#synced = true;
  }

  /** Stops the flush timer. */
  close(): void {
    clearInterval(this.#timer);
  }
}
