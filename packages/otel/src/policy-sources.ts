import type { InstrumentSpec, SourceSpec } from './spec.js';

/**
 * The layers of `@towerline/policies`, one spec each (channel `towerline:<component>`).
 * Refusals carry their reason or the breaker's state, both from fixed sets. The breaker's
 * `outcome` is never subscribed: listening to it makes the breaker time every call. A rate
 * limiter's `key` is the caller's and unbounded: never an attribute.
 */
const counter = (name: string, unit: string, description: string): InstrumentSpec => ({
  kind: 'counter',
  name,
  unit,
  description,
});
const stateOf = (target: object) => {
  const state = (target as { state?: unknown }).state;
  return typeof state === 'string' ? state : undefined;
};

/** `TimeoutLayer`: calls its deadline rejected (exact mode) or aborted (optimistic mode). */
export const timeoutSource: SourceSpec = {
  component: 'timeout',
  instruments: {
    timeouts: counter('towerline.timeout.timeouts', '{call}', 'Calls whose deadline passed'),
  },
  events: {
    timeout: ({ calls }: { calls?: number }, r) => r.add('timeouts', calls || 1),
  },
};

/** `CircuitBreakerLayer`: state changes, refusals, and a state gauge. */
export const breakerSource: SourceSpec = {
  component: 'breaker',
  instruments: {
    transitions: counter(
      'towerline.breaker.state_changes',
      '{transition}',
      'Circuit breaker state changes',
    ),
    rejections: counter(
      'towerline.breaker.rejections',
      '{call}',
      'Calls refused with ERR_CIRCUIT_OPEN',
    ),
    state: {
      kind: 'gauge',
      name: 'towerline.breaker.state',
      unit: '1',
      description: '1 for the state a circuit breaker is in, 0 for the others',
    },
  },
  events: {
    stateChange: ({ to }: { to: string }, r) => r.add('transitions', 1, { 'towerline.state': to }),
    rejected: ({ state }: { state: string }, r) =>
      r.add('rejections', 1, { 'towerline.state': state }),
  },
  state: {
    instrument: 'state',
    states: ['closed', 'open', 'halfOpen', 'isolated'],
    initial: stateOf,
  },
};

/** `ConcurrencyLimitLayer`: refusals by reason, adaptive limit changes. */
export const concurrencySource: SourceSpec = {
  component: 'concurrency',
  instruments: {
    rejections: counter(
      'towerline.concurrency.rejections',
      '{call}',
      'Calls refused with ERR_CONCURRENCY_LIMIT',
    ),
    changes: counter(
      'towerline.concurrency.limit_changes',
      '{change}',
      'Moves of an adaptive concurrency limit',
    ),
  },
  events: {
    rejected: ({ reason }: { reason: string }, r) =>
      r.add('rejections', 1, { 'towerline.rejection.reason': reason }),
    limitChanged: (_p, r) => r.add('changes'),
  },
};

/** `HedgeLayer`: hedges sent, and hedges the budget refused. */
export const hedgeSource: SourceSpec = {
  component: 'hedge',
  instruments: {
    hedges: counter('towerline.hedge.hedges', '{attempt}', 'Hedged attempts sent'),
    refusals: counter(
      'towerline.hedge.refusals',
      '{attempt}',
      'Hedges due but refused by the budget or the attempt cap',
    ),
  },
  events: {
    hedged: (_p, r) => r.add('hedges'),
    refused: (_p, r) => r.add('refusals'),
  },
};

/** `FallbackLayer`: answers given by the fallback. */
export const fallbackSource: SourceSpec = {
  component: 'fallback',
  instruments: {
    fallbacks: counter(
      'towerline.fallback.fallbacks',
      '{call}',
      'Failures answered by the fallback',
    ),
  },
  events: {
    fallback: ({ error }: { error: unknown }, r) =>
      r.add('fallbacks', 1, { 'error.type': r.errorType(error) }),
  },
};

/** `RateLimitLayer`: calls that waited for permits, calls refused. */
export const rateLimitSource: SourceSpec = {
  component: 'rate-limit',
  instruments: {
    waits: counter('towerline.rate_limit.waits', '{call}', 'Calls that waited for permits'),
    refusals: counter(
      'towerline.rate_limit.refusals',
      '{call}',
      'Calls refused with ERR_RATE_LIMITED',
    ),
  },
  events: {
    waited: (_p, r) => r.add('waits'),
    limited: (_p, r) => r.add('refusals'),
  },
};

/** `LoadShedLayer`: calls shed. */
export const loadShedSource: SourceSpec = {
  component: 'load-shed',
  instruments: {
    shed: counter('towerline.load_shed.shed', '{call}', 'Calls refused with ERR_OVERLOADED'),
  },
  events: { shed: (_p, r) => r.add('shed') },
};

/** Every layer of `@towerline/policies`. */
export const POLICY_SOURCES: readonly SourceSpec[] = [
  timeoutSource,
  breakerSource,
  concurrencySource,
  hedgeSource,
  fallbackSource,
  rateLimitSource,
  loadShedSource,
];
