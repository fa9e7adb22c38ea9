import { ServiceBuilder } from '@towerline/core';
import { ReconnectLayer, Reconnector } from '@towerline/reconnect';
import { RetryLayer } from '@towerline/retry';
import { type MicroCase, measureCases, type SuiteReport } from './harness.js';
import { measureRecovery } from './recovery.js';

/**
 * 1. The connected path: a call through `ReconnectService` on a healthy connection vs a bare
 *    call on the same connection object (target <= 1.6x).
 * 2. Recovery: real sockets; the server comes back, and the first successful call is timed
 *    against the delay the reconnector had scheduled (target: <= delay + 5 ms).
 */
export default async function reconnect(): Promise<SuiteReport> {
  const conn = { call: async (req: number) => req + 1 };
  const reconnector = new Reconnector({ connect: async () => conn });
  await reconnector.acquire();
  const service = new ReconnectLayer<typeof conn, number, number>({
    call: (c, req) => c.call(req),
  }).wrap(reconnector);
  const stacked = new ServiceBuilder().layer(new RetryLayer()).service(service);
  const cases: MicroCase[] = [
    { name: 'bare', fn: () => conn.call(1) },
    { name: 'towerline-reconnect', fn: () => service.call(1) },
    { name: 'retry+reconnect', fn: () => stacked.call(1) },
  ];
  const results = await measureCases(cases, { baseline: 'bare' });
  await service.close();
  const recovery = await measureRecovery();
  return {
    suite: 'reconnect',
    baseline: 'bare',
    results,
    notes: {
      'towerline-reconnect / bare (target <= 1.6)': +results[1]!.ratio!.toFixed(3),
      ...recovery,
    },
  };
}
