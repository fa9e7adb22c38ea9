import { ResilientRedis } from '@towerline/ioredis';
import { RedisServer } from '@towerline/testing';
import { Redis } from 'ioredis';
import type { CaseResult, SuiteReport } from './harness.js';

interface Client {
  set(key: string, value: string): Promise<unknown>;
  get(key: string): Promise<unknown>;
}

/** `concurrency` loops of SET then GET for `ms`; ops/s and latency percentiles. */
async function drive(client: Client, concurrency: number, ms: number) {
  const latencies: number[] = [];
  const until = performance.now() + ms;
  const loop = async (id: number) => {
    for (let n = 0; performance.now() < until; n++) {
      const key = `bench:${id}:${n & 1023}`;
      let t = performance.now();
      await client.set(key, 'value');
      latencies.push(performance.now() - t);
      t = performance.now();
      await client.get(key);
      latencies.push(performance.now() - t);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)));
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { opsPerSecond: (latencies.length * 1000) / elapsed, p50: q(0.5), p99: q(0.99) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * GET/SET throughput and latency through towerline (ResilientRedis: reconnect layer + ioredis)
 * and through raw ioredis, against the same local redis-server, alternating in rounds.
 */
export default async function redis(): Promise<SuiteReport> {
  const server = await RedisServer.start({ durable: false });
  const raw = new Redis({ port: server.port });
  const towerline = new ResilientRedis({ port: server.port });
  await raw.ping();
  await towerline.command('PING');
  const results: CaseResult[] = [];
  const notes: Record<string, unknown> = {};
  // Many short slices, alternating, so drift on a shared machine hits both sides alike.
  const rounds = 16;
  for (const concurrency of [1, 64]) {
    const runs = {
      raw: [] as Array<Awaited<ReturnType<typeof drive>>>,
      towerline: [] as Array<Awaited<ReturnType<typeof drive>>>,
    };
    await drive(raw, concurrency, 500); // warm-up
    await drive(towerline, concurrency, 500);
    for (let i = 0; i < rounds; i++) {
      // Alternate who goes first, so neither always meets a warmer server.
      const order = i % 2 ? (['towerline', 'raw'] as const) : (['raw', 'towerline'] as const);
      for (const name of order)
        runs[name].push(await drive(name === 'raw' ? raw : towerline, concurrency, 500));
    }
    const ratios = runs.towerline.map((t, i) => t.opsPerSecond / runs.raw[i]!.opsPerSecond);
    for (const name of ['raw', 'towerline'] as const) {
      const ops = median(runs[name].map((r) => r.opsPerSecond));
      results.push({
        case: `${name === 'raw' ? 'raw ioredis' : 'towerline'} c=${concurrency}`,
        nsPerOp: 1e9 / ops,
        opsPerSecond: Math.round(ops),
        p50Ms: +median(runs[name].map((r) => r.p50)).toFixed(3),
        p99Ms: +median(runs[name].map((r) => r.p99)).toFixed(3),
      });
    }
    notes[`throughput towerline / raw at concurrency ${concurrency} (target >= 0.97)`] =
      +median(ratios).toFixed(3);
  }
  raw.disconnect();
  await towerline.close();
  await server.close();
  console.log('\n## redis: ops/s and latency');
  for (const r of results) {
    console.log(
      `${r.case.padEnd(18)} ${String(r.opsPerSecond).padStart(7)} ops/s   p50 ${r.p50Ms} ms   p99 ${r.p99Ms} ms`,
    );
  }
  return { suite: 'redis', results, notes };
}
