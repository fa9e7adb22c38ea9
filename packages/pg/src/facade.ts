import {
  type CallContext,
  describeValue,
  invalidArgumentError,
  type Service,
} from '@towerline/core';
import type pg from 'pg';
import { type PgRequest, pgRequestProblem } from './connector.js';

const optionsProblem = (options: unknown) =>
  invalidArgumentError('options', `expected an options object, got ${describeValue(options)}`);

/** Options of one statement. */
export interface PgQueryOptions {
  /** Safe to run twice: resent or retried if the link died mid-flight. */
  idempotent?: boolean;
  /** Run in a READ ONLY transaction (PostgreSQL refuses writes), hence safe to run twice. */
  readOnly?: boolean;
  signal?: AbortSignal;
}

/**
 * Typed statements and transactions over any service that runs {@link PgRequest}s: a
 * `resilientPg()` connection, a pool, or a stack the user composed on one. Wrapping never
 * costs the row types.
 */
export interface PgQueries {
  /** The same methods, each called with `ctx` (a signal, a deadline, `idempotent`). */
  with(ctx: CallContext): PgQueries;
  /** Runs one statement. Mark it `{ idempotent: true }` (or `readOnly`) if it may run twice. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options?: PgQueryOptions,
  ): Promise<pg.QueryResult<R>>;
  /** Runs `run` inside BEGIN … COMMIT (ROLLBACK on error) on one connection. */
  transaction<T>(
    run: (client: pg.ClientBase) => Promise<T>,
    options?: { readOnly?: boolean; signal?: AbortSignal },
  ): Promise<T>;
}

function merge(base: CallContext | undefined, signal: AbortSignal | undefined) {
  if (signal === undefined) return base;
  return base === undefined ? { signal } : { ...base, signal };
}

/** The typed methods of {@link PgQueries}, each one request on `service`. */
export class PgFacade implements PgQueries {
  readonly #service: Service<PgRequest, unknown>;
  readonly #ctx: CallContext | undefined;

  constructor(service: Service<PgRequest, unknown>, ctx?: CallContext) {
    this.#service = service;
    this.#ctx = ctx;
  }

  with(ctx: CallContext): PgQueries {
    return new PgFacade(this.#service, ctx);
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
    options: PgQueryOptions = {},
  ): Promise<pg.QueryResult<R>> {
    const problem = pgRequestProblem({ text, values });
    if (problem !== undefined) return Promise.reject(problem);
    if (typeof options !== 'object' || options === null)
      return Promise.reject(optionsProblem(options));
    return this.#service.call(
      {
        text,
        ...(values ? { values } : {}),
        ...(options.idempotent ? { idempotent: true } : {}),
        ...(options.readOnly ? { readOnly: true } : {}),
      },
      merge(this.#ctx, options.signal),
    ) as Promise<pg.QueryResult<R>>;
  }

  transaction<T>(
    run: (client: pg.ClientBase) => Promise<T>,
    options: { readOnly?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const problem = pgRequestProblem({ kind: 'transaction', run });
    if (problem !== undefined) return Promise.reject(problem);
    if (typeof options !== 'object' || options === null)
      return Promise.reject(optionsProblem(options));
    return this.#service.call(
      { kind: 'transaction', run, readOnly: options.readOnly === true },
      merge(this.#ctx, options.signal),
    ) as Promise<T>;
  }
}

/**
 * Typed statements over any stack that ends in a PostgreSQL connection.
 *
 * @example
 * ```ts
 * const stack = new ServiceBuilder().layer(new RetryLayer()).service(resilientPg({ client }));
 * const db = pgQueries(stack);
 * const { rows } = await db.query<{ id: number }>('SELECT id FROM users WHERE name = $1', ['ada'], { readOnly: true });
 * ```
 */
export function pgQueries(service: Service<PgRequest, unknown>, ctx?: CallContext): PgQueries {
  return new PgFacade(service, ctx);
}
