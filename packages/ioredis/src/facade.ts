import type { CallContext, Service } from '@towerline/core';
import type { RedisArg, RedisRequest } from './commands.js';

/**
 * Arguments, optionally followed by the call's context (`{ signal }`, a deadline,
 * `idempotent`): a trailing plain object is the context, never an argument.
 */
export type WithContext<A> = A[] | [...A[], CallContext];

/**
 * Redis commands with typed results, over any service that runs {@link RedisRequest}s: a
 * `resilientRedis()` client, or a stack the user composed on it (retry, timeouts, metrics).
 * Wrapping never costs the types.
 */
export interface RedisCommands {
  /**
   * The same commands, each called with `ctx` (a signal, a deadline, `idempotent`). Every
   * command also takes a context as its last argument, which wins over this one:
   * `get('k', { signal })`, `del('a', 'b', { signal })`.
   */
  with(ctx: CallContext): RedisCommands;
  /** Any command: `command<number>('HSET', 'h', 'f', 'v')`. */
  command<T = unknown>(name: string, ...args: WithContext<RedisArg>): Promise<T>;
  get(key: string, ctx?: CallContext): Promise<string | null>;
  /** `SET key value [EX s | PX ms | NX | XX | GET …]`; `null` when NX/XX refused. */
  set(key: string, value: RedisArg, ...options: WithContext<RedisArg>): Promise<'OK' | null>;
  mget(...keys: WithContext<string>): Promise<Array<string | null>>;
  /** `mset(k1, v1, k2, v2, …)`. */
  mset(...keysAndValues: WithContext<RedisArg>): Promise<'OK'>;
  del(...keys: WithContext<string>): Promise<number>;
  exists(...keys: WithContext<string>): Promise<number>;
  incr(key: string, ctx?: CallContext): Promise<number>;
  incrby(key: string, increment: number, ctx?: CallContext): Promise<number>;
  decr(key: string, ctx?: CallContext): Promise<number>;
  decrby(key: string, decrement: number, ctx?: CallContext): Promise<number>;
  expire(key: string, seconds: number, ctx?: CallContext): Promise<number>;
  pexpire(key: string, ms: number, ctx?: CallContext): Promise<number>;
  ttl(key: string, ctx?: CallContext): Promise<number>;
  pttl(key: string, ctx?: CallContext): Promise<number>;
  hget(key: string, field: string, ctx?: CallContext): Promise<string | null>;
  /** `hset(key, f1, v1, f2, v2, …)`: the number of fields added. */
  hset(key: string, ...fieldsAndValues: WithContext<RedisArg>): Promise<number>;
  hgetall(key: string, ctx?: CallContext): Promise<Record<string, string>>;
  hdel(key: string, ...fields: WithContext<string>): Promise<number>;
  lpush(key: string, ...values: WithContext<RedisArg>): Promise<number>;
  rpush(key: string, ...values: WithContext<RedisArg>): Promise<number>;
  lpop(key: string, ctx?: CallContext): Promise<string | null>;
  rpop(key: string, ctx?: CallContext): Promise<string | null>;
  lrange(key: string, start: number, stop: number, ctx?: CallContext): Promise<string[]>;
  llen(key: string, ctx?: CallContext): Promise<number>;
  sadd(key: string, ...members: WithContext<RedisArg>): Promise<number>;
  srem(key: string, ...members: WithContext<RedisArg>): Promise<number>;
  smembers(key: string, ctx?: CallContext): Promise<string[]>;
  sismember(key: string, member: RedisArg, ctx?: CallContext): Promise<number>;
  /** `zadd(key, score1, member1, …)`. */
  zadd(key: string, ...scoresAndMembers: WithContext<RedisArg>): Promise<number>;
  zrange(key: string, start: number, stop: number, ctx?: CallContext): Promise<string[]>;
  zscore(key: string, member: RedisArg, ctx?: CallContext): Promise<string | null>;
  publish(channel: string, message: RedisArg, ctx?: CallContext): Promise<number>;
  ping(ctx?: CallContext): Promise<'PONG'>;
  /** Runs commands in one round trip; a pipeline cut mid-way rejects as a whole. */
  pipeline(commands: Array<[string, ...RedisArg[]]>, ctx?: CallContext): Promise<unknown[]>;
  /** MULTI/EXEC: all or nothing; cut mid-way it rejects as a whole (`mayHaveExecuted`). */
  multi(commands: Array<[string, ...RedisArg[]]>, ctx?: CallContext): Promise<unknown[]>;
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

  command<T = unknown>(name: string, ...args: WithContext<RedisArg>): Promise<T> {
    return this.#one<T>(name, args);
  }

