import { type TracingChannelSubscribers, tracingChannel } from 'node:diagnostics_channel';
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
});
