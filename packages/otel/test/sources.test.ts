/**
 * instrument() over every towerline event source, read back through the OpenTelemetry SDK's
 * in-memory exporter: names, units, bounded attributes, call durations from TracingChannels.
 */
import * as grpc from '@grpc/grpc-js';
import {
  AggregationTemporality,
  type DataPoint,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { ConfigProvider } from '@towerline/config';
import { backoff, serviceFn } from '@towerline/core';
import { startDurableStreamsServer } from '@towerline/durable-streams';
import { GrpcConnectivity } from '@towerline/grpc';
import { instrument, SOURCES } from '@towerline/otel';
import { ReconnectLayer, Reconnector } from '@towerline/reconnect';
import { RetryLayer } from '@towerline/retry';
import { CertFactory, freePort } from '@towerline/testing';
import {
  ClientTlsProvider,
  loadTlsConfigSync,
  ServerTlsProvider,
  type TlsClientSettings,
  type TlsServerSettings,
} from '@towerline/tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { bytesMethod, startGrpcServer } from '../../../test/fixtures/grpc-bytes.js';

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A meter whose measurements are read back through the SDK's InMemoryMetricExporter. */
function sdk() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  closers.push(() => provider.shutdown());
  return {
    meter: provider.getMeter('test'),
    async collect() {
      await reader.forceFlush();
      const latest = exporter.getMetrics().at(-1);
      exporter.reset();
      const metrics = new Map<string, { unit: string; points: DataPoint<any>[] }>();
      for (const scope of latest?.scopeMetrics ?? []) {
        for (const m of scope.metrics) {
          metrics.set(m.descriptor.name, { unit: m.descriptor.unit, points: m.dataPoints });
        }
      }
      const count = (name: string) =>
        (metrics.get(name)?.points ?? []).reduce(
          (n, p) => n + (typeof p.value === 'number' ? p.value : p.value.count),
          0,
        );
      return { metrics, count };
    },
  };
}

describe('the sources instrument() knows', () => {
  it('every instrument has an OpenTelemetry unit: s for histograms, 1 for gauges, {annotation} for counts', () => {
    const names = new Set<string>();
    for (const source of SOURCES) {
      for (const def of Object.values(source.instruments)) {
        expect(names.has(def.name), def.name).toBe(false);
        names.add(def.name);
        if (def.kind === 'histogram') expect(def.unit, def.name).toBe('s');
        else if (def.kind === 'gauge') expect(def.unit, def.name).toBe('1');
        else expect(def.unit, def.name).toMatch(/^\{[a-z_]+\}$/);
      }
    }
    expect(SOURCES.map((s) => s.component)).toEqual([
      'reconnect',
      'retry',
      'config',
      'tls',
      'grpc',
      'durable-streams',
      'timeout',
      'breaker',
      'concurrency',
      'hedge',
      'fallback',
      'rate-limit',
      'load-shed',
    ]);
  });
});

describe('retry: bounded attributes and call durations', () => {
  it('one series per error type however many attempts, and a duration per call of this layer only', async () => {
    const { meter, collect } = sdk();
    const layer = new RetryLayer({ maxAttempts: 8, backoff: backoff.fixed(1), name: 'http' });
    const other = new RetryLayer({ maxAttempts: 2, backoff: backoff.fixed(1), name: 'other' });
    using _ = instrument(layer, { meter });
    let failures = 0;
    const flaky = serviceFn(async (n: number) => {
      if (failures++ < n) throw Object.assign(new Error('nope'), { code: 'EAGAIN' });
      return 'ok';
    });
    expect(await layer.wrap(flaky).call(6)).toBe('ok'); // 6 retries
    failures = 0;
    await expect(layer.wrap(flaky).call(100)).rejects.toMatchObject({
      code: 'ERR_RETRY_EXHAUSTED',
    });
    failures = 0;
    expect(await other.wrap(flaky).call(1)).toBe('ok'); // another layer: not this one's
    const m = await collect();
    const retries = m.metrics.get('towerline.retry.retries')!;
    expect(retries.unit).toBe('{retry}');
    expect(retries.points).toHaveLength(1); // no attempt number: one series
    expect(retries.points[0]!.attributes).toEqual({
      'towerline.source': 'http',
      'error.type': 'EAGAIN',
    });
    expect(m.count('towerline.retry.retries')).toBe(6 + 7);
    const durations = m.metrics.get('towerline.retry.call.duration')!;
    expect(durations.unit).toBe('s');
    expect(m.count('towerline.retry.call.duration')).toBe(2);
    const failed = durations.points.find((p) => p.attributes['error.type'] !== undefined)!;
    expect(failed.attributes['error.type']).toBe('ERR_RETRY_EXHAUSTED');
    expect(failed.value.count).toBe(1);
    expect(failed.value.sum).toBeGreaterThan(0);
    for (const { points } of m.metrics.values()) {
      for (const p of points) expect(Object.keys(p.attributes)).not.toContain('towerline.attempt');
    }
  });

  it('stops recording call durations when disposed', async () => {
    const { meter, collect } = sdk();
    const layer = new RetryLayer({ maxAttempts: 2, name: 'http' });
    const svc = layer.wrap(serviceFn(async () => 'ok'));
    const handle = instrument(layer, { meter });
    await svc.call(undefined);
    handle.dispose();
    await svc.call(undefined);
    expect((await collect()).count('towerline.retry.call.duration')).toBe(1);
  });
});

