import { type Clock, systemClock } from './clock.js';
import { invalidArgument } from './errors.js';

export interface SleepOptions {
  /** Rejects the sleep with `signal.reason` and clears its timer. */
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
  /**
   * Whether the pending timer may let the process exit (default `true`). Pass `false` when a
   * caller is awaiting the outcome and would otherwise be dropped by an exiting process.
   */
  unref?: boolean | undefined;
}

/**
 * Waits `ms` milliseconds. On abort it rejects with the signal's reason at once and leaves no
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
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
    invalidArgument('ms', `expected a finite number >= 0, got ${String(ms)}`);
  }
  const { signal, clock = systemClock, unref = true } = options;
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
