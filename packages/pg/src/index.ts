/**
 * @towerline/pg — node-postgres under a towerline `Reconnector`: the pg `Connector` (an
 * idle-client error never crashes the process, the connection comes back with backoff, a
 * statement node-postgres never sent is told apart from one that may have run), statements
 * non-idempotent unless marked (`{ idempotent: true }`, `{ readOnly: true }` or a read-only
 * transaction), and typed `query<Row>()` over any stack (`pgQueries`).
 *
 * @packageDocumentation
 */
export {
  isDefinitivePgError,
  isIdempotentPgRequest,
  isPgConnectionError,
  type PgConnectorOptions,
  type PgQuery,
  type PgRequest,
  type PgTransaction,
  pgConnector,
} from './connector.js';
export { PgFacade, type PgQueries, type PgQueryOptions, pgQueries } from './facade.js';
export {
  ResilientPg,
  type ResilientPgOptions,
  ResilientPgPool,
  resilientPg,
} from './resilient-pg.js';
