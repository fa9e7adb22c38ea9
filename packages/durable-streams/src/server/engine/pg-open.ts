/** Opening the postgres store: the pool, the `LISTEN` connection (pg-listen.ts), the schema. */
import { systemClock, type TimerHandle } from '@towerline/core';
import type pg from 'pg';
import { StorageError } from './errors.js';
import { checkPgUrl, errorCode, permanentPgFailure } from './pg-check.js';
import { storageError } from './pg-io.js';
import { PgListener, reconnectPolicy } from './pg-listen.js';
import { LOCK_KEY, schemaSql } from './pg-schema.js';
import { PgStore } from './pg-store.js';
import type { StreamTable } from './table.js';

export interface PgStoreOptions {
  url: string;
  /** Schema of the tables; created if missing. */
  schema: string;
  /** Connections for changes and reads. Default 4. */
  poolSize?: number;
  /** Start-up gives up after this long without a database. Default 15 s. */
  connectTimeoutMs?: number;
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

/** Connects, creates the schema if missing, and returns the store (listening for changes). */
export async function openPg(
  options: PgStoreOptions,
  table: StreamTable,
  now: () => number,
): Promise<PgStore> {
  const { schema, url } = options;
  // The schema is spliced into statements (and the NOTIFY channel): an identifier only.
  if (!/^[a-z_][a-z0-9_]{0,50}$/.test(schema))
    throw new StorageError(
      'ERR_STORAGE_FAILED',
      'the postgres schema must be lowercase letters, digits and _ (at most 51), starting with a letter or _',
    );
  const { default: pgLib } = await import('pg');
  checkPgUrl(pgLib.Client, url);
  const { ResilientPg, ResilientPgPool } = await import('@towerline/pg');
  const setup = async (client: pg.Client) => {
    await client.query(`SET search_path TO "${schema}"`);
  };
  const pool = new ResilientPgPool({
    client: { connectionString: url },
    size: options.poolSize ?? 4,
    name: 'ds:pg',
    policy: reconnectPolicy(),
    setup,
  });
  const listener = new PgListener(ResilientPg, url, `ds_${schema}`, options.warn);
  const timeoutMs = options.connectTimeoutMs ?? 15_000;
  let timer: TimerHandle | undefined;
  let lastError: unknown;
  let refuse: (error: StorageError) => void = () => {};
  const refused = new Promise<never>((_, reject) => {
    refuse = reject;
  });
  // A refused connection or a server still starting is waited for; a bad password, an
  // unknown role or database is not going to change: refused at once.
  const onFailure = ({ error }: { error: unknown }) => {
    lastError = error;
    const why = permanentPgFailure(error);
    if (why)
      refuse(new StorageError('ERR_STORAGE_FAILED', `PostgreSQL refused the connection: ${why}`));
  };
  for (const c of pool.connections) c.reconnector.events.on('connectFailed', onFailure);
  try {
    const storeId = await Promise.race([
      (async () => {
        await pool.transaction(async (c) => {
          await c.query(LOCK_KEY, [`ds-schema/${schema}`]);
          await c.query(schemaSql(schema));
        });
        const { rows } = await pool.query<{ v: string }>(
          "SELECT v FROM ds_store WHERE k = 'store_id'",
          [],
          { readOnly: true },
        );
        return rows[0]!.v;
      })(),
      refused,
      new Promise<never>((_, reject) => {
        timer = systemClock.setTimeout(() => {
          const last = lastError === undefined ? '' : ` (last error: ${errorCode(lastError)})`;
          reject(
            new StorageError('ERR_STORAGE_FAILED', `no PostgreSQL within ${timeoutMs} ms${last}`),
          );
        }, timeoutMs);
      }),
    ]);
    const store = new PgStore(pool, listener, table, schema, storeId, now, options.warn);
    listener.attach(store);
    return store;
  } catch (error) {
    await Promise.all([pool.close(), listener.close()]).catch(() => {});
    throw storageError(error);
  } finally {
    systemClock.clearTimeout(timer);
    for (const c of pool.connections) c.reconnector.events.off('connectFailed', onFailure);
  }
}
