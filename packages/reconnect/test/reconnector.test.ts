import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { backoff, isTowerlineError, TowerlineError } from '@towerline/core';
import { canTransition, Reconnector, TRANSITIONS } from '@towerline/reconnect';
import { describe, expect, it, vi } from 'vitest';
import { fakeReconnector, refused } from './fake-connection.js';

const codeOf = (e: unknown) => (e as { code?: string }).code;

describe('Reconnector: connecting', () => {
  it('stays idle until acquire(), then connects and hands out the connection', async () => {
    const h = fakeReconnector();
    expect(h.r.state).toBe('idle');
    await h.settle();
    expect(h.pending).toHaveLength(0);
    const acquired = h.r.acquire();
    expect(h.r.state).toBe('connecting');
    const conn = h.succeed();
    expect(await acquired).toBe(conn);
    expect(h.r.state).toBe('connected');
    expect(h.r.current).toBe(conn);
    expect(h.r.generation).toBe(1);
    expect(await h.r.acquire()).toBe(conn);
    await h.r.close();
  });

  it('emits connecting, stateChange and connected in order, with attempt and downtime', async () => {
    const h = fakeReconnector({ auto: (a) => (a < 3 ? 'fail' : 'ok') });
    const log: string[] = [];
    h.r.events.on('connecting', ({ attempt }) => log.push(`connecting ${attempt}`));
    h.r.events.on('reconnectScheduled', ({ attempt, delayMs }) =>
      log.push(`scheduled ${attempt} in ${delayMs}`),
    );
    h.r.events.on('connected', ({ attempt, downtimeMs }) =>
      log.push(`connected ${attempt} after ${downtimeMs}`),
    );
    h.r.start();
    await h.clock.advance(1_000);
    expect(log).toEqual([
      'connecting 1',
      'scheduled 2 in 100',
      'connecting 2',
      'scheduled 3 in 100',
      'connecting 3',
      'connected 3 after 200',
    ]);
    await h.r.close();
  });

  it('waits the policy delay between attempts, on the clock', async () => {
    const policy = backoff.exponential({ initial: 100, multiplier: 2, max: 1_000 });
    const h = fakeReconnector({ policy, auto: () => 'fail' });
    const times: number[] = [];
    h.r.events.on('connecting', () => times.push(h.clock.now()));
    h.r.start();
    await h.clock.advance(5_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps.slice(0, 6)).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    await h.r.close();
  });

  it('bounds each attempt with connectTimeout and aborts its signal', async () => {
    const h = fakeReconnector({ connectTimeout: 250, auto: () => 'hang', maxAttempts: 2 });
    const errors: unknown[] = [];
    h.r.events.on('reconnectScheduled', ({ error }) => errors.push(error));
    const acquired = h.r.acquire();
    const rejection = expect(acquired).rejects.toMatchObject({ code: 'ERR_RECONNECT_GAVE_UP' });
    await h.clock.advance(1_000);
    await rejection;
    expect(codeOf(errors[0])).toBe('ERR_CONNECT_TIMEOUT');
    expect(h.r.stats.failures).toBe(2);
    expect(h.clock.pending).toBe(0);
  });

  it('disposes a connection that arrives after its attempt timed out', async () => {
    let late: ((c: { id: number; closed: boolean }) => void) | undefined;
    const conns: Array<{ id: number; closed: boolean }> = [];
    const h = fakeReconnector();
    const r = new Reconnector<{ id: number; closed: boolean }>({
      clock: h.clock,
      connectTimeout: 100,
      policy: backoff.fixed(1_000),
      connect: ({ attempt }) =>
        attempt === 1
          ? new Promise((resolve) => {
              late = resolve;
            })
          : Promise.resolve({ id: attempt, closed: false }),
      dispose: (c) => {
        c.closed = true;
      },
    });
    r.start();
    await h.clock.advance(150);
    expect(r.state).toBe('reconnecting');
    const tooLate = { id: 1, closed: false };
    conns.push(tooLate);
    late!(tooLate);
    await h.settle();
    expect(tooLate.closed).toBe(true);
    expect(r.current).toBeUndefined();
    await h.clock.advance(1_000);
    expect(r.current?.id).toBe(2);
    await r.close();
    await h.r.close();
  });
});

