/**
 * The typed facades over composed stacks: wrapping a client in layers never costs its types.
 */
import type * as grpc from '@grpc/grpc-js';
import { ServiceBuilder } from '@towerline/core';
import { type GrpcRequest, grpcMethods, resilientGrpc } from '@towerline/grpc';
import { type RedisCommands, redisCommands, resilientRedis } from '@towerline/ioredis';
import { pgQueries, resilientPg } from '@towerline/pg';
import { RetryLayer } from '@towerline/retry';
import type pg from 'pg';
import { describe, expectTypeOf, it } from 'vitest';

describe('typed facades over any stack', () => {
  it('redisCommands keeps command result types through a ServiceBuilder stack', () => {
    const stack = new ServiceBuilder().layer(new RetryLayer()).service(resilientRedis());
    const redis = redisCommands(stack);
    expectTypeOf(redis).toEqualTypeOf<RedisCommands>();
    expectTypeOf(redis.get('k')).toEqualTypeOf<Promise<string | null>>();
    expectTypeOf(redis.set('k', 'v', 'PX', 100)).toEqualTypeOf<Promise<'OK' | null>>();
    expectTypeOf(redis.incr('k')).toEqualTypeOf<Promise<number>>();
    expectTypeOf(redis.mget('a', 'b')).toEqualTypeOf<Promise<Array<string | null>>>();
    expectTypeOf(redis.hgetall('h')).toEqualTypeOf<Promise<Record<string, string>>>();
    expectTypeOf(redis.with({ signal: AbortSignal.timeout(10) }).ttl('k')).toEqualTypeOf<
      Promise<number>
    >();
    expectTypeOf(redis.command<number>('HSET', 'h', 'f', 'v')).toEqualTypeOf<Promise<number>>();
    // @ts-expect-error a key is a string
    redis.get(1);
  });

  it('the client itself has the same typed commands', () => {
    const client = resilientRedis();
    expectTypeOf(client.get('k')).toEqualTypeOf<Promise<string | null>>();
    expectTypeOf(client).toMatchTypeOf<RedisCommands>();
  });

  it('pgQueries keeps row types through a stack', () => {
    type User = { id: number; name: string };
    const stack = new ServiceBuilder().layer(new RetryLayer()).service(resilientPg());
    const db = pgQueries(stack);
    expectTypeOf(
      db.query<User>('SELECT id, name FROM users', [], { readOnly: true }),
    ).toEqualTypeOf<Promise<pg.QueryResult<User>>>();
    expectTypeOf(db.transaction(async () => 42)).toEqualTypeOf<Promise<number>>();
  });

  it('grpcMethods types each method from the map, over a stack', () => {
    type Api = { sayHello: [{ name: string }, { message: string }] };
    const greeter = resilientGrpc({
      target: '127.0.0.1:1',
      client: {} as new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client,
    });
    const stack = new ServiceBuilder().layer(new RetryLayer()).service(greeter);
    expectTypeOf(stack.call).parameter(0).toEqualTypeOf<GrpcRequest>();
    const api = grpcMethods<Api>(stack);
    expectTypeOf(api.sayHello({ name: 'x' })).toEqualTypeOf<Promise<{ message: string }>>();
    // @ts-expect-error the request type is checked
    api.sayHello({ nom: 'x' });
  });
});
