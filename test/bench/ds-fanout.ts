/**
 * The fan-out case of the durable-streams bench: many live SSE readers on one stream, our
 * server beside the reference Node server (`@durable-streams/server`) in the same run, memory
 * mode. Three kinds of process: each server in its own (ds-server.ts), the readers in another
 * (ds-readers.mjs: raw sockets, a parser that only counts bytes or scans for stamps), and the
 * load generator in a third (autocannon for throughput, ds-pace.mjs for a fixed rate).
 *
 * - appends/s (16 connections, 100-byte bodies) with 0, 100 and 1,000 readers at
 *   `offset=now&live=sse`, rounds in turn, "kept" = the median of per-round ratios to 0 readers;
 * - delivery latency (append sent → reader parsed it) at 200/s × 100 and 100/s × 1,000 readers,
 *   every reader checked to see every append once, in order; beside the append latency;
 * - RSS per idle live connection with 10,000 open (after full collections, both servers).
 *
 * The reader process's CPU is sampled in every phase and printed: it stays well under one core,
 * so the readers are not what limits the figures. Run alone with `pnpm bench durable-streams:fanout`.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { drive, ServerProcess } from './ds-process.js';
import type { CaseResult } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const WHO = ['towerline', 'reference'] as const;
type Who = (typeof WHO)[number];
const READERS = [0, 100, 1_000];
const ROUNDS = 3;
const DRIVE_MS = 2_000;
const PACE_MS = 8_000;
const IDLE = 10_000;

interface ReaderReport {
  readers: number;
  bytes: number;
  minEvents: number;
  maxEvents: number;
  outOfOrder: number;
  closed: number;
  latency: { n: number; p50: number | null; p99: number | null; max: number | null };
  cpu: NodeJS.CpuUsage;
  loopDelayMs: { p99: number; max: number };
}

/** The reader process. */
class Readers {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<Readers> {
    const child = fork(join(here, 'ds-readers.mjs'), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await once(child, 'message');
    return new Readers(child);
  }

  /** One request to the reader process; a process that dies meanwhile fails the bench. */
  async #ask<T>(m: unknown): Promise<T> {
    this.child.send(m as never);
    const ac = new AbortController();
    const reply = once(this.child, 'message', { signal: ac.signal });
    const exited = once(this.child, 'exit', { signal: ac.signal }).then(([code, signal]) => {
      throw new Error(`the reader process exited (${code ?? signal}) before it replied`);
    });
    // The one that loses the race is rejected by the abort below: nobody is waiting for it.
    reply.catch(() => {});
    exited.catch(() => {});
    try {
      const [answer] = (await Promise.race([reply, exited])) as [T];
      return answer;
    } finally {
      ac.abort();
    }
  }

  async open(url: string, n: number): Promise<number> {
    if (n === 0) return 0;
    const u = new URL(url);
    const r = await this.#ask<{ opened: number; failed: number; error?: string }>({
      open: {
        host: u.hostname,
        port: Number(u.port),
        path: `${u.pathname}?offset=now&live=sse`,
        n,
      },
    });
    if (r.failed > 0)
      console.warn(
        `  ${r.failed} of ${n} readers failed to open (${r.error}); measuring ${r.opened}`,
      );
    return r.opened;
  }

  /** Starts a measurement; returns the CPU time so far. */
  async mode(mode: 'count' | 'latency'): Promise<NodeJS.CpuUsage> {
    return (await this.#ask<{ cpu: NodeJS.CpuUsage }>({ mode })).cpu;
  }

  report(): Promise<ReaderReport> {
    return this.#ask('report');
  }

  async close(): Promise<void> {
    await this.#ask('close');
  }

  async stop(): Promise<void> {
    const exited = once(this.child, 'exit');
    this.child.kill();
    await exited;
  }
}

/** Share of one core the reader process used between two samples. */
const cpuShare = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage, ms: number) =>
  (b.user + b.system - a.user - a.system) / 1000 / ms;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
let streamNo = 0;

async function freshStream(server: ServerProcess): Promise<string> {
  const url = `${server.url}/v1/stream/fanout-${streamNo++}`;
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
  if (res.status !== 201) throw new Error(`PUT ${url}: ${res.status}`);
  return url;
}

