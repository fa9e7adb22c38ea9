import { createConnection, type Socket } from 'node:net';
import { LINE_GREETING } from './line-server.js';

export interface LineClientOptions {
  host?: string;
  port: number;
  /** Wait for the server's greeting before resolving (default true). */
  greeting?: boolean;
  /** Aborts the connect (and destroys the socket). */
  signal?: AbortSignal;
}

interface Pending {
  resolve: (line: string) => void;
  reject: (error: unknown) => void;
}

/**
 * A client for {@link LineServer}: pipelined requests, replies matched in order. When the socket
 * closes every pending request rejects with the socket's error (or `ECONNRESET`), so a
 * connection owner can count on requests settling once it destroys the socket.
 */
export class LineClient {
  readonly socket: Socket;
  readonly #pending: Pending[] = [];
  #buffer = '';
  #closeError: unknown;

  private constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Connects, and waits for the greeting unless `greeting: false`. */
  static connect(options: LineClientOptions): Promise<LineClient> {
    const { host = '127.0.0.1', port, greeting = true, signal } = options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const socket = createConnection({ host, port });
      socket.setEncoding('utf8');
      socket.setNoDelay(true);
      const client = new LineClient(socket);
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(error);
      };
      const ready = () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        resolve(client);
      };
      const onAbort = () => fail(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', fail);
      socket.once('close', () => {
        fail(Object.assign(new Error('connection closed during connect'), { code: 'ECONNRESET' }));
      });
      client.#pending.push({
        resolve: (line) =>
          line === LINE_GREETING ? ready() : fail(new Error(`unexpected greeting: ${line}`)),
        reject: fail,
      });
      if (!greeting) {
        client.#pending.length = 0;
        socket.once('connect', ready);
      }
      client.#wire();
    });
  }

  /** True once the socket closed; requests reject at once. */
  get closed(): boolean {
    return this.socket.destroyed;
  }

  /** Requests waiting for their reply. */
  get inFlight(): number {
    return this.#pending.length;
  }

  /** Sends one line and resolves with the reply line. */
  send(line: string): Promise<string> {
    if (this.socket.destroyed || !this.socket.writable) {
      return Promise.reject(
        this.#closeError ??
          Object.assign(new Error('the connection is closed'), { code: 'ERR_SOCKET_CLOSED' }),
      );
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.socket.write(`${line}\n`);
    });
  }

  /** Destroys the socket; pending requests reject. */
  close(): void {
    this.socket.destroy();
  }

  #wire(): void {
    this.socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let i = this.#buffer.indexOf('\n'); i !== -1; i = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, i);
        this.#buffer = this.#buffer.slice(i + 1);
        const next = this.#pending.shift();
        if (line.startsWith('ERR '))
          next?.reject(Object.assign(new Error(line), { code: 'ERR_REPLY' }));
        else next?.resolve(line);
      }
    });
    this.socket.on('error', (error) => {
      this.#closeError = error;
    });
    this.socket.on('close', () => {
      const error =
        this.#closeError ?? Object.assign(new Error('connection closed'), { code: 'ECONNRESET' });
      this.#closeError = error;
      for (const p of this.#pending.splice(0)) p.reject(error);
    });
  }
}

/**
 * The `connect`/`watch`/`dispose` trio that puts a {@link LineClient} under a `Reconnector`:
 * `new Reconnector({ ...lineConnection({ port }), policy })`.
 */
export function lineConnection(options: Omit<LineClientOptions, 'signal'>) {
  return {
    connect: ({ signal }: { signal: AbortSignal }) => LineClient.connect({ ...options, signal }),
    watch: (client: LineClient, lost: (error?: unknown) => void) => {
      const onClose = () =>
        lost(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }));
      if (client.closed) {
        onClose();
        return undefined;
      }
      client.socket.once('close', onClose);
      return () => {
        client.socket.off('close', onClose);
      };
    },
    dispose: (client: LineClient) => client.close(),
  };
}
