import { type Clock, systemClock } from './clock.js';
import { expectSignal } from './context.js';
import { describeValue, expectOptions, invalidArgument } from './errors.js';

export interface SleepOptions {
  /** Rejects the sleep with `signal.reason` and clears its timer. */
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
  /**
   * Lets the process exit while the timer is pending (default `false`: like
   * `timers/promises`, an awaited sleep keeps the process alive). Pass `true` for a background
   * wait that must not hold the process open; its promise then never settles if the process exits.
   */
  unref?: boolean | undefined;
}

/**
 * Waits `ms` milliseconds, keeping the process alive meanwhile unless `unref: true`. On abort it rejects with the signal's reason at once and leaves no
 * timer behind.
 *
 * @example
 * ```ts
 * const ac = new AbortController();
 * setTimeout(() => ac.abort(), 10);
 * await sleep(1_000, { signal: ac.signal }); // rejects after ~10 ms
 * ```
 */
export function sleep(ms: number, options: SleepOptions = {}): Promise<void> {
  expectOptions(options, true);
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
    invalidArgument('ms', `expected a finite number >= 0, got ${describeValue(ms)}`);
  }
  const { clock = systemClock, unref = false } = options;
  const signal = expectSignal(options.signal, 'options.signal');
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal!.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (unref) clock.unref?.(handle);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
