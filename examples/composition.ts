/**
 * The safe composition, with default options, for each connector: a `RetryLayer` over a client
 * kept alive by the reconnect engine, used through its typed facade.
 *
 *   pnpm example examples/composition.ts
 *
 * Starts its own redis-server (on the PATH) and an in-process gRPC server; uses PostgreSQL at
 * 127.0.0.1:5432 (database `test`) when it answers. Each part shows what the request context
 * decides: a read resent after a lost link, a write reported "may have executed" instead of run
 * twice, a definitive error passed through at once, an aborted signal that never reaches the wire.
 */
import * as grpc from '@grpc/grpc-js';
import { isTowerlineError, ServiceBuilder } from '@towerline/core';
import { grpcMethods, resilientGrpc } from '@towerline/grpc';
import { redisCommands, resilientRedis } from '@towerline/ioredis';
import { pgQueries, resilientPg } from '@towerline/pg';
import { RetryLayer } from '@towerline/retry';
import { freePort, RedisServer } from '@towerline/testing';
import pg from 'pg';

const outcome = (p: Promise<unknown>) =>
  p.then(
    (value) => `ok ${JSON.stringify(value)}`,
    (error: unknown) => {
      if (isTowerlineError(error)) {
        return `${error.code}${error.mayHaveExecuted ? ' (may have executed)' : ''}`;
      }
      const { name, code } = error as { name?: string; code?: unknown };
      return typeof code === 'string' ? `${name} ${code}` : `${name}`;
    },
  );

// ---- Redis: retry over resilientRedis, typed commands over the stack
const server = await RedisServer.start({ durable: true });
const client = resilientRedis({ port: server.port });
const redis = redisCommands(new ServiceBuilder().layer(new RetryLayer()).service(client));
await redis.set('greeting', 'hello');
console.log('redis get            ', await outcome(redis.get('greeting')));
console.log(
  'redis incr on string ',
  await outcome(redis.incr('greeting')),
  '— a definitive reply, not retried',
);
console.log(
  'redis aborted signal ',
  await outcome(redis.with({ signal: AbortSignal.abort() }).incr('visits')),
  '— never sent',
);
// The server dies with a read and a write in flight, then comes back.
const read = outcome(redis.get('greeting'));
const write = outcome(redis.incr('visits'));
await server.kill();
await server.start();
console.log('redis read in flight ', await read, '— resent on the next connection');
console.log('redis write in flight', await write, '— never run twice');
await client.close();
await server.close();

// ---- gRPC: retry over resilientGrpc (the channel under towerline's reconnect engine)
const identity = (b: Buffer) => b;
const definition: grpc.ServiceDefinition = {
  echo: {
    path: '/example.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
const port = await freePort();
const grpcServer = new grpc.Server();
grpcServer.addService(definition, {
  echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
    cb(null, Buffer.from(`echo:${call.request}`)),
});
await new Promise<void>((resolve, reject) =>
  grpcServer.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) =>
    e ? reject(e) : resolve(),
  ),
);
const channel = resilientGrpc({
  target: `127.0.0.1:${port}`,
  client: grpc.makeGenericClientConstructor(definition, 'Echo'),
  idempotentMethods: ['echo'],
});
const api = grpcMethods<{ echo: [Buffer, Buffer] }>(
  new ServiceBuilder().layer(new RetryLayer()).service(channel),
);
console.log('grpc echo            ', String(await api.echo(Buffer.from('hi'))));
await channel.close();
grpcServer.forceShutdown();

// ---- PostgreSQL: retry over resilientPg, typed rows over the stack
const config = {
  host: '127.0.0.1',
  port: 5432,
  database: 'test',
  user: process.env.PGUSER ?? 'postgres',
};
const probe = new pg.Client({ ...config, connectionTimeoutMillis: 1_000 });
probe.on('error', () => {});
const reachable = await probe.connect().then(
  () => true,
  () => false,
);
await probe.end().catch(() => {});
if (reachable) {
  const conn = resilientPg({ client: config });
  const db = pgQueries(new ServiceBuilder().layer(new RetryLayer()).service(conn));
  const { rows } = await db.query<{ answer: number }>('SELECT 42 AS answer', [], {
    readOnly: true,
  });
  console.log('pg read-only select  ', rows[0]!.answer);
  console.log(
    'pg syntax error      ',
    await outcome(db.query('SELEC 1')),
    '— a definitive answer, not retried',
  );
  await conn.close();
} else {
  console.log('pg                   skipped: nothing answers on 127.0.0.1:5432');
}
