import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  type DataPoint,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { ConfigProvider } from '@towerline/config';
import { backoff, serviceFn, VirtualClock } from '@towerline/core';
import { channelName, instrument } from '@towerline/otel';
import { CircuitBreakerLayer, TimeoutLayer } from '@towerline/policies';
import { ReconnectLayer, Reconnector } from '@towerline/reconnect';
import { RetryLayer } from '@towerline/retry';
import { describe, expect, it } from 'vitest';

class InMemoryReader extends MetricReader {
  protected async onForceFlush() {}
  protected async onShutdown() {}
}

async function collect(reader: InMemoryReader) {
  const { resourceMetrics } = (await reader.collect()) as { resourceMetrics: ResourceMetrics };
  const points = new Map<string, DataPoint<any>[]>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) points.set(metric.descriptor.name, metric.dataPoints);
  }
  const sum = (name: string) =>
    (points.get(name) ?? []).reduce(
      (n, p) => n + (typeof p.value === 'number' ? p.value : p.value.count),
      0,
    );
  return { points, sum };
}

describe('instrument()', () => {
  it('counts attempts, reconnects, disconnects, give-ups and rejections over a scripted outage', async () => {
    const reader = new InMemoryReader();
    const meter = new MeterProvider({ readers: [reader] }).getMeter('test');
    const clock = new VirtualClock();
    let serverUp = true;
    let lose: ((e: unknown) => void) | undefined;
    const refused = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    const r = new Reconnector<{ id: number }>({
      name: 'kv',
      clock,
      policy: backoff.fixed(100),
      maxAttempts: 3,
      connect: async ({ attempt }) => {
        if (!serverUp) throw refused;
        return { id: attempt };
      },
      watch: (_c, lost) => {
        lose = lost;
      },
    });
    const service = new ReconnectLayer<{ id: number }, string, string>({
      call: async () => 'ok',
      maxQueued: 1,
    }).wrap(r);
    using _r = instrument(r, { meter, attributes: { 'db.system': 'kv' } });
    using _s = instrument(service, { meter });
    await r.acquire(); // 1 attempt, 1 connection
    serverUp = false;
    lose!(Object.assign(new Error('reset'), { code: 'ECONNRESET' })); // 1 disconnect
    const queued = service.call('a');
    await expect(service.call('b')).rejects.toMatchObject({ code: 'ERR_QUEUE_FULL' }); // 1 rejection
    await clock.advance(150); // attempt 1 of the outage fails
    serverUp = true;
    await clock.advance(100); // attempt 2 succeeds: 1 reconnect
    expect(await queued).toBe('ok');
    const m = await collect(reader);
    expect(m.sum('towerline.reconnect.attempts')).toBe(3);
    expect(m.sum('towerline.reconnect.connections')).toBe(2);
    expect(m.sum('towerline.reconnect.reconnects')).toBe(1);
    expect(m.sum('towerline.reconnect.disconnects')).toBe(1);
    expect(m.sum('towerline.reconnect.rejections')).toBe(1);
    expect(m.sum('towerline.reconnect.downtime')).toBe(1); // one histogram sample
    const downtime = m.points.get('towerline.reconnect.downtime')![0]!;
    expect(downtime.value.sum).toBeCloseTo(0.2, 5);
    expect(downtime.attributes).toMatchObject({ 'towerline.source': 'kv', 'db.system': 'kv' });
    const states = m.points.get('towerline.reconnect.state')!;
    const connected = states.find((p) => p.attributes['towerline.state'] === 'connected')!;
    expect(connected.value).toBe(1);
    expect(states.filter((p) => p.value === 1)).toHaveLength(1);
    // Now the server goes away for good: one give-up.
    serverUp = false;
    lose!(refused);
    await clock.advance(1_000);
    expect((await collect(reader)).sum('towerline.reconnect.give_ups')).toBe(1);
    await service.close();
  });

  it('counts retries, exhaustion and retry delays', async () => {
    const reader = new InMemoryReader();
    const meter = new MeterProvider({ readers: [reader] }).getMeter('test');
    const layer = new RetryLayer({ maxAttempts: 3, backoff: backoff.fixed(1), name: 'http' });
    using _ = instrument(layer, { meter });
    const svc = layer.wrap(
      serviceFn(async () => {
        throw Object.assign(new Error('nope'), { code: 'EAGAIN' });
      }),
    );
    await expect(svc.call(undefined)).rejects.toMatchObject({ code: 'ERR_RETRY_EXHAUSTED' });
    const m = await collect(reader);
    expect(m.sum('towerline.retry.retries')).toBe(2);
    expect(m.sum('towerline.retry.exhausted')).toBe(1);
    expect(m.points.get('towerline.retry.retries')![0]!.attributes).toMatchObject({
      'towerline.source': 'http',
      'error.type': 'EAGAIN',
    });
  });

  it('counts config updates and rejections, and stops on dispose', async () => {
    const reader = new InMemoryReader();
    const meter = new MeterProvider({ readers: [reader] }).getMeter('test');
    const config = new ConfigProvider<{ n: number }>({
      validate: (c) => (c.n >= 0 ? [] : ['n must be >= 0']),
    });
    const handle = instrument(config, { meter });
    await config.reload({ n: 1 });
    await config.reload({ n: -1 }).catch(() => {});
    handle.dispose();
    await config.reload({ n: 2 });
    const m = await collect(reader);
    expect(m.sum('towerline.config.updates')).toBe(1);
    expect(m.sum('towerline.config.rejections')).toBe(1);
  });

  it('refuses something that is not a towerline event source', () => {
    const meter = new MeterProvider().getMeter('test');
    expect(() => instrument({ events: {} } as never, { meter })).toThrow(
      /not a towerline event source/,
    );
  });

  it('names the diagnostics channels the emitters publish on', async () => {
    const seen: unknown[] = [];
    const listener = (m: unknown) => seen.push(m);
    subscribe(channelName('config', 'updated'), listener);
    try {
      const config = new ConfigProvider<{ n: number }>({ name: 'app' });
      await config.reload({ n: 1 });
      expect(seen).toEqual([{ version: 1, source: 'app', event: 'updated' }]);
    } finally {
      unsubscribe(channelName('config', 'updated'), listener);
    }
  });

  it('counts the policies’ events: breaker state changes and refusals, timeouts', async () => {
    const reader = new InMemoryReader();
    const meter = new MeterProvider({ readers: [reader] }).getMeter('test');
    const clock = new VirtualClock();
    const breaker = new CircuitBreakerLayer({
      policy: { kind: 'consecutive', threshold: 1 },
      clock,
    });
    const timeout = new TimeoutLayer({ ms: 10, clock });
    using _b = instrument(breaker, { meter });
    using _t = instrument(timeout, { meter });
    const svc = breaker.wrap(timeout.wrap({ call: () => new Promise<never>(() => {}) }));
    const first = svc.call(1).catch((e: unknown) => e);
    await clock.advance(10);
    expect(await first).toMatchObject({ code: 'ERR_TIMEOUT' });
    await expect(svc.call(1)).rejects.toMatchObject({ code: 'ERR_CIRCUIT_OPEN' });
    const { points, sum } = await collect(reader);
    expect(sum('towerline.timeout.timeouts')).toBe(1);
    expect(sum('towerline.breaker.rejections')).toBe(1);
    const changes = (points.get('towerline.breaker.state_changes') ?? []).map((p) => [
      p.attributes['towerline.state'],
      p.value,
    ]);
    expect(changes).toEqual([['open', 1]]);
    expect(channelName('breaker', 'stateChange')).toBe('towerline:breaker:stateChange');
  });
});
