/**
 * A local grpc-js server, stopped and restarted on the same port: calls during the outage wait
 * (waitForReady) or fail UNAVAILABLE and are retried, and connectivity is observed as events.
 */
import * as grpc from '@grpc/grpc-js';
import { backoff } from '@towerline/core';
import { GrpcConnectivity, grpcChannelOptions, grpcRetry, unaryService } from '@towerline/grpc';
import { freePort } from '@towerline/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bytesMethod, startGrpcServer } from '../../../test/fixtures/grpc-bytes.js';

const definition: grpc.ServiceDefinition = { say: bytesMethod('towerline.test.Echo', 'Say') };
const EchoClient = grpc.makeGenericClientConstructor(definition, 'Echo');

const startServer = (port: number): Promise<grpc.Server> =>
  startGrpcServer(
    definition,
    {
      say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, Buffer.from(`echo:${call.request.toString()}`)),
    },
    port,
  );

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function setup() {
  const port = await freePort();
  let server = await startServer(port);
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    // Reconnect quickly in tests; production would use grpcChannelOptions() as it is.
    ...grpcChannelOptions(backoff.exponentialRandom({ initial: 50, max: 200, jitter: 0.2 })),
  });
  const connectivity = new GrpcConnectivity(client);
  closers.push(() => server.forceShutdown());
  closers.push(() => client.close());
  return {
    client,
    connectivity,
    stop: () => server.forceShutdown(),
    restart: async () => {
      server = await startServer(port);
    },
  };
}

describe('@towerline/grpc', () => {
  it('reports connectivity states and waits for READY', async () => {
    const { client, connectivity, stop, restart } = await setup();
    const states: string[] = [];
    connectivity.events.on('stateChange', ({ to }) => states.push(to));
    await connectivity.waitForReady({ timeoutMs: 5_000 });
    const say = unaryService<Buffer, Buffer>(client, 'say');
    expect((await say.call(Buffer.from('a'))).toString()).toBe('echo:a');
    const disconnected = connectivity.events.next('disconnected');
    stop();
    await disconnected;
    await restart();
    await vi.waitFor(() => expect(connectivity.state).not.toBe('READY'), { timeout: 2_000 });
    // A call makes the idle channel connect again.
    expect(
      (
        await unaryService<Buffer, Buffer>(client, 'say', { waitForReady: true }).call(
          Buffer.from('b'),
        )
      ).toString(),
    ).toBe('echo:b');
    await connectivity.waitForReady({ timeoutMs: 5_000 });
    expect(states).toContain('READY');
    expect(states.filter((s) => s === 'READY').length).toBeGreaterThanOrEqual(2);
  });

  it('waitForReady calls wait through the outage and succeed after the restart', async () => {
    const { client, connectivity, stop, restart } = await setup();
    await connectivity.waitForReady({ timeoutMs: 5_000 });
    stop();
    await connectivity.events.next('disconnected');
    const say = unaryService<Buffer, Buffer>(client, 'say', {
      waitForReady: true,
      deadlineMs: 10_000,
    });
    const pending = say.call(Buffer.from('during'));
    await new Promise((r) => setTimeout(r, 200));
    await restart();
    expect((await pending).toString()).toBe('echo:during');
  });

  it('fail-fast calls get UNAVAILABLE, and grpcRetry retries only the configured codes', async () => {
    const { client, connectivity, stop, restart } = await setup();
    await connectivity.waitForReady({ timeoutMs: 5_000 });
    stop();
    await connectivity.events.next('disconnected');
    const say = unaryService<Buffer, Buffer>(client, 'say');
    await expect(say.call(Buffer.from('x'))).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    const retried = grpcRetry({ maxAttempts: 30, backoff: backoff.fixed(50) });
    const attempts = vi.fn();
    retried.events.on('retry', attempts);
    const pending = retried.wrap(say).call(Buffer.from('retried'));
    setTimeout(() => void restart(), 300);
    expect((await pending).toString()).toBe('echo:retried');
    expect(attempts).toHaveBeenCalled();
    // A code not in the list is not retried.
    const notFound = grpcRetry({ codes: [grpc.status.UNAVAILABLE] }).wrap({
      call: async () => {
        throw Object.assign(new Error('no such thing'), { code: grpc.status.NOT_FOUND });
      },
    });
    await expect(notFound.call(Buffer.alloc(0))).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });

  it('cancels a call on abort', async () => {
    const { client, connectivity, stop } = await setup();
    await connectivity.waitForReady({ timeoutMs: 5_000 });
    stop();
    const ac = new AbortController();
    const say = unaryService<Buffer, Buffer>(client, 'say', {
      waitForReady: true,
      deadlineMs: 30_000,
    });
    const pending = say.call(Buffer.from('x'), { signal: ac.signal });
    ac.abort();
    const reason = await pending.catch((e) => e);
    expect(reason).toBe(ac.signal.reason); // abort means abort: the signal's reason, at once
  });

  it('grpcChannelOptions carries the grpc preset numbers', () => {
    expect(grpcChannelOptions()).toEqual({
      'grpc.initial_reconnect_backoff_ms': 1_000,
      'grpc.max_reconnect_backoff_ms': 120_000,
    });
  });
});
