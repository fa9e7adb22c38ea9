// The happy-path cases of the overhead and reconnect suites, as plain JavaScript on the built
// packages (tsx would wrap every named closure), for the instructions suite to count under
// callgrind: node calls.mjs <case> <calls> — warms up, then awaits <calls> calls of <case>.
import { ServiceBuilder } from '@towerline/core';
import { CircuitBreakerLayer, TimeoutLayer } from '@towerline/policies';
import { ReconnectLayer, Reconnector } from '@towerline/reconnect';
import { RetryLayer } from '@towerline/retry';
import {
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel';

const inner = { call: async (x) => x + 1 };
const breakerOptions = { policy: { kind: 'consecutive', threshold: 5 } };
const via = (service) => () => service.call(1);
const cockatielRetry = () =>
  retry(handleAll, {
    maxAttempts: 2,
    backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 10_000 }),
  });
const cockatielBreaker = () =>
  circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) });

const reconnector = new Reconnector({ connect: async () => inner });
await reconnector.acquire();
const reconnect = new ReconnectLayer({ call: (c, req) => c.call(req) }).wrap(reconnector);

/** Each case makes its function once; the function is the one call measured. */
const cases = {
  bare: () => () => inner.call(1),
  'one-reaction': () => () => {
    const req = 1;
    return inner.call(req).then(undefined, (error) => {
      if (req < 0) return 0;
      throw error;
    });
  },
  'own-promise-hop': () => () =>
    new Promise((resolve, reject) => {
      inner.call(1).then(resolve, reject);
    }),
  'towerline-retry': () => via(new RetryLayer({ maxAttempts: 3 }).wrap(inner)),
  'towerline-breaker': () => via(new CircuitBreakerLayer(breakerOptions).wrap(inner)),
  'towerline-timeout': () => via(new TimeoutLayer({ ms: 10_000 }).wrap(inner)),
  'towerline-timeout-optimistic': () =>
    via(new TimeoutLayer({ ms: 10_000, mode: 'optimistic' }).wrap(inner)),
  'towerline-retry+breaker+timeout': () =>
    via(
      new ServiceBuilder()
        .layer(new RetryLayer({ maxAttempts: 3 }))
        .layer(new CircuitBreakerLayer(breakerOptions))
        .layer(new TimeoutLayer({ ms: 10_000 }))
        .service(inner),
    ),
  'towerline-reconnect': () => via(reconnect),
  'retry+reconnect': () => via(new ServiceBuilder().layer(new RetryLayer()).service(reconnect)),
  'cockatiel-retry': () => {
    const policy = cockatielRetry();
    return () => policy.execute(() => inner.call(1));
  },
  'cockatiel-breaker': () => {
    const policy = cockatielBreaker();
    return () => policy.execute(() => inner.call(1));
  },
  'cockatiel-retry+breaker+timeout': () => {
    const policy = wrap(
      cockatielRetry(),
      cockatielBreaker(),
      timeout(10_000, TimeoutStrategy.Aggressive),
    );
    return () => policy.execute(() => inner.call(1));
  },
};

const [name, count] = process.argv.slice(2);
if (name === '--list') {
  console.log(Object.keys(cases).join('\n'));
  process.exit(0);
}
const make = cases[name];
const calls = Number(count);
if (make === undefined || !(calls >= 0)) {
  console.error(`usage: node calls.mjs <${Object.keys(cases).join('|')}> <calls>`);
  process.exit(2);
}
const fn = make();
for (let i = 0; i < 50_000; i++) await fn();
for (let i = 0; i < calls; i++) await fn();
await reconnect.close();
// Cockatiel's aggressive timeout leaves one timer per call behind: do not wait for them.
process.exit(0);
