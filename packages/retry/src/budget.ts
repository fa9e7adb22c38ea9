import {
  type Clock,
  describeValue,
  expectOptions,
  invalidArgument,
  systemClock,
} from '@towerline/core';

export interface RetryBudgetOptions {
  /** How long a deposit counts, in ms, 1 s to 60 s. Default 10 000. */
  ttl?: number;
  /** Retries always allowed per second, whatever the traffic. Default 10. */
  minPerSecond?: number;
  /** Retries allowed per request, 0 to 1000 (0.2 = one retry per five requests). Default 0.2. */
  retryPercent?: number;
  clock?: Clock;
}

/**
 * What `RetryLayer` asks of a budget: {@link RetryBudget}, or one shared by a fleet
 * (`FleetRetryBudget` from @towerline/fleet).
 */
export interface RetryBudgetLike {
  /** Records a request. */
  deposit(): void;
  /** Takes one retry; false (and nothing taken) when the budget is empty. */
  withdraw(): boolean;
}

const SLOTS = 10;

/**
 * A retry budget as in tower's `TpsBudget` (after Finagle's `RetryBudget`): every request
 * deposits, every retry withdraws, deposits expire after `ttl`, and a reserve of
 * `minPerSecond × ttl` retries is always available. When the budget is empty a retry is refused
 * and the original error surfaces at once, which stops retry storms from multiplying load on a
 * struggling peer.
 *
 * One budget is meant to be shared by every service that talks to the same peer.
 *
 * @example
 * ```ts
 * const budget = new RetryBudget({ retryPercent: 0.1 });
 * const a = retry(serviceA, { budget });
 * const b = retry(serviceB, { budget });
 * ```
 */
export class RetryBudget implements RetryBudgetLike {
  readonly ttl: number;
  readonly minPerSecond: number;
  readonly retryPercent: number;
  readonly #depositAmount: number;
  readonly #withdrawAmount: number;
  readonly #reserve: number;
  readonly #slots = new Array<number>(SLOTS).fill(0);
  readonly #window: number;
  readonly #clock: Clock;
  #writer = 0;
  #index = 0;
  #generationStart: number;

  constructor(options: RetryBudgetOptions = {}) {
    expectOptions(options, true);
    const { ttl = 10_000, minPerSecond = 10, retryPercent = 0.2, clock = systemClock } = options;
    if (typeof ttl !== 'number' || !(ttl >= 1_000 && ttl <= 60_000)) {
      invalidArgument('ttl', `expected 1000..60000 ms, got ${describeValue(ttl)}`);
    }
    if (!Number.isInteger(minPerSecond) || minPerSecond < 0) {
      invalidArgument(
        'minPerSecond',
        `expected an integer >= 0, got ${describeValue(minPerSecond)}`,
      );
    }
    if (typeof retryPercent !== 'number' || !(retryPercent >= 0 && retryPercent <= 1000)) {
      invalidArgument('retryPercent', `expected 0..1000, got ${describeValue(retryPercent)}`);
    }
    this.ttl = ttl;
    this.minPerSecond = minPerSecond;
    this.retryPercent = retryPercent;
    // Integer arithmetic as in tower: a deposit is worth `deposit`, a retry costs `withdraw`.
    // (With a fractional cost such as 1 / 0.3, ten deposits did not pay for three retries.)
    if (retryPercent === 0) [this.#depositAmount, this.#withdrawAmount] = [0, 1];
    else [this.#depositAmount, this.#withdrawAmount] = [1000, Math.round(1000 / retryPercent)];
    this.#reserve = minPerSecond * Math.floor(ttl / 1000) * this.#withdrawAmount;
    this.#window = ttl / SLOTS;
    this.#clock = clock;
    this.#generationStart = clock.now();
  }

  /** Records a request. Called by `RetryLayer` once per call. */
  deposit(): void {
    this.#expire();
    this.#writer += this.#depositAmount;
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is empty. */
  withdraw(): boolean {
    this.#expire();
    if (this.#sum() < this.#withdrawAmount) return false;
    this.#writer -= this.#withdrawAmount;
    return true;
  }

  /** How many retries the budget would allow right now. */
  get remaining(): number {
    this.#expire();
    return Math.max(0, Math.floor(this.#sum() / this.#withdrawAmount + 1e-9));
  }

  #sum(): number {
    let sum = this.#writer + this.#reserve;
    for (const slot of this.#slots) sum += slot;
    return sum;
  }

  #expire(): void {
    const now = this.#clock.now();
    const steps = Math.floor((now - this.#generationStart) / this.#window);
    if (steps < 1) return;
    this.#slots[this.#index] = this.#writer;
    this.#writer = 0;
    // Each slot we step into held deposits from a full ttl ago: clear it. Bounded by the slot
    // count however long the gap was.
    for (let i = 0; i < Math.min(steps, SLOTS); i++) {
      this.#index = (this.#index + 1) % SLOTS;
      this.#slots[this.#index] = 0;
    }
    // Advance on the slot grid, not to `now`: otherwise every read that lands mid-slot
    // stretches the slot, and a budget read often enough keeps deposits for up to 2 × ttl.
    this.#generationStart += steps * this.#window;
  }
}
