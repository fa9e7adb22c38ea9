import {
  type CallContext,
  type IntervalFunction,
  invalidArgument,
  type Service,
} from '@towerline/core';
import {
  isSocketError,
  ReconnectLayer,
  Reconnector,
  type ReconnectService,
} from '@towerline/reconnect';
import pg from 'pg';

/** One statement. Non-idempotent unless marked: a statement cut off by a lost link is not resent. */
export interface PgQuery {
  text: string;
  values?: unknown[];
  /** Safe to run twice: resent once on the next connection if the link died mid-flight. */
  idempotent?: boolean;
}

/** A function run inside BEGIN … COMMIT on one connection. */
export interface PgTransaction<T> {
  kind: 'transaction';
  run: (client: pg.ClientBase) => Promise<T>;
  /** BEGIN READ ONLY: the whole transaction is safe to resend. */
  readOnly?: boolean;
}

export type PgRequest = PgQuery | PgTransaction<unknown>;

export interface ResilientPgOptions {
  /** Anything `new pg.Client()` takes; reconnect-related behaviour is towerline's. */
  client?: pg.ClientConfig;
  /** Asked before every connect attempt (rotating passwords, IAM tokens). */
  credentials?: () =>
    | { user?: string; password?: string }
    | Promise<{ user?: string; password?: string }>;
  /** Runs on every new connection before any queued request (SET search_path, …). */
  setup?: (client: pg.Client) => Promise<void>;
  policy?: IntervalFunction;
  maxAttempts?: number;
  connectTimeout?: number;
  minUptime?: number;
  maxQueued?: number;
  queueTimeout?: number;
  name?: string;
}

/** SQLSTATE classes and codes that mean the session is gone, not that the statement failed. */
const SESSION_GONE = /^(08|57P0[1-3])/;
const CLOSED_MESSAGES = [
  /Connection terminated/i,
  /not queryable/i,
  /Client was closed/i,
  /connection error/i,
];

/** Whether a node-postgres error means the connection is gone. */
export function isPgConnectionError(error: unknown): boolean {
  if (isSocketError(error)) return true;
  const e = error as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'string' && SESSION_GONE.test(e.code)) return true;
  return (
    typeof e?.message === 'string' && CLOSED_MESSAGES.some((re) => re.test(e.message as string))
  );
}

const isTransaction = (r: PgRequest): r is PgTransaction<unknown> =>
  (r as PgTransaction<unknown>).kind === 'transaction';

