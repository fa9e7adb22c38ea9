/**
 * `pnpm example examples/retry-demo.ts`: a retry + backoff demonstration against a local flaky HTTP server. Every attempt,
 * every wait and every outcome is printed as it happens, then a one-line summary.
 *
 * Options: --requests N (default 12), --seed N.
 */
import { parseArgs } from 'node:util';
import { backoff, isTowerlineError, ServiceBuilder, seededRandom } from '@towerline/core';
import { RetryLayer } from '@towerline/retry';
import { startFlakyServer } from './support/flaky-server.js';
import { HttpError, httpGet, label, retryableHttp } from './support/http-service.js';

const { values } = parseArgs({
  // `pnpm demo -- --requests 4` hands the script a literal `--` first.
  args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--')),
  options: { requests: { type: 'string', default: '12' }, seed: { type: 'string', default: '7' } },
  allowPositionals: true,
});
const requests = Math.max(1, Math.min(1_000, Number(values.requests) || 12));
const seed = Number(values.seed) || 7;

const policy = backoff.exponentialRandom({
  initial: 100,
  max: 1_000,
  jitter: 'equal',
  random: seededRandom(seed),
});
console.log('towerline demo: retry + backoff against a flaky local HTTP server\n');
console.log('backoff: exponential ×2 from 100 ms, equal jitter, capped at 1 s');
for (let attempt = 1; attempt <= 6; attempt++) {
  const { min, max } = policy.bounds(attempt);
  console.log(`  after attempt ${attempt}: ${min.toFixed(0)}–${max.toFixed(0)} ms`);
}

const server = await startFlakyServer({ seed });
console.log(`\nserver: ${server.url} (fails ~55% of requests: 503 + Retry-After, 500, reset)\n`);

const retry = new RetryLayer({
  maxAttempts: 4,
  backoff: policy,
  retryOn: retryableHttp,
  delayFromError: (error) => (error instanceof HttpError ? error.retryAfterMs : undefined),
});
let retries = 0;
let hinted = 0;
retry.events.on('retry', ({ attempt, delayMs, error }) => {
  retries++;
  const why = error instanceof HttpError && error.retryAfterMs !== undefined;
  if (why) hinted++;
  console.log(
    `    attempt ${attempt}: ${label(error).padEnd(10)} -> wait ${delayMs.toFixed(0).padStart(4)} ms${
      why ? ' (Retry-After)' : ''
    }`,
  );
});
const client = new ServiceBuilder().layer(retry).service(httpGet(server.url));

const started = performance.now();
let ok = 0;
let failed = 0;
try {
  for (let i = 1; i <= requests; i++) {
    const t0 = performance.now();
    console.log(`GET /orders/${i}`);
    try {
      await client.call(`/orders/${i}`);
      ok++;
      console.log(`    ok in ${(performance.now() - t0).toFixed(0)} ms`);
    } catch (error) {
      failed++;
      if (isTowerlineError(error, 'ERR_RETRY_EXHAUSTED')) {
        console.log(
          `    attempt ${error.attempts}: ${label(error.cause)} -> gave up (ERR_RETRY_EXHAUSTED)`,
        );
      } else {
        console.log(`    failed, not retryable: ${label(error)}`);
      }
    }
  }
} finally {
  await server.close();
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(
  `\nsummary: ${requests} requests, ${ok} succeeded, ${failed} failed, ${retries} retries ` +
    `(${hinted} honoured Retry-After), ${server.log.length} HTTP attempts, ${seconds} s`,
);
