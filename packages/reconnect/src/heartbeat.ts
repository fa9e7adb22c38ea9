import {
  type Clock,
  describeValue,
  invalidArgument,
  systemClock,
  TowerlineError,
} from '@towerline/core';

/** A `watch` function, as `ReconnectorOptions.watch` takes it. */
export type Watch<C> = (
  conn: C,
  lost: (error?: unknown) => void,
) => (() => void) | undefined | void;

export interface HeartbeatOptions {
  /** Time between pings, ms. Default 1 000. */
  intervalMs?: number;
  /** A ping unanswered this long means the peer is gone, ms. Default 2 000. */
  timeoutMs?: number;
  clock?: Clock;
}

/**
 * A `watch` that pings the connection every `intervalMs` and reports it lost when a ping fails
 * or stays unanswered for `timeoutMs` — how a blackholed peer (accepts bytes, answers nothing)
 * is told apart from a quiet one. Combine it with a socket-close watch using {@link watchAll}.
 *
 * @example
 * ```ts
 * new Reconnector({
 *   connect,
 *   watch: watchAll(onSocketClose, heartbeat((client) => client.send('PING'), { timeoutMs: 500 })),
 * });
 * ```
 */
export function heartbeat<C>(
  ping: (conn: C) => Promise<unknown>,
  options: HeartbeatOptions = {},
): Watch<C> {
  const { intervalMs = 1_000, timeoutMs = 2_000, clock = systemClock } = options;
  if (typeof ping !== 'function') invalidArgument('ping', 'expected a function');
  if (typeof intervalMs !== 'number' || !(intervalMs > 0))
    invalidArgument('intervalMs', `expected ms > 0, got ${describeValue(intervalMs)}`);
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0))
    invalidArgument('timeoutMs', `expected ms > 0, got ${describeValue(timeoutMs)}`);
  return (conn, lost) => {
    let stopped = false;
    let timer: unknown;
    const schedule = (fn: () => void, ms: number) => {
      timer = clock.setTimeout(fn, ms);
      clock.unref?.(timer);
    };
    const beat = () => {
      if (stopped) return;
      let answered = false;
      schedule(() => {
        if (!answered && !stopped) {
          stopped = true;
          lost(new TowerlineError('ERR_TIMEOUT', `heartbeat unanswered for ${timeoutMs} ms`));
        }
      }, timeoutMs);
      const deadline = timer;
      Promise.resolve()
        .then(() => ping(conn))
        .then(
          () => {
            answered = true;
            if (stopped) return;
            clock.clearTimeout(deadline);
            schedule(beat, intervalMs);
          },
          (error: unknown) => {
            answered = true;
            if (stopped) return;
            stopped = true;
            clock.clearTimeout(deadline);
            lost(error);
          },
        );
    };
    schedule(beat, intervalMs);
    return () => {
      stopped = true;
      clock.clearTimeout(timer);
    };
  };
}

/** Runs several watches on one connection; unwatching stops them all. */
export function watchAll<C>(...watches: Array<Watch<C>>): Watch<C> {
  return (conn, lost) => {
    const stops: Array<() => void> = [];
    for (const watch of watches) {
      const stop = watch(conn, lost);
      if (typeof stop === 'function') stops.push(stop);
    }
    return () => {
      for (const stop of stops) stop();
    };
  };
}
