import {
  type CallContext,
  describeValue,
  expectOptions,
  invalidArgument,
  invalidArgumentError,
  notSent,
  type TowerlineError,
} from '@towerline/core';
import { type Connector, isSocketError } from '@towerline/reconnect';
import pg from 'pg';

/**
 * One statement. Not idempotent unless marked: a statement cut off by a lost link is neither
 * resent nor retried.
 */
export interface PgQuery {
  text: string;
  values?: unknown[];
  /** Safe to run twice (the caller's word): resent or retried if the link died mid-flight. */
  idempotent?: boolean;
  /**
   * Runs the statement in a `READ ONLY` transaction, so PostgreSQL itself refuses any write
   * (nextval included): then it is safe to run twice, and treated as idempotent.
   */
  readOnly?: boolean;
}

/** A function run inside BEGIN … COMMIT on one connection. */
export interface PgTransaction<T> {
  kind: 'transaction';
  run: (client: pg.ClientBase) => Promise<T>;
  /** BEGIN READ ONLY: the whole transaction is safe to resend. */
  readOnly?: boolean;
}

export type PgRequest = PgQuery | PgTransaction<unknown>;

/** How to reach PostgreSQL and what every connection starts with. */
export interface PgConnectorOptions {
  /** Anything `new pg.Client()` takes; reconnect-related behaviour is towerline's. */
  client?: pg.ClientConfig;
  /** Asked before every connect attempt (rotating passwords, IAM tokens). */
  credentials?: () =>
    | { user?: string; password?: string }
    | Promise<{ user?: string; password?: string }>;
  /** Runs on every new connection before any queued request (SET search_path, …). */
  setup?: (client: pg.Client) => Promise<void>;
  /** Names the connection in events and metrics. Default `pg`. */
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

/**
 * SQLSTATE classes worth another attempt: connection exceptions, transaction rollbacks
 * (serialization failures, deadlocks), insufficient resources, lock and operator
 * interventions, system and internal errors.
 */
const TRANSIENT_CLASSES = new Set(['08', '40', '53', '55', '57', '58', 'XX']);

/**
 * A PostgreSQL error answer (a syntax error, a constraint) that no repeat can change, or an
 * error a transaction's body threw itself.
 */
export function isDefinitivePgError(error: unknown): boolean {
  if (typeof error === 'object' && error !== null && bodyFailures.has(error)) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  return (
    typeof code === 'string' &&
    /^[0-9A-Z]{5}$/.test(code) &&
    !TRANSIENT_CLASSES.has(code.slice(0, 2))
  );
}

/** A SQLSTATE of a class worth another attempt (a serialization failure, a deadlock, …). */
function isTransientPgError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (
    typeof code === 'string' &&
    /^[0-9A-Z]{5}$/.test(code) &&
    TRANSIENT_CLASSES.has(code.slice(0, 2))
  );
}

export const isTransaction = (r: PgRequest): r is PgTransaction<unknown> =>
  (r as PgTransaction<unknown>).kind === 'transaction';

/**
 * @internal What is wrong with a request (`ERR_INVALID_ARGUMENT`, final: no retry can fix it),
 * or undefined. Checked before anything is sent; names kinds of values, never the values.
 */
export function pgRequestProblem(request: unknown): TowerlineError | undefined {
  if (typeof request !== 'object' || request === null)
    return invalidArgumentError(
      'request',
      `expected { text, values } or a transaction, got ${describeValue(request)}`,
    );
  const r = request as Partial<PgQuery & PgTransaction<unknown>>;
  if (r.kind === 'transaction') {
    if (typeof r.run !== 'function')
      return invalidArgumentError('run', `expected a function, got ${describeValue(r.run)}`);
    return undefined;
  }
  if (typeof r.text !== 'string')
    return invalidArgumentError(
      'text',
      `expected the SQL text (a string), got ${describeValue(r.text)}`,
    );
  if (r.values !== undefined && !Array.isArray(r.values))
    return invalidArgumentError(
      'values',
      `expected an array of parameters, got ${describeValue(r.values)}`,
    );
  return undefined;
}

/**
 * Errors a transaction's own body threw (not the connection's, not a transient SQLSTATE): the
 * application's decision, so no layer repeats the transaction for them.
 */
const bodyFailures = new WeakSet<object>();

/** Default idempotency: marked statements, read-only statements and read-only transactions. */
export function isIdempotentPgRequest(request: PgRequest): boolean {
  // Not a request: nothing says it is safe to repeat.
  if (typeof request !== 'object' || request === null) return false;
  if (isTransaction(request)) return request.readOnly === true;
  return request.idempotent === true || request.readOnly === true;
}

/** A query that knows whether node-postgres ever put it on the wire. */
class TrackedQuery extends pg.Query {
  sent = false;
}
type Submit = (this: TrackedQuery, connection: unknown) => unknown;
const submit = (pg.Query.prototype as unknown as { submit: Submit }).submit;
(TrackedQuery.prototype as unknown as { submit: Submit }).submit = function (connection) {
  this.sent = true;
  return submit.call(this, connection);
};

/**
 * Runs one statement. node-postgres queues statements behind the one in flight and fails them
 * all alike when the connection dies; one that was still in that queue never left the client,
 * and is reported `ERR_NOT_SENT` (so it waits for the next connection) instead.
 */
