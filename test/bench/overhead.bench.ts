import { RetryLayer } from '@towerline/retry';
import {
  ExponentialBackoff as CockatielBackoff,
  retry as cockatielRetry,
  handleAll,
} from 'cockatiel';
import pRetry from 'p-retry';
import { type MicroCase, measureCases, type SuiteReport } from './harness.js';

/**
 * The happy-path cost of a retry wrapper: one successful call through each, side by side.
 * `bare` is the inner service called directly; the rest wrap the same inner service.
 */
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
  const cases: MicroCase[] = [
    { name: 'bare', fn: () => inner.call(1) },
    { name: 'towerline-retry', fn: () => towerline.call(1) },
    { name: 'async-try-await', fn: () => tryAwait.call(1) },
    { name: 'p-retry', fn: () => pRetry(() => inner.call(1), { retries: 2 }) },
    { name: 'cockatiel-retry', fn: () => cockatiel.execute(() => inner.call(1)) },
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
    },
  };
}
