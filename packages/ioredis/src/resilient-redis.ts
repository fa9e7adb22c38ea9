import { hasFlag } from '@ioredis/commands';
import {
  type CallContext,
  type IntervalFunction,
  invalidArgument,
  type Service,
  TowerlineError,
} from '@towerline/core';
import {
  isSocketError,
  ReconnectLayer,
  Reconnector,
  type ReconnectService,
  type ReconnectServiceOptions,
} from '@towerline/reconnect';
import { type ChainableCommander, Command, Redis, type RedisOptions } from 'ioredis';

type Arg = string | number | Buffer;

/** One Redis command. */
export interface RedisCommand {
  kind?: 'command';
  name: string;
  args: Arg[];
}

/** Several commands in one round trip (`pipeline`) or one transaction (`multi`). */
export interface RedisBatch {
  kind: 'pipeline' | 'multi';
  commands: Array<[string, ...Arg[]]>;
}

/** One Redis command, a pipeline, or a MULTI/EXEC transaction. */
export type RedisRequest = RedisCommand | RedisBatch;

const isBatch = (request: RedisRequest): request is RedisBatch =>
  request.kind === 'pipeline' || request.kind === 'multi';

export interface RedisCredentials {
  username?: string;
  password?: string;
}

export interface ResilientRedisOptions {
  host?: string;
  port?: number;
  /**
   * Where to connect, asked before every attempt: a service-discovery lookup or a DNS name that
   * moves (scenario 12). Wins over `host`/`port`.
   */
  address?: () => { host: string; port: number } | Promise<{ host: string; port: number }>;
  /** Static credentials, or a function asked before every attempt (rotating passwords, IAM). */
  credentials?: RedisCredentials | (() => RedisCredentials | Promise<RedisCredentials>);
  db?: number;
  /** `CLIENT SETNAME`, sent on every connection. */
  connectionName?: string;
  /** Upper bound on one connect attempt (TCP, AUTH, SELECT, SETNAME, resubscribe), ms. */
  connectTimeout?: number;
  /** Reconnect backoff. Default: the reconnector's (exponential 100 ms → 30 s, decorrelated). */
  policy?: IntervalFunction;
  maxAttempts?: number;
  minUptime?: number;
  /**
   * Which requests may be resent after the link died with them in flight. Default: commands
   * Redis flags `readonly` (and pipelines/transactions made only of them); `INCR`, `LPUSH`, …
   * reject with `mayHaveExecuted` instead.
   */
  retryOnReconnect?: (request: RedisRequest) => boolean;
  maxQueued?: number;
  maxQueuedBytes?: number;
  queueTimeout?: number;
  /** Anything else for the ioredis client; reconnect-related options are overridden. */
  redisOptions?: RedisOptions;
  /** Names the reconnector in events and metrics. Default `redis`. */
  name?: string;
}

const CLOSED_MESSAGES = [
  /^Connection is closed\.?$/,
  /Stream isn't writeable/,
  /enableOfflineQueue options is false/,
];

/** Whether an ioredis error means the connection is gone (not a Redis reply error). */
export function isRedisConnectionError(error: unknown): boolean {
  if (isSocketError(error)) return true;
  const message = (error as { message?: unknown })?.message;
  return typeof message === 'string' && CLOSED_MESSAGES.some((re) => re.test(message));
}

/** `readonly` per Redis's own command table: safe to send twice. */
export function isReadOnlyCommand(name: string): boolean {
  try {
    return hasFlag(name.toLowerCase(), 'readonly');
  } catch {
    return false; // unknown command: assume it writes
  }
}

/** Default idempotency: read-only commands, and batches made only of them. */
export function isIdempotentRequest(request: RedisRequest): boolean {
  if (isBatch(request)) return request.commands.every(([name]) => isReadOnlyCommand(name));
  return isReadOnlyCommand(request.name);
}

function sizeOf(request: RedisRequest): number {
  const argsSize = (args: Arg[]) =>
    args.reduce<number>((n, a) => n + (typeof a === 'number' ? 8 : a.length), 0);
  if (isBatch(request)) {
    return request.commands.reduce((n, [name, ...args]) => n + name.length + argsSize(args), 0);
  }
  return request.name.length + argsSize(request.args);
}

