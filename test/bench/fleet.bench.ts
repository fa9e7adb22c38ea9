/**
 * `pnpm bench fleet`: what sharing state across a fleet costs.
 * - Rate-limit decision latency (p50 and p99 of one `acquire`): the fleet limiter (one EVALSHA
 *   round trip to a redis-server of the bench's own), its refusal answered from the local
 *   over-limit cache, and a local GCRA limiter, side by side in the same run, rounds rotated.
 * - Durable Streams append throughput (16 connections per instance, 100-byte appends to one
 *   stream): memory mode, postgres with one instance, postgres with two instances on one
 *   schema, both appending to one stream (the row lock orders them) or each to its own.
 */
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backoff } from '@towerline/core';
import { FleetRateLimiter, GcraLimiter } from '@towerline/fleet';
import { ResilientRedis } from '@towerline/ioredis';
import { RedisServer } from '@towerline/testing';
import pg from 'pg';
import { childExecArgv } from './built.js';
import type { CaseResult, SuiteReport } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const PG_URL = process.env.DS_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

async function decisions(): Promise<CaseResult[]> {
  const server = await RedisServer.start({ durable: false });
  const redis = new ResilientRedis({
    port: server.port,
    policy: backoff.exponentialRandom({ initial: 20, max: 200, jitter: 'full' }),
  });
  redis.reconnector.start();
  await redis.reconnector.whenReady();
  const fleet = new FleetRateLimiter({
    redis,
    name: 'bench',
    limit: 1e9,
    burst: 1e9,
    expectedReplicas: 1,
  });
  const refused = new FleetRateLimiter({
    redis,
    name: 'bench-refused',
    limit: 1,
    burst: 1,
    periodMs: 3_600_000,
    expectedReplicas: 1,
  });
  await refused.acquire(1, undefined);
  await refused.acquire(1, undefined); // refused: remembered until due
  const local = new GcraLimiter({ limit: 1e9, burst: 1e9 });
  const cases: Array<[string, () => number | Promise<number>]> = [
    ['rate limit: local GCRA', () => local.acquire(1, undefined)],
    ['rate limit: fleet (Redis EVALSHA)', () => fleet.acquire(1, undefined)],
    [
      'rate limit: fleet, refusal from the local over-limit cache',
      () => refused.acquire(1, undefined),
    ],
  ];
  const samples = new Map<string, number[]>(cases.map(([n]) => [n, []]));
  const N = 2_000;
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < cases.length; i++) {
      const [name, fn] = cases[(i + round) % cases.length]!;
      const out = samples.get(name)!;
      for (let k = 0; k < N; k++) {
        const t0 = performance.now();
        const r = fn();
        if (typeof r !== 'number') await r;
        if (round > 0) out.push((performance.now() - t0) * 1e6);
      }
    }
  }
  await redis.close();
  await server.close();
  const base = median(samples.get(cases[0]![0])!);
  return cases.map(([name]) => {
    const xs = samples.get(name)!;
    return {
      case: name,
      nsPerOp: median(xs),
      ratio: median(xs) / base,
      p99Ns: Math.round(pct(xs, 99)),
      p99: `${(pct(xs, 99) / 1e3).toFixed(1)} µs`,
    };
  });
}

async function server(kind: string, schema: string) {
  const child = fork(join(here, 'ds-server.ts'), [kind], {
    execArgv: childExecArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, DS_BENCH_PG_URL: PG_URL, DS_BENCH_PG_SCHEMA: schema },
  });
  const [m] = (await once(child, 'message')) as [{ url: string }];
  return {
    url: m.url,
    stop: async () => {
      const exited = once(child, 'exit');
      child.send('stop');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function load(url: string, ms: number): Promise<number> {
  const child = spawn(
    process.execPath,
    [join(here, 'ds-load.mjs'), url, 'POST', '16', String(ms)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await once(child, 'exit');
  const r = JSON.parse(out) as { opsPerSecond: number; non2xx: number; errors: number };
  if (r.non2xx || r.errors) throw new Error(`appends failed: ${out}`);
  return r.opsPerSecond;
}

async function appends(): Promise<CaseResult[]> {
  const schema = `ds_bench_${process.pid}`;
  const setups = {
    'memory, 1 instance': ['towerline:memory'],
    'postgres, 1 instance': ['towerline:postgres'],
    'postgres, 2 instances, one stream': ['towerline:postgres', 'towerline:postgres'],
    'postgres, 2 instances, a stream each': ['towerline:postgres', 'towerline:postgres'],
  } as const;
  type Name = keyof typeof setups;
  const names = Object.keys(setups) as Name[];
  const runs = new Map<Name, number[]>(names.map((n) => [n, []]));
  try {
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length]!;
        const servers = [];
        for (const kind of setups[name]) servers.push(await server(kind, schema));
        const rates = await Promise.all(
          servers.map((s, k) =>
            load(
              `${s.url}/v1/stream/${name.endsWith('each') && k === 1 ? 'read' : 'append'}`,
              round === 0 ? 1_000 : 2_000,
            ),
          ),
        );
        for (const s of servers) await s.stop();
        if (round > 0) runs.get(name)!.push(rates.reduce((a, b) => a + b, 0));
      }
    }
  } finally {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
  }
  const base = median(runs.get(names[0]!)!);
  return names.map((name) => {
    const rps = median(runs.get(name)!);
    return {
      case: `ds appends: ${name}`,
      nsPerOp: 1e9 / rps,
      opsPerSecond: Math.round(rps),
      ratio: base / rps,
      range: runs.get(name)!.map(Math.round),
    };
  });
}

export default async function fleetBench(): Promise<SuiteReport> {
  const results = [...(await decisions()), ...(await appends())];
  return {
    suite: 'fleet',
    baseline: 'the first case of its group (local GCRA; memory mode)',
    results,
    notes: {
      p99: Object.fromEntries(results.filter((r) => r.p99).map((r) => [r.case, r.p99])),
      appendsPerSecond: Object.fromEntries(
        results.filter((r) => r.opsPerSecond).map((r) => [r.case, r.opsPerSecond]),
      ),
    },
  };
}
