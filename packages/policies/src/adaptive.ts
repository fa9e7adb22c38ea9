import { describeValue, expectOptions, invalidArgument } from '@towerline/core';
import { expectFunction, expectNumber } from './check.js';

/**
 * A concurrency limit that learns from each call's latency (Netflix `concurrency-limits`).
 * `limit` is read before each admission; `sample` is told every finished call.
 */
export interface LimitAlgorithm {
  /** The current limit, >= 1 (fractions are rounded down when admitting). */
  readonly limit: number;
  /**
   * A call finished after `rttMs`, with `inflight` calls in flight when it started; `dropped`:
   * it failed in a way that says "too much load" (a timeout, an overload answer).
   */
  sample(rttMs: number, inflight: number, dropped: boolean): void;
}

export interface AimdOptions {
  /** Default 20. */
  initial?: number;
  /** Default 1. */
  min?: number;
  /** Default 1000. */
  max?: number;
  /** The factor a drop multiplies the limit by; default 0.9. */
  backoffRatio?: number;
  /** A call slower than this counts as a drop, in ms; default 5000. */
  timeoutMs?: number;
}

function bounds(initial: unknown, min: unknown, max: unknown): void {
  expectNumber('initial', initial, Number.isFinite, 'a finite number');
  expectNumber('min', min, Number.isFinite, 'a finite number');
  expectNumber('max', max, Number.isFinite, 'a finite number');
  if (!(min >= 1 && max >= min && initial >= min && initial <= max)) {
    invalidArgument(
      'limit',
      `expected 1 <= min <= initial <= max, got ${describeValue(min)}, ${describeValue(initial)}, ${describeValue(max)}`,
    );
  }
}

/**
 * Additive increase, multiplicative decrease (TCP's, and Netflix's `AIMDLimit`): +1 after a
 * call that found the limit at least half used, ×`backoffRatio` after a drop or a call slower
 * than `timeoutMs`.
 */
export class AimdLimit implements LimitAlgorithm {
  #limit: number;
  readonly #min: number;
  readonly #max: number;
  readonly #ratio: number;
  readonly #timeout: number;

  constructor(options: AimdOptions = {}) {
    expectOptions(options, true);
    const { initial = 20, min = 1, max = 1000, backoffRatio = 0.9, timeoutMs = 5000 } = options;
    bounds(initial, min, max);
    expectNumber('backoffRatio', backoffRatio, (r) => r > 0 && r < 1, 'a ratio in (0, 1)');
    expectNumber('timeoutMs', timeoutMs, (t) => t > 0, 'ms > 0');
    this.#limit = initial;
    this.#min = min;
    this.#max = max;
    this.#ratio = backoffRatio;
    this.#timeout = timeoutMs;
  }

  get limit(): number {
    return this.#limit;
  }

  sample(rttMs: number, inflight: number, dropped: boolean): void {
    if (dropped || rttMs > this.#timeout) {
      this.#limit = Math.max(this.#min, Math.floor(this.#limit * this.#ratio));
    } else if (inflight * 2 >= this.#limit) {
      this.#limit = Math.min(this.#max, this.#limit + 1);
    }
  }
}

export interface Gradient2Options {
  /** Default 20. */
  initial?: number;
  /** Default 1. */
  min?: number;
  /** Default 200. */
  max?: number;
  /** How far the short-term latency may exceed the long-term one before the limit shrinks; default 1.5. */
  rttTolerance?: number;
  /** Weight of each new estimate; default 0.2. */
  smoothing?: number;
  /** Samples the long-term latency averages over; default 600. */
  longWindow?: number;
  /** Headroom added to the limit, as a function of it; default 4 (Netflix's default for small limits). */
  queueSize?: (limit: number) => number;
}

/**
 * Netflix's `Gradient2Limit`: compares each call's latency with a long-term average (an
 * exponential one over `longWindow` samples); while the short one stays within
 * `rttTolerance` of it the limit grows by the headroom, past it the limit shrinks in
 * proportion. A long-term average far above the short term decays, so the limit recovers
 * after a slow period.
 */
export class Gradient2Limit implements LimitAlgorithm {
  #estimate: number;
  readonly #min: number;
  readonly #max: number;
  readonly #tolerance: number;
  readonly #smoothing: number;
  readonly #window: number;
  readonly #queueSize: (limit: number) => number;
  #long = 0;
  #count = 0;

  constructor(options: Gradient2Options = {}) {
    expectOptions(options, true);
    const { initial = 20, min = 1, max = 200, rttTolerance = 1.5, smoothing = 0.2 } = options;
    bounds(initial, min, max);
    expectNumber(
      'rttTolerance',
      rttTolerance,
      (t) => t >= 1 && t < Number.POSITIVE_INFINITY,
      'a finite number >= 1',
    );
    expectNumber('smoothing', smoothing, (x) => x > 0 && x <= 1, 'a number in (0, 1]');
    const { longWindow } = options;
    if (longWindow !== undefined)
      expectNumber(
        'longWindow',
        longWindow,
        (w) => Number.isInteger(w) && w >= 1,
        'an integer >= 1',
      );
    expectFunction('queueSize', options.queueSize, 'a function of the limit');
    this.#estimate = initial;
    this.#min = min;
    this.#max = max;
    this.#tolerance = rttTolerance;
    this.#smoothing = smoothing;
    this.#window = options.longWindow ?? 600;
    this.#queueSize = options.queueSize ?? (() => 4);
  }

  get limit(): number {
    return this.#estimate;
  }

