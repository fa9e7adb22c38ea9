import { AsyncLocalStorage } from 'node:async_hooks';
import {
  channel as dcChannel,
  subscribe as dcSubscribe,
  unsubscribe as dcUnsubscribe,
  type TracingChannelSubscribers,
  tracingChannel,
} from 'node:diagnostics_channel';
import { backoff, type CallTrace, callTracer, serviceFn } from '@towerline/core';
import { RetryLayer } from '@towerline/retry';
import { describe, expect, it } from 'vitest';

describe('towerline:retry:call, a TracingChannel an APM can open spans on', () => {
  it('publishes start/end/asyncStart/asyncEnd per call, error on failure, and nothing once unsubscribed', async () => {
    const seen: string[] = [];
    const traces: CallTrace[] = [];
    const handlers: TracingChannelSubscribers<CallTrace> = {
      start: (t) => {
        traces.push(t);
        seen.push(`start ${t.source} ${String(t.request)}`);
      },
      end: () => seen.push('end'),
      asyncStart: () => seen.push('asyncStart'),
      asyncEnd: (t) => seen.push(`asyncEnd ${'error' in t ? 'failed' : String(t.result)}`),
      error: (t) => seen.push(`error ${(t.error as { code?: string }).code}`),
    };
    const channel = tracingChannel<unknown, CallTrace>('towerline:retry:call');
    const tracer = callTracer('retry');
    expect(tracer.active).toBe(false);
    const layer = new RetryLayer({ maxAttempts: 2, backoff: backoff.fixed(1), name: 'http' });
    let calls = 0;
    const svc = layer.wrap(
      serviceFn(async (req: string) => {
        calls++;
        if (req === 'bad') throw Object.assign(new Error('no'), { code: 'EBAD' });
        return `ok:${req}`;
      }),
    );
    channel.subscribe(handlers);
    try {
      expect(tracer.active).toBe(true);
      expect(await svc.call('a')).toBe('ok:a');
      await expect(svc.call('bad')).rejects.toMatchObject({ code: 'ERR_RETRY_EXHAUSTED' });
    } finally {
      channel.unsubscribe(handlers);
    }
    expect(seen).toEqual([
      'start http a',
      'end',
      'asyncStart',
      'asyncEnd ok:a',
      'start http bad',
      'end',
      'error ERR_RETRY_EXHAUSTED',
      'asyncStart',
      'asyncEnd failed',
    ]);
    expect(traces[0]!.events).toBe(layer.events);
    expect(calls).toBe(3);
    expect(tracer.active).toBe(false);
    await svc.call('quiet');
    expect(seen).toHaveLength(9);
  });

  it('sees a listener however it came: one event only, diagnostics_channel.subscribe, a bound store, a second tracer', async () => {
    const first = callTracer('retry');
    const second = callTracer('retry');
    const svc = new RetryLayer({ maxAttempts: 1 }).wrap(serviceFn(async (req: number) => req + 1));
    const ends: unknown[] = [];
    const onEnd = (t: unknown) => ends.push((t as CallTrace).result);
    // Only asyncEnd, by name.
    dcSubscribe('tracing:towerline:retry:call:asyncEnd', onEnd);
    expect([first.active, second.active]).toEqual([true, true]);
    expect(await svc.call(1)).toBe(2);
    expect(ends).toEqual([2]);
    expect(dcUnsubscribe('tracing:towerline:retry:call:asyncEnd', onEnd)).toBe(true);
    expect([first.active, second.active]).toEqual([false, false]);
    await svc.call(5);
    expect(ends).toEqual([2]);
    // A store bound to start (what an APM's context propagation does) counts as a listener.
    const store = new AsyncLocalStorage<string>();
    const start = dcChannel('tracing:towerline:retry:call:start');
    start.bindStore(store, () => 'span');
    expect(first.active).toBe(true);
    expect(start.unbindStore(store)).toBe(true);
    expect(first.active).toBe(false);
    // The error channel alone, through tracingChannel's own subscribe.
    const errors = tracingChannel<unknown, CallTrace>('towerline:retry:call');
    const handlers = { error: () => {} } as unknown as TracingChannelSubscribers<CallTrace>;
    errors.subscribe(handlers);
    expect(second.active).toBe(true);
    errors.unsubscribe(handlers);
    expect([first.active, second.active]).toEqual([false, false]);
  });
});
