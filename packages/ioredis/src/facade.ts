import type { CallContext, Service } from '@towerline/core';
import type { RedisArg, RedisRequest } from './commands.js';

/**
 * Redis commands with typed results, over any service that runs {@link RedisRequest}s: a
 * `resilientRedis()` client, or a stack the user composed on it (retry, timeouts, metrics).
 * Wrapping never costs the types.
 */
export interface RedisCommands {
  /** The same commands, each called with `ctx` (a signal, a deadline, `idempotent`). */
  with(ctx: CallContext): RedisCommands;
  /** Any command: `command<number>('HSET', 'h', 'f', 'v')`. */
  command<T = unknown>(name: string, ...args: RedisArg[]): Promise<T>;
  get(key: string): Promise<string | null>;
  /** `SET key value [EX s | PX ms | NX | XX | GET …]`; `null` when NX/XX refused. */
  set(key: string, value: RedisArg, ...options: RedisArg[]): Promise<'OK' | null>;
  mget(...keys: string[]): Promise<Array<string | null>>;
  /** `mset(k1, v1, k2, v2, …)`. */
  mset(...keysAndValues: RedisArg[]): Promise<'OK'>;
  del(...keys: string[]): Promise<number>;
  exists(...keys: string[]): Promise<number>;
  incr(key: string): Promise<number>;
  incrby(key: string, increment: number): Promise<number>;
  decr(key: string): Promise<number>;
  decrby(key: string, decrement: number): Promise<number>;
  expire(key: string, seconds: number): Promise<number>;
  pexpire(key: string, ms: number): Promise<number>;
  ttl(key: string): Promise<number>;
  pttl(key: string): Promise<number>;
  hget(key: string, field: string): Promise<string | null>;
  /** `hset(key, f1, v1, f2, v2, …)`: the number of fields added. */
  hset(key: string, ...fieldsAndValues: RedisArg[]): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
  hdel(key: string, ...fields: string[]): Promise<number>;
  lpush(key: string, ...values: RedisArg[]): Promise<number>;
  rpush(key: string, ...values: RedisArg[]): Promise<number>;
  lpop(key: string): Promise<string | null>;
  rpop(key: string): Promise<string | null>;
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  llen(key: string): Promise<number>;
  sadd(key: string, ...members: RedisArg[]): Promise<number>;
  srem(key: string, ...members: RedisArg[]): Promise<number>;
  smembers(key: string): Promise<string[]>;
  sismember(key: string, member: RedisArg): Promise<number>;
  /** `zadd(key, score1, member1, …)`. */
  zadd(key: string, ...scoresAndMembers: RedisArg[]): Promise<number>;
  zrange(key: string, start: number, stop: number): Promise<string[]>;
  zscore(key: string, member: RedisArg): Promise<string | null>;
  publish(channel: string, message: RedisArg): Promise<number>;
  ping(): Promise<'PONG'>;
  /** Runs commands in one round trip; a pipeline cut mid-way rejects as a whole. */
  pipeline(commands: Array<[string, ...RedisArg[]]>): Promise<unknown[]>;
  /** MULTI/EXEC: all or nothing; cut mid-way it rejects as a whole (`mayHaveExecuted`). */
  multi(commands: Array<[string, ...RedisArg[]]>): Promise<unknown[]>;
}

/** The typed commands of {@link RedisCommands}, each one request on `send`. */
export class RedisFacade implements RedisCommands {
  readonly #service: Service<RedisRequest, unknown>;
  readonly #ctx: CallContext | undefined;

  constructor(service: Service<RedisRequest, unknown>, ctx?: CallContext) {
    this.#service = service;
    this.#ctx = ctx;
  }

  with(ctx: CallContext): RedisCommands {
    return new RedisFacade(this.#service, ctx);
  }

  command<T = unknown>(name: string, ...args: RedisArg[]): Promise<T> {
    return this.#one<T>(name, args);
  }

  #one<T>(name: string, args: RedisArg[]): Promise<T> {
    return this.#service.call({ name, args }, this.#ctx) as Promise<T>;
  }