async function runTransaction<T>(client: pg.Client, tx: PgTransaction<T>): Promise<T> {
  await client.query(tx.readOnly ? 'BEGIN READ ONLY' : 'BEGIN');
  try {
    const result = await tx.run(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A broken connection rolls back by itself; a live one is rolled back here.
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * A PostgreSQL connection kept alive by a towerline {@link Reconnector}, as a {@link Service}.
 *
 * - An error on an idle client (the server restarted, `pg_terminate_backend`, a network cut)
 *   never crashes the process: it is a lost connection, and the next one is made with backoff.
 * - Statements are not idempotent unless marked `{ idempotent: true }` (or run in a read-only
 *   transaction): one in flight when the link died rejects with `ERR_CONNECTION_LOST` and
 *   `mayHaveExecuted: true`; a marked one is resent once on the next connection.
 * - While reconnecting, requests queue (bounded) and run after `setup`.
 *
 * @example
 * ```ts
 * const db = resilientPg({ client: { connectionString: 'postgres://127.0.0.1/test' } });
 * const { rows } = await db.query('SELECT * FROM users WHERE id = $1', [1], { idempotent: true });
 * await db.transaction(async (tx) => { await tx.query('UPDATE …'); });
 * ```
 */
export class ResilientPg implements Service<PgRequest, unknown> {
  readonly reconnector: Reconnector<pg.Client>;
  readonly service: ReconnectService<pg.Client, PgRequest, unknown>;
  readonly #options: ResilientPgOptions;

  constructor(options: ResilientPgOptions = {}) {
    if (options.setup !== undefined && typeof options.setup !== 'function')
      invalidArgument('setup', 'expected a function');
    this.#options = options;
    this.reconnector = new Reconnector<pg.Client>({
      name: options.name ?? 'pg',
      connect: ({ signal }) => this.#connect(signal),
      watch: (client, lost) => {
        const onError = (error: unknown) => lost(error);
        const onEnd = () =>
          lost(Object.assign(new Error('Connection terminated'), { code: 'ECONNRESET' }));
        client.on('error', onError);
        client.once('end', onEnd);
        return () => {
          client.off('error', onError);
          client.off('end', onEnd);
        };
      },
      dispose: (client) => client.end().catch(() => {}),
      isConnectionError: isPgConnectionError,
      ...(options.policy ? { policy: options.policy } : {}),
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      ...(options.minUptime !== undefined ? { minUptime: options.minUptime } : {}),
      ...(options.connectTimeout !== undefined ? { connectTimeout: options.connectTimeout } : {}),
    });
    this.service = new ReconnectLayer<pg.Client, PgRequest, unknown>({
      call: (client, request) =>
        isTransaction(request)
          ? runTransaction(client, request)
          : client.query({ text: request.text, values: request.values ?? [] }),
      retryOnReconnect: (request) =>
        isTransaction(request) ? request.readOnly === true : request.idempotent === true,
      sizeOf: (request) =>
        isTransaction(request) ? 64 : request.text.length + 8 * (request.values?.length ?? 0),
      ...(options.maxQueued !== undefined ? { maxQueued: options.maxQueued } : {}),
      ...(options.queueTimeout !== undefined ? { queueTimeout: options.queueTimeout } : {}),
    }).wrap(this.reconnector);
  }

  call(request: PgRequest, ctx?: CallContext): Promise<unknown> {
    return this.service.call(request, ctx);
  }

  /** Runs one statement. Mark it `{ idempotent: true }` if it may run twice. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options: { idempotent?: boolean; signal?: AbortSignal } = {},
  ): Promise<pg.QueryResult<R>> {
    return this.service.call(
      { text, ...(values ? { values } : {}), idempotent: options.idempotent === true },
      options.signal ? { signal: options.signal } : undefined,
    ) as Promise<pg.QueryResult<R>>;
  }

  /** Runs `run` inside BEGIN … COMMIT (ROLLBACK on error) on one connection. */
  transaction<T>(
    run: (client: pg.ClientBase) => Promise<T>,
    options: { readOnly?: boolean } = {},
  ): Promise<T> {
    return this.service.call({
      kind: 'transaction',
      run,
      readOnly: options.readOnly === true,
    }) as Promise<T>;
  }

  /** Closes the connection; queued requests reject with `ERR_CLOSED`. */
  close(): Promise<void> {
    return this.service.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #connect(signal: AbortSignal): Promise<pg.Client> {
    const credentials = await this.#options.credentials?.();
    signal.throwIfAborted();
    const client = new pg.Client({ ...this.#options.client, ...credentials });
    // Before anything else: an 'error' on a pg client with no listener would crash the process.
    client.on('error', () => {});
    const onAbort = () => {
      client.end().catch(() => {});
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await client.connect();
      await this.#options.setup?.(client);
      signal.throwIfAborted();
      return client;
    } catch (error) {
      client.end().catch(() => {});
      throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** `new ResilientPg(options)`. */
export function resilientPg(options: ResilientPgOptions = {}): ResilientPg {
  return new ResilientPg(options);
}

/**
 * Several {@link ResilientPg} connections, all opened at once; requests rotate over the
 * connected ones (a disconnected one is skipped while another is up). Each connection
 * reconnects on its own.
 */
export class ResilientPgPool implements Service<PgRequest, unknown> {
  readonly connections: ResilientPg[];
  #next = 0;

  constructor(options: ResilientPgOptions & { size?: number } = {}) {
    const size = options.size ?? 4;
    if (!(Number.isInteger(size) && size >= 1))
      invalidArgument('size', `expected an integer >= 1, got ${size}`);
    this.connections = Array.from(
      { length: size },
      (_, i) => new ResilientPg({ ...options, name: `${options.name ?? 'pg'}#${i}` }),
    );
    for (const c of this.connections) c.reconnector.start();
  }

  #pick(): ResilientPg {
    let best: ResilientPg | undefined;
    for (let i = 0; i < this.connections.length; i++) {
      const c = this.connections[(this.#next + i) % this.connections.length]!;
      if (
        c.reconnector.state === 'connected' &&
        (!best || c.service.stats.queued < best.service.stats.queued)
      )
        best = c;
    }
    this.#next = (this.#next + 1) % this.connections.length;
    return best ?? this.connections[this.#next]!;
  }

  call(request: PgRequest, ctx?: CallContext): Promise<unknown> {
    return this.#pick().call(request, ctx);
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options: { idempotent?: boolean; signal?: AbortSignal } = {},
  ): Promise<pg.QueryResult<R>> {
    return this.#pick().query<R>(text, values, options);
  }

  transaction<T>(
    run: (client: pg.ClientBase) => Promise<T>,
    options: { readOnly?: boolean } = {},
  ): Promise<T> {
    return this.#pick().transaction(run, options);
  }

  async close(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
