import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaseResult, SuiteReport } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const loadScript = join(here, 'ds-load.mjs');
const serverScript = join(here, 'ds-server.ts');

const SERVERS = ['towerline', 'reference', 'node:http floor'] as const;
type Who = (typeof SERVERS)[number];

interface Drive {
  /** Requests per second the load generator saw. */
  rps: number;
  /** CPU time the server's process spent per request, in µs. */
  cpuUs: number;
}

/** A bench server in its own process (test/bench/ds-server.ts). */
class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(kind: string): Promise<ServerProcess> {
    const child = fork(serverScript, [kind], {
      execArgv: ['--conditions=source', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [m] = (await once(child, 'message')) as [{ url: string }];
    return new ServerProcess(child, m.url);
  }

  /** The server process's CPU time so far, µs. */
  async cpu(): Promise<number> {
    this.child.send('cpu');
    const [m] = (await once(this.child, 'message')) as [{ cpu: NodeJS.CpuUsage }];
    return m.cpu.user + m.cpu.system;
  }

  async stop(): Promise<void> {
    const exited = once(this.child, 'exit');
    this.child.send('stop');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Loads one server from the load generator's own process (16 connections) and reads the server
 * process's CPU time before and after: its CPU time per request is the capacity figure,
 * independent of how fast the load generator can go on a two-core machine.
 */
async function drive(
  server: ServerProcess,
  url: string,
  method: 'GET' | 'POST',
  ms: number,
): Promise<Drive> {
  const child = spawn(process.execPath, [loadScript, url, method, '16', String(ms)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const cpu0 = await server.cpu();
  await once(child, 'exit');
  const cpu = (await server.cpu()) - cpu0;
  const r = JSON.parse(out) as { opsPerSecond: number; total: number; errors: number };
  if (r.errors > 0) throw new Error(`load generator saw ${r.errors} errors`);
  return { rps: r.opsPerSecond, cpuUs: cpu / r.total };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * Append and catch-up read throughput of our server, the reference Node server
 * (`@durable-streams/server`) and bare node:http (the floor), all in memory mode, each in its
 * own process, loaded in turn (rotating order) by a load generator in another process.
 */
export default async function durableStreams(): Promise<SuiteReport> {
  const servers = {} as Record<Who, ServerProcess>;
  servers.towerline = await ServerProcess.start('towerline');
  servers.reference = await ServerProcess.start('reference');
  servers['node:http floor'] = await ServerProcess.start('floor');
  const cases: Array<[string, (base: string) => string, 'GET' | 'POST']> = [
    ['append', (base) => `${base}/v1/stream/append`, 'POST'],
    ['catch-up read (100 KB)', (base) => `${base}/v1/stream/read?offset=-1`, 'GET'],
  ];
  const results: CaseResult[] = [];
  const notes: Record<string, unknown> = {};
  try {
    for (const [name, url, method] of cases) {
      const runs = Object.fromEntries(SERVERS.map((w) => [w, [] as Drive[]])) as Record<
        Who,
        Drive[]
      >;
      for (const who of SERVERS) await drive(servers[who], url(servers[who].url), method, 2_000); // warm-up (JIT)
      for (let i = 0; i < 6; i++) {
        const order = [...SERVERS.slice(i % 3), ...SERVERS.slice(0, i % 3)];
        for (const who of order)
          runs[who].push(await drive(servers[who], url(servers[who].url), method, 1_000));
      }
      for (const who of SERVERS) {
        const cpuUs = median(runs[who].map((r) => r.cpuUs));
        results.push({
          case: `${name}: ${who}`,
          nsPerOp: cpuUs * 1000,
          opsPerSecond: Math.round(median(runs[who].map((r) => r.rps))),
          serverCpuUsPerRequest: +cpuUs.toFixed(2),
        });
      }
      const ratio = (f: (t: Drive, r: Drive) => number) =>
        +median(runs.towerline.map((t, i) => f(t, runs.reference[i]!))).toFixed(3);
      notes[`${name}: capacity, reference CPU/request ÷ ours (target >= 1.5)`] = ratio(
        (t, r) => r.cpuUs / t.cpuUs,
      );
      notes[`${name}: req/s ours ÷ reference (bounded by the load generator)`] = ratio(
        (t, r) => t.rps / r.rps,
      );
    }
  } finally {
    for (const s of Object.values(servers)) await s.stop();
  }
  console.log('\n## durable-streams: memory mode, each server in its own process, 16 clients');
  console.log(`${'case'.padEnd(42)} ${'req/s'.padStart(7)}  server CPU/request`);
  for (const r of results)
    console.log(
      `${r.case.padEnd(42)} ${String(r.opsPerSecond).padStart(7)}  ${String(r.serverCpuUsPerRequest).padStart(8)} µs`,
    );
  return { suite: 'durable-streams', results, notes };
}
