import { describeValue, invalidArgument } from '@towerline/core';
import { expectNumber } from './check.js';

/**
 * When a closed breaker opens (resilience4j's sliding windows; cockatiel's consecutive and
 * sampling breakers):
 * - `consecutive`: after `threshold` failures in a row;
 * - `count`: over the last `size` calls, once at least `minimumCalls` were seen, when the
 *   failure rate reaches `failureRateThreshold` or the slow-call rate `slowCallRateThreshold`;
 * - `time`: the same rates over the calls of the last `windowMs`.
 *
 * Rates are fractions in (0, 1]. A call is slow when it took `slowCallDurationMs` or more.
 */
export type BreakerPolicy =
  | { kind: 'consecutive'; threshold: number }
  | ({ kind: 'count'; size: number } & RateThresholds)
  | ({ kind: 'time'; windowMs: number } & RateThresholds);

export interface RateThresholds {
  /** Default 0.5. */
  failureRateThreshold?: number;
  /** Off unless set (with `slowCallDurationMs`). */
  slowCallRateThreshold?: number;
  slowCallDurationMs?: number;
  /** Calls the window must hold before a rate counts; default the window size (count) or 10 (time). */
  minimumCalls?: number;
}

/** Counts outcomes and says when they cross the thresholds. */
export interface FailureWindow {
  /** Whether durations are needed (slow-call threshold set). */
  readonly timed: boolean;
  /** Counts one outcome; true when the thresholds are crossed now. */
  record(ok: boolean, durationMs: number, now: number): boolean;
  reset(): void;
}

const FAIL = 1;
const SLOW = 2;

function checkRate(name: string, v: number | undefined): void {
  if (v !== undefined) expectNumber(name, v, (r) => r > 0 && r <= 1, 'a rate in (0, 1]');
}

class Consecutive implements FailureWindow {
  readonly timed = false;
  failures = 0;
  constructor(readonly threshold: number) {}
  record(ok: boolean): boolean {
    if (ok) {
      this.failures = 0;
      return false;
    }
    return ++this.failures >= this.threshold;
  }
  reset(): void {
    this.failures = 0;
  }
}

/** Shared by both rate windows: totals of calls, failures and slow calls. */
abstract class RateWindow implements FailureWindow {
  readonly timed: boolean;
  readonly #failureRate: number;
  readonly #slowRate: number;
  readonly #slowMs: number;
  readonly #minimum: number;
  calls = 0;
  failures = 0;
  slow = 0;

  constructor(t: RateThresholds, defaultMinimum: number) {
    checkRate('failureRateThreshold', t.failureRateThreshold);
    checkRate('slowCallRateThreshold', t.slowCallRateThreshold);
    if (t.slowCallDurationMs !== undefined)
      expectNumber('slowCallDurationMs', t.slowCallDurationMs, (ms) => ms >= 0, 'ms >= 0');
    if (t.minimumCalls !== undefined)
      expectNumber(
        'minimumCalls',
        t.minimumCalls,
        (n) => Number.isInteger(n) && n >= 1,
        'an integer >= 1',
      );
    this.#failureRate = t.failureRateThreshold ?? 0.5;
    this.#slowRate = t.slowCallRateThreshold ?? Number.POSITIVE_INFINITY;
    this.#slowMs = t.slowCallDurationMs ?? Number.POSITIVE_INFINITY;
    this.timed = t.slowCallRateThreshold !== undefined && t.slowCallDurationMs !== undefined;
    this.#minimum = t.minimumCalls ?? defaultMinimum;
  }

