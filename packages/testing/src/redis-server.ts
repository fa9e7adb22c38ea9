import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisServerOptions {
  /** Port on 127.0.0.1; default a free one. Kept across kill()/start(). */
  port?: number;
  /**
   * Persist every write before acknowledging it (`appendonly yes`, `appendfsync always`), so an
   * acknowledged write survives `kill()`. Default true.
   */
  durable?: boolean;
  /** The `redis-server` binary. Default `redis-server` on the PATH. */
  binary?: string;
}

/** Resolves once `port` accepts a `PING`, or rejects after `timeoutMs`. */
async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 1_000; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.setTimeout(500);
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

/**
 * A private `redis-server` for chaos tests: its own port and data directory, `kill()` with
 * SIGKILL (a crash) and `start()` again on the same port and data. Never touches a shared
 * server.
 */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  readonly #durable: boolean;
  readonly #binary: string;
  #child: ChildProcess | undefined;
  /** Times the server was started. */
  starts = 0;

  private constructor(port: number, options: RedisServerOptions) {
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), 'towerline-redis-'));
    this.#durable = options.durable ?? true;
    this.#binary = options.binary ?? 'redis-server';
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(options.port ?? (await freePort()), options);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts (again) on the same port and data directory; resolves when it answers PING. */
  async start(): Promise<void> {
    if (this.#child) return;
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      '--loglevel',
      'warning',
      ...(this.#durable
        ? ['--appendonly', 'yes', '--appendfsync', 'always']
        : ['--appendonly', 'no']),
    ];
    const child = spawn(this.#binary, args, { stdio: 'ignore' });
    this.#child = child;
    this.starts++;
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    try {
      await waitForPing(this.port, 10_000);
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  /** SIGKILL: the server vanishes mid-whatever, as in a crash. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** Kills the server and removes its data. */
  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
