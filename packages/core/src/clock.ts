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
  setTimeout: (fn, ms) => (ms > MAX_TIMER_MS ? new LongTimer(fn, ms) : setTimeout(fn, ms)),
  clearTimeout: (handle) => {
    if (handle instanceof LongTimer) handle.clear();
    else clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
  unref: (handle) => {
    (handle as { unref?: () => void } | undefined)?.unref?.();
  },
};

/** The longest delay a Node timer keeps; a longer one would fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A delay longer than a Node timer keeps (about 24.8 days; `Infinity`: never), as a chain of
 * timers of at most that, each armed for what is left when the previous one fires.
 */
class LongTimer {
  #timer: ReturnType<typeof setTimeout>;
  #refd = true;
  readonly #at: number;
  readonly #fn: () => void;

  constructor(fn: () => void, ms: number) {
    this.#fn = fn;
    this.#at = performance.now() + ms;
    this.#timer = this.#arm(ms);
  }

  #arm(left: number): ReturnType<typeof setTimeout> {
    const timer =
      left > MAX_TIMER_MS
        ? setTimeout(() => {
            this.#timer = this.#arm(this.#at - performance.now());
          }, MAX_TIMER_MS)
        : setTimeout(this.#fn, Math.max(0, left));
    if (!this.#refd) timer.unref();
    return timer;
  }

  clear(): void {
    clearTimeout(this.#timer);
  }

  unref(): void {
    this.#refd = false;
    this.#timer.unref();
  }
}

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