describe('Reconnector: losing the connection', () => {
  it('joins concurrent failures of one generation into one reconnect', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    const conn = await h.r.acquire();
    const disconnected = vi.fn();
    const scheduled = vi.fn();
    h.r.events.on('disconnected', disconnected);
    h.r.events.on('reconnectScheduled', scheduled);
    const lost = conn.lost!;
    lost(new Error('a'));
    lost(new Error('b'));
    h.r.reportLost(1, new Error('c'));
    h.r.reportLost(1, new Error('d'));
    expect(disconnected).toHaveBeenCalledTimes(1);
    expect(scheduled).toHaveBeenCalledTimes(1);
    expect(conn.disposed).toBe(true);
    expect(conn.signal.aborted).toBe(true);
    await h.clock.advance(100);
    expect(h.r.generation).toBe(2);
    // A late report about generation 1 does not touch generation 2.
    h.r.reportLost(1, new Error('stale'));
    lost(new Error('stale'));
    expect(h.r.state).toBe('connected');
    expect(disconnected).toHaveBeenCalledTimes(1);
    await h.r.close();
  });

  it('handles lost() called synchronously inside watch()', async () => {
    const h = fakeReconnector({
      auto: (a) => (a <= 2 ? 'ok' : undefined),
      watch: (conn, lost) => {
        if (conn.attempt === 1) lost(new Error('dead on arrival'));
        else conn.lost = lost;
      },
      minUptime: 0,
    });
    const disconnected = vi.fn();
    h.r.events.on('disconnected', disconnected);
    h.r.start();
    await h.clock.advance(500);
    expect(disconnected).toHaveBeenCalledTimes(1);
    expect(h.r.state).toBe('connected');
    expect(h.r.current?.attempt).toBe(2);
    await h.r.close();
  });

  it('does not reset the backoff for a connection that dies within minUptime (flapping)', async () => {
    const policy = backoff.exponential({ initial: 100, multiplier: 2, max: 10_000 });
    const h = fakeReconnector({ policy, minUptime: 1_000, auto: () => 'ok' });
    const delays: number[] = [];
    h.r.events.on('reconnectScheduled', ({ delayMs }) => delays.push(delayMs));
    await h.r.acquire();
    for (let i = 0; i < 4; i++) {
      await h.clock.advance(50); // up for 50 ms only
      h.r.current!.lost!(new Error('flap'));
      await h.clock.advance(delays.at(-1)!);
      expect(h.r.state).toBe('connected');
    }
    expect(delays).toEqual([100, 200, 400, 800]);
    // Now it stays up past minUptime: healthy, and the next loss starts over.
    const healthy = vi.fn();
    h.r.events.on('healthy', healthy);
    await h.clock.advance(1_000);
    expect(healthy).toHaveBeenCalledTimes(1);
    expect(h.r.healthy).toBe(true);
    h.r.current!.lost!(new Error('after a good run'));
    expect(delays.at(-1)).toBe(100);
    await h.r.close();
  });

  it('markHealthy() resets the backoff at once', async () => {
    const policy = backoff.exponential({ initial: 100, multiplier: 2, max: 10_000 });
    const h = fakeReconnector({ policy, minUptime: Number.POSITIVE_INFINITY, auto: () => 'ok' });
    const delays: number[] = [];
    h.r.events.on('reconnectScheduled', ({ delayMs }) => delays.push(delayMs));
    await h.r.acquire();
    h.r.current!.lost!();
    await h.clock.advance(100);
    h.r.current!.lost!();
    await h.clock.advance(200);
    h.r.markHealthy();
    h.r.current!.lost!();
    expect(delays).toEqual([100, 200, 100]);
    await h.r.close();
  });
});

