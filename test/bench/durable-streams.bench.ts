import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DurableStreamTestServer } from '@durable-streams/server';
import { startDurableStreamsServer } from '@towerline/durable-streams';
import type { CaseResult, SuiteReport } from './harness.js';

const loadScript = join(dirname(fileURLToPath(import.meta.url)), 'ds-load.mjs');

interface Drive {
  /** Requests per second the load generator saw. */
  rps: number;
  /** CPU time this process (the servers' process) spent per request, in µs. */
  cpuUs: number;
}

/**
 * Runs the load generator in a child process (16 clients). The servers live in this process and
 * nothing else runs here meanwhile, so this process's CPU time per request is the server's cost
 * per request: the capacity figure, independent of how fast the load generator can go.
 */
async function drive(urlTemplate: string, method: 'GET' | 'POST', ms: number): Promise<Drive> {
  const child = spawn(process.execPath, [loadScript, urlTemplate, method, '16', String(ms)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const cpu0 = process.cpuUsage();
  await once(child, 'exit');
  const cpu = process.cpuUsage(cpu0);
  const r = JSON.parse(out) as { opsPerSecond: number; total: number; errors: number };
  if (r.errors > 0) throw new Error(`load generator saw ${r.errors} errors`);
  return { rps: r.opsPerSecond, cpuUs: (cpu.user + cpu.system) / r.total };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * Append and catch-up read throughput of our server and the reference Node server
 * (`@durable-streams/server`), both in memory mode in this process, loaded in turn by a client
 * in a separate process (so the client's own cost does not mask the servers'), alternating.
 */
export default async function durableStreams(): Promise<SuiteReport> {
  const ours = await startDurableStreamsServer({ longPollTimeoutMs: 1_000 });
  const reference = new DurableStreamTestServer({
    port: 0,
    compression: false,
    longPollTimeout: 1_000,
  });
  await reference.start();
  const servers = { towerline: ours.url, reference: reference.url } as const;
  const body = 'x'.repeat(100);
  for (const base of Object.values(servers)) {
    for (let w = 0; w < 16; w++) {
      await fetch(`${base}/v1/stream/bench-${w}`, {
        method: 'PUT',
        headers: { 'content-type': 'text/plain' },
      });
    }
    await fetch(`${base}/v1/stream/read`, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
    });
    for (let i = 0; i < 1_000; i++) {
      await fetch(`${base}/v1/stream/read`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body,
      });
    }
  }
  const cases: Array<[string, (base: string) => string, 'GET' | 'POST']> = [
    ['append', (base) => `${base}/v1/stream/bench-0`, 'POST'],
    ['catch-up read (100 KB)', (base) => `${base}/v1/stream/read?offset=-1`, 'GET'],
  ];
  const results: CaseResult[] = [];
  const notes: Record<string, unknown> = {};
  for (const [name, url, method] of cases) {
    const runs = { towerline: [] as Drive[], reference: [] as Drive[] };
    for (const base of Object.values(servers)) await drive(url(base), method, 500); // warm-up
    for (let i = 0; i < 6; i++) {
      const order =
        i % 2 ? (['reference', 'towerline'] as const) : (['towerline', 'reference'] as const);
      for (const who of order) runs[who].push(await drive(url(servers[who]), method, 1_000));
    }
    const rpsRatios = runs.towerline.map((t, i) => t.rps / runs.reference[i]!.rps);
    const cpuRatios = runs.towerline.map((t, i) => runs.reference[i]!.cpuUs / t.cpuUs);
    for (const who of ['towerline', 'reference'] as const) {
      const opsPerSecond = median(runs[who].map((r) => r.rps));
      const cpuUs = median(runs[who].map((r) => r.cpuUs));
      results.push({
        case: `${name}: ${who}`,
        nsPerOp: cpuUs * 1000,
        opsPerSecond: Math.round(opsPerSecond),
        serverCpuUsPerRequest: +cpuUs.toFixed(2),
      });
    }
    notes[`${name}: capacity, reference CPU/request ÷ ours (target >= 1.5)`] =
      +median(cpuRatios).toFixed(3);
    notes[`${name}: req/s ours ÷ reference (bounded by the load generator)`] =
      +median(rpsRatios).toFixed(3);
  }
  await ours.close();
  await reference.stop();
  console.log('\n## durable-streams: memory mode, 16 clients in a separate process (autocannon)');
  console.log(`${'case'.padEnd(36)} ${'req/s'.padStart(7)}  server CPU/request`);
  for (const r of results)
    console.log(
      `${r.case.padEnd(36)} ${String(r.opsPerSecond).padStart(7)}  ${String(r.serverCpuUsPerRequest).padStart(8)} µs`,
    );
  return { suite: 'durable-streams', results, notes };
}
