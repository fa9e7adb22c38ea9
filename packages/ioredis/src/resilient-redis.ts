import { type CallContext, type FusableService, type FusedPath, fused } from '@towerline/core';
import {
  type ConnectionOptions,
  fromConnector,
  type Reconnector,
  type ReconnectService,
} from '@towerline/reconnect';
import type { Redis } from 'ioredis';
import type { RedisRequest } from './commands.js';
import { type RedisConnectorOptions, redisConnector, type Subscriptions } from './connector.js';
import { RedisFacade } from './facade.js';

export interface ResilientRedisOptions extends RedisConnectorOptions, ConnectionOptions {}

/**
 * An ioredis client kept alive by a towerline {@link Reconnector}, as a {@link Service} with
 * typed commands ({@link RedisCommands}; `redisCommands(stack)` gives the same over any stack
 * composed on it).
 *
 * ioredis's own reconnect is off; towerline decides instead:
 * - While reconnecting, commands queue (bounded) and run in order once the new connection has
 *   done its setup — AUTH with fresh credentials, SELECT, CLIENT SETNAME, and the current
 *   SUBSCRIBE/PSUBSCRIBE set — so setup always precedes queued requests.
 * - A command ioredis never wrote waits for the next connection; it is never "may have executed".
 * - A command in flight when the link dies is resent once only if it is idempotent (its context
 *   says so, or Redis flags it `readonly`) and its context allows another attempt; otherwise it
 *   rejects with `ERR_CONNECTION_LOST`, `mayHaveExecuted: true`, and no retry layer above
 *   repeats it.
 * - A pipeline or transaction cut mid-way rejects as a whole.
 *
 * @example
 * ```ts
 * const redis = resilientRedis({ port: 6379, credentials: () => vault.redisPassword() });
 * redis.reconnector.events.on('reconnectScheduled', ({ delayMs }) => log(delayMs));
 * await redis.set('k', 'v');
 * await redis.get('k');
 * await redis.close();
 * ```
 */
export class ResilientRedis extends RedisFacade implements FusableService<RedisRequest, unknown> {
  readonly reconnector: Reconnector<Redis>;
  readonly service: ReconnectService<Redis, RedisRequest, unknown>;
  /** @internal A retry layer over this client shares its promise reaction. */
  readonly [fused]: FusedPath<RedisRequest, unknown>;
  readonly #subs: Subscriptions;
  readonly #options: ResilientRedisOptions;
  #subscriber: ResilientRedis | undefined;
  readonly #isSubscriber: boolean;

  constructor(options: ResilientRedisOptions = {}, role: 'commands' | 'subscriber' = 'commands') {
    const subs: Subscriptions = { channels: new Map(), patterns: new Map() };
    const isSubscriber = role === 'subscriber';
    const service = fromConnector(
      redisConnector(options, isSubscriber ? subs : undefined),
      options,
    );
    super(service);
    this.#subs = subs;
    this.#options = options;
    this.#isSubscriber = isSubscriber;
    this.service = service;
    this.reconnector = service.reconnector;
    this[fused] = service[fused];
  }

  call(request: RedisRequest, ctx?: CallContext): Promise<unknown> {
    return this.service.call(request, ctx);
  }

  /**
   * Subscribes on a dedicated connection whose channel set is restored on every reconnect.
   * Returns a function that unsubscribes this listener.
   */
  subscribe(
    channel: string,
    listener: (message: string, channel: string) => void,
  ): Promise<() => Promise<void>> {
    const sub = this.#subscriberConnection();
    return sub.#listen(sub.#subs.channels, channel, listener, 'SUBSCRIBE', 'UNSUBSCRIBE');
  }

  /** PSUBSCRIBE, restored on every reconnect like {@link subscribe}. */
  psubscribe(
    pattern: string,
    listener: (message: string, channel: string, pattern: string) => void,
  ): Promise<() => Promise<void>> {
    const sub = this.#subscriberConnection();
    return sub.#listen(sub.#subs.patterns, pattern, listener, 'PSUBSCRIBE', 'PUNSUBSCRIBE');
  }

  /** Adds a listener to the set for `name`, subscribing on the wire for the first one. */
  async #listen<L>(
    registry: Map<string, Set<L>>,
    name: string,
    listener: L,
    subscribe: string,
    unsubscribe: string,
  ): Promise<() => Promise<void>> {
    const fresh = !registry.has(name);
    if (fresh) registry.set(name, new Set());
    const set = registry.get(name)!;
    set.add(listener);
    if (fresh) await this.command(subscribe, name);
    return async () => {
      set.delete(listener);
      if (set.size === 0 && registry.get(name) === set) {
        registry.delete(name);
        await this.command(unsubscribe, name);
      }
    };
  }

  /** The subscriber connection, if `subscribe()` made one. */
  get subscriber(): ResilientRedis | undefined {
    return this.#subscriber;
  }

  /** Closes both connections; queued commands reject with `ERR_CLOSED`. */
  async close(): Promise<void> {
    await Promise.all([this.service.close(), this.#subscriber?.close()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #subscriberConnection(): ResilientRedis {
    if (this.#isSubscriber) return this;
    this.#subscriber ??= new ResilientRedis(
      { ...this.#options, name: `${this.reconnector.name}:subscriber` },
      'subscriber',
    );
    return this.#subscriber;
  }
}

/** `new ResilientRedis(options)`. */
export function resilientRedis(options: ResilientRedisOptions = {}): ResilientRedis {
  return new ResilientRedis(options);
}