describe('Reconnector: giving up', () => {
  it('fails after maxAttempts with one gaveUp, rejected waiters and no timer left', async () => {
    const h = fakeReconnector({ maxAttempts: 3, auto: () => 'fail' });
    const gaveUp = vi.fn();
    h.r.events.on('gaveUp', gaveUp);
    const waiters = [h.r.acquire(), h.r.acquire(), h.r.acquire()];
    const outcomes = Promise.allSettled(waiters);
    await h.clock.advance(10_000);
    const settled = await outcomes;
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      const error = (s as PromiseRejectedResult).reason as TowerlineError;
      expect(error.code).toBe('ERR_RECONNECT_GAVE_UP');
      expect(error.attempts).toBe(3);
      expect(codeOf(error.cause)).toBe('ECONNREFUSED');
    }
    expect(h.r.state).toBe('failed');
    expect(gaveUp).toHaveBeenCalledTimes(1);
    expect(gaveUp.mock.calls[0]![0]).toMatchObject({ attempts: 3 });
    expect(h.clock.pending).toBe(0);
    await expect(h.r.acquire()).rejects.toBe(h.r.failure);
    await h.r.close();
    expect(h.r.state).toBe('closed');
    expect(gaveUp).toHaveBeenCalledTimes(1);
  });

  it('counts a connection that flaps before minUptime against maxAttempts', async () => {
    const h = fakeReconnector({ maxAttempts: 2, minUptime: 1_000, auto: () => 'ok' });
    await h.r.acquire();
    h.r.current!.lost!();
    await h.clock.advance(100);
    expect(h.r.state).toBe('connected');
    h.r.current!.lost!();
    expect(h.r.state).toBe('failed');
    expect(h.clock.pending).toBe(0);
  });
});

describe('Reconnector: attempts per outage', () => {
  it('starts counting attempts afresh after a healthy connection', async () => {
    const h = fakeReconnector({ maxAttempts: 3, minUptime: 300 });
    h.r.start();
    h.succeed();
    await h.clock.advance(400);
    expect(h.r.healthy).toBe(true);
    h.r.current!.lost!();
    await h.clock.advance(100);
    h.fail();
    await h.clock.advance(100);
    h.fail();
    await h.clock.advance(100);
    expect(h.r.state).toBe('connecting'); // third attempt of this outage still allowed
    h.fail();
    await h.settle();
    expect(h.r.state).toBe('failed');
  });
});

