/**
 * The recommended pipeline, outermost first — total timeout → retry → breaker → attempt
 * timeout → concurrency limit → the service — against a local HTTP server that is slow now and
 * then and down for two seconds in the middle. Every policy's events are printed as they
 * happen, then a summary.
 *
 *   pnpm example examples/pipeline.ts
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { backoff, ServiceBuilder, seededRandom } from '@towerline/core';
import {
  CircuitBreakerLayer,
  ConcurrencyLimitLayer,
  TimeoutLayer,
  VegasLimit,
} from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import { HttpError, httpGet, label, retryableHttp } from './support/http-service.js';

const random = seededRandom(3);
const started = performance.now();
const elapsed = () => performance.now() - started;
// Down from 1 s to 3 s; otherwise 10 ms, and one answer in ten takes 400 ms.
const server = createServer((_req, res) => {
  if (elapsed() > 1_000 && elapsed() < 3_000) {
    res.writeHead(503).end('down\n');
    return;
  }
  const ms = random() < 0.1 ? 400 : 10;
  setTimeout(() => res.writeHead(200).end('ok\n'), ms);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const retry = new RetryLayer({
  maxAttempts: 3,
  backoff: backoff.exponentialRandom({ initial: 20, max: 200, jitter: 'full' }),
  // Idempotent GETs: an attempt that timed out may be repeated.
  idempotent: true,
  // An open circuit is not retried: failing fast is what the breaker is for.
  retryOn: (error) => {
    const code = (error as { code?: string }).code;
    return code !== 'ERR_CIRCUIT_OPEN' && (retryableHttp(error) || code === 'ERR_TIMEOUT');
  },
});
const breaker = new CircuitBreakerLayer({
  policy: { kind: 'count', size: 20, failureRateThreshold: 0.5, minimumCalls: 10 },
  halfOpenProbes: 2,
  openMs: 500,
});
const limit = new ConcurrencyLimitLayer({ limit: new VegasLimit({ initial: 8 }), queue: 64 });
const client = new ServiceBuilder()
  .layer(new TimeoutLayer({ ms: 1_000 })) // total: the caller's patience, retries included
  .layer(retry) // repeats what failed, within the total
  .layer(breaker) // stops the repeats while the server is down
  .layer(new TimeoutLayer({ ms: 150 })) // per attempt: a slow answer is given up and retried
  .layer(limit) // bounds what reaches the server
  .service(httpGet(url));

const at = () => `${(elapsed() / 1000).toFixed(2)}s`;
breaker.on('stateChange', ({ from, to }) => console.log(`${at()} breaker ${from} → ${to}`));
limit.events.on('limitChanged', ({ from, to }) => {
  if (Math.abs(to - from) >= 4) console.log(`${at()} concurrency limit ${from} → ${to}`);
});
const outcomes = new Map<string, number>();
const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
retry.events.on('retry', () => count('retries'));

try {
  // 8 callers for 4 s, each a request at a time.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (elapsed() < 4_000) {
        try {
          await client.call('/');
          count('ok');
        } catch (error) {
          count(error instanceof HttpError ? `HTTP ${error.status}` : label(error));
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }),
  );
  console.log('\noutcomes:', Object.fromEntries(outcomes));
  console.log(`breaker ends ${breaker.state}; concurrency limit ${limit.limit}`);
} finally {
  server.closeAllConnections();
  server.close();
}