  /** One command; a trailing context in `args` is the call's, else the facade's. */
  #one<T>(name: string, args: Array<RedisArg | CallContext>, ctx?: CallContext): Promise<T> {
    const last = args[args.length - 1];
    if (isContext(last)) {
      return this.#service.call(
        { name, args: args.slice(0, -1) as RedisArg[] },
        last,
      ) as Promise<T>;
    }
    return this.#service.call({ name, args: args as RedisArg[] }, ctx ?? this.#ctx) as Promise<T>;
  }

  get(key: string, ctx?: CallContext) {
    return this.#one<string | null>('GET', [key], ctx);
  }
  set(key: string, value: RedisArg, ...options: WithContext<RedisArg>) {
    return this.#one<'OK' | null>('SET', options.length ? [key, value, ...options] : [key, value]);
  }
  mget(...keys: WithContext<string>) {
    return this.#one<Array<string | null>>('MGET', keys);
  }
  mset(...keysAndValues: WithContext<RedisArg>) {
    return this.#one<'OK'>('MSET', keysAndValues);
  }
  del(...keys: WithContext<string>) {
    return this.#one<number>('DEL', keys);
  }
  exists(...keys: WithContext<string>) {
    return this.#one<number>('EXISTS', keys);
  }
  incr(key: string, ctx?: CallContext) {
    return this.#one<number>('INCR', [key], ctx);
  }
  incrby(key: string, increment: number, ctx?: CallContext) {
    return this.#one<number>('INCRBY', [key, increment], ctx);
  }
  decr(key: string, ctx?: CallContext) {
    return this.#one<number>('DECR', [key], ctx);
  }
  decrby(key: string, decrement: number, ctx?: CallContext) {
    return this.#one<number>('DECRBY', [key, decrement], ctx);
  }
  expire(key: string, seconds: number, ctx?: CallContext) {
    return this.#one<number>('EXPIRE', [key, seconds], ctx);
  }
  pexpire(key: string, ms: number, ctx?: CallContext) {
    return this.#one<number>('PEXPIRE', [key, ms], ctx);
  }
  ttl(key: string, ctx?: CallContext) {
    return this.#one<number>('TTL', [key], ctx);
  }
  pttl(key: string, ctx?: CallContext) {
    return this.#one<number>('PTTL', [key], ctx);
  }
  hget(key: string, field: string, ctx?: CallContext) {
    return this.#one<string | null>('HGET', [key, field], ctx);
  }
  hset(key: string, ...fieldsAndValues: WithContext<RedisArg>) {
    return this.#one<number>('HSET', [key, ...fieldsAndValues]);
  }
  hgetall(key: string, ctx?: CallContext) {
    return this.#one<Record<string, string>>('HGETALL', [key], ctx);
  }
  hdel(key: string, ...fields: WithContext<string>) {
    return this.#one<number>('HDEL', [key, ...fields]);
  }
  lpush(key: string, ...values: WithContext<RedisArg>) {
    return this.#one<number>('LPUSH', [key, ...values]);
  }
  rpush(key: string, ...values: WithContext<RedisArg>) {
    return this.#one<number>('RPUSH', [key, ...values]);
  }
  lpop(key: string, ctx?: CallContext) {
    return this.#one<string | null>('LPOP', [key], ctx);
  }
  rpop(key: string, ctx?: CallContext) {
    return this.#one<string | null>('RPOP', [key], ctx);
  }
  lrange(key: string, start: number, stop: number, ctx?: CallContext) {
    return this.#one<string[]>('LRANGE', [key, start, stop], ctx);
  }
  llen(key: string, ctx?: CallContext) {
    return this.#one<number>('LLEN', [key], ctx);
  }
  sadd(key: string, ...members: WithContext<RedisArg>) {
    return this.#one<number>('SADD', [key, ...members]);
  }
  srem(key: string, ...members: WithContext<RedisArg>) {
    return this.#one<number>('SREM', [key, ...members]);
  }
  smembers(key: string, ctx?: CallContext) {
    return this.#one<string[]>('SMEMBERS', [key], ctx);
  }
  sismember(key: string, member: RedisArg, ctx?: CallContext) {
    return this.#one<number>('SISMEMBER', [key, member], ctx);
  }
  zadd(key: string, ...scoresAndMembers: WithContext<RedisArg>) {
    return this.#one<number>('ZADD', [key, ...scoresAndMembers]);
  }
  zrange(key: string, start: number, stop: number, ctx?: CallContext) {
    return this.#one<string[]>('ZRANGE', [key, start, stop], ctx);
  }
  zscore(key: string, member: RedisArg, ctx?: CallContext) {
    return this.#one<string | null>('ZSCORE', [key, member], ctx);
  }
  publish(channel: string, message: RedisArg, ctx?: CallContext) {
    return this.#one<number>('PUBLISH', [channel, message], ctx);
  }
  ping(ctx?: CallContext) {
    return this.#one<'PONG'>('PING', [], ctx);
  }
  pipeline(commands: Array<[string, ...RedisArg[]]>, ctx?: CallContext) {
    return this.#service.call({ kind: 'pipeline', commands }, ctx ?? this.#ctx) as Promise<
      unknown[]
    >;
  }
  multi(commands: Array<[string, ...RedisArg[]]>, ctx?: CallContext) {
    return this.#service.call({ kind: 'multi', commands }, ctx ?? this.#ctx) as Promise<unknown[]>;
  }
}

/** A call context, told apart from a command argument (a string, a number or a Buffer). */
function isContext(value: unknown): value is CallContext {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array);
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
 * await redis.get('k', { signal: AbortSignal.timeout(500) }); // a context per call
 * ```
 */
export function redisCommands(
  service: Service<RedisRequest, unknown>,
  ctx?: CallContext,
): RedisCommands {
  return new RedisFacade(service, ctx);
}