  get(key: string) {
    return this.#one<string | null>('GET', [key]);
  }
  set(key: string, value: RedisArg, ...options: RedisArg[]) {
    return this.#one<'OK' | null>('SET', options.length ? [key, value, ...options] : [key, value]);
  }
  mget(...keys: string[]) {
    return this.#one<Array<string | null>>('MGET', keys);
  }
  mset(...keysAndValues: RedisArg[]) {
    return this.#one<'OK'>('MSET', keysAndValues);
  }
  del(...keys: string[]) {
    return this.#one<number>('DEL', keys);
  }
  exists(...keys: string[]) {
    return this.#one<number>('EXISTS', keys);
  }
  incr(key: string) {
    return this.#one<number>('INCR', [key]);
  }
  incrby(key: string, increment: number) {
    return this.#one<number>('INCRBY', [key, increment]);
  }
  decr(key: string) {
    return this.#one<number>('DECR', [key]);
  }
  decrby(key: string, decrement: number) {
    return this.#one<number>('DECRBY', [key, decrement]);
  }
  expire(key: string, seconds: number) {
    return this.#one<number>('EXPIRE', [key, seconds]);
  }
  pexpire(key: string, ms: number) {
    return this.#one<number>('PEXPIRE', [key, ms]);
  }
  ttl(key: string) {
    return this.#one<number>('TTL', [key]);
  }
  pttl(key: string) {
    return this.#one<number>('PTTL', [key]);
  }
  hget(key: string, field: string) {
    return this.#one<string | null>('HGET', [key, field]);
  }
  hset(key: string, ...fieldsAndValues: RedisArg[]) {
    return this.#one<number>('HSET', [key, ...fieldsAndValues]);
  }
  hgetall(key: string) {
    return this.#one<Record<string, string>>('HGETALL', [key]);
  }
  hdel(key: string, ...fields: string[]) {
    return this.#one<number>('HDEL', [key, ...fields]);
  }
  lpush(key: string, ...values: RedisArg[]) {
    return this.#one<number>('LPUSH', [key, ...values]);
  }
  rpush(key: string, ...values: RedisArg[]) {
    return this.#one<number>('RPUSH', [key, ...values]);
  }
  lpop(key: string) {
    return this.#one<string | null>('LPOP', [key]);
  }
  rpop(key: string) {
    return this.#one<string | null>('RPOP', [key]);
  }
  lrange(key: string, start: number, stop: number) {
    return this.#one<string[]>('LRANGE', [key, start, stop]);
  }
  llen(key: string) {
    return this.#one<number>('LLEN', [key]);
  }
  sadd(key: string, ...members: RedisArg[]) {
    return this.#one<number>('SADD', [key, ...members]);
  }
  srem(key: string, ...members: RedisArg[]) {
    return this.#one<number>('SREM', [key, ...members]);
  }
  smembers(key: string) {
    return this.#one<string[]>('SMEMBERS', [key]);
  }
  sismember(key: string, member: RedisArg) {
    return this.#one<number>('SISMEMBER', [key, member]);
  }
  zadd(key: string, ...scoresAndMembers: RedisArg[]) {
    return this.#one<number>('ZADD', [key, ...scoresAndMembers]);
  }
  zrange(key: string, start: number, stop: number) {
    return this.#one<string[]>('ZRANGE', [key, start, stop]);
  }
  zscore(key: string, member: RedisArg) {
    return this.#one<string | null>('ZSCORE', [key, member]);
  }
  publish(channel: string, message: RedisArg) {
    return this.#one<number>('PUBLISH', [channel, message]);
  }
  ping() {
    return this.#one<'PONG'>('PING', []);
  }
  pipeline(commands: Array<[string, ...RedisArg[]]>) {
    return this.#service.call({ kind: 'pipeline', commands }, this.#ctx) as Promise<unknown[]>;
  }
  multi(commands: Array<[string, ...RedisArg[]]>) {
    return this.#service.call({ kind: 'multi', commands }, this.#ctx) as Promise<unknown[]>;
  }
}

/**
 * Typed Redis commands over any stack that ends in a Redis client.
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder().layer(new RetryLayer()).service(resilientRedis({ port }));
 * const redis = redisCommands(stack);
 * const value: string | null = await redis.get('k');
 * await redis.with({ signal: AbortSignal.timeout(1_000) }).incr('hits');
 * ```
 */
export function redisCommands(
  service: Service<RedisRequest, unknown>,
  ctx?: CallContext,
): RedisCommands {
  return new RedisFacade(service, ctx);
}
