/**
 * The resilient reader and the idempotent producer, against the Durable Streams reference
 * server (`@durable-streams/server`, in process) with FaultProxy drops and server restarts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DurableStreamTestServer } from '@durable-streams/server';
import { backoff } from '@towerline/core';
import { createProducer, followStream, type StreamBatch } from '@towerline/durable-streams';
import { FaultProxy, freePort } from '@towerline/testing';
import { afterEach, describe, expect, it } from 'vitest';

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function reference(options: { dataDir?: string; port?: number } = {}) {
  const server = new DurableStreamTestServer({
    port: options.port ?? 0,
    longPollTimeout: 500,
    compression: false,
    ...options,
  });
  await server.start();
  return server;
}

async function create(base: string, path: string, contentType = 'text/plain') {
  const res = await fetch(`${base}${path}`, {
    method: 'PUT',
    headers: { 'content-type': contentType },
  });
  expect([200, 201]).toContain(res.status);
}

const text = (batches: StreamBatch[]) =>
  batches.map((b) => Buffer.from(b.data).toString()).join('');
const fast = backoff.exponentialRandom({ initial: 10, max: 200, jitter: 'decorrelated' });

/** Collects a followed stream in the background. */
function collect(stream: AsyncIterable<StreamBatch>) {
  const batches: StreamBatch[] = [];
  const done = (async () => {
    for await (const b of stream) batches.push(b);
  })();
  return { batches, done };
}

describe('followStream', () => {
  for (const live of ['long-poll', 'sse'] as const) {
    it(`${live}: reads history and live appends, and ends when the stream is closed`, async () => {
      const server = await reference();
      closers.push(() => server.stop());
      await create(server.url, '/v1/stream/a');
      const producer = createProducer(`${server.url}/v1/stream/a`, { contentType: 'text/plain' });
      await producer.append('one;');
      const reader = collect(followStream(`${server.url}/v1/stream/a`, { live, policy: fast }));
      await producer.append('two;');
      await producer.append('three;');
      await producer.close();
      await reader.done;
      expect(text(reader.batches)).toBe('one;two;three;');
      expect(reader.batches.at(-1)!.closed).toBe(true);
    });

    it(`${live}: survives connection drops mid-read: the output equals the appended sequence exactly`, async () => {
      const server = await reference();
      const proxy = await FaultProxy.start({ target: { port: Number(new URL(server.url).port) } });
      closers.push(
        () => server.stop(),
        () => proxy.close(),
      );
      await create(server.url, '/v1/stream/drops');
      const producer = createProducer(`${server.url}/v1/stream/drops`, {
        contentType: 'text/plain',
      });
      const stream = followStream(`http://127.0.0.1:${proxy.port}/v1/stream/drops`, {
        live,
        policy: fast,
      });
      let rebuilt = 0;
      stream.events.on('disconnected', () => {
        rebuilt++;
      });
      const reader = collect(stream);
      const expected: string[] = [];
      for (let i = 0; i < 200; i++) {
        const line = `m${i};`;
        expected.push(line);
        await producer.append(line);
        if (i % 25 === 12) proxy.reset();
      }
      await producer.close();
      await reader.done;
      expect(text(reader.batches)).toBe(expected.join(''));
      expect(proxy.stats.resets).toBeGreaterThan(0);
      expect(rebuilt).toBeGreaterThan(0); // the reader lost its connection and resumed
    });
  }

  it('survives a server restart mid-read (file-backed server)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'towerline-ds-'));
    const port = await freePort();
    let server = await reference({ dataDir, port });
    closers.push(() => rmSync(dataDir, { recursive: true, force: true }));
    closers.push(() => server.stop());
    const base = `http://127.0.0.1:${port}`;
    await create(base, '/v1/stream/restart');
    const producer = createProducer(`${base}/v1/stream/restart`, {
      contentType: 'text/plain',
      retry: { maxAttempts: 50, backoff: backoff.fixed(50) },
    });
    const stream = followStream(`${base}/v1/stream/restart`, { policy: fast });
    let rebuilt = 0;
    stream.events.on('disconnected', () => {
      rebuilt++;
    });
    const reader = collect(stream);
    const expected: string[] = [];
    for (let i = 0; i < 60; i++) {
      expected.push(`r${i};`);
      await producer.append(`r${i};`);
      if (i === 30) {
        await server.stop();
        server = await reference({ dataDir, port });
      }
    }
    await producer.close();
    await reader.done;
    expect(text(reader.batches)).toBe(expected.join(''));
    expect(rebuilt).toBeGreaterThan(0);
  });

  it('ends with the HTTP error for a missing stream, without a retry loop', async () => {
    const server = await reference();
    closers.push(() => server.stop());
    const stream = followStream(`${server.url}/v1/stream/missing`, { policy: fast });
    const attempts: number[] = [];
    stream.events.on('connecting', ({ attempt }) => attempts.push(attempt));
    await expect(collect(stream).done).rejects.toMatchObject({ status: 404 });
    expect(attempts).toEqual([1]);
  });

  it("honours a 503's Retry-After before reconnecting", async () => {
    const server = await reference();
    closers.push(() => server.stop());
    await create(server.url, '/v1/stream/busy');
    await fetch(`${server.url}/v1/stream/busy`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'stream-closed': 'true' },
      body: 'done',
    });
    let refusals = 1;
    const shim = createServer((req, res) => {
      if (refusals-- > 0) {
        res.writeHead(503, { 'retry-after': '1' }).end();
        return;
      }
      fetch(`${server.url}${req.url}`).then(async (r) => {
        res.writeHead(r.status, Object.fromEntries(r.headers));
        res.end(Buffer.from(await r.arrayBuffer()));
      });
    });
    await new Promise<void>((r) => shim.listen(0, '127.0.0.1', r));
    closers.push(() => shim.close());
    const port = (shim.address() as { port: number }).port;
    const stream = followStream(`http://127.0.0.1:${port}/v1/stream/busy`, { policy: fast });
    const delays: number[] = [];
    stream.events.on('reconnectScheduled', ({ delayMs }) => delays.push(delayMs));
    const reader = collect(stream);
    await reader.done;
    expect(text(reader.batches)).toBe('done');
    expect(delays).toEqual([200]); // Retry-After: 1 s, capped at the policy's 200 ms max
  });
});

