import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { backoff } from '@towerline/core';
import { ReconnectLayer, Reconnector } from '@towerline/reconnect';

/** A one-line-at-a-time echo client on a real socket: enough to time a round trip. */
class EchoClient {
  readonly #pending: Array<{ resolve: (s: string) => void; reject: (e: unknown) => void }> = [];
  #buffer = '';
  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let i = this.#buffer.indexOf('\n'); i !== -1; i = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, i);
        this.#buffer = this.#buffer.slice(i + 1);
        this.#pending.shift()?.resolve(line);
      }
    });
    socket.on('close', () => {
      const error = Object.assign(new Error('socket closed'), { code: 'ECONNRESET' });
      for (const p of this.#pending.splice(0)) p.reject(error);
    });
    socket.on('error', () => {});
  }
  static connect(port: number, signal: AbortSignal): Promise<EchoClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port, signal });
      socket.once('connect', () => resolve(new EchoClient(socket)));
      socket.once('error', reject);
    });
  }
  send(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.socket.write(`${line}\n`);
    });
  }
}

async function listen(server: Server, port = 0): Promise<number> {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

/**
 * Kills and restarts a local echo server `rounds` times. Each time, the server comes back the
 * moment the reconnector schedules its next attempt, and a request is issued right then; the
 * figure is how long after the scheduled delay that request succeeded.
 */
export async function measureRecovery(
  rounds = 20,
  delayMs = 100,
): Promise<Record<string, unknown>> {
  const sockets = new Set<Socket>();
  const makeServer = () =>
    createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.pipe(s);
    });
  let server = makeServer();
  const port = await listen(server);
  const reconnector = new Reconnector<EchoClient>({
    policy: backoff.fixed(delayMs),
    minUptime: 0,
    connect: ({ signal }) => EchoClient.connect(port, signal),
    watch: (client, lost) => {
      client.socket.once('close', lost);
      return () => client.socket.off('close', lost);
    },
    dispose: (client) => {
      client.socket.destroy();
    },
  });
  const service = new ReconnectLayer<EchoClient, string, string>({
    call: (client, line) => client.send(line),
  }).wrap(reconnector);
  await service.call('warm-up');
  const overshoot: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const scheduled = reconnector.events.next('reconnectScheduled');
    server.close();
    for (const s of sockets) s.destroy();
    await once(server, 'close');
    const { delayMs: delay } = await scheduled;
    const up = performance.now();
    server = makeServer();
    await listen(server, port);
    await service.call(`round ${i}`);
    overshoot.push(performance.now() - up - delay);
  }
  await service.close();
  server.close();
  for (const s of sockets) s.destroy();
  overshoot.sort((a, b) => a - b);
  const at = (q: number) =>
    +overshoot[Math.min(overshoot.length - 1, Math.floor(q * overshoot.length))]!.toFixed(2);
  return {
    'recovery: rounds': rounds,
    'recovery: scheduled delay ms': delayMs,
    'recovery: first success after the delay, median ms (target <= 5)': at(0.5),
    'recovery: p90 ms': at(0.9),
    'recovery: max ms': at(1),
  };
}
