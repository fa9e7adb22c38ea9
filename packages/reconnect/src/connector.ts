import {
  type CallContext,
  type Clock,
  expectOptions,
  type IntervalFunction,
  invalidArgument,
  type RandomSource,
} from '@towerline/core';
import { Reconnector } from './reconnector.js';
import type { ConnectContext } from './reconnector-options.js';
import { ReconnectService } from './service.js';

/**
 * Everything towerline needs to know about a client library to keep its connection alive and
 * run requests on it safely. A connector is a plain object; {@link fromConnector} turns it into
 * a {@link ReconnectService} under a {@link Reconnector}.
 *
 * @example
 * ```ts
 * const lines: Connector<LineClient, string, string> = {
 *   name: 'kv',
 *   connect: ({ signal }) => LineClient.connect({ port, signal }),
 *   watch: (client, lost) => { client.socket.once('close', lost); return () => client.socket.off('close', lost) },
 *   dispose: (client) => client.close(),
 *   send: (client, line) => client.send(line),
 *   classify: (line) => ({ idempotent: line.startsWith('GET ') }),
 * };
 * const kv = fromConnector(lines);
 * ```
 */
export interface Connector<C, Req, Res> {
  /** Names the connection in events and metrics. */
  name?: string;
  /** Makes one connection, setup included (AUTH, SELECT, resubscribe); honours `signal`. */
  connect(ctx: ConnectContext): Promise<C>;
  /** Calls `lost(error)` when the live connection dies; returns a function that stops watching. */
  watch?(conn: C, lost: (error?: unknown) => void): (() => void) | undefined | void;
  /** Releases a connection that is lost, replaced, arrived too late or closed. */
  dispose?(conn: C): void | Promise<void>;
  /** Runs one request on a live connection; must settle once the connection is disposed. */
  send(conn: C, req: Req, ctx: CallContext | undefined): Promise<Res>;
  /** Whether an error from `send` means the connection is broken. Default: socket error codes. */
  isConnectionError?(error: unknown): boolean;
  /** Whether an error from `send` proves the request never left the client. Default: never. */
  neverWritten?(error: unknown): boolean;
  /**
   * Whether an error from `send` is the peer's definitive answer (a syntax error, a wrong
   * type): no retry repeats such a request. Default: none is.
   */
  isDefinitive?(error: unknown): boolean;
  /** Whether a request is safe to run twice, when its context does not say. Default: not. */
  classify?(req: Req): { idempotent: boolean };
  /** A request's size for the queue's byte bound. */
  sizeOf?(req: Req): number;
}

/** The reconnect and queue settings every connector-made service takes. */
export interface ConnectionOptions {
  /** Reconnect backoff. Default: exponential 100 ms → 30 s, decorrelated jitter. */
  policy?: IntervalFunction;
  /** Connect attempts per outage before giving up. Default: unlimited. */
  maxAttempts?: number;
  /** Upper bound on one connect attempt (setup included), ms. Default 10 000. */
  connectTimeout?: number;
  /** How long a connection must stay up before the backoff resets, ms. Default 1 000. */
  minUptime?: number;
  /** Requests held while there is no connection. Default 1 000. */
  maxQueued?: number;
  /** Bytes held while there is no connection. Default 16 MiB. */
  maxQueuedBytes?: number;
  /** Longest wait for a connection before `ERR_TIMEOUT` (never sent), ms. Default 30 000. */
  queueTimeout?: number;
  /** Overrides the connector's name. */
  name?: string;
  clock?: Clock;
  random?: RandomSource;
}

/** The keys of {@link ConnectionOptions}, for adapters that take them among their own. */
export const connectionOptionKeys = [
  'policy',
  'maxAttempts',
  'connectTimeout',
  'minUptime',
  'maxQueued',
  'maxQueuedBytes',
  'queueTimeout',
  'name',
  'clock',
  'random',
] as const satisfies ReadonlyArray<keyof ConnectionOptions>;

/** The defined entries of `options` among {@link ConnectionOptions}. */
export function pickConnectionOptions(options: ConnectionOptions): ConnectionOptions {
  expectOptions(options, true);
  const picked: Record<string, unknown> = {};
  for (const key of connectionOptionKeys) {
    if (options[key] !== undefined) picked[key] = options[key];
  }
  return picked as ConnectionOptions;
}

/**
 * The one factory behind every adapter: a {@link Reconnector} that keeps the connector's
 * connection alive, and a {@link ReconnectService} that runs requests on it — queued while
 * reconnecting, never-written requests sent on the next connection, idempotent in-flight ones
 * resent within the request's attempts and budget, the rest rejected "may have executed".
 */
export function fromConnector<C, Req, Res>(
  connector: Connector<C, Req, Res>,
  options: ConnectionOptions = {},
): ReconnectService<C, Req, Res> {
  if (typeof connector?.connect !== 'function') {
    invalidArgument('connector', 'expected a Connector (an object with a connect function)');
  }
  if (typeof connector.send !== 'function') invalidArgument('send', 'expected a function');
  for (const name of [
    'watch',
    'dispose',
    'isConnectionError',
    'classify',
    'neverWritten',
    'isDefinitive',
    'sizeOf',
  ] as const) {
    if (connector[name] !== undefined && typeof connector[name] !== 'function')
      invalidArgument(name, 'expected a function');
  }
  const o = pickConnectionOptions(options);
  const isConnectionError = connector.isConnectionError?.bind(connector);
  const reconnector = new Reconnector<C>({
    ...o,
    name: o.name ?? connector.name ?? 'connection',
    connect: (ctx) => connector.connect(ctx),
    ...(connector.watch ? { watch: connector.watch.bind(connector) } : {}),
    ...(connector.dispose ? { dispose: connector.dispose.bind(connector) } : {}),
    ...(isConnectionError ? { isConnectionError } : {}),
  });
  const classify = connector.classify?.bind(connector);
  return new ReconnectService<C, Req, Res>(reconnector, {
    call: connector.send.bind(connector),
    ...(classify ? { retryOnReconnect: (req: Req) => classify(req).idempotent } : {}),
    ...(connector.neverWritten ? { neverWritten: connector.neverWritten.bind(connector) } : {}),
    ...(connector.isDefinitive ? { isDefinitive: connector.isDefinitive.bind(connector) } : {}),
    ...(connector.sizeOf ? { sizeOf: connector.sizeOf.bind(connector) } : {}),
    ...(o.maxQueued !== undefined ? { maxQueued: o.maxQueued } : {}),
    ...(o.maxQueuedBytes !== undefined ? { maxQueuedBytes: o.maxQueuedBytes } : {}),
    ...(o.queueTimeout !== undefined ? { queueTimeout: o.queueTimeout } : {}),
  });
}
