import { ServiceBuilder } from '@towerline/core';
import { CircuitBreakerLayer, TimeoutLayer } from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import {
  ExponentialBackoff as CockatielBackoff,
  ConsecutiveBreaker,
  circuitBreaker as cockatielBreaker,
  retry as cockatielRetry,
  timeout as cockatielTimeout,
  wrap as cockatielWrap,
  handleAll,
  TimeoutStrategy,
} from 'cockatiel';
import pRetry from 'p-retry';
import { type MicroCase, measureCases, type SuiteReport } from './harness.js';

/**
 * The happy-path cost of a retry wrapper and of the policies: one successful call through
 * each, side by side with cockatiel's equivalents. `bare` is the inner service called
 * directly; the rest wrap the same inner service.
 */
function rethrow(error: unknown, req: number): never {
  if (req < 0) throw new Error('unreachable');
  throw error;
}

export default async function overhead(): Promise<SuiteReport> {
  const inner = { call: async (x: number) => x + 1 };
  const towerline = new RetryLayer({ maxAttempts: 3 }).wrap(inner);
  const cockatiel = cockatielRetry(handleAll, {
    maxAttempts: 2,
    backoff: new CockatielBackoff({ initialDelay: 100, maxDelay: 10_000 }),
  });
  // The shape most hand-written wrappers have: an async function awaiting the inner call.
  const tryAwait = {
    async call(x: number) {
      try {
        return await inner.call(x);
      } catch (error) {
        if (x < 0) return 0;
        throw error;
      }
    },
  };
  const timeout = new TimeoutLayer({ ms: 10_000 }).wrap(inner);
  const optimistic = new TimeoutLayer({ ms: 10_000, mode: 'optimistic' }).wrap(inner);
  const breaker = new CircuitBreakerLayer({ policy: { kind: 'consecutive', threshold: 5 } }).wrap(
    inner,
  );
  // The recommended order: retry → breaker → attempt timeout.
  const stack = new ServiceBuilder()
    .layer(new RetryLayer({ maxAttempts: 3 }))
    .layer(new CircuitBreakerLayer({ policy: { kind: 'consecutive', threshold: 5 } }))
    .layer(new TimeoutLayer({ ms: 10_000 }))
    .service(inner);
  // The same with the attempt timeout optimistic (for services that honour their signal).
  const stackOptimistic = new ServiceBuilder()
    .layer(new RetryLayer({ maxAttempts: 3 }))
    .layer(new CircuitBreakerLayer({ policy: { kind: 'consecutive', threshold: 5 } }))
    .layer(new TimeoutLayer({ ms: 10_000, mode: 'optimistic' }))
    .service(inner);
  const cTimeout = cockatielTimeout(10_000, TimeoutStrategy.Aggressive);
  const cBreaker = cockatielBreaker(handleAll, {
    halfOpenAfter: 10_000,
    breaker: new ConsecutiveBreaker(5),
  });
  const cStack = cockatielWrap(
    cockatielRetry(handleAll, {
      maxAttempts: 2,
      backoff: new CockatielBackoff({ initialDelay: 100, maxDelay: 10_000 }),
    }),
    cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
    cockatielTimeout(10_000, TimeoutStrategy.Aggressive),
  );
  const cases: MicroCase[] = [
    { name: 'bare', fn: () => inner.call(1) },
    { name: 'towerline-retry', fn: () => towerline.call(1) },
    { name: 'async-try-await', fn: () => tryAwait.call(1) },
    { name: 'p-retry', fn: () => pRetry(() => inner.call(1), { retries: 2 }) },
    { name: 'cockatiel-retry', fn: () => cockatiel.execute(() => inner.call(1)) },
    // The floor of a layer that must see a failure (a retry, a breaker): one promise reaction,
    // its failure handler a closure over the request.
    {
      name: 'one-reaction',
      fn: () => {
        const req = 1;
        return inner.call(req).then(undefined, (error: unknown) => rethrow(error, req));
      },
    },
    // The floor of any timeout that owns its promise: one new promise settled by the inner one.
    {
      name: 'own-promise-hop',
      fn: () =>
        new Promise((resolve, reject) => {
          inner.call(1).then(resolve, reject);
        }),
    },
    { name: 'towerline-timeout', fn: () => timeout.call(1) },
    { name: 'towerline-timeout-optimistic', fn: () => optimistic.call(1) },
    { name: 'towerline-breaker', fn: () => breaker.call(1) },
    { name: 'towerline-retry+breaker+timeout', fn: () => stack.call(1) },
    {
      name: 'towerline-retry+breaker+timeout-optimistic',
      fn: () => stackOptimistic.call(1),
    },
    { name: 'cockatiel-timeout', fn: () => cTimeout.execute(() => inner.call(1)) },
    { name: 'cockatiel-breaker', fn: () => cBreaker.execute(() => inner.call(1)) },
    { name: 'cockatiel-retry+breaker+timeout', fn: () => cStack.execute(() => inner.call(1)) },
  ];
  const results = await measureCases(cases, { baseline: 'bare' });
  const ratio = (name: string) => results.find((r) => r.case === name)!.ratio!;
  return {
    suite: 'overhead',
    baseline: 'bare',
    results,
    notes: {
      'towerline-retry / bare (target <= 1.6)': +ratio('towerline-retry').toFixed(3),
      'towerline-retry / cockatiel-retry (target <= 0.5)': +(
        ratio('towerline-retry') / ratio('cockatiel-retry')
      ).toFixed(3),
      'towerline-timeout / bare (target <= 2.0)': +ratio('towerline-timeout').toFixed(3),
      'one-reaction / bare (the floor of retry and breaker)': +ratio('one-reaction').toFixed(3),
      'own-promise-hop / bare (the floor of an exact timeout)':
        +ratio('own-promise-hop').toFixed(3),
      'towerline-timeout-optimistic / bare (target <= 1.3)': +ratio(
        'towerline-timeout-optimistic',
      ).toFixed(3),
      'towerline-breaker / bare (target <= 1.6)': +ratio('towerline-breaker').toFixed(3),
      'towerline-retry+breaker+timeout / bare (target <= 3.0)': +ratio(
        'towerline-retry+breaker+timeout',
      ).toFixed(3),
      'towerline stack, optimistic attempt timeout / bare': +ratio(
        'towerline-retry+breaker+timeout-optimistic',
      ).toFixed(3),
      'towerline stack / cockatiel stack (target <= 0.05)': +(
        ratio('towerline-retry+breaker+timeout') / ratio('cockatiel-retry+breaker+timeout')
      ).toFixed(4),
    },
  };
}
