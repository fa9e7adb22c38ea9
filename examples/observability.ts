/**
 * Metrics and call tracing for a retry over a flaky service, read back in-process.
 *
 *   pnpm example examples/observability.ts
 *
 * instrument() records the retry layer's events into an OpenTelemetry meter (here the SDK's
 * in-memory exporter); the layer's TracingChannel `towerline:retry:call` is where an APM would
 * open a span per call; this example prints them instead.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { backoff, type CallTrace, serviceFn } from '@towerline/core';
import { callChannelName, instrument } from '@towerline/otel';
import { RetryLayer } from '@towerline/retry';

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
const provider = new MeterProvider({ readers: [reader] });
const meter = provider.getMeter('example');

const spans = tracingChannel<unknown, CallTrace>(callChannelName('retry'));
const opened = new WeakMap<CallTrace, number>();
const handlers = {
  start: (t: CallTrace) => opened.set(t, performance.now()),
  end: () => {},
  asyncStart: () => {},
  asyncEnd: (t: CallTrace) =>
    console.log(
      `span ${t.source} ${String(t.request)}: ${(performance.now() - opened.get(t)!).toFixed(1)} ms` +
        ('error' in t ? ` (${(t.error as { code?: string }).code})` : ''),
    ),
  error: () => {},
};
spans.subscribe(handlers);

const layer = new RetryLayer({ maxAttempts: 4, backoff: backoff.fixed(20), name: 'inventory' });
using _ = instrument(layer, { meter, attributes: { 'service.name': 'shop' } });
let calls = 0;
const flaky = layer.wrap(
  serviceFn(async (sku: string) => {
    if (++calls % 3 !== 0) throw Object.assign(new Error('busy'), { code: 'EBUSY' });
    return `${sku}: 7 left`;
  }),
);

console.log(await flaky.call('sku-1')); // two retries, then the answer
console.log(await flaky.call('sku-2'));
const failing = layer.wrap(
  serviceFn(async () => {
    throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' });
  }),
);
await failing.call('sku-3').catch((e: { code?: string }) => console.log('sku-3:', e.code));
spans.unsubscribe(handlers);

await reader.forceFlush();
for (const scope of exporter.getMetrics().at(-1)?.scopeMetrics ?? []) {
  for (const m of scope.metrics) {
    for (const p of m.dataPoints) {
      const v = p.value as number | { count: number; sum: number };
      const value = typeof v === 'number' ? v : `count ${v.count}, sum ${v.sum.toFixed(3)}`;
      console.log(
        `${m.descriptor.name} [${m.descriptor.unit}] ${JSON.stringify(p.attributes)}: ${value}`,
      );
    }
  }
}
await provider.shutdown();
