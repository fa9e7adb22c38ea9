import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';

export interface LineServerOptions {
  /** Port on 127.0.0.1; 0 picks one. Kept across stop()/start(). */
  port?: number;
  /** Send `HELLO towerline-line/1` on connect (default true), so clients can wait for it. */
  greeting?: boolean;
  /** The key-value data; pass the same Map to keep data across servers. */
  store?: Map<string, string>;
}

/** The greeting a {@link LineServer} sends first. */
export const LINE_GREETING = 'HELLO towerline-line/1';

/**
 * A tiny line-protocol server on 127.0.0.1 for tests that need a real peer but not Redis. One
 * request per line, one reply line per request, in order (pipelining works):
 * `PING` → `PONG`, `ECHO text` → `text`, `GET k` → value or `(nil)`, `SET k v` → `OK`,
 * `INCR k` → the new integer, `DEL k` → `1`/`0`, `SLEEP ms` → `OK` after ms, `QUIT` closes;
 * anything else → `ERR unknown command`.
 *
 * `stop()` closes the listener and drops every connection but keeps the data; `start()` listens
 * again on the same port — a server restart.
 */
export class LineServer {
  readonly store: Map<string, string>;
  readonly greeting: boolean;
  #server: Server | undefined;
  #port: number;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Connections accepted in all. */
  connections = 0;
  /** Commands answered in all. */
  commands = 0;
  /** The latest commands received (up to 10 000), oldest first, for order checks. */
  readonly history: string[] = [];

  private constructor(options: LineServerOptions) {
    this.store = options.store ?? new Map();
    this.greeting = options.greeting ?? true;
    this.#port = options.port ?? 0;
  }

  static async start(options: LineServerOptions = {}): Promise<LineServer> {
    const server = new LineServer(options);
    await server.start();
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get listening(): boolean {
    return this.#server !== undefined;
  }

  /** Connections open now. */
  get open(): number {
    return this.#sockets.size;
  }

  /** Listens (again) on the same port. */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((socket) => this.#serve(socket));
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stops listening and drops every connection (a crash, as the clients see it). */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.close();
      await once(server, 'close');
    }
  }

  /** Same as `stop()`; the data stays in `store`. */
  close(): Promise<void> {
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #serve(socket: Socket): void {
    this.connections++;
    this.#sockets.add(socket);
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
    if (this.greeting) socket.write(`${LINE_GREETING}\n`);
    let buffer = '';
    // Replies leave in request order even when a SLEEP is answered later than what follows it.
    let chain = Promise.resolve();
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let i = buffer.indexOf('\n'); i !== -1; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i).replace(/\r$/, '');
        buffer = buffer.slice(i + 1);
        const reply = this.#answer(line, socket);
        chain = chain.then(async () => {
          const text = await reply;
          if (text !== undefined && !socket.destroyed) socket.write(`${text}\n`);
        });
      }
    });
  }

  #answer(line: string, socket: Socket): string | Promise<string | undefined> | undefined {
    const [command = '', ...rest] = line.split(' ');
    const arg = rest.join(' ');
    this.commands++;
    this.history.push(line);
    if (this.history.length > 10_000) this.history.shift();
    switch (command.toUpperCase()) {
      case 'PING':
        return 'PONG';
      case 'ECHO':
        return arg;
      case 'GET':
        return this.store.get(arg) ?? '(nil)';
      case 'SET': {
        const [key = '', ...value] = rest;
        this.store.set(key, value.join(' '));
        return 'OK';
      }
      case 'INCR': {
        const next = Number(this.store.get(arg) ?? '0') + 1;
        this.store.set(arg, String(next));
        return String(next);
      }
      case 'DEL':
        return this.store.delete(arg) ? '1' : '0';
      case 'SLEEP':
        return new Promise((resolve) => {
          const t = setTimeout(() => {
            this.#timers.delete(t);
            resolve('OK');
          }, Number(arg) || 0);
          this.#timers.add(t);
        });
      case 'QUIT':
        socket.end('BYE\n');
        return undefined;
      default:
        return 'ERR unknown command';
    }
  }
}