async function pace(url: string, rate: number, ms: number) {
  const child = spawn(
    process.execPath,
    [join(here, 'ds-pace.mjs'), url, String(rate), String(ms)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await once(child, 'exit');
  return JSON.parse(out) as { sent: number; errors: number; p50: number; p99: number };
}

interface Row {
  rps: Record<number, number[]>;
  /** Server CPU per append, µs. */
  cpu: Record<number, number[]>;
  capacityKept: Record<number, number[]>;
  kept: Record<number, number[]>;
  latency: Record<
    string,
    {
      p50: number;
      p99: number;
      appendP99: number;
      delivered: string;
      readerCpu: number;
      readerLoopP99: number;
    }
  >;
  rssPerConnection: number;
  idleOpened: number;
  readerCpu: number[];
  readerLoopP99: number[];
}

export async function fanout(results: CaseResult[], notes: Record<string, unknown>): Promise<void> {
  const servers = {} as Record<Who, ServerProcess>;
  for (const w of WHO) servers[w] = await ServerProcess.start(w);
  const readers = await Readers.start();
  let floor: ServerProcess | undefined;
  let floorRss = Number.NaN;
  const rows = Object.fromEntries(
    WHO.map((w) => [
      w,
      {
        rps: Object.fromEntries(READERS.map((n) => [n, []])),
        cpu: Object.fromEntries(READERS.map((n) => [n, []])),
        capacityKept: Object.fromEntries(READERS.map((n) => [n, []])),
        kept: Object.fromEntries(READERS.map((n) => [n, []])),
        latency: {},
        rssPerConnection: 0,
        idleOpened: 0,
        readerCpu: [],
        readerLoopP99: [],
      } as Row,
    ]),
  ) as Record<Who, Row>;
  try {
    // 1. Append throughput with 0, 100 and 1,000 readers.
    for (const w of WHO) await drive(servers[w], await freshStream(servers[w]), 'POST', 1_000); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const w of round % 2 ? [...WHO].reverse() : WHO) {
        const row = rows[w];
        for (const n of READERS) {
          const url = await freshStream(servers[w]);
          await readers.open(url, n);
          const c0 = await readers.mode('count');
          const t0 = performance.now();
          const d = await drive(servers[w], url, 'POST', DRIVE_MS);
          const r = await readers.report();
          if (n > 0) {
            row.readerCpu.push(cpuShare(c0, r.cpu, performance.now() - t0));
            row.readerLoopP99.push(r.loopDelayMs.p99);
          }
          await readers.close();
          row.rps[n]!.push(d.rps);
          row.kept[n]!.push(d.rps / row.rps[0]![round]!);
          row.cpu[n]!.push(d.cpuUs);
          row.capacityKept[n]!.push(row.cpu[0]![round]! / d.cpuUs);
        }
      }
    }
    // 2. Delivery latency at a fixed rate, every event checked.
    for (const [rate, n] of [
      [200, 100],
      [100, 1_000],
    ] as const) {
      for (const w of WHO) {
        const url = await freshStream(servers[w]);
        const opened = await readers.open(url, n);
        const c0 = await readers.mode('latency');
        const t0 = performance.now();
        const p = await pace(url, rate, PACE_MS);
        await new Promise((r) => setTimeout(r, 500)); // the last events in flight
        const r = await readers.report();
        const readerCpu = cpuShare(c0, r.cpu, performance.now() - t0);
        rows[w].readerCpu.push(readerCpu);
        rows[w].readerLoopP99.push(r.loopDelayMs.p99);
        await readers.close();
        const all =
          p.errors === 0 && opened === n && r.minEvents === p.sent && r.maxEvents === p.sent;
        rows[w].latency[`${rate}x${n}`] = {
          p50: r.latency.p50 ?? Number.NaN,
          p99: r.latency.p99 ?? Number.NaN,
          appendP99: p.p99,
          readerCpu,
          readerLoopP99: r.loopDelayMs.p99,
          delivered:
            all && r.outOfOrder === 0
              ? 'all, in order'
              : `min ${r.minEvents}/${p.sent} per reader, ${r.outOfOrder} out of order, ${opened}/${n} open, ${r.closed} closed`,
        };
      }
    }
    // 3. RSS per idle live connection, and what bare node:http holds for one (the floor).
    floor = await ServerProcess.start('floor');
    for (const w of [...WHO, 'floor'] as const) {
      const server = w === 'floor' ? floor : servers[w];
      const url = await freshStream(server);
      const before = await server.rss();
      const opened = await readers.open(url, IDLE);
      await new Promise((r) => setTimeout(r, 1_000));
      const after = await server.rss();
      await readers.close();
      const perConnection = opened ? (after - before) / opened : Number.NaN;
      if (w === 'floor') floorRss = perConnection;
      else {
        rows[w].idleOpened = opened;
        rows[w].rssPerConnection = perConnection;
      }
    }
  } finally {
    await floor?.stop();
    await readers.stop();
    for (const s of Object.values(servers)) await s.stop();
  }
  report(rows, floorRss, results, notes);
}

