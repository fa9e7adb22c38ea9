import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measure } from 'mitata';

/** One row of a suite's report; `nsPerOp` is the median over rounds of mitata's p50. */
export interface CaseResult {
  case: string;
  nsPerOp: number;
  /** nsPerOp divided by the suite's baseline case, when it has one. */
  ratio?: number;
  [extra: string]: unknown;
}

export interface SuiteReport {
  suite: string;
  baseline?: string;
  results: CaseResult[];
  /** Free-form figures a suite measures besides per-op time (herd peaks, recovery delays). */
  notes?: Record<string, unknown>;
}

export interface MicroCase {
  name: string;
  fn: () => unknown;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/**
 * Measures every case with mitata, round after round, rotating the order each round so that no
 * case always runs first or after the same neighbour. The first `warmup` rounds only let the JIT
 * settle. `nsPerOp` is the median of the per-round p50s.
 *
 * With a `baseline`, each case is measured back to back with its own measurement of the
 * baseline (which of the two goes first alternates by round), and `ratio` is the median of those
 * pairs' ratios: a noisy neighbour on a shared machine then slows both sides of a pair alike,
 * instead of skewing every ratio of a round through one baseline measured seconds away.
 */
export async function measureCases(
  cases: MicroCase[],
  {
    rounds = 7,
    warmup = 2,
    baseline,
    minCpuTimeMs = 150,
  }: { rounds?: number; warmup?: number; baseline?: string; minCpuTimeMs?: number } = {},
): Promise<CaseResult[]> {
  const p50s = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const ratios = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const base = baseline === undefined ? undefined : cases.find((c) => c.name === baseline);
  if (baseline !== undefined && base === undefined) throw new Error(`no case ${baseline}`);
  const run = async (c: MicroCase): Promise<number> =>
    (await measure(c.fn, { min_cpu_time: minCpuTimeMs * 1e6 } as never)).p50;
  for (let round = 0; round < warmup + rounds; round++) {
    const counted = round >= warmup;
    for (let i = 0; i < cases.length; i++) {
      const c = cases[(i + round) % cases.length]!;
      if (base === undefined || c === base) {
        const p50 = await run(c);
        if (counted) p50s.get(c.name)!.push(p50);
        continue;
      }
      const baseFirst = (round + i) % 2 === 0;
      const first = await run(baseFirst ? base : c);
      const second = await run(baseFirst ? c : base);
      const [b, own] = baseFirst ? [first, second] : [second, first];
      if (!counted) continue;
      p50s.get(c.name)!.push(own);
      p50s.get(base.name)!.push(b);
      ratios.get(c.name)!.push(own / b);
    }
  }
  if (base !== undefined) ratios.set(base.name, [1]);
  return cases.map((c) => {
    const r: CaseResult = { case: c.name, nsPerOp: median(p50s.get(c.name)!) };
    const rs = ratios.get(c.name)!;
    if (rs.length) {
      r.ratio = median(rs);
      r.ratioRange = [Math.min(...rs), Math.max(...rs)];
    }
    return r;
  });
}

/** Adds `ratio` to results measured without a per-round baseline. */
export function withRatios(results: CaseResult[], baseline?: string): CaseResult[] {
  const base = baseline ? results.find((r) => r.case === baseline)?.nsPerOp : undefined;
  if (!base) return results;
  return results.map((r) => ({ ...r, ratio: r.nsPerOp / base }));
}

const fmt = (n: number): string =>
  n >= 1e6
    ? `${(n / 1e6).toFixed(2)} ms`
    : n >= 1e3
      ? `${(n / 1e3).toFixed(2)} µs`
      : `${n.toFixed(1)} ns`;

/** Prints a suite's table: case, time per op, ratio to the baseline. */
export function printReport(report: SuiteReport): void {
  const counted = report.results.some((r) => typeof r.instructions === 'number');
  const rows = report.results.map((r) => [
    r.case,
    typeof r.instructions === 'number' ? String(r.instructions) : fmt(r.nsPerOp),
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    Array.isArray(r.ratioRange)
      ? `${(r.ratioRange[0] as number).toFixed(2)}–${(r.ratioRange[1] as number).toFixed(2)}×`
      : '',
  ]);
  const head = [
    'case',
    counted ? 'instructions/op' : 'time/op',
    report.baseline ? `vs ${report.baseline}` : '',
    'range',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(`\n## ${report.suite}`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  if (report.notes) {
    for (const [k, v] of Object.entries(report.notes)) console.log(`${k}: ${JSON.stringify(v)}`);
  }
}

export function writeReport(report: SuiteReport, dir = '.bench'): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${report.suite}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}
