/**
 * The README composition for PostgreSQL behind a FaultProxy, as the pg composition tests use
 * it: a table of their own, a connection with an application_name of its own (so that only its
 * backends are terminated), the default `RetryLayer` over a default `resilientPg`, and an admin
 * connection straight to 5432 that sees the truth and terminates backends.
 */
import { ServiceBuilder } from '@towerline/core';
import { type PgQueries, pgQueries, resilientPg } from '@towerline/pg';
import { RetryLayer } from '@towerline/retry';
import { FaultProxy } from '@towerline/testing';
import pg from 'pg';

const direct = {
  host: '127.0.0.1',
  port: 5432,
  database: 'test',
  user: process.env.PGUSER ?? 'postgres',
};

export interface PgRig {
  /** Straight to 5432, never through the proxy. */
  admin: pg.Client;
  /** `(req_id text NOT NULL)`, no unique constraint: a duplicate can land, and be counted. */
  table: string;
  proxy: FaultProxy;
  client: ReturnType<typeof resilientPg>;
  retry: RetryLayer;
  db: PgQueries;
  /** Retry events seen so far. */
  readonly retries: number;
  /** Terminates this connection's backends; resolves to how many were terminated. */
  terminate(): Promise<number>;
  /** Closes the stack and the proxy, drops the table, ends the admin connection. */
  close(): Promise<void>;
}

export async function pgRig(name: string, latencyMs: number): Promise<PgRig> {
  const tag = `${process.pid}_${Date.now().toString(36)}`;
  const table = `towerline_comp_${name}_${tag}`;
  const applicationName = `towerline-comp-${name}-${tag}`;
  const admin = new pg.Client(direct);
  admin.on('error', () => {});
  await admin.connect();
  await admin.query(`CREATE TABLE ${table} (req_id text NOT NULL)`);
  const proxy = await FaultProxy.start({ target: { port: 5432 } });
  // One fixed latency: FaultProxy keeps chunks in order only while every delay is the same.
  proxy.latency(latencyMs);
  const client = resilientPg({
    client: {
      host: '127.0.0.1',
      port: proxy.port,
      database: 'test',
      user: direct.user,
      application_name: applicationName,
    },
  });
  const retry = new RetryLayer();
  const stack = new ServiceBuilder().layer(retry).service(client);
  let retries = 0;
  retry.events.on('retry', () => retries++);
  let closed = false;
  return {
    admin,
    table,
    proxy,
    client,
    retry,
    db: pgQueries(stack),
    get retries() {
      return retries;
    },
    async terminate() {
      const { rows } = await admin.query<{ ok: boolean }>(
        'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      );
      return rows.filter((row) => row.ok).length;
    },
    async close() {
      if (closed) return;
      closed = true;
      await stack.close?.();
      await proxy.close();
      await admin.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
      await admin.end();
    },
  };
}
