import type { RandomSource } from './clock.js';
import { describeValue, expectOptions, invalidArgument } from './errors.js';

/**
 * How long to wait before attempt `attempt + 1`, given that attempt `attempt` (1-based) just
 * failed with `error`. Implementations are stateless: the same inputs (and the same injected
 * `random`) give the same delay, so one instance may serve any number of loops at once.
 *
 * Every built-in returns a finite delay in `[0, max]`; the cap is applied after jitter.
 */
export interface IntervalFunction {
  next(attempt: number, error?: unknown): number;
  /** The largest delay this function returns, if it has one. Layers cap server hints at it. */
  readonly max?: number;
}

/** The declared range of one attempt's delay, for tests and documentation. */
export interface DelayBounds {
  min: number;
  max: number;
}

/**
 * Jitter strategies:
 * - `'full'`: uniform in `[0, d]` (AWS "Full Jitter").
 * - `'equal'`: uniform in `[d/2, d]` (AWS "Equal Jitter").
 * - `'decorrelated'`: uniform in `[initial, spread × d]` (`spread` 3 by default), a stateless
 *   form of AWS "Decorrelated Jitter" in which the deterministic exponential `d` stands for the
 *   previous delay.
 * - a number `f` in `[0, 1]`: uniform in `[d(1-f), d(1+f)]` (gRPC's ±20 % is `0.2`).
 *
 * `d` is the exponential delay for the attempt, already capped at `max`; the result is capped at
 * `max` again after jitter.
 */
export type Jitter = 'full' | 'equal' | 'decorrelated' | number;

function checkDelay(name: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || !Number.isFinite(value)) {
    invalidArgument(
      name,
      `expected a finite number of milliseconds >= 0, got ${describeValue(value)}`,
    );
  }
  return value;
}

function checkMultiplier(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value >= 1)) {
    invalidArgument('multiplier', `expected a finite number >= 1, got ${describeValue(value)}`);
  }
  return value;
}

function checkInitialMax(initial: number, max: number): void {
  if (initial > max) invalidArgument('initial', `must not exceed max (${initial} > ${max})`);
}

function checkJitter(value: unknown): Jitter {
  if (value === 'full' || value === 'equal' || value === 'decorrelated') return value;
  if (typeof value === 'number' && value >= 0 && value <= 1) return value;
  invalidArgument(
    'jitter',
    `expected 'full', 'equal', 'decorrelated' or a factor in [0, 1], got ${describeValue(value)}`,
  );
}

function checkSpread(value: unknown, jitter: Jitter): number {
  if (value === undefined) return 3;
  if (jitter !== 'decorrelated') invalidArgument('spread', "applies to 'decorrelated' jitter only");
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value >= 1)) {
    invalidArgument('spread', `expected a finite number >= 1, got ${describeValue(value)}`);
  }
  return value;
}

function checkRandom(value: unknown): RandomSource {
  if (typeof value !== 'function') invalidArgument('random', 'expected a function');
  return value as RandomSource;
}

/** Throws unless `attempt` is an integer >= 1. Cheap enough for every call. */
export function checkAttempt(attempt: number): void {
  if (!Number.isInteger(attempt) || attempt < 1) {
    invalidArgument('attempt', `expected an integer >= 1, got ${describeValue(attempt)}`);
  }
}

/** The same delay every time. */
export class FixedInterval implements IntervalFunction {
  readonly interval: number;
  readonly max: number;

  constructor(interval: number) {
    this.interval = checkDelay('interval', interval);
    this.max = this.interval;
  }

  next(attempt: number): number {
    checkAttempt(attempt);
    return this.interval;
  }
}

export interface LinearBackoffOptions {
  /** Delay after the first failure (ms). */
  initial: number;
  /** Added per further attempt (ms); defaults to `initial`. */
  increment?: number;
  /** Cap (ms). Default 30 000. */
  max?: number;
}

/** `min(max, initial + increment × (attempt − 1))`. */
export class LinearBackoff implements IntervalFunction {
  readonly initial: number;
  readonly increment: number;
  readonly max: number;

  constructor(options: LinearBackoffOptions) {
    expectOptions(options, false);
    this.initial = checkDelay('initial', options.initial);
    this.increment = checkDelay('increment', options.increment ?? options.initial);
    this.max = checkDelay('max', options.max ?? 30_000);
    checkInitialMax(this.initial, this.max);
  }

  next(attempt: number): number {
    checkAttempt(attempt);
    return Math.min(this.max, this.initial + this.increment * (attempt - 1));
  }
}

export interface ExponentialBackoffOptions {
  /** Delay after the first failure (ms). */
  initial: number;
  /** Growth per attempt, >= 1. Default 2. */
  multiplier?: number;
  /** Cap (ms). Default 30 000. */
  max?: number;
}

/** `min(max, initial × multiplier^(attempt − 1))`, without jitter. */
export class ExponentialBackoff implements IntervalFunction {
  readonly initial: number;
  readonly multiplier: number;
  readonly max: number;

  constructor(options: ExponentialBackoffOptions) {
    expectOptions(options, false);
    this.initial = checkDelay('initial', options.initial);
    this.multiplier = checkMultiplier(options.multiplier ?? 2);
    this.max = checkDelay('max', options.max ?? 30_000);
    checkInitialMax(this.initial, this.max);
  }

  next(attempt: number): number {
    checkAttempt(attempt);
    return exponential(this.initial, this.multiplier, this.max, attempt);
  }
}

