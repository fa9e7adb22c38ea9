/** A bench server in its own process (test/bench/ds-server.ts), driven over IPC. */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childExecArgv } from './built.js';

const here = dirname(fileURLToPath(import.meta.url));
const serverScript = join(here, 'ds-server.ts');
const loadScript = join(here, 'ds-load.mjs');

export interface Drive {
  /** Requests per second the load generator saw. */
  rps: number;
  /** CPU time the server's process spent per request, in µs. */
  cpuUs: number;
}

export class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(kind: string): Promise<ServerProcess> {
    const child = fork(serverScript, [kind], {
      execArgv: [...childExecArgv, '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [m] = (await once(child, 'message')) as [{ url: string }];
    return new ServerProcess(child, m.url);
  }

  /** The server process's CPU time so far (µs), and its group-commit figures. */
  async cpu(): Promise<number> {
    return (await this.sample()).cpu;
  }

  async sample(): Promise<{ cpu: number; batches: number; records: number }> {
    this.child.send('cpu');
    const [m] = (await once(this.child, 'message')) as [
      { cpu: NodeJS.CpuUsage; commits: { batches: number; records: number } },
    ];
    return { cpu: m.cpu.user + m.cpu.system, ...m.commits };
  }

  /** The server process's RSS after a full collection, bytes. */
  async rss(): Promise<number> {
    this.child.send('rss');
    const [m] = (await once(this.child, 'message')) as [{ rss: number }];
    return m.rss;
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
export async function drive(
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
  const r = JSON.parse(out) as {
    opsPerSecond: number;
    total: number;
    errors: number;
    non2xx: number;
  };
  if (r.errors > 0 || r.non2xx > 0)
    throw new Error(`load generator saw ${r.errors} errors, ${r.non2xx} non-2xx answers`);
  return { rps: r.opsPerSecond, cpuUs: cpu / r.total };
}
