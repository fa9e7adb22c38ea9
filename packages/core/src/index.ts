/**
 * @towerline/core — the pieces every towerline package stands on: `Service`/`Layer`, the
 * backoff engine, abortable `sleep`, injectable clocks and randomness, typed events and
 * `TowerlineError`.
 *
 * @packageDocumentation
 */
export {
  backoff,
  checkAttempt,
  type DelayBounds,
  ExponentialBackoff,
  type ExponentialBackoffOptions,
  ExponentialRandomBackoff,
  type ExponentialRandomBackoffOptions,
  FixedInterval,
  type IntervalFunction,
  type Jitter,
  LinearBackoff,
  type LinearBackoffOptions,
} from './backoff.js';
export {
  type Clock,
  type RandomSource,
  seededRandom,
  systemClock,
  type TimerHandle,
} from './clock.js';
export {
  type AttemptBudget,
  abortedBeforeStart,
  type CallContext,
  contextProblem,
  expectSignal,
  isAbortSignal,
  isRequestContext,
  type Readiness,
  RequestContext,
  type SignalLink,
} from './context.js';
export {
  describeError,
  describeValue,
  type ErrorCode,
  expectClock,
  expectObject,
  expectOptions,
  invalidArgument,
  invalidArgumentError,
  isAbortError,
  isTowerlineError,
  notSent,
  TowerlineError,
  type TowerlineErrorDetails,
} from './errors.js';
export {
  type ChannelMessage,
  type Disposable,
  type EventMap,
  type ListenerError,
  type ListenerErrorHandler,
  TypedEmitter,
  type TypedEmitterOptions,
  warnListenerError,
} from './events.js';
export { describeFileError } from './file-errors.js';
export {
  attemptThrough,
  chainSucceeded,
  contextual,
  type FusableService,
  type FusedPath,
  fused,
  fusedPathOf,
  usesRequestContext,
} from './fused.js';
export {
  type OwnedPath,
  owned,
  ownedPathOf,
  passThrough,
  type Tail,
  withTail,
} from './owned.js';
export {
  type Layer,
  layerFn,
  type RequestOf,
  type ResponseOf,
  type Service,
  ServiceBuilder,
  type ServiceLayer,
  serviceFn,
} from './service.js';
export { type SleepOptions, sleep } from './sleep.js';
export { type CallTrace, CallTracer, callTracer } from './trace.js';
export { untilAborted } from './until-aborted.js';
export { VirtualClock } from './virtual-clock.js';
