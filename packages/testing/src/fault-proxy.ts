import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { describeValue, invalidArgument } from '@towerline/core';

export interface FaultProxyOptions {
  /** The real server. */
  target: { host?: string; port: number };
  /** Port to listen on, on 127.0.0.1. Default 0 (ephemeral). */
  port?: number;
}

export interface FaultProxyStats {
  /** Client connections accepted in all. */
  accepted: number;
  /** Client connections open now. */
  active: number;
  /** Bytes forwarded client → server. */
  bytesUp: number;
  /** Bytes forwarded server → client. */
  bytesDown: number;
  /** Connections reset by `reset()` or `refuse()`. */
  resets: number;
}

type Mode = 'pass' | 'blackhole' | 'stall';

interface Link {
  client: Socket;
  upstream: Socket | undefined;
  /** Chunks held while the link stalls its greeting; flushed on restore. */
  held: Array<{ to: 'up' | 'down'; chunk: Buffer }>;
  /** Delayed chunks each way, in arrival order; one timer drains each queue in order. */
  delayed: { up: Delayed[]; down: Delayed[] };
}

interface Delayed {
  due: number;
  chunk: Buffer;
}

/**
 * A TCP proxy on 127.0.0.1 between a client and a real server, with faults on demand:
 *
 * - `reset()`: RST every connection, both sides; new connections are still accepted.
 * - `blackhole()`: connections stay open and new ones are accepted, but no byte is forwarded
 *   either way (no FIN, no RST) until `restore()` — a peer that accepts and never answers.
 * - `stallGreeting()`: new connections are accepted but not connected upstream, so a server
 *   that speaks first never does; existing connections keep working.
 * - `latency(ms)`: every chunk is delayed by `ms`, in order, both ways.
 * - `refuse()`: stop listening (ECONNREFUSED) and reset every connection; `restore()` listens
 *   again on the same port.
 * - `restore()`: clears every fault.
 *
 * @example
 * ```ts
 * await using proxy = await FaultProxy.start({ target: { port: server.port } });
 * const client = await LineClient.connect({ port: proxy.port });
 * proxy.reset(); // the client sees ECONNRESET
 * ```
 */