  protected code(ok: boolean, durationMs: number): number {
    return (ok ? 0 : FAIL) | (durationMs >= this.#slowMs ? SLOW : 0);
  }

  protected add(code: number, sign: 1 | -1): void {
    this.calls += sign;
    if (code & FAIL) this.failures += sign;
    if (code & SLOW) this.slow += sign;
  }

  protected tripped(): boolean {
    if (this.calls < this.#minimum || this.calls === 0) return false;
    return (
      this.failures / this.calls >= this.#failureRate || this.slow / this.calls >= this.#slowRate
    );
  }

  abstract record(ok: boolean, durationMs: number, now: number): boolean;
  reset(): void {
    this.calls = this.failures = this.slow = 0;
  }
}

class CountWindow extends RateWindow {
  readonly #ring: Uint8Array;
  #next = 0;
  constructor(size: number, t: RateThresholds) {
    super(t, size);
    this.#ring = new Uint8Array(size);
  }
  record(ok: boolean, durationMs: number): boolean {
    const ring = this.#ring;
    if (this.calls === ring.length) this.add(ring[this.#next]!, -1);
    const code = this.code(ok, durationMs);
    ring[this.#next] = code;
    this.#next = (this.#next + 1) % ring.length;
    this.add(code, 1);
    return this.tripped();
  }
  override reset(): void {
    super.reset();
    this.#next = 0;
  }
}

/** Ten buckets over the window; a bucket's counts leave as its tenth of the window ages out. */
class TimeWindow extends RateWindow {
  static readonly BUCKETS = 10;
  readonly #bucketMs: number;
  readonly #counts = new Float64Array(TimeWindow.BUCKETS * 3);
  #epoch = Number.NEGATIVE_INFINITY;
  constructor(windowMs: number, t: RateThresholds) {
    super(t, 10);
    this.#bucketMs = windowMs / TimeWindow.BUCKETS;
  }
  #advance(now: number): number {
    const epoch = Math.floor(now / this.#bucketMs);
    const n = TimeWindow.BUCKETS;
    const gone = Math.min(n, epoch - this.#epoch);
    for (let k = 1; k <= gone && this.#epoch !== Number.NEGATIVE_INFINITY; k++) {
      const b = ((((this.#epoch + k) % n) + n) % n) * 3;
      this.calls -= this.#counts[b]!;
      this.failures -= this.#counts[b + 1]!;
      this.slow -= this.#counts[b + 2]!;
      this.#counts.fill(0, b, b + 3);
    }
    if (gone > 0 || this.#epoch === Number.NEGATIVE_INFINITY) this.#epoch = epoch;
    return (((epoch % n) + n) % n) * 3;
  }
  record(ok: boolean, durationMs: number, now: number): boolean {
    const b = this.#advance(now);
    const code = this.code(ok, durationMs);
    this.add(code, 1);
    this.#counts[b]!++;
    if (code & FAIL) this.#counts[b + 1]!++;
    if (code & SLOW) this.#counts[b + 2]!++;
    return this.tripped();
  }
  override reset(): void {
    super.reset();
    this.#counts.fill(0);
    this.#epoch = Number.NEGATIVE_INFINITY;
  }
}

/** The most calls a count window holds (one byte each, allocated up front). */
const MAX_SIZE = 1_000_000;

/** The window for `policy`, validated. */
export function failureWindow(policy: BreakerPolicy): FailureWindow {
  switch (policy.kind) {
    case 'consecutive':
      if (!(Number.isInteger(policy.threshold) && policy.threshold >= 1)) {
        invalidArgument(
          'threshold',
          `expected an integer >= 1, got ${describeValue(policy.threshold)}`,
        );
      }
      return new Consecutive(policy.threshold);
    case 'count':
      if (!(Number.isInteger(policy.size) && policy.size >= 1 && policy.size <= MAX_SIZE)) {
        invalidArgument(
          'size',
          `expected an integer in [1, ${MAX_SIZE}], got ${describeValue(policy.size)}`,
        );
      }
      return new CountWindow(policy.size, policy);
    case 'time':
      if (!(policy.windowMs > 0 && Number.isFinite(policy.windowMs)))
        invalidArgument(
          'windowMs',
          `expected a finite number > 0, got ${describeValue(policy.windowMs)}`,
        );
      return new TimeWindow(policy.windowMs, policy);
    default:
      return invalidArgument('policy', 'expected kind consecutive, count or time');
  }
}
