/** Replicas of a fleet test as child processes (a fixture under tsx), each printing one JSON line. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export interface Replica<T> {
  child: ChildProcess;
  /** Resolves with the replica's JSON line once it exited 0. */
  result: Promise<T>;
}

export function replica<T>(fixture: string, options: object, timeoutMs = 60_000): Replica<T> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(fixtures, fixture)],
    {
      env: { ...process.env, FLEET_WORKER: JSON.stringify(options) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = once(child, 'exit').then(([code]) => {
    clearTimeout(timer);
    if (code !== 0) throw new Error(`${fixture} exited ${code}: ${err.slice(-2000)}`);
    return JSON.parse(out.trim().split('\n').at(-1)!) as T;
  });
  return { child, result };
}