export class FaultProxy {
  readonly target: { host: string; port: number };
  readonly #links = new Set<Link>();
  #server: Server | undefined;
  #port: number;
  #mode: Mode = 'pass';
  #latency = 0;
  #closed = false;
  readonly #stats: FaultProxyStats = {
    accepted: 0,
    active: 0,
    bytesUp: 0,
    bytesDown: 0,
    resets: 0,
  };
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #waiters: Array<{ count: number; resolve: () => void }> = [];

  private constructor(options: FaultProxyOptions) {
    if (!options?.target || !(options.target.port > 0))
      invalidArgument('target', 'expected { port }');
    this.target = { host: options.target.host ?? '127.0.0.1', port: options.target.port };
    this.#port = options.port ?? 0;
  }

  /** Starts a proxy listening on 127.0.0.1. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await proxy.#listen();
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  get address(): { host: string; port: number } {
    return { host: '127.0.0.1', port: this.#port };
  }

  get stats(): Readonly<FaultProxyStats> {
    return { ...this.#stats, active: this.#links.size };
  }

  /** Client connections open now. */
  get connections(): number {
    return this.#links.size;
  }

  /** Resolves once `count` connections have been accepted in all (or rejects after `timeout`). */
  waitForConnections(count: number, { timeout = 5_000 } = {}): Promise<void> {
    if (this.#stats.accepted >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new Error(`only ${this.#stats.accepted} of ${count} connections within ${timeout} ms`),
        );
      }, timeout);
      const waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** RSTs every open connection on both sides. */
  reset(): void {
    for (const link of [...this.#links]) this.#reset(link);
  }

  /** Keeps connections open but forwards nothing, until `restore()`. */
  blackhole(): void {
    this.#mode = 'blackhole';
  }

  /** New connections are accepted but never reach the server, until `restore()`. */
  stallGreeting(): void {
    this.#mode = 'stall';
  }

  /** Delays every chunk by `ms`, both ways. */
  latency(ms: number): void {
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms))
      invalidArgument('ms', `expected >= 0, got ${describeValue(ms)}`);
    this.#latency = ms;
  }

  /** Stops listening and resets every connection; `restore()` listens again on the same port. */
  async refuse(): Promise<void> {
    this.reset();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.close();
      await once(server, 'close');
    }
  }

  /** Clears every fault; listens again if refused. Stalled connections are connected now. */
  async restore(): Promise<void> {
    this.#mode = 'pass';
    this.#latency = 0;
    for (const link of this.#links) if (!link.upstream) this.#connectUpstream(link);
    if (!this.#server && !this.#closed) await this.#listen();
  }

  /** Closes the listener and every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const link of [...this.#links]) {
      link.client.destroy();
      link.upstream?.destroy();
    }
    this.#links.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.close();
      await once(server, 'close');
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #listen(): Promise<void> {
    const server = createServer((client) => this.#accept(client));
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  #accept(client: Socket): void {
    const link: Link = { client, upstream: undefined, held: [], delayed: { up: [], down: [] } };
    this.#links.add(link);
    this.#stats.accepted++;
    for (const w of this.#waiters.filter((w) => this.#stats.accepted >= w.count)) w.resolve();
    this.#waiters = this.#waiters.filter((w) => this.#stats.accepted < w.count);
    client.on('error', () => {});
    client.on('close', () => {
      this.#links.delete(link);
      link.upstream?.destroy();
    });
    client.on('data', (chunk: Buffer) => this.#forward(link, 'up', chunk));
    if (this.#mode !== 'stall') this.#connectUpstream(link);
  }

  #connectUpstream(link: Link): void {
    const upstream = createConnection(this.target);
    link.upstream = upstream;
    upstream.on('error', () => link.client.destroy());
    upstream.on('close', () => link.client.destroy());
    upstream.on('data', (chunk: Buffer) => this.#forward(link, 'down', chunk));
    for (const { to, chunk } of link.held.splice(0)) this.#forward(link, to, chunk);
  }

  #forward(link: Link, to: 'up' | 'down', chunk: Buffer): void {
    if (this.#mode === 'blackhole') return;
    if (to === 'up' && !link.upstream) {
      link.held.push({ to, chunk });
      return;
    }
    const queue = link.delayed[to];
    if (this.#latency === 0 && queue.length === 0) {
      this.#write(link, to, chunk);
      return;
    }
    // In order, whatever the latency was when the chunks before it were queued.
    const due = Math.max(performance.now() + this.#latency, queue.at(-1)?.due ?? 0);
    queue.push({ due, chunk });
    if (queue.length === 1) this.#drainLater(link, to);
  }

  #drainLater(link: Link, to: 'up' | 'down'): void {
    const queue = link.delayed[to];
    const head = queue[0];
    if (!head) return;
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        const now = performance.now();
        while (queue.length > 0 && queue[0]!.due <= now + 0.5) {
          this.#write(link, to, queue.shift()!.chunk);
        }
        this.#drainLater(link, to);
      },
      Math.max(0, head.due - performance.now()),
    );
    this.#timers.add(timer);
  }

  #write(link: Link, to: 'up' | 'down', chunk: Buffer): void {
    const socket = to === 'up' ? link.upstream : link.client;
    if (!socket || socket.destroyed) return;
    socket.write(chunk);
    if (to === 'up') this.#stats.bytesUp += chunk.length;
    else this.#stats.bytesDown += chunk.length;
  }

  #reset(link: Link): void {
    this.#stats.resets++;
    this.#links.delete(link);
    link.client.resetAndDestroy();
    if (link.upstream && !link.upstream.destroyed) link.upstream.resetAndDestroy();
  }
}
