import { execFile, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { CaseResult, SuiteReport } from './harness.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, 'calls.mjs');
/** Calls counted per case: two runs, `FEW` and `MANY` calls after the same warm-up. */
const FEW = 50_000;
const MANY = 150_000;

/** The instructions one run of `calls.mjs` executes, all threads (V8 runs single-threaded). */
async function instructions(name: string, calls: number): Promise<number> {
  const { stderr } = await run(
    'valgrind',
    [
      '--tool=callgrind',
      '--callgrind-out-file=/dev/null',
      process.execPath,
      '--single-threaded',
      script,
      name,
      String(calls),
    ],
    { cwd: here, maxBuffer: 16 * 1024 * 1024 },
  );
  const m = /Collected : (\d+)/.exec(stderr);
  if (!m) throw new Error(`callgrind printed no count for ${name}: ${stderr.slice(-400)}`);
  return Number(m[1]);
}

/** Instructions per call of one case: the difference of two runs, over the calls between. */
async function perCall(name: string): Promise<number> {
  const [few, many] = await Promise.all([instructions(name, FEW), instructions(name, MANY)]);
  return (many - few) / (MANY - FEW);
}

/**
 * The happy-path cases of the `overhead` and `reconnect` suites counted in CPU instructions
 * (valgrind's callgrind, V8 with `--single-threaded` so that its compiler and garbage collector
 * run on the counted thread), not timed: the machine's other load does not move a count, where
 * the timed ratios of those suites move by 0.2–0.3 on a shared machine. `bare` is counted first
 * and last to show the spread that is left (the JIT's tiering still varies a little). It is not
 * a time: a cache miss or a stall counts as one instruction, so it complements the timed suites
 * and does not replace them.
 */
export default async function instructionsSuite(): Promise<SuiteReport> {
  const probe = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) throw new Error('the instructions suite needs valgrind on the PATH');
  const list = spawnSync(process.execPath, [script, '--list'], { encoding: 'utf8', cwd: here });
  if (list.status !== 0) throw new Error(`calls.mjs --list failed: ${list.stderr}`);
  const names = list.stdout.trim().split('\n');
  const counts = new Map<string, number>();
  const bareFirst = await perCall('bare');
  for (const name of names) {
    if (name === 'bare') continue;
    counts.set(name, await perCall(name));
    console.log(`  ${name}: ${counts.get(name)!.toFixed(0)} instructions per call`);
  }
  const bareLast = await perCall('bare');
  const bare = (bareFirst + bareLast) / 2;
  counts.set('bare', bare);
  const ratio = (name: string) => counts.get(name)! / bare;
  const results: CaseResult[] = names.map((name) => ({
    case: name,
    nsPerOp: Number.NaN,
    instructions: Math.round(counts.get(name)!),
    ratio: ratio(name),
  }));
  const fixed = (x: number) => +x.toFixed(3);
  return {
    suite: 'instructions',
    baseline: 'bare',
    results,
    notes: {
      'bare: instructions per call, first and last': [Math.round(bareFirst), Math.round(bareLast)],
      'towerline-retry / bare (timed target <= 1.6)': fixed(ratio('towerline-retry')),
      'towerline-breaker / bare (timed target <= 1.6)': fixed(ratio('towerline-breaker')),
      'towerline-timeout / bare (timed target <= 2.0)': fixed(ratio('towerline-timeout')),
      'towerline-timeout-optimistic / bare (timed target <= 1.3)': fixed(
        ratio('towerline-timeout-optimistic'),
      ),
      'towerline-retry+breaker+timeout / bare (timed target <= 3.0)': fixed(
        ratio('towerline-retry+breaker+timeout'),
      ),
      'towerline-reconnect / bare (timed target <= 1.6)': fixed(ratio('towerline-reconnect')),
      'retry+reconnect / bare (timed target <= 2.0)': fixed(ratio('retry+reconnect')),
      'one-reaction / bare (the floor of retry and breaker)': fixed(ratio('one-reaction')),
      'own-promise-hop / bare (the floor of an exact timeout)': fixed(ratio('own-promise-hop')),
      'towerline-retry / cockatiel-retry': fixed(
        ratio('towerline-retry') / ratio('cockatiel-retry'),
      ),
      'towerline stack / cockatiel stack': +(
        ratio('towerline-retry+breaker+timeout') / ratio('cockatiel-retry+breaker+timeout')
      ).toFixed(4),
    },
  };
}