function query(
  client: pg.Client,
  text: string,
  values: unknown[] | undefined,
  signal?: AbortSignal,
) {
  return new Promise<pg.QueryResult>((resolve, reject) => {
    const q: TrackedQuery = new TrackedQuery(
      { text, values: values ?? [] },
      undefined,
      (error: Error | undefined, result: pg.QueryResult) => {
        signal?.removeEventListener('abort', onAbort);
        if (!error) resolve(result);
        else
          reject(
            q.sent
              ? error
              : notSent(error, 'the statement was not sent: the connection was unusable'),
          );
      },
    );
    // An abort cancels the statement on the server; one still in node-postgres's queue is
    // taken out of it and never sent.
    const onAbort = () => {
      cancel(client, q);
      if (!q.sent) reject(notSent(signal?.reason, 'the statement was not sent: aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    client.query(q as never);
  });
}

/** node-postgres's cancel: a CancelRequest on a fresh socket, or removal from its queue. */
function cancel(client: pg.Client, q: TrackedQuery): void {
  try {
    const canceller = new pg.Client(
      (client as unknown as { connectionParameters: pg.ClientConfig }).connectionParameters,
    );
    canceller.on('error', () => {});
    (canceller as unknown as { cancel(c: pg.Client, q: unknown): void }).cancel(client, q);
    // The cancel socket closes itself after the request; never let it hold the process.
    setTimeout(() => canceller.end().catch(() => {}), 1_000).unref();
  } catch {
    // Best effort: the caller has been answered already.
  }
}

async function runTransaction<T>(client: pg.Client, tx: PgTransaction<T>): Promise<T> {
  // BEGIN not sent: nothing ran. Dying before COMMIT was sent: the server rolled it all back.
  await query(client, tx.readOnly ? 'BEGIN READ ONLY' : 'BEGIN', undefined);
  let result: T;
  try {
    result = await tx.run(client);
  } catch (error) {
    // A broken connection rolls back by itself; a live one is rolled back here.
    await client.query('ROLLBACK').catch(() => {});
    if (isPgConnectionError(error)) {
      throw notSent(error, 'the transaction was rolled back: the connection died before COMMIT');
    }
    if (typeof error === 'object' && error !== null && !isTransientPgError(error))
      bodyFailures.add(error);
    throw error;
  }
  await query(client, 'COMMIT', undefined);
  return result;
}

/** The transaction running on a client: every other request waits for it to end. */
const transactions = new WeakMap<pg.Client, Promise<void>>();

function send(
  client: pg.Client,
  request: PgRequest,
  ctx: CallContext | undefined,
): Promise<unknown> {
  const problem = pgRequestProblem(request);
  if (problem !== undefined) return Promise.reject(problem);
  const running = transactions.get(client);
  // Statements share the connection; none may land inside another request's transaction.
  if (running !== undefined) {
    return running.then(() => {
      const signal = ctx?.signal;
      if (signal?.aborted) throw notSent(signal.reason, 'the statement was not sent: aborted');
      return send(client, request, ctx);
    });
  }
  if (!isTransaction(request) && !request.readOnly) {
    return query(client, request.text, request.values, ctx?.signal);
  }
  const tx: PgTransaction<unknown> = isTransaction(request)
    ? request
    : {
        kind: 'transaction',
        readOnly: true,
        run: () => query(client, request.text, request.values, ctx?.signal),
      };
  const result = runTransaction(client, tx);
  const done = result.then(noop, noop);
  transactions.set(client, done);
  void done.then(() => {
    if (transactions.get(client) === done) transactions.delete(client);
  });
  return result;
}

function noop(): void {}

/**
 * The node-postgres {@link Connector}. An error on an idle client (the server restarted,
 * `pg_terminate_backend`, a network cut) is a lost connection, never a crashed process;
 * `setup` runs on every new connection before any queued request; a statement node-postgres
 * never sent, and a transaction cut before its COMMIT was sent, are "not sent" (they did not
 * run); statements are idempotent only when marked or read-only.
 */
export function pgConnector(
  options: PgConnectorOptions = {},
): Connector<pg.Client, PgRequest, unknown> {
  expectOptions(options, true);
  if (options.setup !== undefined && typeof options.setup !== 'function')
    invalidArgument('setup', 'expected a function');
  if (options.credentials !== undefined && typeof options.credentials !== 'function')
    invalidArgument('credentials', 'expected a function');
  return {
    name: options.name ?? 'pg',
    connect: ({ signal }) => connect(options, signal),
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
    send,
    isConnectionError: isPgConnectionError,
    isDefinitive: isDefinitivePgError,
    classify: (request) => ({ idempotent: isIdempotentPgRequest(request) }),
    sizeOf: (request) => {
      // Any request is sized (a malformed one is refused when sent, not here).
      const q = request as Partial<PgQuery> | null;
      return typeof q?.text === 'string'
        ? q.text.length + 8 * (Array.isArray(q.values) ? q.values.length : 0)
        : 64;
    },
  };
}

async function connect(options: PgConnectorOptions, signal: AbortSignal): Promise<pg.Client> {
  const credentials = await options.credentials?.();
  signal.throwIfAborted();
  const client = new pg.Client({ ...options.client, ...credentials });
  // Before anything else: an 'error' on a pg client with no listener would crash the process.
  client.on('error', () => {});
  const onAbort = () => {
    client.end().catch(() => {});
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
    await options.setup?.(client);
    signal.throwIfAborted();
    return client;
  } catch (error) {
    client.end().catch(() => {});
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