describe('reconnect service: call durations and resends', () => {
  it('records each call on the reconnect service in seconds', async () => {
    const { meter, collect } = sdk();
    const r = new Reconnector<number>({ connect: async () => 1, name: 'kv' });
    const service = new ReconnectLayer<number, string, string>({ call: async () => 'ok' }).wrap(r);
    closers.push(() => service.close());
    using _ = instrument(service, { meter });
    expect(await service.call('a')).toBe('ok');
    expect(await service.call('b')).toBe('ok');
    const m = await collect();
    expect(m.metrics.get('towerline.reconnect.call.duration')!.unit).toBe('s');
    expect(m.count('towerline.reconnect.call.duration')).toBe(2);
  });
});

describe('TLS providers', () => {
  const certs = new CertFactory();
  afterAll(() => certs.cleanup());
  const ca = certs.createCA({ commonName: 'otel CA' });
  const other = certs.createCA({ commonName: 'otel CA 2' });
  const settingsOf = (name: string) => {
    const leaf = ca.issue({ commonName: name });
    return { default: loadTlsConfigSync({ cert: leaf.chainPem, key: leaf.keyPem }) };
  };

  it('counts rotations of a ServerTlsProvider and updates of a ClientTlsProvider', async () => {
    const { meter, collect } = sdk();
    const server = new ConfigProvider<TlsServerSettings>({ initial: settingsOf('a') });
    const provider = new ServerTlsProvider(server);
    closers.push(() => provider.close?.());
    using _s = instrument(provider, { meter });
    await server.reload(settingsOf('b'));
    await server.reload(settingsOf('c'));
    const client = new ClientTlsProvider(
      new ConfigProvider<TlsClientSettings>({ initial: { ca: ca.certPem } }),
    );
    using _c = instrument(client, { meter, attributes: { 'server.address': 'api' } });
    await client.config.reload({ ca: other.certPem });
    const m = await collect();
    expect(m.metrics.get('towerline.tls.rotations')!.unit).toBe('{rotation}');
    expect(m.count('towerline.tls.rotations')).toBe(2);
    expect(m.metrics.get('towerline.tls.rotations')!.points[0]!.attributes).toEqual({
      'towerline.source': 'server',
    });
    const updates = m.metrics.get('towerline.config.updates')!;
    expect(updates.points[0]!.attributes).toMatchObject({ 'server.address': 'api' });
    expect(m.count('towerline.config.updates')).toBe(1);
  });
});

describe('gRPC connectivity', () => {
  it('counts connections and disconnects and reports the state gauge', async () => {
    const { meter, collect } = sdk();
    const definition = { say: bytesMethod('towerline.test.Echo', 'Say') };
    const port = await freePort();
    const server = await startGrpcServer(
      definition,
      { say: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('x')) },
      port,
    );
    closers.push(() => server.forceShutdown());
    const Client = grpc.makeGenericClientConstructor(definition, 'Echo');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    closers.push(() => client.close());
    const connectivity = new GrpcConnectivity(client, { name: 'echo' });
    closers.push(() => connectivity.close());
    using _ = instrument(connectivity, { meter });
    await connectivity.waitForReady({ timeoutMs: 5_000 });
    let m = await collect();
    expect(m.count('towerline.grpc.connections')).toBe(1);
    const ready = m.metrics
      .get('towerline.grpc.state')!
      .points.find((p) => p.attributes['towerline.state'] === 'READY')!;
    expect(ready.value).toBe(1);
    expect(ready.attributes['towerline.source']).toBe('echo');
    const disconnected = connectivity.events.next('disconnected');
    server.forceShutdown();
    await disconnected;
    m = await collect();
    expect(m.count('towerline.grpc.disconnects')).toBe(1);
    expect(m.metrics.get('towerline.grpc.disconnects')!.unit).toBe('{disconnect}');
  });
});

describe('the Durable Streams server', () => {
  it('records http.server.request.duration per method and status, and overload sheds', async () => {
    const { meter, collect } = sdk();
    const running = await startDurableStreamsServer({ maxLiveConnections: 0 });
    closers.push(() => running.close());
    using _ = instrument(running, { meter });
    const url = `${running.url}/v1/stream/otel`;
    const headers = { 'content-type': 'text/plain' };
    expect((await fetch(url, { method: 'PUT', headers })).status).toBe(201);
    expect((await fetch(url, { method: 'POST', headers, body: 'x' })).status).toBe(204);
    expect((await fetch(`${url}?offset=-1`)).status).toBe(200);
    expect((await fetch(url, { method: 'PROPFIND' })).status).toBe(405);
    // No live read is allowed: shed with 503.
    expect((await fetch(`${url}?offset=-1&live=long-poll`)).status).toBe(503);
    const m = await collect();
    const requests = m.metrics.get('http.server.request.duration')!;
    expect(requests.unit).toBe('s');
    expect(m.count('http.server.request.duration')).toBe(5);
    const methods = requests.points.map((p) => p.attributes['http.request.method']).sort();
    expect(methods).toEqual(['GET', 'GET', 'POST', 'PUT', '_OTHER']);
    expect(m.metrics.get('towerline.durable_streams.shed')!.points[0]!.attributes).toEqual({
      'towerline.source': 'durable-streams',
      'towerline.shed.reason': 'live_connections',
      'http.response.status_code': 503,
    });
  });
});
