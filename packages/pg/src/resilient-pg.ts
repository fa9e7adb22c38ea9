import {
  type CallContext,
  describeValue,
  expectOptions,
  type FusableService,
  type FusedPath,
  fused,
  invalidArgument,
} from '@towerline/core';
import {
  type ConnectionOptions,
  fromConnector,
  type Reconnector,
  type ReconnectService,
} from '@towerline/reconnect';
import type pg from 'pg';
import { type PgConnectorOptions, type PgRequest, pgConnector } from './connector.js';
import { PgFacade } from './facade.js';

export interface ResilientPgOptions extends PgConnectorOptions, ConnectionOptions {}

/**
 * A PostgreSQL connection kept alive by a towerline {@link Reconnector}, as a {@link Service}
 * with typed `query<Row>()` and `transaction()` ({@link PgQueries}; `pgQueries(stack)` gives
 * the same over any stack composed on it).
 *
 * - An error on an idle client never crashes the process: it is a lost connection, and the
 *   next one is made with backoff.
 * - Statements are not idempotent unless marked `{ idempotent: true }` or `{ readOnly: true }`
 *   (or run in a read-only transaction): one in flight when the link died rejects with
 *   `ERR_CONNECTION_LOST` and `mayHaveExecuted: true`, and no retry layer above repeats it; a
 *   marked one is resent once on the next connection.
 * - A statement that never left the client, and a transaction cut before its COMMIT, did not
 *   run: they wait for the next connection.
 * - While reconnecting, requests queue (bounded by count and bytes) and run after `setup`.
 *
 * @example
 * ```ts
 * const db = resilientPg({ client: { connectionString: 'postgres://127.0.0.1/test' } });
 * const { rows } = await db.query('SELECT * FROM users WHERE id = $1', [1], { idempotent: true });
 * await db.transaction(async (tx) => { await tx.query('UPDATE …'); });
 * ```
 */
export class ResilientPg extends PgFacade implements FusableService<PgRequest, unknown> {
  readonly reconnector: Reconnector<pg.Client>;
  readonly service: ReconnectService<pg.Client, PgRequest, unknown>;
  /** @internal A retry layer over this connection shares its promise reaction. */
  readonly [fused]: FusedPath<PgRequest, unknown>;

  constructor(options: ResilientPgOptions = {}) {
    const service = fromConnector(pgConnector(options), options);
    super(service);
    this.service = service;
    this.reconnector = service.reconnector;
    this[fused] = service[fused];
  }

  call(request: PgRequest, ctx?: CallContext): Promise<unknown> {
    return this.service.call(request, ctx);
  }

  /** Closes the connection; queued requests reject with `ERR_CLOSED`. */
  close(): Promise<void> {
    return this.service.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
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
export class ResilientPgPool extends PgFacade {
  readonly connections: ResilientPg[];
  #next = 0;

  constructor(options: ResilientPgOptions & { size?: number } = {}) {
    expectOptions(options, true);
    const size = options.size ?? 4;
    if (!(Number.isInteger(size) && size >= 1))
      invalidArgument('size', `expected an integer >= 1, got ${describeValue(size)}`);
    const connections = Array.from(
      { length: size },
      (_, i) => new ResilientPg({ ...options, name: `${options.name ?? 'pg'}#${i}` }),
    );
    super({ call: (request, ctx) => this.call(request, ctx) });
    this.connections = connections;
    for (const c of connections) c.reconnector.start();
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

  async close(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
