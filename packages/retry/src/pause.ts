import { type Clock, type RequestContext, sleep } from '@towerline/core';

/**
 * The wait before the next attempt. When the last attempt failed because its connection was
 * lost (a connector put that connection on the context), the wait ends as soon as the
 * connection is back, and at the latest after `ms`: a retry never sleeps blind through a
 * reconnect that already happened. Otherwise it is a plain abortable sleep. A caller is
 * awaiting it, so its timer keeps the process alive.
 */
export function pause(ms: number, ctx: RequestContext, clock: Clock): Promise<void> {
  const connection = ctx.connection;
  ctx.connection = undefined;
  const signal = ctx.signal;
  if (connection === undefined || ms === 0) return sleep(ms, { signal, clock });
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (connection.ready) return Promise.resolve();
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal!.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const slept = sleep(ms, { signal: stop.signal, clock });
  // A connection that will never be back (closed, gave up) ends the wait too: the next attempt
  // then fails with that reason, which no retry repeats.
  const back = connection.whenReady(stop.signal).catch(() => undefined);
  return Promise.race([slept, back]).then(
    () => {
      signal?.removeEventListener('abort', onAbort);
      stop.abort();
      if (signal?.aborted) throw signal.reason;
    },
    (error: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      stop.abort();
      throw error;
    },
  );
}
