/**
 * The Redis-specific failure scenarios of DESIGN.md (1, 2, 11, 12, 15) against redis-servers
 * this file spawns on free ports, kills and restarts, plus FaultProxy.
 */
import { backoff, RequestContext, ServiceBuilder } from '@towerline/core';
import {
  isReadOnlyCommand,
  type ResilientRedis,
  redisCommands,
  redisConnector,
  resilientRedis,
} from '@towerline/ioredis';
import { RetryLayer } from '@towerline/retry';
import { FaultProxy, RedisServer } from '@towerline/testing';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

const waitFor = (fn: () => void | Promise<void>, timeout = 10_000) =>
  vi.waitFor(fn, { timeout, interval: 10 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: RedisServer;
beforeAll(async () => {
  server = await RedisServer.start();
});
afterAll(async () => {
  await server?.close();
});

const closers: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c.close();
  if (!server.running) await server.start();
});

/** A plain ioredis client for checking what the server holds. */
function raw(port = server.port, db = 0) {
  const client = new Redis({ port, db, lazyConnect: false, maxRetriesPerRequest: 1 });
  client.on('error', () => {}); // a checker's own reconnect noise is not the test's business
  closers.push({ close: () => client.disconnect() });
  return client;
}

function redis(options: ConstructorParameters<typeof ResilientRedis>[0] = {}) {
  const r = resilientRedis({
    port: server.port,
    policy: backoff.fixed(20),
    minUptime: 50,
    ...options,
  });
  closers.push(r);
  return r;
}

