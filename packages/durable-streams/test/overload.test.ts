/**
 * Overload is answered: past the memory budget, past the live-connection limit, and while the
 * event loop lags, requests get 503 with problem+json and a `Retry-After` — and towerline's own
 * reader waits that long before it tries again.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import {
  followStream,
  type RunningServer,
  type StreamBatch,
  startDurableStreamsServer,
} from '@towerline/durable-streams';
import { afterEach, describe, expect, it } from 'vitest';

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
async function start(options: Parameters<typeof startDurableStreamsServer>[0]) {
  const s = await startDurableStreamsServer(options);
  servers.push(s);
  return { s, base: `${s.url}/v1/stream` };
}
const put = (url: string) =>
  fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
const post = (url: string, body: string | Buffer) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
const TAIL = '0000000000000000_0000000000000000';

async function expectShed(res: Response): Promise<void> {
  expect(res.status).toBe(503);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  const seconds = Number(res.headers.get('retry-after'));
  expect(seconds).toBeGreaterThanOrEqual(1);
  expect(seconds).toBeLessThanOrEqual(4);
  expect(((await res.json()) as { status: number }).status).toBe(503);
}

describe('max_live_connections', () => {
  it('live reads past the limit get 503 + Retry-After; catch-up reads and appends go on', async () => {
    const { base } = await start({ maxLiveConnections: 2, longPollTimeoutMs: 10_000 });
    const url = `${base}/live`;
    await put(url);
    const waiting = [1, 2].map(() => fetch(`${url}?offset=${TAIL}&live=long-poll`));
    // Wait until both long-polls are parked on the server.
    for (let i = 0; i < 100 && servers[0]!.handler.overload.live < 2; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(servers[0]!.handler.overload.live).toBe(2);
    await expectShed(await fetch(`${url}?offset=${TAIL}&live=long-poll`));
    await expectShed(await fetch(`${url}?offset=${TAIL}&live=sse`));
    expect((await fetch(`${url}?offset=-1`)).status).toBe(200);
    expect((await post(url, 'wake')).status).toBe(204); // wakes both long-polls
    for (const res of await Promise.all(waiting)) expect(await res.text()).toBe('wake');
    expect(servers[0]!.handler.overload.live).toBe(0);
    const again = await fetch(`${url}?offset=0000000000000000_0000000000000004&live=long-poll`, {
      signal: AbortSignal.timeout(50),
    }).catch((e: Error) => e);
    expect(again).toBeInstanceOf(Error); // admitted: it is waiting, not refused
  });
});

describe('max_memory_bytes', () => {
  it('memory mode: appends past the budget get 503 + Retry-After; deleting frees it again', async () => {
    const { s, base } = await start({ maxMemoryBytes: 256 * 1024 });
    const url = `${base}/full`;
    await put(url);
    const chunk = Buffer.alloc(8 * 1024, 'x');
    let accepted = 0;
    let refused: Response | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      const res = await post(url, chunk);
      if (res.status === 204) accepted++;
      else refused = res;
    }
    expect(refused).toBeDefined();
    await expectShed(refused!);
    expect(accepted).toBeGreaterThan(5);
    expect(s.handler.engine.memoryBytes).toBeLessThanOrEqual(256 * 1024);
    // What was accepted reads back whole.
    const body = await (await fetch(`${url}?offset=-1`)).arrayBuffer();
    expect(body.byteLength).toBe(accepted * chunk.length);
    expect((await fetch(url, { method: 'DELETE' })).status).toBe(204);
    await put(url);
    expect((await post(url, chunk)).status).toBe(204);
  });

  it('a body larger than the whole budget gets 413 (it never fits), not 503 + Retry-After', async () => {
    const { s, base } = await start({ maxMemoryBytes: 64 * 1024 });
    const url = `${base}/huge`;
    await put(url);
    const huge = await post(url, Buffer.alloc(64 * 1024 + 1, 'x'));
    expect(huge.status).toBe(413);
    expect(huge.headers.get('content-type')).toBe('application/problem+json');
    expect(huge.headers.get('retry-after')).toBeNull();
    expect(((await huge.json()) as { status: number }).status).toBe(413);
    // Without a Content-Length (chunked), the same once the bytes pass the budget.
    const chunked = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 3; i++) c.enqueue(new Uint8Array(32 * 1024));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    await chunked.arrayBuffer();
    // Still 503 for one that fits the budget once memory frees: the budget is full now.
    expect((await post(url, Buffer.alloc(40 * 1024, 'a'))).status).toBe(204);
    await expectShed(await post(url, Buffer.alloc(40 * 1024, 'b')));
    expect(s.handler.engine.memoryBytes).toBeLessThanOrEqual(64 * 1024);
  });

  it('the read cache gives way to appends', async () => {
    const { s, base } = await start({ maxMemoryBytes: 512 * 1024, readCacheBytes: 512 * 1024 });
    const url = `${base}/cache`;
    await put(url);
    await post(url, Buffer.alloc(100 * 1024, 'a'));
    await (await fetch(`${url}?offset=-1`)).arrayBuffer(); // cached now
    const before = s.handler.engine.memoryBytes;
    expect(before).toBeGreaterThan(100 * 1024);
    // Room for data is made by evicting the cached page, not by refusing.
    for (let i = 0; i < 2; i++)
      expect((await post(url, Buffer.alloc(100 * 1024, 'b'))).status).toBe(204);
  });
});

describe('event loop lag', () => {
  it('requests read while the loop lags get 503 + Retry-After; then it recovers', async () => {
    const { base } = await start({ maxEventLoopLagMs: 100 });
    const url = `${base}/lag`;
    await put(url);
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    let answer = '';
    socket.on('data', (d) => {
      answer += d;
    });
    // The request is in the server's socket before the loop blocks; it is read after.
    socket.write(`GET /v1/stream/lag?offset=-1 HTTP/1.1\r\nhost: x\r\n\r\n`);
    const until = performance.now() + 400;
    while (performance.now() < until) {
      // block the event loop
    }
    for (let i = 0; i < 200 && !answer.includes('\r\n\r\n{'); i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(answer).toMatch(/^HTTP\/1\.1 503/);
    expect(answer.toLowerCase()).toMatch(/retry-after: [1-4]\r\n/);
    expect(answer).toContain('application/problem+json');
    socket.destroy();
    // The next samples see a loop that keeps up again.
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${url}?offset=-1`)).status).toBe(200);
  });
});

describe('followStream and Retry-After', () => {
  it('the reader waits as long as the 503 says, then reads on', async () => {
    const { base } = await start({
      maxLiveConnections: 1,
      longPollTimeoutMs: 10_000,
      random: () => 0, // Retry-After: 1
    });
    const url = `${base}/follow`;
    await put(url);
    await post(url, 'a;');
    const occupying = fetch(`${url}?offset=0000000000000000_0000000000000002&live=long-poll`);
    for (let i = 0; i < 100 && servers[0]!.handler.overload.live < 1; i++)
      await new Promise((r) => setTimeout(r, 10));
    const reader = followStream(url, { live: 'long-poll' });
    const delays: number[] = [];
    reader.events.on('reconnectScheduled', ({ delayMs }) => delays.push(delayMs));
    const got: StreamBatch[] = [];
    const reading = (async () => {
      for await (const b of reader) {
        got.push(b);
        if (Buffer.concat(got.map((g) => g.data)).toString() === 'a;b;') break;
      }
    })();
    for (let i = 0; i < 200 && delays.length === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(delays[0]).toBe(1_000); // the server's Retry-After, not the backoff's guess
    await post(url, 'b;'); // frees the slot: the occupying long-poll answers
    await (await occupying).text();
    await reading;
    await reader.close();
    expect(Buffer.concat(got.map((g) => g.data)).toString()).toBe('a;b;');
  });
});