/** Runs a batch; a batch cut by a lost link fails as a whole, with the connection error. */
async function runBatch(
  client: Redis,
  kind: 'pipeline' | 'multi',
  commands: Array<[string, ...Arg[]]>,
) {
  const batch: ChainableCommander = kind === 'multi' ? client.multi() : client.pipeline();
  for (const [name, ...args] of commands) batch.call(name, ...(args as string[]));
  const results: Array<[Error | null, unknown]> = (await batch.exec()) ?? [];
  for (const [error] of results) if (error && isRedisConnectionError(error)) throw error;
  if (kind === 'multi' && results.length === 0 && commands.length > 0) {
    throw new TowerlineError(
      'ERR_CONNECTION_LOST',
      'the transaction was aborted (EXEC returned nothing)',
    );
  }
  return results.map(([error, value]) => (error ? error : value));
}

/**
 * One command on `client`: what `client.call(name, ...args)` does, without its argument
 * juggling (rest parameters, callback detection), unless auto-pipelining or friendly error
 * stacks are on — then through `call` itself.
 */
function sendCommand(client: Redis, request: RedisCommand): Promise<unknown> {
  const o = client.options;
  if (o.enableAutoPipelining || o.showFriendlyErrorStack)
    return client.call(request.name, ...(request.args as string[]));
  return client.sendCommand(
    new Command(request.name, request.args, { keyPrefix: o.keyPrefix, replyEncoding: 'utf8' }),
  ) as Promise<unknown>;
}

/** Subscriptions to restore on every new connection (SUBSCRIBE/PSUBSCRIBE). */
interface Subscriptions {
  channels: Map<string, Set<(message: string, channel: string) => void>>;
  patterns: Map<string, Set<(message: string, channel: string, pattern: string) => void>>;
}

