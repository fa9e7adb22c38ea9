/**
 * Against the local PostgreSQL (127.0.0.1:5432, trust, database `test`): backends are killed
 * with pg_terminate_backend, idle and mid-query.
 */
import { backoff, RequestContext, ServiceBuilder } from '@towerline/core';
import { pgQueries, ResilientPg, ResilientPgPool } from '@towerline/pg';
import { RetryLayer } from '@towerline/retry';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

const config = {
  host: '127.0.0.1',
  port: 5432,
  database: 'test',
  user: process.env.PGUSER ?? 'postgres',
};
const table = `towerline_pg_${process.pid}`;
const waitFor = (fn: () => void | Promise<void>) =>
  vi.waitFor(fn, { timeout: 10_000, interval: 20 });

let admin: pg.Client;
beforeAll(async () => {
  admin = new pg.Client(config);
  await admin.connect();
  await admin.query(`CREATE TABLE IF NOT EXISTS ${table} (id serial primary key, note text)`);
});
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`);
  await admin.end();
});

const closers: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c.close();
});

function db(options: ConstructorParameters<typeof ResilientPg>[0] = {}) {
  const d = new ResilientPg({
    client: config,
    policy: backoff.fixed(20),
    minUptime: 50,
    ...options,
  });
  closers.push(d);
  return d;
}

const backendPid = async (d: ResilientPg) =>
  (await d.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', [], { idempotent: true }))
    .rows[0]!.pid;

/** Waits until backend `pid` is running a statement, so a kill lands mid-query. */
const waitUntilActive = (pid: number) =>
  waitFor(async () => {
    const r = await admin.query<{ state: string }>(
      'SELECT state FROM pg_stat_activity WHERE pid = $1',
      [pid],
    );
    expect(r.rows[0]?.state).toBe('active');
  });

const terminate = (pid: number) => admin.query('SELECT pg_terminate_backend($1)', [pid]);

describe('ResilientPg', () => {
  it('runs statements and transactions', async () => {
    const d = db();
    await d.query(`INSERT INTO ${table} (note) VALUES ($1)`, ['a']);
    const id = await d.transaction(async (tx) => {
      const r = await tx.query(`INSERT INTO ${table} (note) VALUES ($1) RETURNING id`, ['b']);
      return r.rows[0].id as number;
    });
    expect(id).toBeGreaterThan(0);
    await expect(
      d.transaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (note) VALUES ('rolled back')`);
        throw new Error('no thanks');
      }),
    ).rejects.toThrow('no thanks');
    const { rows } = await d.query(
      `SELECT count(*)::int AS n FROM ${table} WHERE note = 'rolled back'`,
    );
    expect(rows[0]!.n).toBe(0);
    await expect(d.query('SELEC 1')).rejects.toMatchObject({ code: '42601' }); // a plain SQL error
    expect(d.reconnector.state).toBe('connected');
  });

  it('an idle client killed by the server does not crash the process; the next query reconnects', async () => {
    const d = db();
    const pid = await backendPid(d);
    const disconnected = d.reconnector.events.next('disconnected');
    await terminate(pid);
    await disconnected;
    expect(await backendPid(d)).not.toBe(pid);
  });

  it('a backend killed mid-query: the statement in flight "may have executed", those queued behind it were never sent', async () => {
    const d = db();
    const pid = await backendPid(d);
    // Handled at once: it rejects while the test still awaits the termination.
    const write = d
      .query(`INSERT INTO ${table} (note) SELECT 'slow' FROM pg_sleep(2)`)
      .catch((e: unknown) => e);
    // Both wait in node-postgres's queue behind the INSERT: neither ever reaches the server.
    const read = d.query('SELECT 42 AS answer FROM pg_sleep(0.5)', [], { idempotent: true });
    const queuedWrite = d.query(`INSERT INTO ${table} (note) VALUES ('queued') RETURNING id`);
    await waitUntilActive(pid);
    await terminate(pid);
    expect(await write).toMatchObject({
      code: 'ERR_CONNECTION_LOST',
      mayHaveExecuted: true,
    });
    expect((await read).rows[0]!.answer).toBe(42);
    expect((await queuedWrite).rows).toHaveLength(1);
    expect(d.reconnector.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(d.service.stats).toMatchObject({
      requeued: 2,
      retriedOnReconnect: 0,
      mayHaveExecuted: 1,
    });
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM ${table} WHERE note = 'queued'`,
    );
    expect(rows[0].n).toBe(1);
  });

  it('a backend killed mid-query: an idempotent statement in flight is resent once', async () => {
    const d = db();
    const pid = await backendPid(d);
    const read = d.query('SELECT 42 AS answer FROM pg_sleep(0.5)', [], { idempotent: true });
    await waitUntilActive(pid);
    await terminate(pid);
    expect((await read).rows[0]!.answer).toBe(42);
    expect(d.service.stats.retriedOnReconnect).toBe(1);
  });

  it('a read-only transaction is resent; a writing one is not', async () => {
    const d = db();
    const pid = await backendPid(d);
    const readOnly = d.transaction(
      async (tx) => (await tx.query('SELECT 7 AS n FROM pg_sleep(0.5)')).rows[0].n,
      {
        readOnly: true,
      },
    );
    await waitUntilActive(pid);
    await terminate(pid);
    expect(await readOnly).toBe(7);
  });

  it('asks for credentials on every connect and runs setup before queued requests', async () => {
    const credentials = vi.fn(async () => ({ user: config.user }));
    const setup = vi.fn(async (client: pg.Client) => {
      await client.query(`SET application_name = 'towerline-${credentials.mock.calls.length}'`);
    });
    const d = db({ credentials, setup });
    const pid = await backendPid(d);
    await terminate(pid);
    await waitFor(() => expect(d.reconnector.state).not.toBe('connected'));
    const queued = d.query<{ application_name: string }>('SHOW application_name', [], {
      idempotent: true,
    });
    expect((await queued).rows[0]!.application_name).toBe('towerline-2');
    expect(credentials).toHaveBeenCalledTimes(2);
  });

  it('a pool spreads requests and survives losing one connection', async () => {
    const pool = new ResilientPgPool({ client: config, size: 3, policy: backoff.fixed(20) });
    closers.push(pool);
    // Requests go to connected connections only: wait for all three, so that they spread.
    await Promise.all(pool.connections.map((c) => c.reconnector.whenReady()));
    const pids = new Set<number>();
    for (let i = 0; i < 9; i++) {
      pids.add(
        (await pool.query('SELECT pg_backend_pid() AS pid', [], { idempotent: true })).rows[0]!.pid,
      );
    }
    expect(pids.size).toBeGreaterThan(1);
    await terminate([...pids][0]!);
    const results = await Promise.all(
      Array.from({ length: 9 }, () => pool.query('SELECT 1 AS one', [], { idempotent: true })),
    );
    expect(results.every((r) => r.rows[0]!.one === 1)).toBe(true);
  });

  it('17. abort: an aborted signal inserts nothing; one aborted in flight rejects at once and is cancelled', async () => {
    const d = db();
    const stack = pgQueries(new ServiceBuilder().layer(new RetryLayer()).service(d));
    const reason = new Error('caller gave up');
    await expect(
      stack.query(`INSERT INTO ${table} (note) VALUES ('aborted')`, [], {
        signal: AbortSignal.abort(reason),
      }),
    ).rejects.toBe(reason);
    await expect(
      d.call(
        { text: `INSERT INTO ${table} (note) VALUES ('aborted')` },
        { signal: AbortSignal.abort(reason) },
      ),
    ).rejects.toBe(reason);
    const pid = await backendPid(d);
    const ac = new AbortController();
    const ctx = new RequestContext({ signal: ac.signal });
    const slow = d.call(
      { text: `INSERT INTO ${table} (note) SELECT 'aborted' FROM pg_sleep(30)` },
      ctx,
    );
    await waitUntilActive(pid);
    ac.abort(reason);
    await expect(slow).rejects.toBe(reason);
    expect(ctx.mayHaveExecuted).toBe(true);
    // The server cancels the statement: the connection is free again long before 30 s.
    await waitFor(async () => {
      const r = await admin.query<{ state: string }>(
        'SELECT state FROM pg_stat_activity WHERE pid = $1',
        [pid],
      );
      expect(r.rows[0]?.state).toBe('idle');
    });
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM ${table} WHERE note = 'aborted'`,
    );
    expect(rows[0].n).toBe(0);
    expect(d.reconnector.state).toBe('connected');
  });

  it('a transaction cut before COMMIT did not run: it waits for the next connection', async () => {
    const d = db();
    const pid = await backendPid(d);
    let runs = 0;
    const tx = d.transaction(async (client) => {
      runs++;
      await client.query(`INSERT INTO ${table} (note) VALUES ('tx-once')`);
      if (runs === 1) await client.query('SELECT pg_sleep(2)');
      return runs;
    });
    await waitUntilActive(pid);
    await terminate(pid);
    expect(await tx).toBe(2);
    expect(d.service.stats).toMatchObject({ requeued: 1, mayHaveExecuted: 0 });
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM ${table} WHERE note = 'tx-once'`,
    );
    expect(rows[0].n).toBe(1);
  });

  it("no statement lands inside another request's transaction", async () => {
    const d = db();
    // A read-only statement runs in its own READ ONLY transaction; a write beside it is not caught in it.
    const [read, write] = await Promise.allSettled([
      d.query('SELECT pg_sleep(0.2)', [], { readOnly: true }),
      d.query(`INSERT INTO ${table} (note) VALUES ('beside a read')`),
    ]);
    expect(read.status).toBe('fulfilled');
    expect(write.status).toBe('fulfilled');
    // A transaction that rolls back takes none of another request's acknowledged writes with it.
    const tx = d.transaction(async (client) => {
      await client.query(`INSERT INTO ${table} (note) VALUES ('rolled back')`);
      await new Promise((r) => setTimeout(r, 100));
      throw new Error('rollback please');
    });
    const other = d.query(`INSERT INTO ${table} (note) VALUES ('kept')`);
    await expect(tx).rejects.toThrow('rollback please');
    expect((await other).rowCount).toBe(1);
    const { rows } = await admin.query(
      `SELECT note FROM ${table} WHERE note IN ('kept', 'rolled back', 'beside a read') ORDER BY note`,
    );
    expect(rows.map((r) => r.note)).toEqual(['beside a read', 'kept']);
  });

  it('a definitive answer (a syntax error) is not retried: the caller gets the SQL error itself', async () => {
    const d = db();
    const retry = new RetryLayer();
    const retried = vi.fn();
    retry.events.on('retry', retried);
    const stack = pgQueries(new ServiceBuilder().layer(retry).service(d));
    await expect(stack.query('SELEC 1')).rejects.toMatchObject({ code: '42601' });
    expect(retried).not.toHaveBeenCalled();
  });

  it('a malformed request is ERR_INVALID_ARGUMENT at once, through a default RetryLayer, never retried', async () => {
    const d = db();
    const retry = new RetryLayer();
    const retried = vi.fn();
    retry.events.on('retry', retried);
    const stack = new ServiceBuilder().layer(retry).service(d);
    const facade = pgQueries(stack);
    const refusals: Array<[string, () => Promise<unknown>]> = [
      ['text', () => facade.query(null as never)],
      ['text', () => facade.query(5 as never)],
      ['values', () => facade.query('SELECT $1::int', 5 as never)],
      ['run', () => facade.transaction(5 as never)],
      ['options', () => facade.query('SELECT 1', [], null as never)],
      // The raw service, bypassing the facade: refused before it is sent.
      ['request', () => stack.call(null as never)],
      ['text', () => stack.call({ text: 42 } as never)],
      ['run', () => stack.call({ kind: 'transaction', run: 'secret-sql' } as never)],
    ];
    for (const [parameter, run] of refusals) {
      const error = await run().then(
        () => undefined,
        (e: unknown) => e as { code?: string; parameter?: string; message: string },
      );
      expect(error?.code, parameter).toBe('ERR_INVALID_ARGUMENT');
      expect(error?.parameter).toBe(parameter);
      expect(error?.message).not.toContain('secret');
    }
    expect(retried).not.toHaveBeenCalled();
    // The connection is still fine.
    expect((await facade.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n).toBe(1);
  });

  it("an error the transaction's body throws rolls it back and runs it once, through a default RetryLayer", async () => {
    const d = db();
    const stack = pgQueries(new ServiceBuilder().layer(new RetryLayer()).service(d));
    let runs = 0;
    const refused = new Error('not enough credit');
    await expect(
      stack.transaction(async (tx) => {
        runs++;
        await tx.query(`INSERT INTO ${table} (note) VALUES ('body threw')`);
        throw refused;
      }),
    ).rejects.toBe(refused);
    expect(runs).toBe(1);
    const { rows } = await admin.query(`SELECT 1 FROM ${table} WHERE note = 'body threw'`);
    expect(rows).toEqual([]);
    // A serialization failure inside the body is still worth another run of the transaction.
    let tries = 0;
    const value = await stack.transaction(async () => {
      tries++;
      if (tries === 1)
        throw Object.assign(new Error('could not serialize access'), { code: '40001' });
      return 'second time';
    });
    expect([value, tries]).toEqual(['second time', 2]);
  });
});
