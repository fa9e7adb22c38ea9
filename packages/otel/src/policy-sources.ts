import type { Attributes } from '@opentelemetry/api';
import type { Recorder, SourceSpec } from './spec.js';

/**
 * The layers of `@towerline/policies`, one spec each (channel `towerline:<component>`). Every
 * policy counts its events into one counter, `towerline.policy.events` (`{event}`), told apart
 * by `towerline.policy` and `towerline.event`; refusals carry their reason or state, both from
 * fixed sets. The breaker's `outcome` is never subscribed: listening to it makes the breaker
 * time every call. A rate limiter's `key` is the caller's and unbounded: never an attribute.
 */
const EVENTS = {
  kind: 'counter',
  name: 'towerline.policy.events',
  unit: '{event}',
  description:
    'Events of the policies: timeouts, breaker state changes and refusals, concurrency refusals and limit changes, hedges, fallbacks, rate limits, shed calls',
} as const;

function policySource(
  component: string,
  events: Record<string, (p: any) => { value?: number; attributes?: Attributes } | undefined>,
  extra: Partial<SourceSpec> = {},
): SourceSpec {
  const handlers: SourceSpec['events'] = {};
  for (const [event, describe] of Object.entries(events)) {
    handlers[event] = (payload: unknown, r: Recorder) => {
      const d = describe(payload) ?? {};
      r.add('events', d.value ?? 1, {
        'towerline.policy': component,
        'towerline.event': event,
        ...d.attributes,
      });
    };
  }
  return {
    component,
    ...extra,
    instruments: { events: EVENTS, ...extra.instruments },
    events: { ...handlers, ...extra.events },
  };
}

const stateOf = (target: object) => {
  const state = (target as { state?: unknown }).state;
  return typeof state === 'string' ? state : undefined;
};

/** `TimeoutLayer`: each expiry, counted once per call it rejected. */
export const timeoutSource = policySource('timeout', {
  timeout: ({ calls }: { calls?: number }) => ({ value: calls || 1 }),
});

/** `CircuitBreakerLayer`: state changes, refusals, and a state gauge `towerline.breaker.state`. */
export const breakerSource = policySource(
  'breaker',
  {
    stateChange: ({ to }: { to: string }) => ({ attributes: { 'towerline.state': to } }),
    rejected: ({ state }: { state: string }) => ({ attributes: { 'towerline.state': state } }),
  },
  {
    instruments: {
      state: {
        kind: 'gauge',
        name: 'towerline.breaker.state',
        unit: '1',
        description: '1 for the state a circuit breaker is in, 0 for the others',
      },
    },
    state: {
      instrument: 'state',
      states: ['closed', 'open', 'halfOpen', 'isolated'],
      initial: stateOf,
    },
  },
);

/** `ConcurrencyLimitLayer`: refusals by reason, adaptive limit changes. */
export const concurrencySource = policySource('concurrency', {
  rejected: ({ reason }: { reason: string }) => ({
    attributes: { 'towerline.rejection.reason': reason },
  }),
  limitChanged: () => undefined,
});

/** `HedgeLayer`: hedges sent, and hedges the budget refused. */
export const hedgeSource = policySource('hedge', { hedged: () => undefined, refused: () => undefined });

/** `FallbackLayer`: answers given by the fallback. */
export const fallbackSource = policySource('fallback', { fallback: () => undefined });

/** `RateLimitLayer`: calls that waited for permits, calls refused. */
export const rateLimitSource = policySource('rate-limit', {
  waited: () => undefined,
  limited: () => undefined,
});

/** `LoadShedLayer`: calls shed. */
export const loadShedSource = policySource('load-shed', { shed: () => undefined });

export const POLICY_SOURCES: readonly SourceSpec[] = [
  timeoutSource,
  breakerSource,
  concurrencySource,
  hedgeSource,
  fallbackSource,
  rateLimitSource,
  loadShedSource,
];
