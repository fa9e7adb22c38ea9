/**
 * The deterministic case of issue 10: an INSERT whose reply is lost. 200 ms of latency each
 * way in a FaultProxy; the backend is terminated 300 ms into the call, after the INSERT has
 * committed (checked from a direct admin connection) and while its reply still sits in the
 * proxy's latency queue. Through the default `RetryLayer` + `resilientPg` stack the call must
 * reject with ERR_CONNECTION_LOST, `mayHaveExecuted: true`, without a second attempt, and the
 * table must hold exactly the one row the first attempt committed.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { RequestContext } from '@towerline/core';
import { FaultProxy } from '@towerline/testing';
import { afterEach, expect, it } from 'vitest';
import { pgRig } from './pg-rig.js';
import { leftBehind, liveHandles, sleep } from './support.js';

const LATENCY_MS = 200;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Connects through `port` and collects every byte until the socket closes. */
async function collect(port: number): Promise<{ bytes: number }> {
  const socket: Socket = createConnection({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let bytes = 0;
  socket.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  await once(socket, 'close');
  return { bytes };
}

it('precondition: FaultProxy drops what its latency queue still holds when the upstream closes', async () => {
  const handlesBefore = liveHandles();
  // One server answers and hangs up at once; the other answers and hangs up after 2 × latency.
  const hangUp = (delayMs: number) =>
    createServer((s) => {
      s.on('error', () => {});
      s.write('reply');
      if (delayMs === 0) s.end();
      else setTimeout(() => s.end(), delayMs);
    });
  const quick = hangUp(0);
  const slow = hangUp(2 * LATENCY_MS);
  for (const server of [quick, slow]) {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(async () => {
      server.close();
      await once(server, 'close');
    });
  }
  const port = (s: typeof quick) => (s.address() as { port: number }).port;
  const toQuick = await FaultProxy.start({ target: { port: port(quick) } });
  const toSlow = await FaultProxy.start({ target: { port: port(slow) } });
  cleanups.push(
    () => toQuick.close(),
    () => toSlow.close(),
  );
  toQuick.latency(LATENCY_MS);
  toSlow.latency(LATENCY_MS);

  const [lost, delivered] = await Promise.all([collect(toQuick.port), collect(toSlow.port)]);
  // The reply was still in the queue when the upstream closed: the client got nothing.
  expect(lost.bytes).toBe(0);
  expect(toQuick.stats.bytesDown).toBe(0);
  // Control: with the upstream still open when the delay ends, the reply is delivered.
  expect(delivered.bytes).toBe('reply'.length);
  for (const c of cleanups.splice(0).reverse()) await c();
  expect(await leftBehind(handlesBefore)).toEqual({});
});

it('an INSERT committed whose reply is lost: rejects ERR_CONNECTION_LOST, mayHaveExecuted, not retried; one row', async () => {
  const handlesBefore = liveHandles();
  const rig = await pgRig('lost', LATENCY_MS);
  cleanups.push(() => rig.close());
  const { admin, table, proxy, client, db } = rig;

  client.reconnector.start();
  await client.reconnector.whenReady();
  const count = async () =>
    (
      await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${table} WHERE req_id = 'only-once'`,
      )
    ).rows[0]!.n;

  const ctx = new RequestContext();
  const downBefore = proxy.stats.bytesDown;
  const t0 = performance.now();
  let downAtRejection = -1;
  let rejectedAfterMs = -1;
  const insert = db
    .with(ctx)
    .query(`INSERT INTO ${table} (req_id) VALUES ($1)`, ['only-once'])
    .then(
      () => undefined,
      (error: unknown) => {
        downAtRejection = proxy.stats.bytesDown;
        rejectedAfterMs = performance.now() - t0;
        return error;
      },
    );

  // 300 ms in: the statement reached PostgreSQL at ~200 ms and committed; its reply is held
  // in the proxy until ~400 ms. Confirm the commit (a loaded machine may run late), then kill.
  await sleep(Math.max(0, 300 - (performance.now() - t0)));
  let committed = (await count()) === 1;
  for (let i = 0; !committed && i < 100 && performance.now() - t0 < 2_000; i++) {
    await sleep(5);
    committed = (await count()) === 1;
  }
  const killedAtMs = performance.now() - t0;
  const terminated = await rig.terminate();
  const error = await insert;

  // The stack reconnects; a statement through it afterwards proves the connection is back and
  // nothing was queued for a second run of the INSERT.
  await client.reconnector.whenReady();
  await db.query('SELECT 1', [], { readOnly: true });
  const rowsAfter = await count();
  console.log(
    `composition pg lost reply: ${terminated} termination at ${Math.round(killedAtMs)} ms ` +
      `(committed before it: ${committed}), rejected at ${Math.round(rejectedAfterMs)} ms with ` +
      `${(error as { code?: string })?.code} mayHaveExecuted=${(error as { mayHaveExecuted?: boolean })?.mayHaveExecuted}, ` +
      `attempts ${ctx.attempts}, retries ${rig.retries}, resent ${client.service.stats.retriedOnReconnect}, ` +
      `reply bytes delivered ${downAtRejection - downBefore}, rows ${rowsAfter}, ` +
      `reconnects ${client.reconnector.stats.reconnects}`,
  );

  expect(committed).toBe(true);
  expect(terminated).toBe(1);
  expect(error).toMatchObject({ code: 'ERR_CONNECTION_LOST', mayHaveExecuted: true });
  expect(ctx.mayHaveExecuted).toBe(true);
  // The reply never reached the client: the proxy dropped it with the connection.
  expect(downAtRejection - downBefore).toBe(0);
  // Not retried, not resent: one attempt in all.
  expect(ctx.attempts).toBe(1);
  expect(rig.retries).toBe(0);
  expect(client.service.stats).toMatchObject({ retriedOnReconnect: 0, mayHaveExecuted: 1 });
  // Exactly one row: the first (and only) attempt committed before its backend was terminated
  // (checked above), and nothing ran it again. "At most one" is the guarantee; "exactly one"
  // is what this schedule makes happen.
  expect(rowsAfter).toBe(1);
  expect(client.reconnector.stats.reconnects).toBe(1);

  for (const c of cleanups.splice(0).reverse()) await c();
  expect(await leftBehind(handlesBefore)).toEqual({});
});