/**
 * An ioredis client kept alive by a towerline {@link Reconnector}, as a {@link Service}.
 *
 * ioredis's own reconnect is off (`retryStrategy: () => null`, no offline queue,
 * `autoResendUnfulfilledCommands: false`); towerline decides instead:
 * - While reconnecting, commands queue (bounded) and run in order once the new connection has
 *   done its setup — AUTH with fresh credentials, SELECT, CLIENT SETNAME, and the current
 *   SUBSCRIBE/PSUBSCRIBE set — so setup always precedes queued requests.
 * - A command in flight when the link dies is resent once only if Redis flags it `readonly`;
 *   otherwise it rejects with `ERR_CONNECTION_LOST`, `mayHaveExecuted: true`.
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
export class ResilientRedis implements Service<RedisRequest, unknown> {
  readonly reconnector: Reconnector<Redis>;
  readonly service: ReconnectService<Redis, RedisRequest, unknown>;
  readonly #subs: Subscriptions = { channels: new Map(), patterns: new Map() };
  readonly #options: ResilientRedisOptions;
  #subscriber: ResilientRedis | undefined;
  readonly #isSubscriber: boolean;

  constructor(options: ResilientRedisOptions = {}, role: 'commands' | 'subscriber' = 'commands') {
    if (
      options.port !== undefined &&
      !(Number.isInteger(options.port) && options.port > 0 && options.port < 65_536)
    ) {
      invalidArgument('port', `expected 1..65535, got ${options.port}`);
    }
    if (
      options.credentials !== undefined &&
      typeof options.credentials !== 'object' &&
      typeof options.credentials !== 'function'
    ) {
      invalidArgument('credentials', 'expected { username?, password? } or a function');
    }
    this.#options = options;
    this.#isSubscriber = role === 'subscriber';
    const name = options.name ?? (this.#isSubscriber ? 'redis:subscriber' : 'redis');
    this.reconnector = new Reconnector<Redis>({
      name,
      connect: ({ signal }) => this.#connect(signal),
      watch: (client, lost) => {
        let lastError: unknown;
        const onError = (error: unknown) => {
          lastError = error;
        };
        const onClose = () =>
          lost(
            lastError ?? Object.assign(new Error('Connection is closed.'), { code: 'ECONNRESET' }),
          );
        client.on('error', onError);
        client.once('close', onClose);
        return () => {
          client.off('error', onError);
          client.off('close', onClose);
        };
      },
      dispose: (client) => client.disconnect(),
      isConnectionError: isRedisConnectionError,
      ...(options.policy ? { policy: options.policy } : {}),
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      ...(options.minUptime !== undefined ? { minUptime: options.minUptime } : {}),
      ...(options.connectTimeout !== undefined ? { connectTimeout: options.connectTimeout } : {}),
    });
    const serviceOptions: ReconnectServiceOptions<Redis, RedisRequest, unknown> = {
      call: (client, request) =>
        isBatch(request)
          ? runBatch(client, request.kind, request.commands)
          : sendCommand(client, request),
      retryOnReconnect: options.retryOnReconnect ?? isIdempotentRequest,
      sizeOf,
      ...(options.maxQueued !== undefined ? { maxQueued: options.maxQueued } : {}),
      ...(options.maxQueuedBytes !== undefined ? { maxQueuedBytes: options.maxQueuedBytes } : {}),
      ...(options.queueTimeout !== undefined ? { queueTimeout: options.queueTimeout } : {}),
    };
    this.service = new ReconnectLayer(serviceOptions).wrap(this.reconnector);
  }

  call(request: RedisRequest, ctx?: CallContext): Promise<unknown> {
    return this.service.call(request, ctx);
  }

  /** Any command: `redis.command('HSET', 'h', 'f', 'v')`. */
  command<T = unknown>(name: string, ...args: Arg[]): Promise<T> {
    return this.service.call({ name, args }) as Promise<T>;
  }

  get(key: string): Promise<string | null> {
    return this.service.call({ name: 'GET', args: [key] }) as Promise<string | null>;
  }

  set(key: string, value: Arg, ...options: Arg[]): Promise<'OK' | null> {
    const args = options.length === 0 ? [key, value] : [key, value, ...options];
    return this.service.call({ name: 'SET', args }) as Promise<'OK' | null>;
  }

  incr(key: string): Promise<number> {
    return this.command('INCR', key);
  }

  del(...keys: string[]): Promise<number> {
    return this.command('DEL', ...keys);
  }

  /** Runs commands in one round trip; a pipeline cut mid-way rejects as a whole. */
  pipeline(commands: Array<[string, ...Arg[]]>): Promise<unknown[]> {
    return this.service.call({ kind: 'pipeline', commands }) as Promise<unknown[]>;
  }

  /** MULTI/EXEC: all or nothing; cut mid-way it rejects as a whole (`mayHaveExecuted`). */
  multi(commands: Array<[string, ...Arg[]]>): Promise<unknown[]> {
    return this.service.call({ kind: 'multi', commands }) as Promise<unknown[]>;
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

  async #connect(signal: AbortSignal): Promise<Redis> {
    const o = this.#options;
    const [address, credentials] = await Promise.all([
      o.address?.(),
      typeof o.credentials === 'function' ? o.credentials() : o.credentials,
    ]);
    signal.throwIfAborted();
    const client = new Redis({
      ...o.redisOptions,
      host: address?.host ?? o.host ?? '127.0.0.1',
      port: address?.port ?? o.port ?? 6379,
      ...(credentials?.username !== undefined ? { username: credentials.username } : {}),
      ...(credentials?.password !== undefined ? { password: credentials.password } : {}),
      ...(o.db !== undefined ? { db: o.db } : {}),
      ...(o.connectionName !== undefined ? { connectionName: o.connectionName } : {}),
      lazyConnect: true,
      // towerline owns reconnecting, queueing and resending.
      retryStrategy: () => null,
      reconnectOnError: () => false,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      enableReadyCheck: true,
      // connectTimeout is the reconnector's: it covers setup too.
      connectTimeout: 2 ** 31 - 1,
    });
    client.on('error', () => {}); // reported through watch/lost; never an unhandled 'error'
    const onAbort = () => client.disconnect();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
      if (this.#isSubscriber) await this.#resubscribe(client);
      signal.throwIfAborted();
      return client;
    } catch (error) {
      client.disconnect();
      throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Restores the subscription set and routes messages to the listeners. */
  async #resubscribe(client: Redis): Promise<void> {
    client.on('message', (channel: string, message: string) => {
      for (const l of this.#subs.channels.get(channel) ?? []) l(message, channel);
    });
    client.on('pmessage', (pattern: string, channel: string, message: string) => {
      for (const l of this.#subs.patterns.get(pattern) ?? []) l(message, channel, pattern);
    });
    if (this.#subs.channels.size) await client.subscribe(...this.#subs.channels.keys());
    if (this.#subs.patterns.size) await client.psubscribe(...this.#subs.patterns.keys());
  }
}

/** `new ResilientRedis(options)`. */
export function resilientRedis(options: ResilientRedisOptions = {}): ResilientRedis {
  return new ResilientRedis(options);
}
