/**
 * The Redis side of a fleet object: whether Redis can be asked now (the resilient client's
 * connection state, when it has one), each script run bounded by a timeout, and one
 * `fallback` event when decisions turn local, one `recovered` when they come back.
 */
import {
  type Clock,
  describeValue,
  expectClock,
  invalidArgument,
  systemClock,
  TypedEmitter,
} from '@towerline/core';
import type { RedisArg, RedisCommands } from '@towerline/ioredis';
import type { LuaScript } from './scripts.js';

/** Events of every fleet object. */
export type FleetEvents = {
  /** Decisions are local from now on: Redis is unreachable, timed out or answered an error. */
  fallback: { name: string; reason: 'unreachable' | 'timeout' | 'error'; error?: string };
  /** Redis answers again: decisions are the fleet's. */
  recovered: { name: string; downMs: number };
};

/** What a fleet object needs of Redis: commands, and optionally the connection's state. */
export interface FleetRedisOptions {
  /** A `resilientRedis()` client or a stack composed on one (`redisCommands(stack)`). */
  redis: RedisCommands;
  /** Whether Redis is worth asking now; default the resilient client's `reconnector.state`. */
  ready?: () => boolean;
  /** Longest wait for Redis before deciding locally, ms. Default 250. */
  timeoutMs?: number;
  /** After a failure with no `ready` signal, Redis is asked again after this long. Default 1 000. */
  retryAfterMs?: number;
  clock?: Clock;
}

class TimeoutError extends Error {}

export class RedisLink {
  readonly events: TypedEmitter<FleetEvents>;
  readonly #redis: RedisCommands;
  readonly #ready: (() => boolean) | undefined;
  readonly #timeoutMs: number;
  readonly #retryAfterMs: number;
  readonly clock: Clock;
  #downSince: number | undefined;

  constructor(
    readonly name: string,
    options: FleetRedisOptions,
    channel: string,
  ) {
    const redis = options.redis as Partial<RedisCommands> | null | undefined;
    if (typeof redis !== 'object' || redis === null)
      invalidArgument('redis', 'expected a Redis service (resilientRedis, or one composed on it)');
    if (options.ready !== undefined && typeof options.ready !== 'function')
      invalidArgument('ready', 'expected a function');
    for (const [field, ms] of [
      ['timeoutMs', options.timeoutMs],
      ['retryAfterMs', options.retryAfterMs],
    ] as const) {
      if (ms !== undefined && (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)))
        invalidArgument(field, `expected a finite number of ms > 0, got ${describeValue(ms)}`);
    }
    expectClock(options.clock);
    this.#redis = options.redis;
    const rc = (options.redis as { reconnector?: { state: string } }).reconnector;
    this.#ready = options.ready ?? (rc ? () => rc.state === 'connected' : undefined);
    this.#timeoutMs = options.timeoutMs ?? 250;
    this.#retryAfterMs = options.retryAfterMs ?? 1_000;
    this.clock = options.clock ?? systemClock;
    this.events = new TypedEmitter<FleetEvents>({ channel, source: name });
  }

  get redis(): RedisCommands {
    return this.#redis;
  }

  /** Decisions are local now. */
  get down(): boolean {
    return this.#downSince !== undefined;
  }

  /** Whether to ask Redis (false: decide locally without waiting). */
  get usable(): boolean {
    if (this.#ready && !this.#ready()) {
      this.#fail('unreachable', undefined);
      return false;
    }
    if (this.#downSince === undefined || this.#ready) return true;
    return this.clock.now() - this.#downSince >= this.#retryAfterMs;
  }

  /** Runs a script within the timeout; undefined (and `fallback` once) when it could not. */
  async run(script: LuaScript, keys: string[], args: RedisArg[]): Promise<unknown[] | undefined> {
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    try {
      const out = await Promise.race([
        script.run(this.#redis, keys, args),
        new Promise<never>((_, reject) => {
          timer = this.clock.setTimeout(() => reject(new TimeoutError()), this.#timeoutMs);
        }),
      ]);
      this.#ok();
      return out as unknown[];
    } catch (error) {
      if (error instanceof TimeoutError) this.#fail('timeout', undefined);
      else this.#fail(this.#ready && !this.#ready() ? 'unreachable' : 'error', error);
      return undefined;
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
    }
  }

  /** One command within the timeout; undefined when it could not. */
  async command(name: string, ...args: RedisArg[]): Promise<unknown> {
    const fake = { run: (r: RedisCommands) => r.command(name, ...args) } as unknown as LuaScript;
    return this.run(fake, [], []);
  }

  #ok(): void {
    if (this.#downSince === undefined) return;
    const downMs = this.clock.now() - this.#downSince;
    this.#downSince = undefined;
    this.events.emit('recovered', { name: this.name, downMs });
  }

  #fail(reason: FleetEvents['fallback']['reason'], error: unknown): void {
    if (this.#downSince !== undefined) {
      if (!this.#ready) this.#downSince = this.clock.now();
      return;
    }
    this.#downSince = this.clock.now();
    const code = (error as { code?: unknown } | undefined)?.code;
    this.events.emit('fallback', {
      name: this.name,
      reason,
      ...(error !== undefined
        ? { error: typeof code === 'string' ? code : ((error as Error)?.name ?? 'Error') }
        : {}),
    });
  }
}
