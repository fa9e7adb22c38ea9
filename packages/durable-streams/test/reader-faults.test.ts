/**
 * The reader and tlsFetch abused: `live: false` ends once caught up (it used to reconnect
 * forever), a signal aborted before the first read sends nothing, a followed stream leaves no
 * listener on the caller's signal, an SSE control event without an offset is a protocol error
 * (not a batch with an undefined offset), errors never show the URL's credentials or query,
 * and tlsFetch with an aborted signal rejects instead of crashing the process.
 */
import { DurableStreamTestServer } from '@durable-streams/server';
import { backoff } from '@towerline/core';
import { followStream, type StreamBatch, tlsFetch } from '@towerline/durable-streams';
import { afterEach, describe, expect, it } from 'vitest';
import { hostile } from './support/hostile-server.js';

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
/** A local server of the test's, answering with `handler`: see support/hostile-server. */
const serve = (handler: Parameters<typeof hostile>[0]) => hostile(handler, closers);
const fast = backoff.fixed(10);

async function reference() {
  const server = new DurableStreamTestServer({ port: 0, longPollTimeout: 300, compression: false });
  await server.start();
  closers.push(() => server.stop());
  const res = await fetch(`${server.url}/v1/stream/a`, {
    method: 'PUT',
    headers: { 'content-type': 'text/plain' },
  });
  expect([200, 201]).toContain(res.status);
  await fetch(`${server.url}/v1/stream/a`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'one;',
  });
  return `${server.url}/v1/stream/a`;
}

async function drain(stream: AsyncIterable<StreamBatch>) {
  const batches: StreamBatch[] = [];
  for await (const b of stream) batches.push(b);
  return batches;
}

describe('followStream, abused', () => {
  it('live: false ends once caught up, from the start and from now', async () => {
    const url = await reference();
    let connects = 0;
    const counting: typeof fetch = (input, init) => {
      connects++;
      return fetch(input, init);
    };
    const all = await drain(followStream(url, { live: false, policy: fast, fetch: counting }));
    expect(Buffer.concat(all.map((b) => b.data)).toString()).toBe('one;');
    expect(connects).toBe(1);
    expect(await drain(followStream(url, { live: false, offset: 'now', policy: fast }))).toEqual(
      [],
    );
  });

  it('a signal aborted before the first read: rejects with its reason, no request sent', async () => {
    const { base, seen } = await serve((_req, res) => res.end());
    const reason = new Error('shutting down');
    await expect(
      drain(
        followStream(`${base}/v1/stream/a`, { signal: AbortSignal.abort(reason), policy: fast }),
      ),
    ).rejects.toBe(reason);
    expect(seen.requests).toBe(0);
  });

  it('leaves no listener on the caller’s signal once it ends or is closed', async () => {
    const url = await reference();
    const app = new AbortController();
    const added: unknown[] = [];
    const add = app.signal.addEventListener.bind(app.signal);
    const remove = app.signal.removeEventListener.bind(app.signal);
    app.signal.addEventListener = ((type: string, fn: unknown, o: unknown) => {
      added.push(fn);
      add(type, fn as never, o as never);
    }) as never;
    app.signal.removeEventListener = ((type: string, fn: unknown, o: unknown) => {
      added.splice(added.indexOf(fn), 1);
      remove(type, fn as never, o as never);
    }) as never;
    for (let i = 0; i < 5; i++)
      await drain(followStream(url, { live: false, signal: app.signal, policy: fast }));
    const open = followStream(url, { signal: app.signal, policy: fast });
    await open.close();
    expect(added).toEqual([]);
  });

  it('an SSE control event without streamNextOffset, or not JSON, is ERR_PROTOCOL', async () => {
    for (const control of ['{"upToDate":true}', 'null', '{not json']) {
      const { base } = await serve((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`event: data\ndata: x\n\nevent: control\ndata: ${control}\n\n`);
      });
      const stream = followStream(`${base}/v1/stream/a`, {
        live: 'sse',
        offset: '0_0',
        policy: fast,
        maxAttempts: 2,
      });
      const error = await drain(stream).then(
        () => undefined,
        (e: { code?: string; cause?: { code?: string } }) => e,
      );
      expect([error?.code, error?.cause?.code]).toContain('ERR_PROTOCOL');
      expect(stream.offset).toBe('0_0');
    }
  });

  it('no request storm: an empty answer that is not up to date, or Retry-After: 0, waits the backoff', async () => {
    for (const answer of ['empty', 'retry-after-0'] as const) {
      const { base, seen } = await serve((_req, res) => {
        if (answer === 'empty') {
          res.writeHead(200, { 'content-type': 'text/plain', 'stream-next-offset': '0_0' });
          res.end();
        } else {
          res.writeHead(503, { 'retry-after': '0' });
          res.end();
        }
      });
      const stream = followStream(`${base}/v1/stream/a`, {
        offset: '0_0',
        live: false,
        policy: backoff.fixed(100),
      });
      const reading = drain(stream).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 500));
      await stream.close();
      await reading;
      // 100 ms between attempts: about 5 in half a second; a storm made hundreds.
      expect(seen.requests, answer).toBeLessThan(20);
    }
  });

  it('an unknown live mode is refused at once', () => {
    expect(() => followStream('http://127.0.0.1:1/s', { live: 'websocket' as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', parameter: 'live' }),
    );
  });

  it('an HTTP error shows neither the URL’s credentials nor its query', async () => {
    const { base } = await serve((_req, res) => {
      res.writeHead(404);
      res.end();
    });
    const url = base.replace('http://', 'http://user:S3CR3T-pw@') + '/v1/stream/a?token=S3CR3T-q';
    const error = await drain(
      followStream(url, { policy: fast, live: false, fetch: tlsFetch() }),
    ).then(
      () => undefined,
      (e: Error & { url?: string }) => e,
    );
    expect(error?.message).toContain('HTTP 404');
    expect(`${error?.message} ${error?.url} ${String(error?.stack)}`).not.toContain('S3CR3T');
  });
});

describe('tlsFetch, abused', () => {
  it('an already-aborted signal rejects with its reason; nothing crashes', async () => {
    const { base, seen } = await serve((_req, res) => res.end('ok'));
    const reason = new Error('gone');
    await expect(tlsFetch()(`${base}/x`, { signal: AbortSignal.abort(reason) })).rejects.toBe(
      reason,
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.requests).toBe(0);
  });
});
