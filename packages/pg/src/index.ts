/**
 * @towerline/pg — node-postgres under a towerline `Reconnector`: an idle-client error never
 * crashes the process, the connection comes back with backoff, and statements are treated as
 * non-idempotent unless marked (`{ idempotent: true }` or a read-only transaction).
 *
 * @packageDocumentation
 */
export {
  isPgConnectionError,
  type PgQuery,
  type PgRequest,
  type PgTransaction,
  ResilientPg,
  type ResilientPgOptions,
  ResilientPgPool,
  resilientPg,
} from './resilient-pg.js';
