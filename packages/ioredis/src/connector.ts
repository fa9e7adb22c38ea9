import {
  describeValue,
  expectOptions,
  invalidArgument,
  notSent,
  TowerlineError,
} from '@towerline/core';
import { type Connector, isSocketError } from '@towerline/reconnect';
import { type ChainableCommander, Command, Redis, type RedisOptions } from 'ioredis';
import {
  isBatch,
  isIdempotentRequest,
  type RedisArg,
  type RedisCommand,
  type RedisRequest,
  sizeOfRequest,
} from './commands.js';

export interface RedisCredentials {
  username?: string;
  password?: string;
}

/** How to reach Redis and what every connection starts with. */
export interface RedisConnectorOptions {
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
  /**
   * Which requests are idempotent when the request's context does not say. Default: commands
   * Redis flags `readonly` (and pipelines/transactions made only of them); `INCR`, `LPUSH`, …
   * are not, so one cut off in flight rejects with `mayHaveExecuted` and is never repeated.
   */
  retryOnReconnect?: (request: RedisRequest) => boolean;
  /** Anything else for the ioredis client; reconnect-related options are overridden. */
  redisOptions?: RedisOptions;
  /** Names the connection in events and metrics. Default `redis`. */
  name?: string;
}

/** Subscriptions to restore on every new connection (SUBSCRIBE/PSUBSCRIBE). */
export interface Subscriptions {
  channels: Map<string, Set<(message: string, channel: string) => void>>;
  patterns: Map<string, Set<(message: string, channel: string, pattern: string) => void>>;
}

const CLOSED_MESSAGES = [
  /^Connection is closed\.?$/,
  /Stream isn't writeable/,
  /enableOfflineQueue options is false/,
];
/** Redis replies that a later attempt may not get: loading, busy, a failover under way. */
const TRANSIENT_REPLY =
  /^(?:LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|MISCONF)\b/;

/** A Redis error reply (WRONGTYPE, a syntax error, …) that no repeat can change. */
export function isDefinitiveRedisReply(error: unknown): boolean {
  const e = error as { name?: unknown; message?: unknown } | undefined;
  return (
    e?.name === 'ReplyError' && typeof e.message === 'string' && !TRANSIENT_REPLY.test(e.message)
  );
}

/** ioredis refuses to write: the command never left the client. */
const UNWRITTEN = /Stream isn't writeable/;

/** Whether an ioredis error means the connection is gone (not a Redis reply error). */
export function isRedisConnectionError(error: unknown): boolean {
  if (isSocketError(error)) return true;
  const message = (error as { message?: unknown })?.message;
  return typeof message === 'string' && CLOSED_MESSAGES.some((re) => re.test(message));
}

function isUnwritten(error: unknown): boolean {
  const message = (error as { message?: unknown })?.message;
  return typeof message === 'string' && UNWRITTEN.test(message);
}

/** Runs a batch; a batch cut by a lost link fails as a whole, with the connection error. */
async function runBatch(
  client: Redis,
  kind: 'pipeline' | 'multi',
  commands: Array<[string, ...RedisArg[]]>,
) {
  const batch: ChainableCommander = kind === 'multi' ? client.multi() : client.pipeline();
  for (const [name, ...args] of commands) batch.call(name, ...(args as string[]));
  const results: Array<[Error | null, unknown]> = (await batch.exec()) ?? [];
  const broken = results.filter(([error]) => error && isRedisConnectionError(error));
  if (broken.length > 0) {
    // Every command refused before writing: the batch as a whole never left the client.
    if (broken.length === results.length && broken.every(([error]) => isUnwritten(error))) {
      throw notSent(broken[0]![0], 'the batch was not sent: the connection was unusable');
    }
    throw broken[0]![0];
  }
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

function validate(options: RedisConnectorOptions): void {
  expectOptions(options, true);
  if (
    options.port !== undefined &&
    !(Number.isInteger(options.port) && options.port > 0 && options.port < 65_536)
  ) {
    invalidArgument('port', `expected 1..65535, got ${describeValue(options.port)}`);
  }
  if (
    options.credentials !== undefined &&
    typeof options.credentials !== 'object' &&
    typeof options.credentials !== 'function'
  ) {
    invalidArgument('credentials', 'expected { username?, password? } or a function');
  }
  if (options.retryOnReconnect !== undefined && typeof options.retryOnReconnect !== 'function') {
    invalidArgument('retryOnReconnect', 'expected a function');
  }
}

/**
 * The ioredis {@link Connector}: ioredis's own reconnect, offline queue and resend are off
 * (`retryStrategy: () => null`, `enableOfflineQueue: false`, `autoResendUnfulfilledCommands:
 * false`) so that towerline decides. Every connection is set up (AUTH with fresh credentials,
 * SELECT, CLIENT SETNAME, and the subscription set when `subscriptions` is given) before any
 * request runs on it; idempotency comes from Redis's command flags; a command ioredis refused
 * to write is "not sent", never "may have executed".
 */
export function redisConnector(
  options: RedisConnectorOptions = {},
  subscriptions?: Subscriptions,
): Connector<Redis, RedisRequest, unknown> {
  validate(options);
  const classify = options.retryOnReconnect ?? isIdempotentRequest;
  return {
    name: options.name ?? (subscriptions ? 'redis:subscriber' : 'redis'),
    connect: ({ signal }) => connect(options, signal, subscriptions),
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
    send: (client, request) => {
      // A client that has ended writes nothing; ioredis would say "Connection is closed." as it
      // does for commands cut off in flight, so say it here, unambiguously.
      if (client.status === 'end') return Promise.reject(notSent(undefined));
      return isBatch(request)
        ? runBatch(client, request.kind, request.commands)
        : sendCommand(client, request);
    },
    isConnectionError: isRedisConnectionError,
    neverWritten: isUnwritten,
    isDefinitive: isDefinitiveRedisReply,
    classify: (request) => ({ idempotent: classify(request) }),
    sizeOf: sizeOfRequest,
  };
}

async function connect(
  o: RedisConnectorOptions,
  signal: AbortSignal,
  subscriptions: Subscriptions | undefined,
): Promise<Redis> {
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
    if (subscriptions) await resubscribe(client, subscriptions);
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
async function resubscribe(client: Redis, subs: Subscriptions): Promise<void> {
  client.on('message', (channel: string, message: string) => {
    for (const l of subs.channels.get(channel) ?? []) l(message, channel);
  });
  client.on('pmessage', (pattern: string, channel: string, message: string) => {
    for (const l of subs.patterns.get(pattern) ?? []) l(message, channel, pattern);
  });
  if (subs.channels.size) await client.subscribe(...subs.channels.keys());
  if (subs.patterns.size) await client.psubscribe(...subs.patterns.keys());
}
