import { TowerlineError } from '@towerline/core';
import { ReconnectLayer, ReconnectService } from '@towerline/reconnect';
import { describe, expect, it } from 'vitest';
import { type FakeConn, fakeReconnector } from './fake-connection.js';

const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

interface Flight {
  conn: FakeConn;
  req: string;
  resolve: (v: string) => void;
  reject: (e: unknown) => void;
}

/** A service over fake connections whose requests stay in flight until the test settles them. */
function setup(
  options: Partial<
    ConstructorParameters<typeof ReconnectService<FakeConn, string, string>>[1]
  > = {},
  reconnectorOptions: Parameters<typeof fakeReconnector>[0] = {},
) {
  const h = fakeReconnector(reconnectorOptions);
  const flights: Flight[] = [];
  const svc = new ReconnectLayer<FakeConn, string, string>({
    call: (conn, req) =>
      new Promise((resolve, reject) => {
        if (conn.disposed) return reject(reset());
        flights.push({ conn, req, resolve, reject });
      }),
    ...options,
  }).wrap(h.r);
  /** Every in-flight request on `conn` fails, as a client does when its socket dies. */
  const kill = (conn: FakeConn) => {
    conn.lost?.(reset());
    for (const f of flights.filter((f) => f.conn === conn)) f.reject(reset());
  };
  return { ...h, svc, flights, kill };
}

