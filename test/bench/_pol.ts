import { ServiceBuilder } from '@towerline/core';
import { CircuitBreakerLayer, TimeoutLayer } from '@towerline/policies';
import { RetryLayer } from '@towerline/retry';
import { measureCases } from './harness.js';

const inner = { call: async (x: number) => x + 1 };
const timeout = new TimeoutLayer({ ms: 10_000 }).wrap(inner);
const optimistic = new TimeoutLayer({ ms: 10_000, mode: 'optimistic' }).wrap(inner);
const breaker = new CircuitBreakerLayer().wrap(inner);
const retry = new RetryLayer({ maxAttempts: 3 }).wrap(inner);
const stack = new ServiceBuilder()
  .layer(new RetryLayer({ maxAttempts: 3 }))
  .layer(new CircuitBreakerLayer())
  .layer(new TimeoutLayer({ ms: 10_000 }))
  .service(inner);
const rb = new ServiceBuilder()
  .layer(new RetryLayer({ maxAttempts: 3 }))
  .layer(new CircuitBreakerLayer())
  .service(inner);
const rt = new ServiceBuilder()
  .layer(new RetryLayer({ maxAttempts: 3 }))
  .layer(new TimeoutLayer({ ms: 10_000 }))
  .service(inner);
const only = process.argv[2]?.split(',');
const all = [
  { name: 'bare', fn: () => inner.call(1) },
  { name: 'retry', fn: () => retry.call(1) },
  { name: 'timeout', fn: () => timeout.call(1) },
  { name: 'optimistic', fn: () => optimistic.call(1) },
  { name: 'breaker', fn: () => breaker.call(1) },
  { name: 'retry+breaker', fn: () => rb.call(1) },
  { name: 'retry+timeout', fn: () => rt.call(1) },
  { name: 'stack', fn: () => stack.call(1) },
].filter((c) => !only || c.name === 'bare' || only.includes(c.name));
const r = await measureCases(all, { baseline: 'bare', rounds: 5, warmup: 1, minCpuTimeMs: 150 });
for (const x of r)
  console.log(
    x.case.padEnd(16),
    x.nsPerOp.toFixed(1).padStart(8),
    x.ratio?.toFixed(2),
    JSON.stringify((x.ratioRange as number[]).map((v) => +v.toFixed(2))),
  );
