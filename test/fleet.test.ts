/**
 * @towerline/fleet across processes, on a redis-server of the test's own: the fleet rate
 * limit's accuracy (and its fallback when Redis is killed mid-run), one half-open probe per
 * interval across the fleet, and a retry budget the fleet shares.
 */

import { once } from 'node:events';
import { createServer } from 'node:http';
import { backoff } from '@towerline/core';
import { FleetRetryBudget } from '@towerline/fleet';
import { ResilientRedis } from '@towerline/ioredis';
import type { RetryBudgetLike } from '@towerline/retry';
import { RedisServer } from '@towerline/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { replica } from './support/fleet-procs.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function redisServer(): Promise<RedisServer> {
  const server = await RedisServer.start({ durable: false });
  cleanups.push(() => server.close());
  return server;
}

type RateResult = { admitted: number[]; events: Array<{ at: number; event: string }> };
const LIMIT = 500;
const REPLICAS = 3;

async function rateRun(port: number, name: string, durationMs: number, kill?: () => Promise<void>) {
  const startAt = Date.now() + 4_000; // the replicas start (tsx) before the common start
  const replicas = Array.from({ length: REPLICAS }, () =>
    replica<RateResult>('fleet-rate-worker.ts', {
      port,
      startAt,
      durationMs,
      workers: 8,
      limit: LIMIT,
      replicas: REPLICAS,
      name,
    }),
  );
  for (const r of replicas) cleanups.push(async () => void r.child.kill('SIGKILL'));
  if (kill) {
    await new Promise((r) => setTimeout(r, startAt - Date.now() + 4_000));
    await kill();
  }
  return { startAt, results: await Promise.all(replicas.map((r) => r.result)) };
}

describe('fleet rate limit: 3 processes × 8 workers, one limit of 500/s', () => {
  it('admits 500/s ± 5 % over 10 s', { timeout: 60_000 }, async () => {
    const server = await redisServer();
    const { results } = await rateRun(server.port, 'accuracy', 10_000);
    const total = results.reduce((n, r) => n + r.admitted.length, 0);
    const rate = total / 10;
    console.log(
      `fleet rate limit: ${total} admitted in 10 s = ${rate.toFixed(1)}/s against ${LIMIT}/s (${(((rate - LIMIT) / LIMIT) * 100).toFixed(2)} %); per process ${results.map((r) => r.admitted.length).join(', ')}`,
    );
    expect(rate).toBeGreaterThanOrEqual(LIMIT * 0.95);
    expect(rate).toBeLessThanOrEqual(LIMIT * 1.05);
    for (const r of results) expect(r.events).toEqual([]);
  });

  it('Redis killed mid-run: each process falls back to its share and the run completes', {
    timeout: 60_000,
  }, async () => {
    const server = await redisServer();
    const killedAt: number[] = [];
    const { startAt, results } = await rateRun(server.port, 'fallback', 10_000, async () => {
      killedAt.push(Date.now());
      await server.kill();
    });
    const kill = killedAt[0]! - startAt;
    const share = LIMIT / REPLICAS;
    // From half a second after the kill (every replica has noticed) to the end.
    const from = kill + 500;
    const seconds = (10_000 - from) / 1000;
    const before = results.reduce((n, r) => n + r.admitted.filter((t) => t < kill).length, 0);
    const rates = results.map((r) => r.admitted.filter((t) => t >= from).length / seconds);
    console.log(
      `fleet rate limit, Redis killed at ${(kill / 1000).toFixed(1)} s: before ${(before / (kill / 1000)).toFixed(1)}/s fleet-wide; after, per process ${rates.map((x) => x.toFixed(1)).join(', ')}/s against a share of ${share.toFixed(1)}/s`,
    );
    for (const r of results) {
      expect(r.events.some((e) => e.event === 'fallback')).toBe(true);
    }
    for (const x of rates) {
      expect(x).toBeLessThanOrEqual(share * 1.05 + 10 / seconds);
      expect(x).toBeGreaterThan(share * 0.5);
    }
  });
});

