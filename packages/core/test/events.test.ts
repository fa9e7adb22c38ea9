import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { getEventListeners } from 'node:events';
import { type ListenerError, TypedEmitter, warnListenerError } from '@towerline/core';
import { afterEach, describe, expect, it, vi } from 'vitest';

type Events = { ping: { n: number }; pong: { s: string } };

afterEach(() => {
  vi.restoreAllMocks();
});

/** Lets the process deliver a warning (process.emitWarning emits on the next tick). */
const nextTick = () => new Promise((resolve) => setImmediate(resolve));

describe('TypedEmitter: a throwing listener', () => {
  it('does not propagate from emit(); the other listeners still run; the handler is told', () => {
    const reports: ListenerError[] = [];
    const events = new TypedEmitter<Events>({ onListenerError: (r) => reports.push(r) });
    const seen: number[] = [];
    const boom = new Error('listener bug');
    events.on('ping', ({ n }) => seen.push(n));
    events.on('ping', () => {
      throw boom;
    });
    events.on('ping', ({ n }) => seen.push(n * 10));
    let result: boolean | undefined;
    expect(() => {
      result = events.emit('ping', { n: 1 });
    }).not.toThrow();
    expect(result).toBe(true);
    expect(seen).toEqual([1, 10]);
    expect(reports).toEqual([{ event: 'ping', error: boom }]);
    expect(reports[0]!.error).toBe(boom);
  });

  it('reports non-Error throwables and once() listeners too', () => {
    const onListenerError = vi.fn();
    const events = new TypedEmitter<Events>({ onListenerError });
    events.once('pong', () => {
      throw 'a string';
    });
    events.emit('pong', { s: 'x' });
    expect(onListenerError).toHaveBeenCalledExactlyOnceWith({ event: 'pong', error: 'a string' });
  });

  it('names the right event when emits nest', () => {
    const reports: ListenerError[] = [];
    const events = new TypedEmitter<Events>({ onListenerError: (r) => reports.push(r) });
    events.on('ping', () => {
      events.emit('pong', { s: 'inner' });
      throw new Error('outer');
    });
    events.on('pong', () => {
      throw new Error('inner');
    });
    events.emit('ping', { n: 1 });
    expect(reports.map(({ event, error }) => [event, (error as Error).message])).toEqual([
      ['pong', 'inner'],
      ['ping', 'outer'],
    ]);
  });

  it('a throwing reporter is swallowed too', () => {
    const events = new TypedEmitter<Events>({
      onListenerError: () => {
        throw new Error('reporter bug');
      },
    });
    const after = vi.fn();
    events.on('ping', () => {
      throw new Error('listener bug');
    });
    events.on('ping', after);
    expect(() => events.emit('ping', { n: 1 })).not.toThrow();
    expect(after).toHaveBeenCalledTimes(1);
  });

  it('by default becomes a process warning with code TOWERLINE_LISTENER_ERROR', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const events = new TypedEmitter<Events>();
      events.on('pong', () => {
        throw new TypeError('oops');
      });
      expect(() => events.emit('pong', { s: 'x' })).not.toThrow();
      await nextTick();
      const ours = warnings.filter(
        (w) => (w as { code?: string }).code === 'TOWERLINE_LISTENER_ERROR',
      );
      expect(ours).toHaveLength(1);
      expect(ours[0]!.message).toContain('"pong"');
      expect(ours[0]!.message).toContain('TypeError: oops');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('warnListenerError is the default reporter', () => {
    const emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    warnListenerError({ event: 'ping', error: 'plain' });
    expect(emitWarning).toHaveBeenCalledWith('a listener for "ping" threw: plain', {
      code: 'TOWERLINE_LISTENER_ERROR',
    });
  });
});

describe('TypedEmitter: subscribing', () => {
  it('on() calls with the payload, in order; emit() says whether anyone listened', () => {
    const events = new TypedEmitter<Events>();
    expect(events.emit('ping', { n: 0 })).toBe(false);
    const seen: string[] = [];
    events.on('ping', ({ n }) => seen.push(`a${n}`)).on('ping', ({ n }) => seen.push(`b${n}`));
    expect(events.emit('ping', { n: 1 })).toBe(true);
    expect(seen).toEqual(['a1', 'b1']);
  });

  it('once() fires once', () => {
    const events = new TypedEmitter<Events>();
    const once = vi.fn();
    events.once('ping', once);
    events.emit('ping', { n: 1 });
    events.emit('ping', { n: 2 });
    expect(once).toHaveBeenCalledExactlyOnceWith({ n: 1 });
    expect(events.listenerCount('ping')).toBe(0);
  });

  it('once() listeners added during an emit survive the other once() listeners firing', () => {
    const events = new TypedEmitter<Events>();
    const seen: string[] = [];
    events.once('ping', ({ n }) => {
      seen.push(`a${n}`);
      events.once('ping', ({ n: m }) => seen.push(`again${m}`));
    });
    events.once('ping', ({ n }) => seen.push(`b${n}`));
    events.emit('ping', { n: 1 });
    events.emit('ping', { n: 2 });
    events.emit('ping', { n: 3 });
    expect(seen).toEqual(['a1', 'b1', 'again2']);
    expect(events.listenerCount('ping')).toBe(0);
  });

  it('next() called from a listener resolves on the following emit', async () => {
    const events = new TypedEmitter<Events>();
    let following: Promise<Events['ping']> | undefined;
    events.once('ping', () => {
      following = events.next('ping');
    });
    events.once('ping', () => {});
    events.emit('ping', { n: 1 });
    events.emit('ping', { n: 2 });
    expect(following).toBeDefined();
    await expect(following).resolves.toEqual({ n: 2 });
  });

  it('off() removes that listener only; off() of an unknown listener removes nothing', () => {
    const events = new TypedEmitter<Events>();
    const a = vi.fn();
    const b = vi.fn();
    events.on('ping', a).on('ping', b).once('ping', a);
    events.off('ping', a);
    events.off('ping', vi.fn());
    events.off('pong', b);
    events.emit('ping', { n: 1 });
    expect(a).not.toHaveBeenCalled();
    expect(b).toHaveBeenCalledTimes(1);
    expect(events.listenerCount('ping')).toBe(1);
  });

  it('off(event) without a listener removes all of that event', () => {
    const events = new TypedEmitter<Events>();
    events
      .on('ping', () => {})
      .on('ping', () => {})
      .on('pong', () => {});
    events.off('ping');
    expect(events.listenerCount('ping')).toBe(0);
    expect(events.listenerCount('pong')).toBe(1);
    expect(events.eventNames()).toEqual(['pong']);
    events.removeAllListeners();
    expect(events.eventNames()).toEqual([]);
  });

  it('subscribe() returns a disposable that removes exactly that subscription', () => {
    const events = new TypedEmitter<Events>();
    const listener = vi.fn();
    const first = events.subscribe('ping', listener);
    const second = events.subscribe('ping', listener);
    events.emit('ping', { n: 1 });
    expect(listener).toHaveBeenCalledTimes(2);
    first.dispose();
    first.dispose(); // idempotent
    events.emit('ping', { n: 2 });
    expect(listener).toHaveBeenCalledTimes(3);
    second[Symbol.dispose]();
    events.emit('ping', { n: 3 });
    expect(listener).toHaveBeenCalledTimes(3);
    expect(events.listenerCount('ping')).toBe(0);
  });

  it('a subscribed listener that throws is reported like any other', () => {
    const onListenerError = vi.fn();
    const events = new TypedEmitter<Events>({ onListenerError });
    const error = new Error('x');
    events.subscribe('ping', () => {
      throw error;
    });
    events.emit('ping', { n: 1 });
    expect(onListenerError).toHaveBeenCalledWith({ event: 'ping', error });
  });
});

describe('TypedEmitter.next()', () => {
  it('resolves with the next payload and leaves no listener behind', async () => {
    const events = new TypedEmitter<Events>();
    const ac = new AbortController();
    const next = events.next('ping', ac.signal);
    expect(events.listenerCount('ping')).toBe(1);
    events.emit('ping', { n: 7 });
    events.emit('ping', { n: 8 });
    await expect(next).resolves.toEqual({ n: 7 });
    expect(events.listenerCount('ping')).toBe(0);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });

  it('rejects with the signal reason on abort and leaves no listener behind', async () => {
    const events = new TypedEmitter<Events>();
    const ac = new AbortController();
    const next = events.next('ping', ac.signal);
    const reason = new Error('no more');
    ac.abort(reason);
    await expect(next).rejects.toBe(reason);
    expect(events.listenerCount('ping')).toBe(0);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(events.emit('ping', { n: 1 })).toBe(false);
  });

  it('rejects at once, subscribing nothing, when the signal is already aborted', async () => {
    const events = new TypedEmitter<Events>();
    const signal = AbortSignal.abort('gone');
    const next = events.next('ping', signal);
    expect(events.listenerCount('ping')).toBe(0);
    await expect(next).rejects.toBe('gone');
  });

  it('aborting one waiter leaves the others waiting', async () => {
    const events = new TypedEmitter<Events>();
    const ac = new AbortController();
    const aborted = events.next('ping', ac.signal);
    const kept = events.next('ping');
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    events.emit('ping', { n: 3 });
    await expect(kept).resolves.toEqual({ n: 3 });
  });
});

describe('TypedEmitter: diagnostics channel', () => {
  it('publishes each event as <channel>:<event> with source and event name', () => {
    const events = new TypedEmitter<Events>({ channel: 'towerline:test-events', source: 'unit' });
    const messages: unknown[] = [];
    const onMessage = (m: unknown) => messages.push(m);
    events.emit('ping', { n: 0 }); // nobody subscribed: nothing published
    subscribe('towerline:test-events:ping', onMessage);
    try {
      events.emit('ping', { n: 1 });
      events.emit('pong', { s: 'not subscribed' });
    } finally {
      unsubscribe('towerline:test-events:ping', onMessage);
    }
    expect(messages).toEqual([{ n: 1, source: 'unit', event: 'ping' }]);
    expect(events.channelFor('ping')?.name).toBe('towerline:test-events:ping');
    expect(new TypedEmitter<Events>().channelFor('ping')).toBeUndefined();
  });
});
