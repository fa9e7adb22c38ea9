import { ConfigProvider } from '@towerline/config';
import { do_not_optimize } from 'mitata';
import { measureHandshakes } from './handshakes.js';
import { type MicroCase, measureCases, type SuiteReport } from './harness.js';

/**
 * 1. `provider.get()` vs a plain property read of the same object (target <= 1.2x).
 * 2. TLS handshakes per second on a local server, with and without a certificate rotation
 *    every 100 ms (target >= 0.95x, zero failed handshakes).
 */
export default async function config(): Promise<SuiteReport> {
  const value = { rateLimit: { requestsPerSecond: 100, burst: 10 }, sites: ['a'] };
  const provider = new ConfigProvider({ initial: value });
  const holder = { current: provider.get() };
  const cases: MicroCase[] = [
    {
      name: 'plain-read',
      fn: () => {
        for (let i = 0; i < 1000; i++) do_not_optimize(holder.current.rateLimit);
      },
    },
    {
      name: 'provider.get',
      fn: () => {
        for (let i = 0; i < 1000; i++) do_not_optimize(provider.get().rateLimit);
      },
    },
  ];
  const results = (await measureCases(cases, { baseline: 'plain-read' })).map((r) => ({
    ...r,
    case: `${r.case} x1000`,
  }));
  const handshakes = await measureHandshakes();
  results.push(...handshakes.results);
  return {
    suite: 'config',
    baseline: 'plain-read x1000',
    results,
    notes: {
      'provider.get / plain read (target <= 1.2)': +results[1]!.ratio!.toFixed(3),
      ...handshakes.notes,
    },
  };
}
