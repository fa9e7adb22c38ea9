/**
 * DESIGN.md's failure scenarios that apply without a client library, on real sockets through
 * FaultProxy. Each test is named after its scenario.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backoff, type IntervalFunction } from '@towerline/core';
import {
  heartbeat,
  ReconnectLayer,
  Reconnector,
  type ReconnectorOptions,
  watchAll,
} from '@towerline/reconnect';
import {
  FaultProxy,
  freePort,
  type LineClient,
  LineServer,
  lineConnection,
} from '@towerline/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const waitFor = (fn: () => void, timeout = 5_000) => vi.waitFor(fn, { timeout, interval: 5 });

const closers: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c.close();
});

async function rig(
  options: Partial<ReconnectorOptions<LineClient>> & { policy?: IntervalFunction } = {},
  serviceOptions: {
    retryOnReconnect?: (line: string) => boolean;
    maxQueued?: number;
    maxQueuedBytes?: number;
  } = {},
) {
  const server = await LineServer.start();
  const proxy = await FaultProxy.start({ target: { port: server.port } });
  const reconnector = new Reconnector<LineClient>({
    ...lineConnection({ port: proxy.port }),
    policy: backoff.fixed(20),
    minUptime: 50,
    connectTimeout: 2_000,
    ...options,
  });
  const service = new ReconnectLayer<LineClient, string, string>({
    call: (client, line) => client.send(line),
    ...serviceOptions,
  }).wrap(reconnector);
  closers.push(server, proxy, service);
  return { server, proxy, reconnector, service };
}

describe('failure scenarios on real sockets', () => {
  it('1. link drops with N requests in flight: idempotent ones retried once, the rest "may have executed", none pending', async () => {
    const { proxy, service } = await rig(
      {},
      { retryOnReconnect: (line) => line.startsWith('GET') },
    );
    await service.call('SET k v');
    const reads = Array.from({ length: 20 }, () => service.call('GET k'));
    const writes = Array.from({ length: 20 }, (_, i) => service.call(`SLEEP 50 ${i}`));
    await sleep(10);
    proxy.reset();
    const outcomes = await Promise.allSettled([...reads, ...writes]);
    const readResults = outcomes.slice(0, 20);
    const writeResults = outcomes.slice(20);
    // Reads either completed before the reset or were retried on the new connection.
    for (const r of readResults) expect(r).toEqual({ status: 'fulfilled', value: 'v' });
    for (const w of writeResults) {
      if (w.status === 'rejected') {
        expect(w.reason).toMatchObject({ code: 'ERR_CONNECTION_LOST', mayHaveExecuted: true });
      }
    }
    expect(writeResults.some((w) => w.status === 'rejected')).toBe(true);
    expect(await service.call('GET k')).toBe('v');
  });

  it('3. peer blackholed: a heartbeat detects it and the client reconnects', async () => {
    const { proxy, reconnector, service } = await rig({
      watch: watchAll(
        lineConnection({ port: 0 }).watch,
        heartbeat((client: LineClient) => client.send('PING'), { intervalMs: 30, timeoutMs: 100 }),
      ),
    });
    await service.call('PING');
    const disconnected = reconnector.events.next('disconnected');
    proxy.blackhole();
    const { error } = await disconnected;
    expect(error).toMatchObject({ code: 'ERR_TIMEOUT' });
    await proxy.restore();
    await waitFor(() => expect(reconnector.state).toBe('connected'));
    expect(await service.call('PING')).toBe('PONG');
  });

  it('4. peer accepts TCP but never sends its greeting: connectTimeout, then recovery', async () => {
    const { proxy, reconnector, service } = await rig({ connectTimeout: 100 });
    proxy.stallGreeting();
    const scheduled = reconnector.events.next('reconnectScheduled');
    const call = service.call('PING');
    const { error } = await scheduled;
    expect(error).toMatchObject({ code: 'ERR_CONNECT_TIMEOUT' });
    await proxy.restore();
    expect(await call).toBe('PONG');
  });

  it('5. close during the handshake: one socket, no false connected', async () => {
    const { proxy, reconnector } = await rig();
    proxy.stallGreeting();
    const connected = vi.fn();
    reconnector.events.on('connected', connected);
    const waiter = reconnector.acquire();
    await proxy.waitForConnections(1);
    await reconnector.close();
    await expect(waiter).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await waitFor(() => expect(proxy.connections).toBe(0));
    expect(proxy.stats.accepted).toBe(1);
    expect(connected).not.toHaveBeenCalled();
  });

  it('6. long outage: the queue is bounded in count and bytes, and memory stays flat', async () => {
    const { server, reconnector, service } = await rig(
      { policy: backoff.fixed(50) },
      { maxQueued: 100, maxQueuedBytes: 4_000 },
    );
    await service.call('PING');
    await server.stop();
    await waitFor(() => expect(reconnector.state).not.toBe('connected'));
    const heapBefore = process.memoryUsage().heapUsed;
    const calls: Array<Promise<string>> = [];
    let full = 0;
    for (let i = 0; i < 20_000; i++) {
      calls.push(
        service.call(`SET key-${i} ${'x'.repeat(30)}`).catch((e) => {
          if (e.code === 'ERR_QUEUE_FULL') full++;
          return 'refused';
        }),
      );
    }
    await sleep(0);
    expect(service.stats.queued).toBeLessThanOrEqual(100);
    expect(service.stats.queuedBytes).toBeLessThanOrEqual(4_000);
    expect(full).toBeGreaterThanOrEqual(20_000 - 100);
    // Refused requests are not retained: far less than the 20,000 requests' own size.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
    await server.start();
    const results = await Promise.all(calls);
    expect(results.filter((r) => r === 'OK').length).toBe(service.stats.queued + (20_000 - full));
  });

  it('7. give-up: one terminal event, every waiter rejected, no timer left', async () => {
    const port = await freePort(); // nobody listens here
    const r = new Reconnector<LineClient>({
      ...lineConnection({ port }),
      policy: backoff.fixed(10),
      maxAttempts: 4,
    });
    const gaveUp = vi.fn();
    r.events.on('gaveUp', gaveUp);
    const waiters = await Promise.allSettled([r.acquire(), r.acquire(), r.acquire()]);
    for (const w of waiters) {
      expect(w.status).toBe('rejected');
      expect((w as PromiseRejectedResult).reason).toMatchObject({
        code: 'ERR_RECONNECT_GAVE_UP',
        attempts: 4,
        cause: expect.objectContaining({ code: 'ECONNREFUSED' }),
      });
    }
    expect(gaveUp).toHaveBeenCalledTimes(1);
    expect(r.state).toBe('failed');
    await r.close();
  });

  it('8. close() during backoff or connect: settles at once and the process exits', () => {
    const script = join(here, 'fixtures', 'close-exits.ts');
    for (const when of ['backoff', 'connect']) {
      const started = Date.now();
      const child = spawnSync(
        process.execPath,
        ['--conditions=source', '--import', 'tsx', script, when],
        {
          encoding: 'utf8',
          timeout: 20_000,
        },
      );
      expect(child.stderr).toBe('');
      expect(child.stdout.trim()).toBe(`closed during ${when}: ERR_CLOSED`);
      expect(child.status).toBe(0);
      // Bounded, not timed: a process held open by a timer would run into the 60 s backoff.
      expect(Date.now() - started).toBeLessThan(20_000);
    }
  });

  it('10. flapping server: the backoff does not reset on connections that die within minUptime', async () => {
    const { proxy, reconnector } = await rig({
      policy: backoff.exponential({ initial: 10, multiplier: 2, max: 1_000 }),
      minUptime: 500,
    });
    const delays: number[] = [];
    reconnector.events.on('reconnectScheduled', ({ delayMs }) => delays.push(delayMs));
    reconnector.events.on('connected', () => setTimeout(() => proxy.reset(), 5));
    reconnector.start();
    await waitFor(() => expect(delays.length).toBeGreaterThanOrEqual(5));
    expect(delays.slice(0, 5)).toEqual([10, 20, 40, 80, 160]);
    expect(reconnector.healthy).toBe(false);
  });

  it('13. 1,000 reconnect cycles: no growth in listeners, handles or heap', async () => {
    const { proxy, reconnector, service } = await rig({ policy: backoff.fixed(0), minUptime: 0 });
    const handles = () => process.getActiveResourcesInfo().length;
    const listeners = () =>
      reconnector.events.eventNames().reduce((n, e) => n + reconnector.events.listenerCount(e), 0);
    const cycle = async () => {
      const connected = reconnector.events.next('connected');
      proxy.reset();
      await connected;
      expect(await service.call('PING')).toBe('PONG');
    };
    await service.call('PING');
    for (let i = 0; i < 50; i++) await cycle(); // warm up: JIT, pools
    expect(typeof globalThis.gc).toBe('function');
    globalThis.gc!();
    const base = {
      handles: handles(),
      listeners: listeners(),
      heap: process.memoryUsage().heapUsed,
    };
    for (let i = 0; i < 1_000; i++) await cycle();
    await sleep(20);
    globalThis.gc!();
    expect(reconnector.stats.reconnects).toBeGreaterThanOrEqual(1_000);
    expect(listeners()).toBe(base.listeners);
    expect(handles()).toBeLessThanOrEqual(base.handles + 2);
    expect(process.memoryUsage().heapUsed - base.heap).toBeLessThan(4 * 1024 * 1024);
  });

  it('14. no error listener attached: failures never crash the process', async () => {
    const port = await freePort();
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    process.on('uncaughtException', unhandled);
    try {
      const r = new Reconnector<LineClient>({
        ...lineConnection({ port }),
        policy: backoff.fixed(5),
      });
      r.start();
      await waitFor(() => expect(r.stats.failures).toBeGreaterThanOrEqual(5));
      await r.close();
      await sleep(20);
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
      process.off('uncaughtException', unhandled);
    }
  });

  it('15. replay order: connection setup runs before queued requests', async () => {
    const server = await LineServer.start();
    closers.push(server);
    const base = lineConnection({ port: server.port });
    let sessions = 0;
    const r = new Reconnector<LineClient>({
      ...base,
      policy: backoff.fixed(20),
      // Setup (auth, select, subscribe …) belongs to connect(): the connection is not handed
      // out, and no queued request runs, until it is done.
      connect: async (ctx) => {
        const client = await base.connect(ctx);
        await client.send(`ECHO setup ${++sessions}`);
        await client.send('SLEEP 20');
        return client;
      },
    });
    const service = new ReconnectLayer<LineClient, string, string>({
      call: (c, l) => c.send(l),
    }).wrap(r);
    closers.push(service);
    await service.call('PING');
    await server.stop();
    await waitFor(() => expect(r.state).not.toBe('connected'));
    const queued = ['GET a', 'GET b', 'GET c'].map((l) => service.call(l));
    await server.start();
    await Promise.all(queued);
    const afterRestart = server.history.slice(server.history.lastIndexOf('ECHO setup 2'));
    expect(afterRestart).toEqual(['ECHO setup 2', 'SLEEP 20', 'GET a', 'GET b', 'GET c']);
  });
});
