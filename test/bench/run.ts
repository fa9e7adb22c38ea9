/**
 * `pnpm bench [suite[:case,…]...]`: runs the named suites of test/bench (all when none is named), prints
 * each table and writes `.bench/<suite>.json`.
 */
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureBuilt } from './built.js';
import { printReport, type SuiteReport, writeReport } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
// On a shared machine, ask the scheduler to favour the measuring process (allowed as root, or
// with CAP_SYS_NICE; otherwise it runs at normal priority): fewer preemptions, steadier ratios.
try {
  setPriority(-10);
} catch {
  // Not permitted here: measure at normal priority.
}
const available = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .sort();
// `suite:case,case` runs only those cases of a suite that has cases (durable-streams).
const args = process.argv.slice(2).filter((a) => a !== '--');
const cases = new Map(args.map((a) => [a.split(':')[0]!, a.split(':')[1]?.split(',')]));
const wanted = [...cases.keys()];
const unknown = wanted.filter((w) => !available.includes(w));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}
ensureBuilt(join(here, '..', '..'));
for (const suite of wanted.length ? wanted : available) {
  const mod = (await import(pathToFileURL(join(here, `${suite}.bench.ts`)).href)) as {
    default: (cases?: string[]) => Promise<SuiteReport>;
  };
  const report = await mod.default(cases.get(suite));
  printReport(report);
  console.log(`wrote ${writeReport(report)}`);
}
