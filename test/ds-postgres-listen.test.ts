/**
 * Durable Streams on PostgreSQL: a live reader on an instance whose `LISTEN` connection was
 * lost still gets every append made elsewhere meanwhile. The readers' instances reach the
 * shared PostgreSQL through a FaultProxy (never a restart of it); the writer's goes direct, so
 * its appends (and their NOTIFYs) are made while the readers' instances are cut off, and lost
 * to them. Each test has a schema of its own, dropped after.
 */
import {
  followStream,
  type RunningServer,
  startDurableStreamsServer,
} from '@towerline/durable-streams';
import { FaultProxy } from '@towerline/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, PG_URL, schemaName } from './support/pg-schema.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function server(url: string, schema: string): Promise<RunningServer> {
  const s = await startDurableStreamsServer({
    storage: 'postgres',
    postgresUrl: url,
    postgresSchema: schema,
    longPollTimeoutMs: 2_000,
  });
  cleanups.push(() => s.close());
  return s;
}

/** An SSE reader from the start: what it has received so far, line by line. */
function reader(url: string) {
  const r = followStream(url, { live: 'sse' });
  const lines: string[] = [];
  const reading = (async () => {
    let text = '';
    for await (const b of r) {
      text += Buffer.from(b.data).toString();
      const parts = text.split('\n');
      text = parts.pop()!;
      lines.push(...parts);
    }
  })();
  cleanups.push(async () => {
    await r.close();
    await reading.catch(() => {});
  });
  return lines;
}

/** Waits (polling, bounded) until `ok()` or `ms` pass; answers `ok()`. */
async function until(ok: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!ok() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
  return ok();
}

const post = (url: string, body: string) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body }).then(
    (r) => r.status,
  );

describe('durable streams on postgres: a lost LISTEN connection', () => {
  it('readers whose instance was cut off get the appends made meanwhile, soon after the database is back', {
    timeout: 60_000,
  }, async () => {
    const schema = schemaName('ds_listen');
    cleanups.push(() => dropSchema(schema));
    const db = await FaultProxy.start({ target: { host: '127.0.0.1', port: 5432 } });
    cleanups.push(() => db.close());
    const viaProxy = `postgres://postgres@127.0.0.1:${db.port}/test`;
    // Three reader instances: each one's reconnection is a draw of its own backoff.
    const readers = [
      await server(viaProxy, schema),
      await server(viaProxy, schema),
      await server(viaProxy, schema),
    ];
    const writer = await server(PG_URL, schema);
    const path = '/v1/stream/listen';
    expect(
      (
        await fetch(`${writer.url}${path}`, {
          method: 'PUT',
          headers: { 'content-type': 'text/plain' },
        })
      ).status,
    ).toBe(201);
    const seen = readers.map((r) => reader(`${r.url}${path}`));
    // Live across instances before the cut.
    expect(await post(`${writer.url}${path}`, 'before\n')).toBe(204);
    expect(await until(() => seen.every((s) => s.includes('before')), 5_000)).toBe(true);
    // Cut off long enough for a reconnect backoff to grow; the append's NOTIFY reaches none.
    await db.refuse();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await post(`${writer.url}${path}`, 'during\n')).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    await db.restore();
    // Within a few seconds of the database being back, every reader has it (no new append,
    // no NOTIFY: the instance itself must notice it may have missed one).
    const got = await until(() => seen.every((s) => s.includes('during')), 3_000);
    expect(
      seen.map((s) => s.includes('during')),
      'each reader got the append made during the outage',
    ).toEqual([true, true, true]);
    expect(got).toBe(true);
  });
});