describe('Reconnector: close()', () => {
  it('from idle', async () => {
    const h = fakeReconnector();
    await h.r.close();
    expect(h.r.state).toBe('closed');
    await expect(h.r.acquire()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('mid-connect: aborts the attempt, rejects waiters, no false connected', async () => {
    const h = fakeReconnector();
    const connected = vi.fn();
    h.r.events.on('connected', connected);
    const waiter = h.r.acquire();
    const attempt = h.pending[0]!;
    const closing = h.r.close();
    await expect(waiter).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await closing;
    expect(attempt.signal.aborted).toBe(true);
    expect(connected).not.toHaveBeenCalled();
    expect(h.clock.pending).toBe(0);
  });

  it('while connected: disposes the connection and stops watching', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    const conn = await h.r.acquire();
    await h.r.close();
    expect(conn.disposed).toBe(true);
    expect(conn.lost).toBeUndefined();
    expect(h.clock.pending).toBe(0);
  });

  it('during backoff: clears the timer and settles waiters at once', async () => {
    const h = fakeReconnector({ policy: backoff.fixed(60_000), auto: () => 'fail' });
    const waiter = h.r.acquire();
    await h.settle();
    expect(h.r.state).toBe('reconnecting');
    expect(h.clock.pending).toBe(1);
    await h.r.close();
    await expect(waiter).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(h.clock.pending).toBe(0);
  });

  it('is idempotent and emits closed once', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    const closed = vi.fn();
    h.r.events.on('closed', closed);
    await h.r.acquire();
    const a = h.r.close();
    const b = h.r.close();
    expect(a).toBe(b);
    await a;
    expect(closed).toHaveBeenCalledTimes(1);
  });

  it('may be called from a listener in the middle of a step', async () => {
    const h = fakeReconnector({ auto: () => 'ok' });
    h.r.events.on('connected', () => void h.r.close());
    const waiter = h.r.acquire();
    await h.settle();
    expect(h.r.state).toBe('closed');
    // The waiter was resolved by the step that connected, before the listener closed it.
    expect((await waiter).disposed).toBe(true);
    expect(h.clock.pending).toBe(0);
  });
});

describe('Reconnector: diagnostics_channel', () => {
  it('publishes every event as towerline:reconnect:<event> with its source name', async () => {
    const seen: unknown[] = [];
    const onMessage = (message: unknown) => seen.push(message);
    subscribe('towerline:reconnect:connected', onMessage);
    try {
      const h = fakeReconnector({ auto: () => 'ok', name: 'redis-main' });
      await h.r.acquire();
      expect(seen).toEqual([
        { attempt: 1, downtimeMs: 0, generation: 1, source: 'redis-main', event: 'connected' },
      ]);
      await h.r.close();
    } finally {
      unsubscribe('towerline:reconnect:connected', onMessage);
    }
  });
});

describe('Reconnector: robustness', () => {
  it('keeps going when listeners throw, and needs no error listener', async () => {
    const onListenerError = vi.fn();
    const warning = vi.fn();
    process.on('warning', warning);
    try {
      const h = fakeReconnector({ maxAttempts: 2, auto: () => 'fail' });
      for (const e of ['stateChange', 'connecting', 'reconnectScheduled', 'gaveUp'] as const) {
        h.r.events.on(e, () => {
          throw new Error(`listener for ${e}`);
        });
      }
      h.r.events.on('gaveUp', onListenerError);
      h.r.start();
      await h.clock.advance(1_000);
      expect(h.r.state).toBe('failed');
      expect(onListenerError).toHaveBeenCalledTimes(1);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warning).toHaveBeenCalled();
    } finally {
      process.off('warning', warning);
    }
  });

  it('leaves no unhandled rejection when nobody waits', async () => {
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      const h = fakeReconnector({ maxAttempts: 3, auto: () => 'fail' });
      h.r.start();
      await h.clock.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(h.r.state).toBe('failed');
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });

  it('turns a throwing connect() into a failed attempt', async () => {
    const h = fakeReconnector();
    const r = new Reconnector({
      clock: h.clock,
      policy: backoff.fixed(10),
      maxAttempts: 2,
      connect: () => {
        throw refused();
      },
    });
    const outcome = expect(r.acquire()).rejects.toSatisfy((e) =>
      isTowerlineError(e, 'ERR_RECONNECT_GAVE_UP'),
    );
    await h.clock.advance(100);
    await outcome;
    expect(r.stats.failures).toBe(2);
    await h.r.close();
  });

  it('rejects an aborted acquire and forgets the waiter', async () => {
    const h = fakeReconnector();
    const ac = new AbortController();
    const waiter = h.r.acquire(ac.signal);
    ac.abort(new Error('caller gave up'));
    await expect(waiter).rejects.toThrow('caller gave up');
    const conn = h.succeed();
    await h.settle();
    expect(h.r.current).toBe(conn);
    await h.r.close();
  });

  it('validates its options', () => {
    const connect = async () => ({});
    expect(() => new Reconnector({ connect: 1 as never })).toThrow(TowerlineError);
    expect(() => new Reconnector({ connect, maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => new Reconnector({ connect, maxAttempts: 1.5 })).toThrow(/maxAttempts/);
    expect(() => new Reconnector({ connect, connectTimeout: 0 })).toThrow(/connectTimeout/);
    expect(() => new Reconnector({ connect, minUptime: -1 })).toThrow(/minUptime/);
    expect(() => new Reconnector({ connect, policy: {} as never })).toThrow(/policy/);
  });

  it('only ever moves along the transition table', async () => {
    const h = fakeReconnector({ maxAttempts: 4, auto: (a) => (a % 2 ? 'fail' : 'ok') });
    h.r.start();
    await h.clock.advance(1_000);
    h.r.current!.lost!();
    await h.clock.advance(1_000);
    h.r.current?.lost?.();
    await h.clock.advance(1_000);
    await h.r.close();
    expect(h.transitions.length).toBeGreaterThan(4);
    for (const [from, to] of h.transitions) expect(canTransition(from, to)).toBe(true);
    expect(TRANSITIONS.closed).toEqual([]);
  });
});

describe('Reconnector: retryOn', () => {
  it('gives up at once on an error retryOn refuses', async () => {
    const notFound = Object.assign(new Error('404'), { status: 404 });
    const h = fakeReconnector({ retryOn: (e) => (e as { status?: number }).status !== 404 });
    const waiter = h.r.acquire();
    h.fail(notFound);
    await expect(waiter).rejects.toMatchObject({
      code: 'ERR_RECONNECT_GAVE_UP',
      cause: notFound,
      attempts: 1,
    });
    expect(h.r.state).toBe('failed');
    expect(h.clock.pending).toBe(0);
  });
});
