/**
 * The idempotent producer under faults: an append that finally failed (an outage longer than
 * the retry window, an answer lost after the server stored it) does not wedge the producer —
 * the later appends succeed and the stream holds each acknowledged append exactly once, in
 * order — and a 2xx that is no acknowledgement (a proxy's HTML page, a 204 without
 * `Stream-Next-Offset`) is an `ERR_PROTOCOL` failure, not a success.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DurableStreamTestServer } from '@durable-streams/server';
import { backoff } from '@towerline/core';
import { createProducer, loadConfig, startApp } from '@towerline/durable-streams';
import { freePort } from '@towerline/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hostile } from './support/hostile-server.js';

const root = mkdtempSync(join(tmpdir(), 'towerline-ds-producer-faults-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
/** A local server of the test's, answering with `handler`: see support/hostile-server. */
const serve = (handler: Parameters<typeof hostile>[0]) => hostile(handler, closers);
const quiet = () => {};
const short = { maxAttempts: 3, backoff: backoff.fixed(20) };

async function settle<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: any }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

async function create(url: string) {
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
  expect([200, 201]).toContain(res.status);
}

const contents = async (url: string) => (await fetch(`${url}?offset=-1`)).text();

async function reference() {
  const server = new DurableStreamTestServer({ port: 0, longPollTimeout: 300, compression: false });
  await server.start();
  closers.push(() => server.stop());
  return server.url;
}

describe('an append that finally failed does not wedge the producer', () => {
  it('our server goes down for longer than the retry window, then comes back', async () => {
    const port = await freePort();
    const config = loadConfig({
      env: {
        DS_SERVER__BIND_ADDRESS: `127.0.0.1:${port}`,
        DS_STORAGE__MODE: 'file-durable',
        DS_STORAGE__DATA_DIR: join(root, 'outage'),
      },
    });
    let app = await startApp(config, quiet);
    closers.push(() => app.close());
    const url = `http://127.0.0.1:${port}/v1/stream/outage`;
    await create(url);
    const producer = createProducer(url, {
      producerId: 'p1',
      contentType: 'text/plain',
      retry: short,
    });
    const acknowledged: string[] = [];
    for (const m of ['a;', 'b;']) {
      await producer.append(m);
      acknowledged.push(m);
    }
    await app.close();
    const during = await settle(producer.append('lost;'));
    expect(during.ok).toBe(false);
    const during2 = await settle(producer.append('lost2;'));
    expect(during2.ok).toBe(false);
    app = await startApp(config, quiet);
    for (const m of ['c;', 'd;', 'e;']) {
      await producer.append(m);
      acknowledged.push(m);
    }
    await producer.close();
    expect(await contents(url)).toBe(acknowledged.join(''));
  });

  it("the epoch's first append fails during an outage: the next ones still succeed", async () => {
    const base = await reference();
    const url = `${base}/v1/stream/first`;
    await create(url);
    let down = true;
    const net: typeof fetch = (input, init) =>
      down
        ? Promise.reject(
            Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }),
          )
        : fetch(input, init);
    const producer = createProducer(url, { contentType: 'text/plain', fetch: net, retry: short });
    expect((await settle(producer.append('x;'))).ok).toBe(false);
    down = false;
    await producer.append('y;');
    await producer.append('z;');
    expect(await contents(url)).toBe('y;z;');
  });

  it('the server stored an append but every answer was lost: stored once, the next ones follow', async () => {
    const base = await reference();
    const url = `${base}/v1/stream/lost-answer`;
    await create(url);
    let loseAnswers = false;
    const net: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!loseAnswers) return res;
      await res.body?.cancel();
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
    };
    for (const first of [true, false]) {
      const name = `${url}-${first}`;
      await create(name);
      const producer = createProducer(name, {
        contentType: 'text/plain',
        fetch: net,
        retry: short,
      });
      if (!first) await producer.append('a;');
      loseAnswers = true;
      expect((await settle(producer.append('b;'))).ok).toBe(false);
      loseAnswers = false;
      await producer.append('c;');
      await producer.append('d;');
      // `b;` reached the server (its failure was ambiguous); nothing is stored twice or lost.
      expect(await contents(name)).toBe(`${first ? '' : 'a;'}b;c;d;`);
    }
  });

  it('a 4xx append (an empty body) leaves no gap, first of the epoch or not', async () => {
    const base = await reference();
    for (const first of [true, false]) {
      const url = `${base}/v1/stream/refused-${first}`;
      await create(url);
      const producer = createProducer(url, { contentType: 'text/plain', retry: short });
      if (!first) await producer.append('a;');
      const refused = await settle(producer.append(''));
      expect(!refused.ok && refused.error.status).toBe(400);
      await producer.append('b;');
      await producer.append('c;');
      expect(await contents(url)).toBe(`${first ? '' : 'a;'}b;c;`);
    }
  });
});

describe('a 2xx that is no acknowledgement', () => {
  it('200 text/html (a proxy page): ERR_PROTOCOL, not a success', async () => {
    const { base, seen } = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Welcome to the hotel Wi-Fi</body></html>');
    });
    const producer = createProducer(`${base}/v1/stream/x`, { retry: short });
    const r = await settle(producer.append('x'));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('ERR_PROTOCOL');
    expect(seen.requests).toBe(1); // final: a retry would not make it an acknowledgement
  });

  it('204 without Stream-Next-Offset: ERR_PROTOCOL, not a success', async () => {
    const { base, seen } = await serve((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const producer = createProducer(`${base}/v1/stream/x`, { retry: short });
    const r = await settle(producer.append('x'));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error.code).toBe('ERR_PROTOCOL');
    const c = await settle(producer.close());
    expect(!c.ok && c.error.code).toBe('ERR_PROTOCOL');
    expect(seen.requests).toBe(2);
  });
});