function report(
  rows: Record<Who, Row>,
  floorRss: number,
  results: CaseResult[],
  notes: Record<string, unknown>,
) {
  const pct = (x: number) => `${Math.round(x * 100)} %`;
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const lines: Array<[string, (r: Row) => string]> = [
    ...READERS.map(
      (n) =>
        [
          `appends/s, ${n.toLocaleString('en')} SSE readers`,
          (r: Row) =>
            `${Math.round(median(r.rps[n]!))}${n ? ` (${pct(median(r.kept[n]!))} kept)` : ''}`,
        ] as [string, (r: Row) => string],
    ),
    ...READERS.map(
      (n) =>
        [
          `server CPU per append, ${n.toLocaleString('en')} readers`,
          (r: Row) =>
            `${median(r.cpu[n]!).toFixed(1)} µs${n ? ` (${pct(median(r.capacityKept[n]!))} kept)` : ''}`,
        ] as [string, (r: Row) => string],
    ),
    ...['200x100', '100x1000'].flatMap((k) => {
      const [rate, n] = k.split('x');
      const label = `${rate}/s × ${Number(n).toLocaleString('en')} readers`;
      return [
        [
          `delivery p50 / p99, ${label}`,
          (r: Row) => `${ms(r.latency[k]!.p50)} / ${ms(r.latency[k]!.p99)}`,
        ],
        [`append p99, ${label}`, (r: Row) => ms(r.latency[k]!.appendP99)],
        [`delivered, ${label}`, (r: Row) => r.latency[k]!.delivered],
        [
          `reader process CPU / loop delay p99, ${label}`,
          (r: Row) => `${pct(r.latency[k]!.readerCpu)} / ${ms(r.latency[k]!.readerLoopP99)}`,
        ],
      ] as Array<[string, (r: Row) => string]>;
    }),
    [
      `RSS per idle SSE connection (${IDLE.toLocaleString('en')})`,
      (r) => `${(r.rssPerConnection / 1024).toFixed(2)} KB (${r.idleOpened} open)`,
    ],
    ['reader process CPU, max over all phases', (r) => pct(Math.max(...r.readerCpu))],
    ['reader process loop delay p99, max over all phases', (r) => ms(Math.max(...r.readerLoopP99))],
  ];
  console.log(
    '\n## durable-streams: fan-out, memory mode (server, readers, load generator: 3 processes)',
  );
  const w0 = Math.max(...lines.map(([l]) => l.length));
  const cells = lines.map(([l, f]) => [l, f(rows.towerline), f(rows.reference)] as const);
  const w1 = Math.max(9, ...cells.map((c) => c[1].length));
  console.log(`${'measure'.padEnd(w0)}  ${'towerline'.padEnd(w1)}  reference`);
  for (const [l, a, b] of cells) console.log(`${l.padEnd(w0)}  ${a.padEnd(w1)}  ${b}`);
  console.log(
    `(bare node:http holding the same SSE response open: ${(floorRss / 1024).toFixed(2)} KB per connection)`,
  );
  for (const w of WHO) {
    const r = rows[w];
    results.push({
      case: `fanout: ${w}`,
      nsPerOp: 1e9 / median(r.rps[0]!),
      appendsPerSecond: Object.fromEntries(READERS.map((n) => [n, Math.round(median(r.rps[n]!))])),
      kept: Object.fromEntries(READERS.map((n) => [n, +median(r.kept[n]!).toFixed(3)])),
      keptRange: Object.fromEntries(
        READERS.map((n) => [
          n,
          [Math.min(...r.kept[n]!), Math.max(...r.kept[n]!)].map((x) => +x.toFixed(3)),
        ]),
      ),
      serverCpuUsPerAppend: Object.fromEntries(
        READERS.map((n) => [n, +median(r.cpu[n]!).toFixed(2)]),
      ),
      latency: r.latency,
      rssPerIdleConnectionBytes: Math.round(r.rssPerConnection),
      readerCpuMax: +Math.max(...r.readerCpu).toFixed(3),
      readerLoopDelayP99MaxMs: +Math.max(...r.readerLoopP99).toFixed(2),
    });
  }
  const t = rows.towerline;
  notes['fanout: appends/s with 100 SSE readers ÷ none (target >= 0.5)'] = +median(
    t.kept[100]!,
  ).toFixed(3);
  notes['fanout: server CPU per append, none ÷ 100 SSE readers (capacity kept)'] = +median(
    t.capacityKept[100]!,
  ).toFixed(3);
  notes['fanout: delivery p99 − append p99 at 200/s × 100 readers, ms (target <= 5)'] = +(
    t.latency['200x100']!.p99 - t.latency['200x100']!.appendP99
  ).toFixed(2);
  notes['fanout: 100/s × 1,000 readers: delivered, p99 ms (target all, <= 50)'] = [
    t.latency['100x1000']!.delivered,
    +t.latency['100x1000']!.p99.toFixed(2),
  ];
  notes['fanout: RSS per idle SSE connection at 10,000, bytes (target <= 8192)'] = Math.round(
    t.rssPerConnection,
  );
  notes['fanout: RSS per idle SSE connection, bare node:http (the floor), bytes'] =
    Math.round(floorRss);
}
