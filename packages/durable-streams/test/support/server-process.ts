/**
 * The server as a real process (the CLI under tsx), for tests that kill it: started with
 * `DS_*` variables, ready once it logs `listening`, its output kept for failure messages.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli.ts');

export interface ServerProcess {
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  kill9(): Promise<void>;
}

export function runServer(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--conditions=source', '--import', 'tsx', cli], {
    env: {
      ...process.env,
      DS_OBSERVABILITY__RUST_LOG: 'info',
      DS_OBSERVABILITY__REQUEST_LOG_LEVEL: 'off',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Everything a child prints, collected. */
function collect(child: ChildProcess): () => string {
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  return () => out;
}

export async function spawnServer(
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ServerProcess> {
  const child = runServer(env);
  const output = collect(child);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start: ${output()}`)),
      timeoutMs,
    );
    const check = () => {
      if (output().includes('"listening"')) {
        clearTimeout(timer);
        child.off('exit', exited);
        resolve();
      }
    };
    const exited = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${output()}`));
    };
    child.stdout!.on('data', check);
    child.once('exit', exited);
  });
  return {
    child,
    output,
    kill9: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs the server expecting it to fail at start; resolves with its exit code and output. */
export async function failingStart(
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const child = runServer(env);
  const output = collect(child);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, output: output() };
}
