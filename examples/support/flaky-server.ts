import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '@towerline/core';

/** What the flaky server does with one request. */
export type Fault = 'ok' | '503-retry-after' | '500' | 'reset';

export interface FlakyServer {
  url: string;
  server: Server;
  /** Every request's fate, in arrival order. */
  log: Fault[];
  close(): Promise<void>;
}

/**
 * A local HTTP server on 127.0.0.1 that fails on purpose: `503` with `Retry-After: 1`, `500`,
 * or a reset connection, chosen by a seeded random so every run tells the same story.
 */
export async function startFlakyServer(
  options: { seed?: number; failureRate?: number } = {},
): Promise<FlakyServer> {
  const random = seededRandom(options.seed ?? 7);
  const failureRate = options.failureRate ?? 0.55;
  const log: Fault[] = [];
  const server = createServer((req, res) => {
    const r = random();
    const fault: Fault =
      r >= failureRate
        ? 'ok'
        : r < failureRate * 0.35
          ? '503-retry-after'
          : r < failureRate * 0.75
            ? '500'
            : 'reset';
    log.push(fault);
    if (fault === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    if (fault === '503-retry-after') {
      res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' });
      res.end('busy, come back in a second\n');
      return;
    }
    if (fault === '500') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('oops\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, servedAt: log.length }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    log,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
