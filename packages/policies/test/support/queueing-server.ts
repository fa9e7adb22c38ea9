import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Service } from '@towerline/core';

/**
 * A local HTTP server that serves like a processor-sharing queue with `workers` processors:
 * each request needs `serviceMs` of one processor's work, and `n` requests in the server share
 * `min(n, workers)` processors. Up to `workers` at once each takes `serviceMs`; beyond that
 * every one of them slows down in proportion (`serviceMs × n / workers`): its latency grows
 * with the concurrency it is given, its throughput does not. `failing` makes it answer 503 at
 * once.
 */
export class QueueingServer {
  failing = false;
  /** Requests that reached the handler (while failing too). */
  received = 0;
  readonly #server: Server;
  readonly #workers: number;
  readonly #serviceMs: number;
  readonly #active = new Set<{ left: number; done: () => void }>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #last = 0;

  private constructor(workers: number, serviceMs: number) {
    this.#workers = workers;
    this.#serviceMs = serviceMs;
    this.#server = createServer((req, res) => {
      this.received++;
      req.resume();
      if (this.failing) {
        res.writeHead(503).end();
        return;
      }
      this.#advance();
      this.#active.add({
        left: this.#serviceMs,
        done: () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'),
      });
      this.#timer ??= setInterval(() => this.#advance(), 1);
    });
  }

  /** Moves every request's work on by the time since the last step, shared out. */
  #advance(): void {
    const now = performance.now();
    const n = this.#active.size;
    if (n > 0) {
      const share = (now - this.#last) * Math.min(1, this.#workers / n);
      for (const r of this.#active) {
        r.left -= share;
        if (r.left <= 0) {
          this.#active.delete(r);
          r.done();
        }
      }
    }
    this.#last = now;
    if (this.#active.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  static async start(workers: number, serviceMs: number): Promise<QueueingServer> {
    const s = new QueueingServer(workers, serviceMs);
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** A GET against the server as a service; rejects with `{ status }` on a non-2xx answer. */
export function httpClient(port: number): Service<void, number> & { agent: Agent } {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  return {
    agent,
    call: (_req, ctx) =>
      new Promise<number>((resolve, reject) => {
        const r = request(
          { host: '127.0.0.1', port, path: '/', agent, signal: ctx?.signal },
          (res) => {
            res.resume();
            res.on('end', () => {
              const status = res.statusCode ?? 0;
              if (status >= 200 && status < 300) resolve(status);
              else reject(Object.assign(new Error(`HTTP ${status}`), { status }));
            });
          },
        );
        r.on('error', reject);
        r.end();
      }),
    close: async () => agent.destroy(),
  };
}
