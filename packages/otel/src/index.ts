/**
 * @towerline/otel — OpenTelemetry metrics for towerline's events.
 *
 * `instrument(x, { meter })` subscribes to the events of a `Reconnector`, a `ReconnectService`,
 * a `RetryLayer`, a `SupervisedStream`, a `ConfigProvider` or a policy layer of
 * `@towerline/policies` (anything with a towerline `events` emitter) and records counters,
 * histograms and a state gauge, with attribute names in
 * OpenTelemetry's style. Every towerline event is also published on `node:diagnostics_channel`
 * as `towerline:<package>:<event>` by the emitter itself, so users without OpenTelemetry can
 * subscribe there; {@link channelName} spells those names.
 *
 * @packageDocumentation
 */
import type { Attributes, Counter, Histogram, Meter, ObservableGauge } from '@opentelemetry/api';
import {
  type Disposable,
  describeError,
  invalidArgument,
  type TypedEmitter,
} from '@towerline/core';

type AnyEmitter = TypedEmitter<any>;

/** Something with towerline events: an emitter, or an object that has one as `events`. */
export type Instrumentable = AnyEmitter | { events: AnyEmitter; state?: string };

export interface InstrumentOptions {
  meter: Meter;
  /** Added to every measurement (`service.instance.id`, a pool name, …). */
  attributes?: Attributes;
}

/** The diagnostics channel an event is published on: `towerline:<package>:<event>`. */
export function channelName(
  pkg:
    | 'reconnect'
    | 'retry'
    | 'config'
    | 'timeout'
    | 'breaker'
    | 'concurrency'
    | 'hedge'
    | 'fallback'
    | 'rate-limit'
    | 'load-shed',
  event: string,
): string {
  return `towerline:${pkg}:${event}`;
}

/** Every state a reconnector can be in, for the state gauge. */
const STATES = ['idle', 'connecting', 'connected', 'reconnecting', 'closed', 'failed'] as const;

interface Instruments {
  attempts: Counter;
  connections: Counter;
  reconnects: Counter;
  disconnects: Counter;
  giveUps: Counter;
  rejections: Counter;
  downtime: Histogram;
  reconnectDelay: Histogram;
  retries: Counter;
  retryExhausted: Counter;
  budgetExhausted: Counter;
  retryDelay: Histogram;
  configUpdates: Counter;
  configRejections: Counter;
  policyEvents: Counter;
  state: ObservableGauge;
  /** The state of every instrumented reconnector, read by the gauge's callback. */
  watched: Set<{ attributes: Attributes; state: () => string }>;
}

const cache = new WeakMap<Meter, Instruments>();

function instrumentsFor(meter: Meter): Instruments {
  let found = cache.get(meter);
  if (found) return found;
  const seconds = { unit: 's' };
  found = {
    attempts: meter.createCounter('towerline.reconnect.attempts', {
      description: 'Connect attempts started',
    }),
    connections: meter.createCounter('towerline.reconnect.connections', {
      description: 'Connections established, the first included',
    }),
    reconnects: meter.createCounter('towerline.reconnect.reconnects', {
      description: 'Connections re-established after a loss or a failed start',
    }),
    disconnects: meter.createCounter('towerline.reconnect.disconnects', {
      description: 'Live connections lost',
    }),
    giveUps: meter.createCounter('towerline.reconnect.give_ups', {
      description: 'Reconnectors that used up maxAttempts',
    }),
    rejections: meter.createCounter('towerline.reconnect.rejections', {
      description: 'Requests refused: queue full, queue timeout, or lost in flight',
    }),
    downtime: meter.createHistogram('towerline.reconnect.downtime', {
      ...seconds,
      description: 'Time without a connection before it came back',
    }),
    reconnectDelay: meter.createHistogram('towerline.reconnect.delay', {
      ...seconds,
      description: 'Backoff scheduled before the next connect attempt',
    }),
    retries: meter.createCounter('towerline.retry.retries', { description: 'Retries scheduled' }),
    retryExhausted: meter.createCounter('towerline.retry.exhausted', {
      description: 'Calls that failed after every attempt',
    }),
    budgetExhausted: meter.createCounter('towerline.retry.budget_exhausted', {
      description: 'Retries refused by the retry budget',
    }),
    retryDelay: meter.createHistogram('towerline.retry.delay', {
      ...seconds,
      description: 'Wait before a retry',
    }),
    configUpdates: meter.createCounter('towerline.config.updates', {
      description: 'Configuration values accepted',
    }),
    configRejections: meter.createCounter('towerline.config.rejections', {
      description: 'Configuration values refused by validation',
    }),
    policyEvents: meter.createCounter('towerline.policy.events', {
      description:
        'Events of the policies (timeouts, breaker state changes and refusals, concurrency refusals, hedges, fallbacks, rate limits, shed calls)',
    }),
    state: meter.createObservableGauge('towerline.reconnect.state', {
      description: '1 for the state a reconnector is in, 0 for the others',
    }),
    watched: new Set(),
  };
  const instruments = found;
  instruments.state.addCallback((result) => {
    for (const w of instruments.watched) {
      const current = w.state();
      for (const state of STATES) {
        result.observe(state === current ? 1 : 0, { ...w.attributes, 'towerline.state': state });
      }
    }
  });
  cache.set(meter, found);
  return found;
}

