/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/**
 * The source of time for everything in towerline that waits or measures. Inject a virtual
 * clock in tests and simulations; the default is {@link systemClock}.
 */
export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Lets the process exit while the timer is pending. Optional: virtual clocks need none. */
  unref?(handle: TimerHandle): void;
}

/**
 * The real clock: `performance.now()` and the global timers, looked up at call time so that
 * test frameworks' fake timers take effect.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  unref: (handle) => {
    (handle as { unref?: () => void } | undefined)?.unref?.();
  },
};

/** A random number in [0, 1); injectable wherever chance is used. */
export type RandomSource = () => number;

/**
 * A seeded pseudo-random source (mulberry32): the same seed gives the same sequence, so a
 * jittered schedule can be replayed in a test or a simulation.
 */
export function seededRandom(seed: number): RandomSource {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
