/**
 * Interop and operations: the official `@durable-streams/client` reads a whole stream with one
 * `body()`; JSON too deep to store is a 400, not a 500; request lines are logged through pino
 * with ECS field names, at a configurable level, into a logger the embedder passes.
 */
import { Writable } from 'node:stream';
import { stream } from '@durable-streams/client';
import {
  createLogger,
  loadConfig,
  MAX_JSON_DEPTH,
  type RunningServer,
  startApp,
  startDurableStreamsServer,
} from '@towerline/durable-streams';
import { afterEach, describe, expect, it } from 'vitest';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});
async function server(options: Parameters<typeof startDurableStreamsServer>[0] = {}) {
  const s: RunningServer = await startDurableStreamsServer(options);
  closers.push(() => s.close());
  return `${s.url}/v1/stream`;
}

describe('the official client', () => {
  it('body() returns every byte of a 2.5 MB stream (one catch-up page)', async () => {
    const url = `${await server()}/big`;
    await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } });
    const chunks = Array.from({ length: 25 }, (_, i) => Buffer.alloc(100_000, i));
    for (const c of chunks)
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: c,
      });
    const res = await stream({ url, live: false });
    const body = await res.body();
    expect(body.length).toBe(2_500_000);
    expect(Buffer.from(body).equals(Buffer.concat(chunks))).toBe(true);
  });

  it('a page larger than a megabyte is streamed from storage, JSON included', async () => {
    const url = `${await server({ storage: 'memory', catchUpPageBytes: 4 * 1024 * 1024 })}/json`;
    await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' } });
    const items = Array.from({ length: 300 }, (_, i) => ({ i, pad: 'p'.repeat(10_000) }));
    for (let k = 0; k < items.length; k += 50)
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(items.slice(k, k + 50)),
      });
    const res = await fetch(`${url}?offset=-1`);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(1024 * 1024);
    expect(await res.json()).toEqual(items);
  });
});

describe('deep JSON', () => {
  it(`nesting past ${MAX_JSON_DEPTH} levels is a 400 problem, the stream unchanged`, async () => {
    const url = `${await server()}/deep`;
    await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' } });
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: deep,
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(((await res.json()) as { title: string }).title).toContain('nested');
    const ok = '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH);
    expect(
      (
        await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: ok,
        })
      ).status,
    ).toBe(204);
    expect(await (await fetch(`${url}?offset=-1`)).json()).toEqual([JSON.parse(ok)[0]]);
  });
});

describe('logging', () => {
  /** A pino logger writing into an array of parsed lines. */
  function capture(level: 'debug' | 'info' = 'info') {
    const lines: Array<Record<string, unknown>> = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
        done();
      },
    });
    return { lines, logger: createLogger({ level, destination }) };
  }
  const app = async (env: Record<string, string>, logger: ReturnType<typeof createLogger>) => {
    const a = await startApp(
      loadConfig({ env: { DS_SERVER__BIND_ADDRESS: '127.0.0.1:0', ...env } }),
      logger,
    );
    closers.push(() => a.close());
    return a;
  };

  it('request lines at info, with ECS field names, into the logger passed in', async () => {
    const { lines, logger } = capture();
    const a = await app({}, logger);
    await fetch(`${a.url}/v1/stream/logged`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
    });
    await fetch(`${a.url}/v1/stream/logged?offset=-1`);
    const requests = lines.filter((l) => l.message === 'request');
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      'log.level': 'info',
      'http.request.method': 'PUT',
      'url.path': '/v1/stream/logged',
      'http.response.status_code': 201,
      'client.address': '127.0.0.1',
      'ecs.version': expect.any(String),
    });
    expect(typeof requests[0]!['@timestamp']).toBe('string');
    expect(requests[0]!['event.duration']).toBeGreaterThan(0);
    expect(lines.some((l) => l.message === 'listening')).toBe(true);
  });

  it('an SSE read is logged when it ends, its connection taken off node:http meanwhile', async () => {
    const { lines, logger } = capture();
    const a = await app({}, logger);
    const url = `${a.url}/v1/stream/sse-logged`;
    await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    const res = await fetch(`${url}?offset=-1&live=sse`);
    const body = res.text();
    await new Promise((r) => setTimeout(r, 50)); // the reader is idle, detached
    expect(a.handler.live.sse).toBe(1);
    await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'stream-closed': 'true' },
      body: 'last',
    });
    // The response ends whole (the last chunk), so the body resolves.
    const text = await body;
    expect(text).toContain('data:last');
    expect(text).toContain('"streamClosed":true');
    for (let i = 0; i < 100 && a.handler.live.sse > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(a.handler.live.sse).toBe(0);
    const sse = lines.filter((l) => l.message === 'request' && l['http.request.method'] === 'GET');
    expect(sse).toHaveLength(1);
    expect(sse[0]).toMatchObject({
      'url.path': '/v1/stream/sse-logged',
      'http.response.status_code': 200,
    });
  });

  it('the request level is configurable: off, or below the logger level, logs none', async () => {
    for (const level of ['off', 'debug']) {
      const { lines, logger } = capture('info');
      const a = await app({ DS_OBSERVABILITY__REQUEST_LOG_LEVEL: level }, logger);
      await fetch(`${a.url}/v1/stream/quiet?offset=-1`);
      expect(lines.filter((l) => l.message === 'request')).toHaveLength(0);
    }
  });
});