describe('shared breaker: 3 processes against a backend failing for 5 s', () => {
  it('sends at most one probe per probe interval across the fleet while open', {
    timeout: 60_000,
  }, async () => {
    const server = await redisServer();
    const failForMs = 5_000;
    const probeIntervalMs = 500;
    const startAt = Date.now() + 4_000;
    const arrivals: number[] = [];
    const backend = createServer((_req, res) => {
      const at = Date.now() - startAt;
      arrivals.push(at);
      res.writeHead(at < failForMs ? 503 : 200).end();
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    cleanups.push(async () => {
      backend.closeAllConnections();
      backend.close();
    });
    const { port } = backend.address() as { port: number };
    type Out = {
      changes: Array<{ at: number; from: string; to: string }>;
      calls: number;
      final: string;
    };
    const replicas = Array.from({ length: 3 }, () =>
      replica<Out>('fleet-breaker-worker.ts', {
        port: server.port,
        backend: `http://127.0.0.1:${port}/`,
        startAt,
        durationMs: 8_000,
        workers: 4,
        probeIntervalMs,
        name: 'backend',
      }),
    );
    for (const r of replicas) cleanups.push(async () => void r.child.kill('SIGKILL'));
    const results = await Promise.all(replicas.map((r) => r.result));
    // The open period: from the moment every replica stopped sending (its breaker left closed)
    // until the backend came back.
    const openedAt = Math.max(
      ...results.map(
        (r) => r.changes.find((c) => c.from === 'closed')?.at ?? Number.POSITIVE_INFINITY,
      ),
    );
    expect(openedAt).toBeLessThan(failForMs);
    const during = arrivals.filter((t) => t > openedAt + 50 && t < failForMs);
    const gaps = during.slice(1).map((t, i) => t - during[i]!);
    const allowed = Math.floor((failForMs - openedAt) / probeIntervalMs) + 1;
    console.log(
      `shared breaker: open from ${openedAt} ms to ${failForMs} ms; ${during.length} probes reached the backend (at most ${allowed} allowed: one per ${probeIntervalMs} ms); smallest gap ${gaps.length ? Math.min(...gaps) : '-'} ms; requests before opening ${arrivals.filter((t) => t <= openedAt + 50).length}; final states ${results.map((r) => r.final).join(', ')}`,
    );
    expect(during.length).toBeGreaterThan(0);
    expect(during.length).toBeLessThanOrEqual(allowed);
    // Grants are probeIntervalMs apart in Redis; arrivals jitter by the box's scheduling.
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(probeIntervalMs * 0.8);
    // After the backend is back, a probe closes the fleet and every replica serves again.
    expect(arrivals.filter((t) => t >= failForMs + 1_500).length).toBeGreaterThan(10);
  });
});

describe('fleet retry budget', () => {
  it('three replicas share one reserve: fleet retries stay within percent + one reserve', {
    timeout: 30_000,
  }, async () => {
    const server = await redisServer();
    const clients = Array.from({ length: 3 }, () => {
      const redis = new ResilientRedis({
        port: server.port,
        policy: backoff.exponentialRandom({ initial: 20, max: 200, jitter: 'full' }),
      });
      redis.reconnector.start();
      cleanups.push(() => redis.close());
      return redis;
    });
    const budgets = clients.map(
      (redis) =>
        new FleetRetryBudget({
          redis,
          name: 'shared',
          expectedReplicas: 3,
          ttl: 2_000,
          flushMs: 100,
          minPerSecond: 10,
          retryPercent: 0.1,
        }),
    );
    for (const b of budgets) cleanups.push(async () => b.close());
    let fallbacks = 0;
    for (const b of budgets) b.events.on('fallback', () => fallbacks++);
    // RetryLayer's budget option takes it as it takes RetryBudget.
    const asLayerBudget: RetryBudgetLike = budgets[0]!;
    expect(typeof asLayerBudget.withdraw).toBe('function');
    await Promise.all(clients.map((c) => c.reconnector.whenReady()));
    await Promise.all(budgets.map((b) => b.flush()));
    let requests = 0;
    let retries = 0;
    // 1.5 s of traffic (within one ttl): 100 requests/s per replica, each wanting one retry.
    for (let tick = 0; tick < 30; tick++) {
      for (const b of budgets)
        for (let i = 0; i < 5; i++) {
          b.deposit();
          requests++;
          if (b.withdraw()) retries++;
        }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Fleet-wide: 10 % of the requests plus one reserve of 10/s × 2 s — not three reserves.
    const bound = requests * 0.1 + 10 * 2;
    console.log(
      `fleet retry budget: ${retries} retries for ${requests} requests (bound ${bound}, fallbacks ${fallbacks}; three local budgets would allow ${requests * 0.1 + 3 * 10 * 2})`,
    );
    expect(fallbacks).toBe(0);
    expect(retries).toBeLessThanOrEqual(bound);
    expect(retries).toBeGreaterThanOrEqual(requests * 0.1 * 0.8);
  });
});