/** The events counted per policy layer, by the component of its channel (`towerline:<component>`). */
const POLICY_EVENTS: Record<string, readonly string[]> = {
  timeout: ['timeout'],
  breaker: ['stateChange', 'rejected'],
  concurrency: ['rejected', 'limitChanged'],
  hedge: ['hedged', 'refused'],
  fallback: ['fallback'],
  'rate-limit': ['waited', 'limited'],
  'load-shed': ['shed'],
};

const errorType = (error: unknown) => describeError(error) ?? 'unknown';

/**
 * Records metrics for every event of `target` until the returned handle is disposed.
 *
 * @example
 * ```ts
 * const meter = metrics.getMeter('my-service');
 * using _ = instrument(reconnector, { meter, attributes: { 'db.system': 'redis' } });
 * ```
 */
export function instrument(target: Instrumentable, options: InstrumentOptions): Disposable {
  const emitter = ('events' in target ? target.events : target) as AnyEmitter;
  const m = instrumentsFor(options.meter);
  const attrs: Attributes = { 'towerline.source': emitter.source, ...options.attributes };
  const subs: Disposable[] = [];
  const on = (event: string, fn: (p: any) => void) => subs.push(emitter.subscribe(event, fn));
  const component = emitter.channel?.split(':')[1];

  if (component === 'reconnect') {
    let state = 'state' in target && typeof target.state === 'string' ? target.state : 'idle';
    on('stateChange', ({ to }) => {
      state = to;
    });
    on('connecting', ({ attempt }) =>
      m.attempts.add(1, { ...attrs, 'towerline.attempt': attempt }),
    );
    on('connected', ({ generation, downtimeMs }) => {
      m.connections.add(1, attrs);
      if (generation > 1 || downtimeMs > 0) {
        m.reconnects.add(1, attrs);
        m.downtime.record(downtimeMs / 1000, attrs);
      }
    });
    on('disconnected', ({ error }) =>
      m.disconnects.add(1, { ...attrs, 'error.type': errorType(error) }),
    );
    on('reconnectScheduled', ({ delayMs, error }) =>
      m.reconnectDelay.record(delayMs / 1000, { ...attrs, 'error.type': errorType(error) }),
    );
    on('gaveUp', ({ error }) => m.giveUps.add(1, { ...attrs, 'error.type': errorType(error) }));
    on('rejected', ({ reason }) =>
      m.rejections.add(1, { ...attrs, 'towerline.rejection.reason': reason }),
    );
    // A ReconnectService shares the channel but has no state of its own.
    if ('state' in target) {
      const watched = { attributes: attrs, state: () => state };
      m.watched.add(watched);
      subs.push({
        dispose: () => m.watched.delete(watched),
        [Symbol.dispose]: () => m.watched.delete(watched),
      });
    }
  } else if (component === 'retry') {
    on('retry', ({ attempt, delayMs, error }) => {
      const a = { ...attrs, 'error.type': errorType(error) };
      m.retries.add(1, { ...a, 'towerline.attempt': attempt });
      m.retryDelay.record(delayMs / 1000, a);
    });
    on('exhausted', ({ error }) =>
      m.retryExhausted.add(1, { ...attrs, 'error.type': errorType(error) }),
    );
    on('budgetExhausted', ({ error }) =>
      m.budgetExhausted.add(1, { ...attrs, 'error.type': errorType(error) }),
    );
  } else if (component === 'config') {
    on('updated', () => m.configUpdates.add(1, attrs));
    on('rejected', () => m.configRejections.add(1, attrs));
  } else if (component !== undefined && component in POLICY_EVENTS) {
    // Never the breaker's `outcome`: listening to it makes the breaker time every call.
    for (const event of POLICY_EVENTS[component]!) {
      on(event, (p: { to?: string; calls?: number; reason?: string }) =>
        m.policyEvents.add(event === 'timeout' ? (p.calls ?? 1) : 1, {
          ...attrs,
          'towerline.policy': component,
          'towerline.event': event,
          ...(p.to === undefined ? {} : { 'towerline.state': p.to }),
          ...(p.reason === undefined ? {} : { 'towerline.rejection.reason': p.reason }),
        }),
      );
    }
  } else {
    invalidArgument('target', `not a towerline event source (channel ${String(emitter?.channel)})`);
  }
  const dispose = () => {
    for (const s of subs.splice(0)) s.dispose();
  };
  return { dispose, [Symbol.dispose]: dispose };
}
