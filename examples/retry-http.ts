/**
 * Retry a flaky local HTTP server, honouring its `Retry-After` header.
 *
 *   pnpm example examples/retry-http.ts
 */
import { backoff, ServiceBuilder } from '@towerline/core';
import { RetryLayer } from '@towerline/retry';
import { startFlakyServer } from './support/flaky-server.js';
import { HttpError, httpGet, label, retryableHttp } from './support/http-service.js';

const server = await startFlakyServer({ seed: 11 });
const retry = new RetryLayer({
  maxAttempts: 5,
  backoff: backoff.exponentialRandom({ initial: 50, max: 1_500, jitter: 'full' }),
  retryOn: retryableHttp,
  // A server's Retry-After wins over the backoff (still capped at 1.5 s).
  delayFromError: (error) => (error instanceof HttpError ? error.retryAfterMs : undefined),
});
retry.events.on('retry', ({ attempt, delayMs, error }) =>
  console.log(`  attempt ${attempt} failed (${label(error)}), next in ${delayMs.toFixed(0)} ms`),
);
const client = new ServiceBuilder().layer(retry).service(httpGet(server.url));

try {
  for (const path of ['/users/1', '/users/2', '/users/3']) {
    console.log(`GET ${path}`);
    try {
      console.log(`  -> ${await client.call(path)}`);
    } catch (error) {
      console.log(`  -> gave up: ${(error as Error).message}`);
    }
  }
} finally {
  await server.close();
}
