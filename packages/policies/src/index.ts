/**
 * @towerline/policies — the policies every resilience toolkit has, as layers on the request
 * context (its `signal`, `deadline` and `idempotent`), each with typed events published on
 * `node:diagnostics_channel`: `TimeoutLayer` (no timer per call), `CircuitBreakerLayer`
 * (consecutive, count and time windows; N half-open probes; a pure step function),
 * `ConcurrencyLimitLayer` (a bulkhead, or adaptive with `AimdLimit`, `Gradient2Limit` or `VegasLimit`),
 * `HedgeLayer` (idempotent requests only), `FallbackLayer`, `RateLimitLayer` (`TokenBucket`,
 * `Gcra`, or a fleet limiter) and `LoadShedLayer`.
 *
 * Recommended order, outermost first: total timeout → retry → breaker → attempt timeout →
 * concurrency → reconnect.
 *
 * @packageDocumentation
 */
export {
  AimdLimit,
  type AimdOptions,
  Gradient2Limit,
  type Gradient2Options,
  type LimitAlgorithm,
  VegasLimit,
  type VegasOptions,
} from './adaptive.js';
export {
  type BreakerEvents,
  CircuitBreakerLayer,
  type CircuitBreakerOptions,
} from './breaker.js';
export {
  type BreakerEffect,
  type BreakerEnv,
  type BreakerEvent,
  type BreakerState,
  type BreakerStateName,
  type BreakerStep,
  breakerStep,
  closedState,
} from './breaker-machine.js';
export { CircuitBreakerService } from './breaker-service.js';
export type { BreakerPolicy, RateThresholds } from './breaker-window.js';
export {
  type ConcurrencyEvents,
  ConcurrencyLimitLayer,
  type ConcurrencyLimitOptions,
  type Saturable,
} from './concurrency.js';
export { type FallbackEvents, FallbackLayer, type FallbackOptions } from './fallback.js';
export { type HedgeEvents, HedgeLayer, type HedgeOptions } from './hedge.js';
export { Gcra, type RateLimitSource, type RateLimits, TokenBucket } from './limiters.js';
export { type LoadShedEvents, LoadShedLayer, type LoadShedOptions } from './load-shed.js';
export {
  type RateLimitEvents,
  type RateLimiter,
  RateLimitLayer,
  type RateLimitOptions,
} from './rate-limit.js';
export {
  type TimeoutEvent,
  type TimeoutEvents,
  TimeoutLayer,
  type TimeoutOptions,
  TimeoutService,
} from './timeout.js';
