/**
 * @towerline/fleet — state shared by every replica of a service, on the Redis it already runs,
 * over towerline's resilient Redis client: a GCRA rate limit in one Lua script
 * ({@link FleetRateLimiter}), a retry budget aggregated per window ({@link FleetRetryBudget})
 * and breaker state with one half-open probe across the fleet ({@link SharedBreaker}). The
 * happy path makes no Redis round trip where a batched one will do, and each falls back to a
 * local decision when Redis is unreachable, saying so in a `fallback` event.
 *
 * @packageDocumentation
 */
export {
  type BreakerState,
  type SharableBreaker,
  SharedBreaker,
  type SharedBreakerEvents,
  type SharedBreakerOptions,
} from './breaker.js';
export { GcraLimiter, type GcraOptions } from './gcra.js';
export type { FleetEvents, FleetRedisOptions } from './link.js';
export {
  FleetRateLimiter,
  type FleetRateLimiterOptions,
  type RateLimiter,
} from './rate-limit.js';
export { FleetRetryBudget, type FleetRetryBudgetOptions } from './retry-budget.js';
