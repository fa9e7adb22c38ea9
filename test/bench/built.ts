import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The newest modification time under `dir`, in ms (0 when it does not exist). */
function newest(dir: string): number {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return latest;
}

/**
 * The benches measure what a user installs: each package's built `dist` (tsup's output), not
 * the TypeScript sources through tsx (whose `keepNames` wraps every named closure in a call
 * that costs more than a bare call). Builds the packages whose sources are newer than their
 * build, or that have none, before any suite imports them. `--conditions=source` on the
 * command line measures the sources instead, with no build.
 */
export function ensureBuilt(root: string): void {
  if (process.execArgv.includes('--conditions=source')) return;
  const packages = join(root, 'packages');
  const stale = readdirSync(packages).filter((name) => {
    const dir = join(packages, name);
    if (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'src'))) return false;
    const built = existsSync(join(dir, 'dist', 'index.js'))
      ? statSync(join(dir, 'dist', 'index.js')).mtimeMs
      : 0;
    return built < newest(join(dir, 'src'));
  });
  if (stale.length === 0) return;
  console.log(`building ${stale.join(', ')} (sources newer than dist)`);
  const filters = stale.flatMap((name) => ['--filter', `./packages/${name}`]);
  const r = spawnSync('pnpm', ['-s', ...filters, 'run', 'build'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`build failed (exit ${r.status})`);
}

/** The flags a bench's child process needs to run what its parent measures (sources or dist). */
export const childExecArgv: string[] = process.execArgv.includes('--conditions=source')
  ? ['--conditions=source', '--import', 'tsx']
  : ['--import', 'tsx'];