describe('ResilientRedis', () => {
  it('runs commands, pipelines and transactions', async () => {
    const r = redis();
    expect(await r.set('greeting', 'hello')).toBe('OK');
    expect(await r.get('greeting')).toBe('hello');
    expect(await r.incr('n')).toBe(1);
    expect(
      await r.pipeline([
        ['INCR', 'n'],
        ['GET', 'greeting'],
      ]),
    ).toEqual([2, 'hello']);
    expect(
      await r.multi([
        ['INCR', 'n'],
        ['INCR', 'n'],
      ]),
    ).toEqual([3, 4]);
    const wrong = await r.pipeline([['INCR', 'greeting']]);
    expect(wrong[0]).toBeInstanceOf(Error); // a reply error stays a per-command result
    await expect(r.command('NOSUCHCOMMAND')).rejects.toThrow(/unknown command/i);
    expect(r.reconnector.state).toBe('connected');
  });

  it('honours ioredis options on the command path: keyPrefix, SET options, auto-pipelining', async () => {
    const prefixed = redis({ redisOptions: { keyPrefix: 'app:' } });
    expect(await prefixed.set('k', 'v', 'PX', 60_000)).toBe('OK');
    expect(await prefixed.get('k')).toBe('v');
    expect(await prefixed.set('k', 'w', 'NX')).toBeNull(); // exists: NX refuses
    const check = raw();
    expect(await check.get('app:k')).toBe('v');
    expect(await check.pttl('app:k')).toBeGreaterThan(0);
    expect(await check.get('k')).toBeNull();
    const piped = redis({ redisOptions: { enableAutoPipelining: true, keyPrefix: 'p:' } });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => piped.incr(`c${i % 2}`)),
    );
    expect(results.sort((a, b) => a - b)).toEqual(
      Array.from({ length: 10 }, (_, i) => [i + 1, i + 1]).flat(),
    );
    expect(await check.get('p:c0')).toBe('10');
  });

  it('takes a context (an AbortSignal) as the last argument of every typed command', async () => {
    const r = redis();
    const aborted = AbortSignal.abort(new Error('caller gave up'));
    const live = new AbortController().signal;
    await expect(r.get('sig:k', { signal: aborted })).rejects.toThrow('caller gave up');
    await expect(r.set('sig:k', 'v', 'PX', 10_000, { signal: aborted })).rejects.toThrow(
      'caller gave up',
    );
    await expect(r.del('sig:a', 'sig:b', { signal: aborted })).rejects.toThrow('caller gave up');
    await expect(r.pipeline([['GET', 'sig:k']], { signal: aborted })).rejects.toThrow(
      'caller gave up',
    );
    await expect(r.multi([['INCR', 'sig:n']], { signal: aborted })).rejects.toThrow(
      'caller gave up',
    );
    // Nothing aborted reached the server; a live signal changes nothing.
    expect(await r.get('sig:k', { signal: live })).toBeNull();
    expect(await r.set('sig:k', 'v', 'PX', 10_000, { signal: live })).toBe('OK');
    expect(await r.mget('sig:k', 'sig:missing', { signal: live })).toEqual(['v', null]);
    expect(await r.del('sig:k', 'sig:missing', { signal: live })).toBe(1);
    expect(await r.command<number>('EXISTS', 'sig:k', { signal: live })).toBe(0);
    // A Buffer argument is an argument, never a context.
    expect(await r.set('sig:b', Buffer.from('bytes'))).toBe('OK');
    expect(await r.get('sig:b')).toBe('bytes');
    // The per-call context wins over the facade's.
    await expect(r.with({ signal: live }).incr('sig:n', { signal: aborted })).rejects.toThrow(
      'caller gave up',
    );
    expect(await r.with({ signal: aborted }).incr('sig:n', { signal: live })).toBe(1);
  });

  it('knows which commands are read-only from Redis flags', () => {
    expect(isReadOnlyCommand('GET')).toBe(true);
    expect(isReadOnlyCommand('mget')).toBe(true);
    expect(isReadOnlyCommand('INCR')).toBe(false);
    expect(isReadOnlyCommand('LPUSH')).toBe(false);
    expect(isReadOnlyCommand('made-up')).toBe(false);
  });

  it('1. link drops with commands in flight: reads are resent, writes report "may have executed"', async () => {
    const proxy = await FaultProxy.start({ target: { port: server.port } });
    closers.push(proxy);
    const r = redis({ port: proxy.port });
    await r.set('k', 'v');
    await r.set('counter', 0);
    proxy.latency(30);
    const reads = Array.from({ length: 30 }, () => r.get('k'));
    const writes = Array.from({ length: 30 }, () => r.incr('counter'));
    await sleep(10);
    proxy.reset();
    proxy.latency(0);
    const settled = await Promise.allSettled([...reads, ...writes]);
    for (const s of settled.slice(0, 30)) expect(s).toEqual({ status: 'fulfilled', value: 'v' });
    const acked = settled.slice(30).filter((s) => s.status === 'fulfilled').length;
    const ambiguous = settled.slice(30).filter((s) => s.status === 'rejected');
    for (const s of ambiguous) {
      expect((s as PromiseRejectedResult).reason).toMatchObject({
        code: 'ERR_CONNECTION_LOST',
        mayHaveExecuted: true,
      });
    }
    expect(ambiguous.length).toBeGreaterThan(0);
    const counter = Number(await raw().get('counter'));
    expect(counter).toBeGreaterThanOrEqual(acked);
    expect(counter).toBeLessThanOrEqual(acked + ambiguous.length);
  });

  it('2. a pipeline cut mid-way rejects as a whole; a read-only one is resent', async () => {
    const proxy = await FaultProxy.start({ target: { port: server.port } });
    closers.push(proxy);
    const r = redis({ port: proxy.port });
    await r.set('p', 'x');
    proxy.latency(40);
    const writes = r.pipeline(
      Array.from(
        { length: 200 },
        (_, i) => ['SET', `pipe-${i}`, String(i)] as [string, string, string],
      ),
    );
    const reads = r.pipeline(Array.from({ length: 50 }, () => ['GET', 'p'] as [string, string]));
    await sleep(15);
    proxy.reset();
    proxy.latency(0);
    await expect(writes).rejects.toMatchObject({
      code: 'ERR_CONNECTION_LOST',
      mayHaveExecuted: true,
    });
    expect(await reads).toEqual(Array(50).fill('x'));
  });

  it('11. credentials are asked for on every connect attempt', async () => {
    const locked = await RedisServer.start();
    closers.push(locked);
    const admin = raw(locked.port);
    await admin.config('SET', 'requirepass', 'first');
    let password = 'first';
    const credentials = vi.fn(async () => ({ password }));
    const r = redis({ port: locked.port, credentials });
    expect(await r.set('a', '1')).toBe('OK');
    expect(credentials).toHaveBeenCalledTimes(1);
    // The password rotates on the server and in the secret store; the connection then drops.
    await r.command('CONFIG', 'SET', 'requirepass', 'second');
    password = 'second';
    const reconnected = r.reconnector.events.next('connected');
    await r.command('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'no').catch(() => {});
    await reconnected;
    expect(await r.get('a')).toBe('1');
    expect(credentials.mock.calls.length).toBeGreaterThanOrEqual(2);
  });

  it('12. the address is asked for between attempts: a moved server is found', async () => {
    const b = await RedisServer.start();
    closers.push(b);
    await raw(b.port).set('where', 'b');
    await raw(server.port).set('where', 'a');
    let target = server.port;
    const r = redis({ address: () => ({ host: '127.0.0.1', port: target }), port: undefined });
    expect(await r.get('where')).toBe('a');
    target = b.port;
    await server.kill();
    await waitFor(async () => expect(await r.get('where')).toBe('b'));
  });

  it('15. setup (AUTH, SELECT, SETNAME, SUBSCRIBE) is replayed before queued commands', async () => {
    const r = redis({ db: 3, connectionName: 'towerline-test' });
    const messages: string[] = [];
    await r.subscribe('news', (m) => messages.push(m));
    await r.set('db3', 'yes');
    await server.kill();
    await waitFor(() => expect(r.reconnector.state).not.toBe('connected'));
    const queued = [r.set('queued', 'in db 3'), r.command('CLIENT', 'GETNAME')];
    await server.start();
    const [, name] = await Promise.all(queued);
    expect(name).toBe('towerline-test');
    expect(await raw(server.port, 3).get('queued')).toBe('in db 3');
    expect(await raw(server.port, 0).get('queued')).toBeNull();
    await waitFor(() => expect(r.subscriber?.reconnector.state).toBe('connected'));
    await waitFor(async () => {
      await raw().publish('news', 'after restart');
      expect(messages).toContain('after restart');
    });
  });

  it('rejects queued commands with ERR_CLOSED on close, and never leaves one pending', async () => {
    const r = redis();
    await r.get('x');
    await server.kill();
    await waitFor(() => expect(r.reconnector.state).not.toBe('connected'));
    const queued = r.set('x', '1');
    await r.close();
    await expect(queued).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('5. a command ioredis never wrote is sent on the next connection, not "may have executed"', async () => {
    const r = redis();
    await r.set('unwritten', 0);
    // The socket dies under the client; before ioredis notices, the next INCR finds it unwritable.
    const client = r.reconnector.current!;
    client.stream.destroy();
    const ctx = new RequestContext();
    const result = r.call({ name: 'INCR', args: ['unwritten'] }, ctx);
    expect(await result).toBe(1);
    expect(ctx.mayHaveExecuted).toBe(false);
    expect(r.service.stats).toMatchObject({ requeued: 1, mayHaveExecuted: 0 });
    expect(await raw().get('unwritten')).toBe('1');
  });

  it('the connector tells an unwritten command from one cut off in flight', async () => {
    const connector = redisConnector();
    expect(
      connector.neverWritten!(
        new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      ),
    ).toBe(true);
    expect(connector.neverWritten!(new Error('Connection is closed.'))).toBe(false);
    expect(connector.isConnectionError!(new Error('Connection is closed.'))).toBe(true);
    expect(connector.classify!({ name: 'GET', args: ['k'] })).toEqual({ idempotent: true });
    expect(connector.classify!({ name: 'INCR', args: ['k'] })).toEqual({ idempotent: false });
  });

  it('17. abort: an aborted signal never reaches Redis; one aborted in flight rejects at once', async () => {
    const r = redis();
    const stack = redisCommands(new ServiceBuilder().layer(new RetryLayer()).service(r));
    await r.set('aborted', 0);
    const reason = new Error('caller gave up');
    const before = AbortSignal.abort(reason);
    await expect(stack.with({ signal: before }).incr('aborted')).rejects.toBe(reason);
    await expect(r.with({ signal: before }).incr('aborted')).rejects.toBe(reason);
    expect(await raw().get('aborted')).toBe('0');
    // In flight: a blocking command that would wait 5 s; the abort answers at once.
    const ac = new AbortController();
    const blocked = stack.with({ signal: ac.signal }).command('BLPOP', 'nothing-here', 5);
    await sleep(50);
    ac.abort(reason);
    await expect(blocked).rejects.toBe(reason);
  });

  it('a definitive reply (WRONGTYPE, a syntax error) is not retried: the caller gets the reply error', async () => {
    const r = redis();
    const retry = new RetryLayer();
    const retried = vi.fn();
    retry.events.on('retry', retried);
    const stack = redisCommands(new ServiceBuilder().layer(retry).service(r));
    await stack.set('a-string', 'x');
    await expect(stack.incr('a-string')).rejects.toMatchObject({ name: 'ReplyError' });
    await expect(stack.lpush('a-string', 'y')).rejects.toThrow(/WRONGTYPE/);
    expect(retried).not.toHaveBeenCalled();
  });
});