describe('ReconnectService', () => {
  it('runs a request on the live connection synchronously, without waiting', async () => {
    const s = setup();
    s.r.start();
    const conn = s.succeed();
    await s.settle();
    const result = s.svc.call('GET a');
    expect(s.flights).toHaveLength(1);
    expect(s.flights[0]!.conn).toBe(conn);
    s.flights[0]!.resolve('1');
    expect(await result).toBe('1');
    await s.svc.close();
  });

  it('queues requests while connecting and runs them in order on the new connection', async () => {
    const s = setup();
    const results = ['a', 'b', 'c'].map((r) => s.svc.call(r));
    expect(s.svc.stats.queued).toBe(3);
    expect(s.flights).toHaveLength(0);
    s.succeed();
    await s.settle();
    expect(s.flights.map((f) => f.req)).toEqual(['a', 'b', 'c']);
    for (const f of s.flights) f.resolve(f.req.toUpperCase());
    expect(await Promise.all(results)).toEqual(['A', 'B', 'C']);
    expect(s.svc.stats.queued).toBe(0);
    await s.svc.close();
  });

  it('bounds the queue by count: ERR_QUEUE_FULL, and the request never reaches the wire', async () => {
    const s = setup({ maxQueued: 2 });
    const queued = [s.svc.call('a'), s.svc.call('b')];
    await expect(s.svc.call('c')).rejects.toMatchObject({ code: 'ERR_QUEUE_FULL' });
    s.succeed();
    await s.settle();
    expect(s.flights.map((f) => f.req)).toEqual(['a', 'b']);
    for (const f of s.flights) f.resolve('ok');
    await Promise.all(queued);
    expect(s.svc.stats.queueFull).toBe(1);
    await s.svc.close();
  });

  it('bounds the queue by bytes', async () => {
    const s = setup({ maxQueuedBytes: 10 });
    const first = s.svc.call('12345678');
    await expect(s.svc.call('abc')).rejects.toMatchObject({ code: 'ERR_QUEUE_FULL' });
    const small = s.svc.call('ab');
    expect(s.svc.stats.queuedBytes).toBe(10);
    await s.svc.close();
    await expect(first).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(small).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('drops an aborted request from the queue', async () => {
    const s = setup();
    const ac = new AbortController();
    const aborted = s.svc.call('a', { signal: ac.signal });
    const kept = s.svc.call('b');
    ac.abort(new Error('not any more'));
    await expect(aborted).rejects.toThrow('not any more');
    expect(s.svc.stats.queued).toBe(1);
    s.succeed();
    await s.settle();
    expect(s.flights.map((f) => f.req)).toEqual(['b']);
    s.flights[0]!.resolve('ok');
    await kept;
    await s.svc.close();
  });

  it('times a queued request out with ERR_TIMEOUT and never sends it', async () => {
    const s = setup({ queueTimeout: 500 });
    const waiting = s.svc.call('a');
    const outcome = expect(waiting).rejects.toMatchObject({
      code: 'ERR_TIMEOUT',
      mayHaveExecuted: false,
    });
    await s.clock.advance(600);
    await outcome;
    s.succeed();
    await s.settle();
    expect(s.flights).toHaveLength(0);
    await s.svc.close();
  });

  it('retries an idempotent in-flight request once on the new connection', async () => {
    const s = setup({ retryOnReconnect: (req) => req.startsWith('GET') });
    s.r.start();
    const first = s.succeed();
    await s.settle();
    const read = s.svc.call('GET k');
    const write = s.svc.call('INCR k');
    s.kill(first);
    await expect(write).rejects.toMatchObject({
      code: 'ERR_CONNECTION_LOST',
      mayHaveExecuted: true,
    });
    await s.clock.advance(100);
    const second = s.succeed();
    await s.settle();
    const retried = s.flights.filter((f) => f.conn === second);
    expect(retried.map((f) => f.req)).toEqual(['GET k']);
    retried[0]!.resolve('v');
    expect(await read).toBe('v');
    expect(s.svc.stats).toMatchObject({ retriedOnReconnect: 1, mayHaveExecuted: 1 });
    await s.svc.close();
  });

  it('retries only once: a second loss rejects with mayHaveExecuted', async () => {
    const s = setup({ retryOnReconnect: true });
    s.r.start();
    s.succeed();
    await s.settle();
    const read = s.svc.call('GET k');
    s.kill(s.r.current!);
    await s.clock.advance(100);
    const second = s.succeed();
    await s.settle();
    s.kill(second);
    await expect(read).rejects.toMatchObject({
      code: 'ERR_CONNECTION_LOST',
      mayHaveExecuted: true,
    });
    await s.svc.close();
  });

  it('passes request errors through untouched and keeps the connection', async () => {
    const s = setup();
    s.r.start();
    const conn = s.succeed();
    await s.settle();
    const call = s.svc.call('BAD');
    const wrongType = new Error('WRONGTYPE');
    s.flights[0]!.reject(wrongType);
    await expect(call).rejects.toBe(wrongType);
    expect(s.r.current).toBe(conn);
    await s.svc.close();
  });

  it('treats a connection error from a request as a lost connection', async () => {
    const s = setup();
    s.r.start();
    s.succeed();
    await s.settle();
    const call = s.svc.call('x');
    s.flights[0]!.reject(reset());
    await expect(call).rejects.toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect(s.r.state).toBe('reconnecting');
    await s.svc.close();
  });

  it('rejects every queued request when the reconnector gives up', async () => {
    const s = setup({}, { maxAttempts: 2, auto: () => 'fail' });
    const calls = [s.svc.call('a'), s.svc.call('b')];
    const outcomes = Promise.allSettled(calls);
    await s.clock.advance(1_000);
    for (const o of await outcomes) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(TowerlineError);
      expect((o as PromiseRejectedResult).reason.code).toBe('ERR_RECONNECT_GAVE_UP');
    }
    await expect(s.svc.call('c')).rejects.toMatchObject({ code: 'ERR_RECONNECT_GAVE_UP' });
    expect(s.clock.pending).toBe(0);
  });

  it('rejects queued requests with ERR_CLOSED on close, and later calls too', async () => {
    const s = setup();
    const queued = s.svc.call('a');
    await s.svc.close();
    await expect(queued).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(s.svc.call('b')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    expect(s.clock.pending).toBe(0);
  });

  it('validates its options', () => {
    const h = fakeReconnector();
    const call = async () => '';
    expect(() => new ReconnectLayer({ call: 1 as never })).toThrow(/call/);
    expect(() => new ReconnectService(h.r, { call, maxQueued: -1 })).toThrow(/maxQueued/);
    expect(() => new ReconnectService(h.r, { call, maxQueuedBytes: Number.NaN })).toThrow(
      /maxQueuedBytes/,
    );
    expect(() => new ReconnectService(h.r, { call, queueTimeout: 0 })).toThrow(/queueTimeout/);
    expect(() => new ReconnectService(h.r, { call, retryOnReconnect: 'yes' as never })).toThrow(
      /retryOnReconnect/,
    );
  });
});
