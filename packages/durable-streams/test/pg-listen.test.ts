/**
 * The postgres store's `LISTEN` connection on its own, through a FaultProxy to the shared
 * PostgreSQL (never a restart of it): notifications reach the store; while the connection is
 * down the store is asked to catch up every second; once it is back, once more and no more
 * polls. Only a channel of its own is used: nothing to drop.
 */
import { ResilientPg } from '@towerline/pg';
import { FaultProxy } from '@towerline/testing';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { CONNECT_TIMEOUT_MS, PgListener, POLL_MS } from '../src/server/engine/pg-listen.js';

const PG_URL = process.env.TOWERLINE_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function until(ok: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!ok() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return ok();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the postgres LISTEN connection', () => {
  it('delivers notifications; while down, asks for a catch-up every poll; once back, once more and no more', {
    timeout: 30_000,
  }, async () => {
    const db = await FaultProxy.start({ target: { host: '127.0.0.1', port: 5432 } });
    cleanups.push(() => db.close());
    const direct = new pg.Client({ connectionString: PG_URL });
    await direct.connect();
    cleanups.push(() => direct.end());
    const channel = `ds_listen_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const notes: string[] = [];
    let catchUps = 0;
    let whileListening = 0;
    const listener = new PgListener(
      ResilientPg,
      `postgres://postgres@127.0.0.1:${db.port}/test`,
      channel,
      undefined,
    );
    cleanups.push(() => listener.close());
    listener.attach({
      noted: (payload) => notes.push(payload),
      catchUp: async () => {
        catchUps++;
        if (listener.listening) whileListening++;
      },
    });
    expect(await until(() => listener.listening, 5_000)).toBe(true);
    await direct.query('SELECT pg_notify($1, $2)', [channel, 'one']);
    expect(await until(() => notes.includes('one'), 5_000)).toBe(true);

    await db.refuse();
    expect(await until(() => !listener.listening, 5_000)).toBe(true);
    const down = catchUps;
    // Lost to the listener: the catch-ups are what stands in for it.
    await direct.query('SELECT pg_notify($1, $2)', [channel, 'two']);
    await sleep(3 * POLL_MS + 200);
    expect(catchUps - down).toBeGreaterThanOrEqual(2);

    await db.restore();
    // The capped backoff: back within a few seconds of the database, however long it was out.
    expect(await until(() => listener.listening, 4_000)).toBe(true);
    // LISTEN in place, the store re-read what it may have missed; and polls no more.
    expect(await until(() => whileListening > 1, 2_000)).toBe(true);
    const back = catchUps;
    await sleep(2 * POLL_MS + 200);
    expect(catchUps).toBe(back);
    expect(notes).not.toContain('two');
    await direct.query('SELECT pg_notify($1, $2)', [channel, 'three']);
    expect(await until(() => notes.includes('three'), 5_000)).toBe(true);
  });

  it('a link that went silent (blackholed: no FIN, no RST) is found by the heartbeat, and polling takes over', {
    timeout: 30_000,
  }, async () => {
    const db = await FaultProxy.start({ target: { host: '127.0.0.1', port: 5432 } });
    cleanups.push(() => db.close());
    const channel = `ds_listen_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    let catchUps = 0;
    const listener = new PgListener(
      ResilientPg,
      `postgres://postgres@127.0.0.1:${db.port}/test`,
      channel,
      undefined,
      300,
    );
    cleanups.push(() => listener.close());
    listener.attach({
      noted: () => {},
      catchUp: async () => {
        catchUps++;
      },
    });
    expect(await until(() => listener.listening, 5_000)).toBe(true);
    db.blackhole();
    // A ping every 300 ms, each given as long: lost within a second or so.
    expect(await until(() => !listener.listening, 5_000)).toBe(true);
    const down = catchUps;
    expect(await until(() => catchUps > down, 3 * POLL_MS)).toBe(true);
    await db.restore();
    // An attempt made into the silent link waits out its connect timeout first.
    expect(await until(() => listener.listening, CONNECT_TIMEOUT_MS + 3_000)).toBe(true);
  });
});