  /** The long-term latency average, in ms (for diagnostics). */
  get longRttMs(): number {
    return this.#long;
  }

  sample(rttMs: number, inflight: number, _dropped: boolean): void {
    if (!(rttMs > 0)) rttMs = 1e-3;
    // Warm up with a plain average over the first ten samples, then an exponential one.
    this.#count++;
    if (this.#count <= 10) this.#long += (rttMs - this.#long) / this.#count;
    else this.#long += (rttMs - this.#long) * (2 / (this.#window + 1));
    if (this.#long / rttMs > 2) this.#long *= 0.95;
    const estimate = this.#estimate;
    // Application-limited: too few calls in flight to say anything about the limit.
    if (inflight < estimate / 2) return;
    const gradient = Math.max(0.5, Math.min(1, (this.#tolerance * this.#long) / rttMs));
    const headroom = this.#queueSize(estimate);
    // A headroom that is not a number (NaN, a string) would make the estimate NaN for good.
    if (typeof headroom !== 'number' || !(headroom >= 0)) return;
    let next = estimate * gradient + headroom;
    next = estimate * (1 - this.#smoothing) + next * this.#smoothing;
    this.#estimate = Math.max(this.#min, Math.min(this.#max, next));
  }
}

export interface VegasOptions {
  /** Default 20. */
  initial?: number;
  /** Default 1. */
  min?: number;
  /** Default 1000. */
  max?: number;
  /** Below this estimated queue the limit grows; default `3 × log10(limit)` (Netflix's). */
  alpha?: (limit: number) => number;
  /** Above this estimated queue the limit shrinks; default `6 × log10(limit)`. */
  beta?: (limit: number) => number;
  /**
   * The no-load latency is measured afresh every `probeMultiplier × limit` samples (Netflix
   * uses 30), for a server that may become slower for good; default never: the least latency
   * ever seen. A probe taken while calls queue inflates the floor, and the limit grows until
   * a faster call shows the real one again.
   */
  probeMultiplier?: number;
}

const log10 = (limit: number) => Math.max(1, Math.log10(limit));

/**
 * TCP Vegas as a concurrency limit (after Netflix's `VegasLimit`, deciding once per round
 * trip as TCP Vegas does): estimates the calls queued at the server from the no-load latency
 * (the least seen) and the average of the last round trip's, `queue = limit × (1 − rttNoLoad
 * / rtt)`, and keeps it between `alpha` and `beta` — one more when fewer queue, halfway back when
 * more do, doubling at first until something queues. It settles a few calls above what the
 * server serves at once: full throughput, latency near its floor. One decision per round trip
 * (`limit` samples) keeps it from chasing latencies that still show the previous limit.
 */
export class VegasLimit implements LimitAlgorithm {
  #limit: number;
  readonly #min: number;
  readonly #max: number;
  readonly #alpha: (limit: number) => number;
  readonly #beta: (limit: number) => number;
  readonly #probeMultiplier: number;
  #noLoad = 0;
  #sinceProbe = 0;
  #slowStart = true;
  #windowSum = 0;
  #windowCount = 0;
  #dropped = false;

  constructor(options: VegasOptions = {}) {
    expectOptions(options, true);
    const { initial = 20, min = 1, max = 1000 } = options;
    bounds(initial, min, max);
    expectFunction('alpha', options.alpha, 'a function of the limit');
    expectFunction('beta', options.beta, 'a function of the limit');
    if (options.probeMultiplier !== undefined)
      expectNumber('probeMultiplier', options.probeMultiplier, (m) => m >= 1, '>= 1 or Infinity');
    this.#limit = initial;
    this.#min = min;
    this.#max = max;
    this.#alpha = options.alpha ?? ((l) => 3 * log10(l));
    this.#beta = options.beta ?? ((l) => 6 * log10(l));
    this.#probeMultiplier = options.probeMultiplier ?? Number.POSITIVE_INFINITY;
  }

  get limit(): number {
    return this.#limit;
  }

  /** The least latency seen since the last probe, in ms. */
  get noLoadRttMs(): number {
    return this.#noLoad;
  }

  sample(rttMs: number, inflight: number, dropped: boolean): void {
    const limit = this.#limit;
    if (++this.#sinceProbe >= this.#probeMultiplier * limit) {
      // Forget the floor now and then: the server may have become slower for good.
      this.#sinceProbe = 0;
      this.#noLoad = rttMs;
    } else if (this.#noLoad === 0 || rttMs < this.#noLoad) {
      this.#noLoad = rttMs;
    }
    if (dropped) this.#dropped = true;
    // Application-limited samples say nothing about the server's capacity.
    if (inflight * 2 < limit && !dropped) return;
    this.#windowSum += rttMs;
    if (++this.#windowCount < limit) return;
    const rtt = this.#windowSum / this.#windowCount;
    this.#windowSum = 0;
    this.#windowCount = 0;
    const queue = limit * (1 - this.#noLoad / rtt);
    let next = limit;
    if (this.#dropped) {
      this.#slowStart = false;
      next = limit - log10(limit);
    } else if (queue < this.#alpha(limit)) {
      next = this.#slowStart ? limit * 2 : limit + 1;
    } else {
      this.#slowStart = false;
      // Halfway back towards `beta` at once: a round trip of waiting per call is a lot to wait.
      const beta = this.#beta(limit);
      if (queue > beta) next = limit - Math.max(1, (queue - beta) / 2);
    }
    this.#dropped = false;
    this.#limit = Math.max(this.#min, Math.min(this.#max, next));
  }
}
