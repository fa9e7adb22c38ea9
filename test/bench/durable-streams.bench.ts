import { fanout } from './ds-fanout.js';
import { APPENDS, type HistoryRow, history, WARM } from './ds-history.js';
import { type Drive, drive, ServerProcess } from './ds-process.js';
import type { CaseResult, SuiteReport } from './harness.js';

const SERVERS = ['towerline', 'reference', 'node:http floor'] as const;
type Who = (typeof SERVERS)[number];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * Append and catch-up read throughput of our server, the reference Node server
 * (`@durable-streams/server`) and bare node:http (the floor), all in memory mode, each in its
 * own process, loaded in turn (rotating order) by a load generator in another process.
 */
async function capacity(): Promise<SuiteReport> {
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

const MODES = ['memory', 'file-fast', 'file-durable', 'acid'] as const;

/**
 * Append throughput of each storage mode against memory mode, each server in its own process
 * (a fresh data directory), 16 connections, rounds in rotating order; the ratio is the median
 * of the per-round ratios to memory mode, so a disk or a neighbour slowing down hits both.
 */
async function storageModes(results: CaseResult[], notes: Record<string, unknown>): Promise<void> {
  const servers = new Map<string, ServerProcess>();
  for (const m of MODES)
    servers.set(m, await ServerProcess.start(m === 'memory' ? 'towerline' : `towerline:${m}`));
  const runs = new Map<string, Array<Drive & { group: number }>>(MODES.map((m) => [m, []]));
  try {
    const url = (m: string) => `${servers.get(m)!.url}/v1/stream/append`;
    for (const m of MODES) await drive(servers.get(m)!, url(m), 'POST', 1_500); // warm-up
    for (let i = 0; i < 6; i++) {
      const order = [...MODES.slice(i % 4), ...MODES.slice(0, i % 4)];
      for (const m of order) {
        const s = servers.get(m)!;
        const before = await s.sample();
        const d = await drive(s, url(m), 'POST', 1_000);
        const after = await s.sample();
        const batches = after.batches - before.batches;
        runs
          .get(m)!
          .push({ ...d, group: batches ? (after.records - before.records) / batches : 1 });
      }
    }
  } finally {
    for (const s of servers.values()) await s.stop();
  }
  const memory = runs.get('memory')!;
  console.log(
    '\n## durable-streams: append throughput per storage mode, 16 clients, 100-byte bodies',
  );
  console.log(
    `${'mode'.padEnd(14)} ${'req/s'.padStart(7)}  ${'vs memory'.padStart(9)}  ${'CPU/req'.padStart(9)}  group`,
  );
  for (const m of MODES) {
    const r = runs.get(m)!;
    const ratio = +median(r.map((x, k) => x.rps / memory[k]!.rps)).toFixed(3);
    const rps = Math.round(median(r.map((x) => x.rps)));
    const cpuUs = +median(r.map((x) => x.cpuUs)).toFixed(2);
    const group = +median(r.map((x) => x.group)).toFixed(1);
    results.push({
      case: `append (${m})`,
      nsPerOp: cpuUs * 1000,
      opsPerSecond: rps,
      vsMemory: ratio,
      groupSize: group,
    });
    notes[`append throughput, ${m} ÷ memory (target >= 0.5 for file-durable and acid)`] = ratio;
    console.log(
      `${m.padEnd(14)} ${String(rps).padStart(7)}  ${`${ratio.toFixed(2)}×`.padStart(9)}  ${`${cpuUs} µs`.padStart(9)}  ${group}`,
    );
  }
}

/** 10^6 appends per mode: RSS, memory per append, start time after kill -9 and after a close. */
async function historyAtSize(results: CaseResult[], notes: Record<string, unknown>): Promise<void> {
  const rows: HistoryRow[] = [];
  for (const m of MODES) rows.push(await history(m));
  console.log(
    `\n## durable-streams: ${APPENDS.toLocaleString('en')} appends of 100 bytes (after ${WARM.toLocaleString('en')}), 100 streams`,
  );
  console.log(
    `${'mode'.padEnd(14)} ${'appends/s'.padStart(10)} ${'RSS'.padStart(9)} ${'B/append'.padStart(9)} ${'index B'.padStart(8)}  ${'start after kill -9'.padStart(30)}  ${'start after close'.padStart(17)}`,
  );
  for (const r of rows) {
    const killed =
      r.startAfterKillMs === undefined
        ? '— (memory: nothing persisted)'
        : `${r.startAfterKillMs} ms, ${r.batchesReplayed} batches, ${r.rssAfterStartMB} MB`;
    const closed = r.startAfterCloseMs === undefined ? '—' : `${r.startAfterCloseMs} ms`;
    console.log(
      `${r.mode.padEnd(14)} ${String(r.appendsPerSecond).padStart(10)} ${`${r.rssMB} MB`.padStart(9)} ${String(r.bytesPerAppend).padStart(9)} ${String(r.indexBytesPerAppend).padStart(8)}  ${killed.padStart(30)}  ${closed.padStart(17)}`,
    );
    results.push({ case: `history (${r.mode})`, nsPerOp: 1e9 / r.appendsPerSecond, ...r });
    notes[`memory per append beyond the bounded caches, ${r.mode} (target <= 64 B)`] =
      r.bytesPerAppend;
    if (r.startAfterKillMs !== undefined)
      notes[`start after ${APPENDS} appends and kill -9, ${r.mode} (ms)`] = r.startAfterKillMs;
  }
}

export async function storageModesOnly(): Promise<SuiteReport> {
  const results: CaseResult[] = [];
  const notes: Record<string, unknown> = {};
  await storageModes(results, notes);
  return { suite: 'zz-modes', results, notes };
}

const CASES = ['capacity', 'modes', 'history', 'fanout'] as const;

/**
 * Every case, or those named (`pnpm bench durable-streams:fanout`, or
 * `DS_BENCH_CASES=fanout,modes pnpm bench durable-streams`).
 */
export default async function durableStreams(cases?: string[]): Promise<SuiteReport> {
  const env = process.env.DS_BENCH_CASES?.split(',').filter(Boolean);
  const wanted = new Set(cases?.length ? cases : env?.length ? env : CASES);
  const unknown = [...wanted].filter((c) => !(CASES as readonly string[]).includes(c));
  if (unknown.length)
    throw new Error(`unknown durable-streams case(s) ${unknown.join(', ')}: ${CASES.join(', ')}`);
  const report: SuiteReport = wanted.has('capacity')
    ? await capacity()
    : { suite: 'durable-streams', results: [], notes: {} };
  const notes = report.notes ?? {};
  if (wanted.has('modes')) await storageModes(report.results, notes);
  if (wanted.has('history')) await historyAtSize(report.results, notes);
  if (wanted.has('fanout')) await fanout(report.results, notes);
  return { ...report, notes };
}