describe('createProducer', () => {
  it('a retried append whose first answer was lost is applied exactly once', async () => {
    const server = await reference();
    closers.push(() => server.stop());
    await create(server.url, '/v1/stream/once');
    let loseNextAnswer = true;
    // The request reaches the server, the answer never reaches the producer.
    const flakyFetch: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (loseNextAnswer && init?.method === 'POST') {
        loseNextAnswer = false;
        await res.body?.cancel();
        throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
      }
      return res;
    };
    const producer = createProducer(`${server.url}/v1/stream/once`, {
      contentType: 'text/plain',
      fetch: flakyFetch,
      retry: { backoff: backoff.fixed(10) },
    });
    let retries = 0;
    producer.retry.on('retry', () => {
      retries++;
    });
    await producer.append('a;');
    await producer.append('b;');
    const body = await (await fetch(`${server.url}/v1/stream/once?offset=-1`)).text();
    expect(body).toBe('a;b;');
    expect(retries).toBe(1);
  });

  it('keeps order and refuses a bad url or epoch', async () => {
    expect(() => createProducer('ftp://x')).toThrow(/url/);
    expect(() => createProducer('http://127.0.0.1:1/s', { epoch: -1 })).toThrow(/epoch/);
  });
});

describe('createProducer: an AbortSignal per append', () => {
  it('withdraws an append that waits for its turn, without a gap in the sequence', async () => {
    const server = await reference();
    closers.push(() => server.stop());
    await create(server.url, '/v1/stream/abort');
    const url = `${server.url}/v1/stream/abort`;
    const producer = createProducer(url, { contentType: 'text/plain' });
    const reason = new Error('request ended');
    await expect(producer.append('never;', { signal: AbortSignal.abort(reason) })).rejects.toBe(
      reason,
    );
    const ac = new AbortController();
    const first = producer.append('one;');
    const withdrawn = producer.append('two;', { signal: ac.signal }); // behind `first`
    const third = producer.append('three;', { signal: new AbortController().signal });
    expect(producer.nextSeq).toBe(3);
    ac.abort(reason);
    await expect(withdrawn).rejects.toBe(reason);
    await first;
    await third;
    expect(producer.nextSeq).toBe(2);
    await producer.close();
    const reader = collect(followStream(url, { policy: fast }));
    await reader.done;
    expect(text(reader.batches)).toBe('one;three;');
  });
});
