import {
  describeError,
  isAbortError,
  isTowerlineError,
  sleep,
  TowerlineError,
  TypedEmitter,
  VirtualClock,
} from '@towerline/core';
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.useRealTimers();
});

describe('sleep', () => {
  it('resolves after the time has passed', async () => {
    vi.useFakeTimers();
    let done = false;
    const p = sleep(1_000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with the signal reason on abort and leaves no timer', async () => {
    vi.useFakeTimers();
    const ac = new AbortController();
    const p = sleep(60_000, { signal: ac.signal });
    expect(vi.getTimerCount()).toBe(1);
    const reason = new Error('stop');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects at once when the signal is already aborted', async () => {
    vi.useFakeTimers();
    const reason = new Error('already');
    await expect(sleep(10, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('runs on an injected clock', async () => {
    const clock = new VirtualClock();
    let done = false;
    const p = sleep(500, { clock }).then(() => {
      done = true;
    });
    await clock.advance(499);
    expect(done).toBe(false);
    await clock.advance(1);
    await p;
    expect(done).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('unrefs its timer unless told not to', () => {
    const unref = vi.fn();
    const clock = { now: () => 0, setTimeout: () => 1, clearTimeout: () => {}, unref };
    void sleep(10, { clock });
    expect(unref).toHaveBeenCalledTimes(1);
    void sleep(10, { clock, unref: false });
    expect(unref).toHaveBeenCalledTimes(1);
  });

  it('refuses an invalid duration', () => {
    for (const ms of [-1, Number.NaN, Number.POSITIVE_INFINITY, '5' as never]) {
      expect(() => sleep(ms)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', parameter: 'ms' }),
      );
    }
  });
});

describe('TypedEmitter', () => {
  type Events = { ping: { n: number }; other: { s: string } };

  it('reports a throwing listener, runs the others, and never throws from emit()', () => {
    const onListenerError = vi.fn();
    const events = new TypedEmitter<Events>({ onListenerError });
    const seen: number[] = [];
    const boom = new Error('listener bug');
    events.on('ping', ({ n }) => seen.push(n));
    events.on('ping', () => {
      throw boom;
    });
    events.on('ping', ({ n }) => seen.push(n * 10));
    expect(() => events.emit('ping', { n: 1 })).not.toThrow();
    expect(seen).toEqual([1, 10]);
    expect(onListenerError).toHaveBeenCalledWith({ event: 'ping', error: boom });
  });

  it('by default reports as a process warning', async () => {
    const warning = vi.fn();
    process.on('warning', warning);
    try {
      const events = new TypedEmitter<Events>();
      events.on('other', () => {
        throw new Error('oops');
      });
      events.emit('other', { s: 'x' });
      await new Promise((r) => setImmediate(r));
      expect(warning).toHaveBeenCalledWith(
        expect.objectContaining({ code: 'TOWERLINE_LISTENER_ERROR' }),
      );
    } finally {
      process.off('warning', warning);
    }
  });

  it('once() fires once; off() removes; subscribe() disposes', () => {
    const events = new TypedEmitter<Events>();
    const once = vi.fn();
    const on = vi.fn();
    events.once('ping', once);
    events.on('ping', on);
    const sub = events.subscribe('ping', on);
    events.emit('ping', { n: 1 });
    events.emit('ping', { n: 2 });
    expect(once).toHaveBeenCalledTimes(1);
    expect(on).toHaveBeenCalledTimes(4);
    sub.dispose();
    events.off('ping', on);
    events.emit('ping', { n: 3 });
    expect(on).toHaveBeenCalledTimes(4);
    expect(events.listenerCount('ping')).toBe(0);
    expect(events.emit('ping', { n: 4 })).toBe(false);
  });

  it('next() resolves with the next payload, or rejects on abort leaving no listener', async () => {
    const events = new TypedEmitter<Events>();
    const next = events.next('ping');
    events.emit('ping', { n: 7 });
    expect(await next).toEqual({ n: 7 });
    const ac = new AbortController();
    const aborted = events.next('ping', ac.signal);
    ac.abort(new Error('no more'));
    await expect(aborted).rejects.toThrow('no more');
    expect(events.listenerCount('ping')).toBe(0);
  });

  it('a throwing reporter is swallowed too', () => {
    const events = new TypedEmitter<Events>({
      onListenerError: () => {
        throw new Error('reporter bug');
      },
    });
    events.on('ping', () => {
      throw new Error('listener bug');
    });
    expect(() => events.emit('ping', { n: 1 })).not.toThrow();
  });
});

describe('TowerlineError', () => {
  it('carries code, cause and facts', () => {
    const cause = Object.assign(new Error('socket hang up: password=hunter2'), {
      code: 'ECONNRESET',
    });
    const e = new TowerlineError('ERR_RETRY_EXHAUSTED', 'retry exhausted after 3 attempts', {
      cause,
      attempts: 3,
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('TowerlineError');
    expect(e.code).toBe('ERR_RETRY_EXHAUSTED');
    expect(e.cause).toBe(cause);
    expect(e.attempts).toBe(3);
    expect(isTowerlineError(e)).toBe(true);
    expect(isTowerlineError(e, 'ERR_RETRY_EXHAUSTED')).toBe(true);
    expect(isTowerlineError(e, 'ERR_CLOSED')).toBe(false);
    expect(isTowerlineError(cause)).toBe(false);
    // toJSON names the cause by its code, never by its message.
    const json = JSON.stringify(e);
    expect(json).toContain('ECONNRESET');
    expect(json).not.toContain('hunter2');
  });

  it('describes errors by code or name only', () => {
    expect(describeError(Object.assign(new Error('x'), { code: 'EPIPE' }))).toBe('EPIPE');
    expect(describeError(new TypeError('secret'))).toBe('TypeError');
    expect(describeError('a string')).toBe('string');
    expect(describeError(undefined)).toBeUndefined();
  });

  it('recognises abort errors', () => {
    expect(isAbortError(new DOMException('aborted', 'AbortError'))).toBe(true);
    expect(isAbortError(Object.assign(new Error('x'), { name: 'AbortError' }))).toBe(true);
    expect(isAbortError(new Error('x'))).toBe(false);
  });
});