/** `min(max, initial × multiplier^(attempt − 1))`, safe against overflow and `0 × ∞`. */
function exponential(initial: number, multiplier: number, max: number, attempt: number): number {
  if (initial === 0) return 0;
  const raw = initial * multiplier ** (attempt - 1);
  return Math.min(raw, max);
}

export interface ExponentialRandomBackoffOptions extends ExponentialBackoffOptions {
  /** Default `'full'`. */
  jitter?: Jitter;
  /**
   * For `'decorrelated'` jitter only: the top of the range as a multiple of the exponential
   * delay, `[initial, spread × d]`, >= 1. Default 3 (AWS's `sleep × 3`). A wider spread scatters
   * clients that lost their server at the same instant over more time: the default reconnect
   * policy uses 8 (`pnpm bench herd`).
   */
  spread?: number;
  /** Source of chance, `[0, 1)`. Default `Math.random`. */
  random?: RandomSource;
}

/** Exponential backoff with jitter; see {@link Jitter}. The cap holds after jitter. */
export class ExponentialRandomBackoff implements IntervalFunction {
  readonly initial: number;
  readonly multiplier: number;
  readonly max: number;
  readonly jitter: Jitter;
  readonly spread: number;
  readonly #random: RandomSource;

  constructor(options: ExponentialRandomBackoffOptions) {
    expectOptions(options, false);
    this.initial = checkDelay('initial', options.initial);
    this.multiplier = checkMultiplier(options.multiplier ?? 2);
    this.max = checkDelay('max', options.max ?? 30_000);
    checkInitialMax(this.initial, this.max);
    this.jitter = checkJitter(options.jitter ?? 'full');
    this.spread = checkSpread(options.spread, this.jitter);
    this.#random = checkRandom(options.random ?? Math.random);
  }

  /** The delay before jitter: `min(max, initial × multiplier^(attempt − 1))`. */
  base(attempt: number): number {
    checkAttempt(attempt);
    return exponential(this.initial, this.multiplier, this.max, attempt);
  }

  /** The range `next(attempt)` draws from. */
  bounds(attempt: number): DelayBounds {
    const d = this.base(attempt);
    const j = this.jitter;
    let lo: number;
    let hi: number;
    if (j === 'full') [lo, hi] = [0, d];
    else if (j === 'equal') [lo, hi] = [d / 2, d];
    else if (j === 'decorrelated') [lo, hi] = [Math.min(this.initial, d), this.spread * d];
    else [lo, hi] = [d * (1 - j), d * (1 + j)];
    return { min: Math.min(lo, this.max), max: Math.min(hi, this.max) };
  }

  next(attempt: number): number {
    const { min, max } = this.bounds(attempt);
    const r = this.#random();
    const delay = min + r * (max - min);
    // The cap is applied after jitter, and a random source that strays outside [0, 1) cannot
    // push the delay outside the declared range.
    if (!(delay >= min)) return min; // a NaN from a broken random source lands here too
    return Math.min(delay, max);
  }
}

/** Named policies whose numbers come from the systems they are named after. */
export const backoff = {
  /** Delay that never changes. */
  fixed: (interval: number): FixedInterval => new FixedInterval(interval),
  /** Linear growth; see {@link LinearBackoff}. */
  linear: (options: LinearBackoffOptions): LinearBackoff => new LinearBackoff(options),
  /** Exponential growth, no jitter; see {@link ExponentialBackoff}. */
  exponential: (options: ExponentialBackoffOptions): ExponentialBackoff =>
    new ExponentialBackoff(options),
  /** Exponential growth with jitter; see {@link ExponentialRandomBackoff}. */
  exponentialRandom: (options: ExponentialRandomBackoffOptions): ExponentialRandomBackoff =>
    new ExponentialRandomBackoff(options),

  /**
   * gRPC connection backoff: INITIAL_BACKOFF 1 s, MULTIPLIER 1.6, JITTER 0.2,
   * MAX_BACKOFF 120 s. Source: grpc/grpc `doc/connection-backoff.md`. Unlike the spec's
   * pseudo-code (which adds jitter after the cap), no delay here exceeds 120 s.
   */
  grpc: (options: { random?: RandomSource } = {}): ExponentialRandomBackoff =>
    new ExponentialRandomBackoff({
      initial: 1_000,
      multiplier: 1.6,
      max: 120_000,
      jitter: 0.2,
      ...options,
    }),

  /**
   * ioredis' default `retryStrategy`: `Math.min(times * 50, 2000)` ms. Source: ioredis
   * `lib/redis/RedisOptions.ts` (`DEFAULT_REDIS_OPTIONS.retryStrategy`).
   */
  ioredis: (): LinearBackoff => new LinearBackoff({ initial: 50, increment: 50, max: 2_000 }),

  /**
   * "Full Jitter": `random_between(0, min(cap, base × 2^attempt))`. Source: Marc Brooker,
   * "Exponential Backoff And Jitter", AWS Architecture Blog (2015). Defaults follow the AWS
   * SDKs' standard retry mode: base 100 ms, MAX_BACKOFF 20 s (AWS SDKs and Tools Reference
   * Guide, "Retry behavior").
   */
  awsFullJitter: (
    options: { base?: number; cap?: number; random?: RandomSource } = {},
  ): ExponentialRandomBackoff =>
    new ExponentialRandomBackoff({
      initial: options.base ?? 100,
      multiplier: 2,
      max: options.cap ?? 20_000,
      jitter: 'full',
      ...(options.random ? { random: options.random } : {}),
    }),
} as const;
