import * as grpc from '@grpc/grpc-js';
import { ServiceBuilder } from '@towerline/core';
import {
  GrpcConnectivity,
  grpcMethods,
  grpcRetry,
  resilientGrpc,
  unaryService,
} from '@towerline/grpc';
import { redisCommands, resilientRedis } from '@towerline/ioredis';
import { pgQueries, resilientPg } from '@towerline/pg';
import { RetryLayer } from '@towerline/retry';
import { FaultProxy, freePort, RedisServer } from '@towerline/testing';
import { bytesMethod, startGrpcServer } from '../fixtures/grpc-bytes.js';
import type { SuiteReport } from './harness.js';

/**
 * First success after the connection is back (issue 10's target: ≤ ready + 50 ms), for each
 * adapter composed as the README does, with default options: the peer goes away, a request is
 * made during the outage, the peer comes back; the figure is the time from the moment the
 * connection was ready again (the reconnector's `connected`, or the channel's READY) to the
 * request's success. A retry that slept blind through its backoff would show here as seconds.
 */
const ROUNDS = 8;
const OUTAGE_MS = 300;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function rounds(
  run: () => Promise<{
    readyAt: () => number | undefined;
    request: Promise<unknown>;
    up: () => Promise<void>;
  }>,
) {
  const deltas: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const { readyAt, request, up } = await run();
    await sleep(OUTAGE_MS);
    await up();
    await request;
    const done = performance.now();
    const ready = readyAt();
    if (ready !== undefined) deltas.push(done - ready);
  }
  return {
    rounds: deltas.length,
    medianMs: +median(deltas).toFixed(2),
    maxMs: +Math.max(...deltas).toFixed(2),
  };
}

async function redisCase() {
  const server = await RedisServer.start({ durable: false });
  const client = resilientRedis({ port: server.port });
  const redis = redisCommands(new ServiceBuilder().layer(new RetryLayer()).service(client));
  await redis.set('k', 'v');
  try {
    return await rounds(async () => {
      let at: number | undefined;
      await server.kill();
      const sub = client.reconnector.events.subscribe('connected', () => {
        at ??= performance.now();
      });
      const request = redis.get('k').finally(() => sub.dispose());
      return { readyAt: () => at, request, up: () => server.start() };
    });
  } finally {
    await client.close();
    await server.close();
  }
}

async function pgCase() {
  const proxy = await FaultProxy.start({ target: { port: 5432 } });
  const db = resilientPg({
    client: {
      host: '127.0.0.1',
      port: proxy.port,
      database: 'test',
      user: process.env.PGUSER ?? 'postgres',
    },
  });
  const queries = pgQueries(new ServiceBuilder().layer(new RetryLayer()).service(db));
  await queries.query('SELECT 1', [], { readOnly: true });
  try {
    return await rounds(async () => {
      let at: number | undefined;
      await proxy.refuse();
      const sub = db.reconnector.events.subscribe('connected', () => {
        at ??= performance.now();
      });
      const request = queries
        .query('SELECT 1', [], { idempotent: true })
        .finally(() => sub.dispose());
      return { readyAt: () => at, request, up: () => proxy.restore() };
    });
  } finally {
    await db.close();
    await proxy.close();
  }
}

const definition: grpc.ServiceDefinition = { say: bytesMethod('towerline.bench.Echo', 'Say') };
const Echo = grpc.makeGenericClientConstructor(definition, 'Echo');
const startGrpc = (port: number) =>
  startGrpcServer(
    definition,
    {
      say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        cb(null, call.request),
    },
    port,
  );

async function grpcCase() {
  const port = await freePort();
  let server = await startGrpc(port);
  const channel = resilientGrpc({
    target: `127.0.0.1:${port}`,
    client: Echo,
    idempotentMethods: ['say'],
  });
  const api = grpcMethods<{ say: [Buffer, Buffer] }>(
    new ServiceBuilder().layer(new RetryLayer()).service(channel),
  );
  await api.say(Buffer.from('x'));
  try {
    return await rounds(async () => {
      let at: number | undefined;
      server.forceShutdown();
      const sub = channel.reconnector.events.subscribe('connected', () => {
        at ??= performance.now();
      });
      const request = api.say(Buffer.from('x')).finally(() => sub.dispose());
      return {
        readyAt: () => at,
        request,
        up: async () => {
          server = await startGrpc(port);
        },
      };
    });
  } finally {
    await channel.close();
    server.forceShutdown();
  }
}

/** grpc-js reconnecting its own channel; a fail-fast call retried by grpcRetry, which waits for READY. */
async function grpcChannelCase() {
  const port = await freePort();
  let server = await startGrpc(port);
  const client = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1_000,
  });
  const watch = new GrpcConnectivity(client);
  const say = grpcRetry({ maxAttempts: 20 }).wrap(
    unaryService<Buffer, Buffer>(client, 'say', { idempotent: true }),
  );
  await say.call(Buffer.from('x'));
  try {
    return await rounds(async () => {
      let at: number | undefined;
      server.forceShutdown();
      await watch.events.next('disconnected');
      const sub = watch.events.subscribe('connected', () => {
        at ??= performance.now();
      });
      const request = say.call(Buffer.from('x')).finally(() => sub.dispose());
      return {
        readyAt: () => at,
        request,
        up: async () => {
          server = await startGrpc(port);
        },
      };
    });
  } finally {
    watch.close();
    client.close();
    server.forceShutdown();
  }
}

export default async function ready(): Promise<SuiteReport> {
  const cases = {
    'redis (resilientRedis + RetryLayer)': await redisCase(),
    'pg (resilientPg + RetryLayer)': await pgCase(),
    'grpc (resilientGrpc + RetryLayer)': await grpcCase(),
    'grpc (grpc-js channel, unaryService + grpcRetry)': await grpcChannelCase(),
  };
  return {
    suite: 'ready',
    results: Object.entries(cases).map(([name, r]) => ({
      case: name,
      nsPerOp: r.medianMs * 1e6,
      medianMsAfterReady: r.medianMs,
      maxMsAfterReady: r.maxMs,
      rounds: r.rounds,
    })),
    notes: Object.fromEntries(
      Object.entries(cases).map(([name, r]) => [
        `${name}: first success after ready, median / max ms (target <= 50)`,
        [r.medianMs, r.maxMs],
      ]),
    ),
  };
}
