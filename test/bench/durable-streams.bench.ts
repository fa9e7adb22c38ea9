import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DurableStreamTestServer } from '@durable-streams/server';
import { startDurableStreamsServer } from '@towerline/durable-streams';
import type { CaseResult, SuiteReport } from './harness.js';

const loadScript = join(dirname(fileURLToPath(import.meta.url)), 'ds-load.mjs');

/** Runs the load generator in a child process (16 clients): requests per second. */
async function drive(urlTemplate: string, method: 'GET' | 'POST', ms: number): Promise<number> {
  const child = spawn(process.execPath, [loadScript, urlTemplate, method, '16', String(ms)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await once(child, 'exit');
  return (JSON.parse(out) as { opsPerSecond: number }).opsPerSecond;
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
    const runs = { towerline: [] as number[], reference: [] as number[] };
    for (const base of Object.values(servers)) await drive(url(base), method, 500); // warm-up
    for (let i = 0; i < 6; i++) {
      const order =
        i % 2 ? (['reference', 'towerline'] as const) : (['towerline', 'reference'] as const);
      for (const who of order) runs[who].push(await drive(url(servers[who]), method, 1_000));
    }
    const ratios = runs.towerline.map((t, i) => t / runs.reference[i]!);
    for (const who of ['towerline', 'reference'] as const) {
      const opsPerSecond = median(runs[who]);
      results.push({
        case: `${name}: ${who}`,
        nsPerOp: 1e9 / opsPerSecond,
        opsPerSecond: Math.round(opsPerSecond),
      });
    }
    notes[`${name}: towerline / reference (target >= 1.5)`] = +median(ratios).toFixed(3);
  }
  await ours.close();
  await reference.stop();
  console.log('\n## durable-streams: requests/s, 16 clients in a separate process, memory mode');
  for (const r of results)
    console.log(`${r.case.padEnd(36)} ${String(r.opsPerSecond).padStart(7)} req/s`);
  return { suite: 'durable-streams', results, notes };
}
