import { type TracingChannelSubscribers, tracingChannel } from 'node:diagnostics_channel';
import type { Attributes, Counter, Histogram, Meter, ObservableGauge } from '@opentelemetry/api';
import {
  type CallTrace,
  type Disposable,
  describeError,
  expectOptions,
  invalidArgument,
  type TypedEmitter,
} from '@towerline/core';
import { SOURCES } from './sources.js';
import type { Recorder, SourceSpec } from './spec.js';

type AnyEmitter = TypedEmitter<any>;

/**
 * Something with towerline events: an emitter, an object that has one as `events` (a
 * `Reconnector`, a `RetryLayer`, a `ConfigProvider`, a `ServerTlsProvider`, a
 * `GrpcConnectivity`, a Durable Streams `StreamHandler`), or one whose `config` (a
 * `ClientTlsProvider`) or `handler` (a running Durable Streams server) has one.
 */
export type Instrumentable =
  | AnyEmitter
  | { events: AnyEmitter; state?: string }
  | { config: { events: AnyEmitter } }
  | { handler: { events: AnyEmitter } };

export interface InstrumentOptions {
  meter: Meter;
  /** Added to every measurement (`service.instance.id`, a pool name, …). Keep it bounded. */
  attributes?: Attributes;
  /** Specs of event sources beyond towerline's own, looked up before them. */
  sources?: readonly SourceSpec[];
}

/** The instruments of one spec on one meter, made once. */
interface Made {
  counters: Map<string, Counter>;
  histograms: Map<string, Histogram>;
  gauge?: ObservableGauge;
  /** The targets the state gauge reports, read by its callback. */
  watched: Set<{ attributes: Attributes; state: () => string }>;
}

const made = new WeakMap<Meter, Map<SourceSpec, Made>>();

function instrumentsFor(meter: Meter, spec: SourceSpec): Made {
  let perMeter = made.get(meter);
  if (!perMeter) {
    perMeter = new Map();
    made.set(meter, perMeter);
  }
  let m = perMeter.get(spec);
  if (m) return m;
  m = { counters: new Map(), histograms: new Map(), watched: new Set() };
  for (const [key, def] of Object.entries(spec.instruments)) {
    const options = { unit: def.unit, description: def.description };
    if (def.kind === 'counter') m.counters.set(key, meter.createCounter(def.name, options));
    else if (def.kind === 'histogram')
      m.histograms.set(key, meter.createHistogram(def.name, options));
    else if (spec.state?.instrument === key)
      m.gauge = meter.createObservableGauge(def.name, options);
  }
  const watched = m.watched;
  const states = spec.state?.states ?? [];
  m.gauge?.addCallback((result) => {
    for (const w of watched) {
      const current = w.state();
      for (const state of states) {
        result.observe(state === current ? 1 : 0, { ...w.attributes, 'towerline.state': state });
      }
    }
  });
  perMeter.set(spec, m);
  return m;
}

const errorType = (error: unknown) => describeError(error) ?? 'unknown';

function emitterOf(target: Instrumentable): AnyEmitter | undefined {
  const t = target as {
    events?: AnyEmitter;
    config?: { events?: AnyEmitter };
    handler?: { events?: AnyEmitter };
  };
  return t.events ?? t.config?.events ?? t.handler?.events ?? (target as AnyEmitter);
}

/**
 * Records metrics for every event of `target` until the returned handle is disposed: counters
 * with OpenTelemetry units (`{attempt}`, `{request}`, …), histograms in seconds, a call-duration
 * histogram for layers (from their `TracingChannel`), and a state gauge where the target has a
 * state. Attribute values come from small fixed sets (error codes, states, reasons).
 *
 * @example
 * ```ts
 * const meter = metrics.getMeter('my-service');
 * using _ = instrument(reconnector, { meter, attributes: { 'db.system': 'redis' } });
 * ```
 */
export function instrument(target: Instrumentable, options: InstrumentOptions): Disposable {
  expectOptions(options, false);
  if (typeof target !== 'object' || target === null)
    invalidArgument('target', 'expected a towerline layer, service or emitter');
  const meter = options.meter as Partial<Meter> | null | undefined;
  if (
    typeof meter !== 'object' ||
    meter === null ||
    typeof meter.createCounter !== 'function' ||
    typeof meter.createHistogram !== 'function'
  )
    invalidArgument('meter', 'expected an OpenTelemetry Meter');
  if (
    options.attributes !== undefined &&
    (typeof options.attributes !== 'object' ||
      options.attributes === null ||
      Array.isArray(options.attributes))
  )
    invalidArgument('attributes', 'expected an object of attributes');
  const emitter = emitterOf(target);
  const channel = typeof emitter?.channel === 'string' ? emitter.channel : '';
  const component = channel.startsWith('towerline:') ? channel.slice('towerline:'.length) : '';
  const spec = [...(options.sources ?? []), ...SOURCES].find((s) => s.component === component);
  if (!emitter || !spec || typeof emitter.subscribe !== 'function') {
    return invalidArgument('target', `not a towerline event source (channel ${channel || 'none'})`);
  }
  const m = instrumentsFor(options.meter, spec);
  const attrs: Attributes = { 'towerline.source': emitter.source, ...options.attributes };
  const withAttrs = (extra?: Attributes) => (extra ? { ...attrs, ...extra } : attrs);
  const recorder: Recorder = {
    add: (key, value = 1, extra) => m.counters.get(key)?.add(value, withAttrs(extra)),
    record: (key, value, extra) => m.histograms.get(key)?.record(value, withAttrs(extra)),
    errorType,
  };
  const undo: Array<() => void> = [];
  for (const [event, handle] of Object.entries(spec.events)) {
    const sub = emitter.subscribe(event, (payload: unknown) => handle(payload, recorder));
    undo.push(() => sub.dispose());
  }

  const initial = spec.state?.initial(target);
  if (spec.state && m.gauge && initial !== undefined) {
    let state = initial;
    const sub = emitter.subscribe('stateChange', ({ to }: { to: string }) => {
      state = to;
    });
    const watched = { attributes: attrs, state: () => state };
    m.watched.add(watched);
    undo.push(() => {
      sub.dispose();
      m.watched.delete(watched);
    });
  }

  if (spec.call) undo.push(recordCalls(spec.call, emitter, recorder));

  const dispose = () => {
    for (const u of undo.splice(0)) u();
  };
  return { dispose, [Symbol.dispose]: dispose };
}

/** Call durations from the layer's TracingChannel, for the calls of this emitter's layer only. */
function recordCalls(
  call: NonNullable<SourceSpec['call']>,
  emitter: AnyEmitter,
  recorder: Recorder,
): () => void {
  const started = new WeakMap<CallTrace, number>();
  const channel = tracingChannel<unknown, CallTrace>(call.channel);
  const handlers: TracingChannelSubscribers<CallTrace> = {
    start: (trace) => {
      if (trace.events === emitter) started.set(trace, performance.now());
    },
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (trace) => {
      const t0 = started.get(trace);
      if (t0 === undefined) return;
      started.delete(trace);
      const failed = 'error' in trace;
      recorder.record(
        call.instrument,
        (performance.now() - t0) / 1000,
        failed ? { 'error.type': errorType(trace.error) } : undefined,
      );
    },
    error: () => {},
  };
  channel.subscribe(handlers);
  return () => channel.unsubscribe(handlers);
}
