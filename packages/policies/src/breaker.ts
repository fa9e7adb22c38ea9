import {
  type CallContext,
  type Clock,
  describeValue,
  expectClock,
  expectOptions,
  FixedInterval,
  type IntervalFunction,
  invalidArgument,
  isAbortError,
  type Service,
  type ServiceLayer,
  systemClock,
  TowerlineError,
  type TypedEmitter,
  warnListenerError,
} from '@towerline/core';
import {
  type BreakerEffect,
  type BreakerEvent,
  type BreakerState,
  type BreakerStateName,
  breakerStep,
  closedState,
} from './breaker-machine.js';
import { CircuitBreakerService, FAILED, IGNORED, OK } from './breaker-service.js';
import { type BreakerPolicy, type FailureWindow, failureWindow } from './breaker-window.js';
import { expectFunction, expectName } from './check.js';
import { ObservedEmitter } from './observed-emitter.js';

/** Events of a {@link CircuitBreakerLayer}. */
export type BreakerEvents = {
  stateChange: { from: BreakerStateName; to: BreakerStateName };
  /** A call was refused with `ERR_CIRCUIT_OPEN`. */
  rejected: { state: BreakerStateName; retryAfterMs: number };
  /** A counted call finished (emitted only while someone listens: timing it costs a clock read). */
  outcome: { ok: boolean; durationMs: number };
};

/** How long the breaker stays open by default, ms. */
const DEFAULT_OPEN_MS = 10_000;

export interface CircuitBreakerOptions {
  /** When to open. Default: 5 consecutive failures. */
  policy?: BreakerPolicy;
  /** Probes half-open lets through, all of which must succeed to close; default 1. */
  halfOpenProbes?: number;
  /**
   * How long it stays open before the first probe, in ms, or a backoff over consecutive
   * openings (`next(opens)`); default 10 000 ms.
   */
  openMs?: number | IntervalFunction;
  /**
   * Whether an error counts as a failure; default every error but the caller's own abort (an
   * `AbortError` while the call's signal is aborted), which counts as nothing.
   */
  isFailure?: (error: unknown) => boolean;
  /**
   * Asked before a half-open probe is let through (fleet-wide breaker state: one probe across
   * every process). False: the call is refused with `ERR_CIRCUIT_OPEN` as if open.
   */
  probeGate?: () => boolean | Promise<boolean>;
  clock?: Clock;
  name?: string;
}

/**
 * A circuit breaker (resilience4j's count and time windows, cockatiel's consecutive breaker) as
 * a layer: every service it wraps shares its state. Refusals are `ERR_CIRCUIT_OPEN` with
 * `retryAfterMs`, the time until the next probe may pass.
 *
 * The state lives in a pure step function ({@link breakerStep}); the closed state's happy path
 * skips it (a success in a closed breaker changes nothing but the window) and costs one
 * promise reaction, or none of its own when a fusing layer above (a retry) attaches one.
 *
 * @example
 * ```ts
 * const breaker = new CircuitBreakerLayer({
 *   policy: { kind: 'count', size: 20, failureRateThreshold: 0.5 },
 *   halfOpenProbes: 2,
 *   openMs: 5_000,
 * });
 * breaker.on('stateChange', ({ from, to }) => log.warn({ from, to }, 'breaker'));
 * const svc = breaker.wrap(http);
 * ```
 */
export class CircuitBreakerLayer implements ServiceLayer {
  readonly events: TypedEmitter<BreakerEvents>;
  readonly #window: FailureWindow;
  readonly #clock: Clock;
  readonly #probes: number;
  readonly #openMs: IntervalFunction;
  readonly #isFailure: ((error: unknown) => boolean) | undefined;
  readonly #gate: (() => boolean | Promise<boolean>) | undefined;
  readonly #windowNeedsNow: boolean;
  #state: BreakerState = closedState;
  /** Closed and nothing to time: the happy path needs no step and no clock. */
  fast = true;
  /** Calls need their duration (slow-call threshold, or an `outcome` listener). */
  timed = false;
  #outcomeListened = false;

  constructor(options: CircuitBreakerOptions = {}) {
    expectOptions(options, true);
    expectOptions(options.policy, true, 'policy');
    this.#window = failureWindow(options.policy ?? { kind: 'consecutive', threshold: 5 });
    this.#windowNeedsNow = options.policy?.kind === 'time';
    expectClock(options.clock, 'clock', true);
    this.#clock = options.clock ?? systemClock;
    const probes = options.halfOpenProbes === undefined ? 1 : options.halfOpenProbes;
    if (!(Number.isInteger(probes) && probes >= 1)) {
      invalidArgument('halfOpenProbes', `expected an integer >= 1, got ${describeValue(probes)}`);
    }
    this.#probes = probes;
    const openMs = options.openMs === undefined ? DEFAULT_OPEN_MS : options.openMs;
    if (
      typeof openMs === 'number'
        ? !(openMs >= 0 && openMs < Number.POSITIVE_INFINITY)
        : typeof openMs?.next !== 'function'
    ) {
      invalidArgument(
        'openMs',
        `expected a finite number >= 0 or an IntervalFunction, got ${describeValue(openMs)}`,
      );
    }
    this.#openMs = typeof openMs === 'number' ? new FixedInterval(openMs) : openMs;
    expectFunction('isFailure', options.isFailure);
    expectFunction('probeGate', options.probeGate);
    expectName(options.name);
    this.#isFailure = options.isFailure;
    this.#gate = options.probeGate;
    this.events = new ObservedEmitter<BreakerEvents>(
      { channel: 'towerline:breaker', source: options.name ?? 'breaker' },
      () => this.#refresh(),
    );
    this.#refresh();
  }

  /** The current state: `closed`, `open`, `halfOpen` or `isolated`. */
  get state(): BreakerStateName {
    const s = this.#state;
    // An open breaker whose time is up reports halfOpen only once a probe is let through.
    return s.kind;
  }

  /** Subscribes to an event; same as `events.on`. */
  on<K extends keyof BreakerEvents & string>(
    event: K,
    listener: (payload: BreakerEvents[K]) => void,
  ): this {
    this.events.on(event, listener);
    return this;
  }

  /** Holds the breaker open (refusing everything) until {@link reset}. */
  isolate(): void {
    this.#step({ type: 'isolate' });
  }

  /** Closes the breaker and forgets the counts. */
  reset(): void {
    this.#step({ type: 'reset' });
  }

  wrap<Req, Res>(inner: Service<Req, Res>): CircuitBreakerService<Req, Res> {
    return new CircuitBreakerService(inner, this);
  }

  #refresh(): void {
    this.#outcomeListened = this.events.listenerCount('outcome') > 0;
    this.timed = this.#window.timed || this.#outcomeListened;
    this.fast = this.#state.kind === 'closed' && !this.timed;
  }

  #step(event: BreakerEvent): BreakerEffect[] {
    const now = this.#clock.now();
    const { state, effects } = breakerStep(this.#state, event, {
      now,
      halfOpenProbes: this.#probes,
      openMs: (opens) => this.#openFor(opens),
    });
    this.#state = state;
    for (const effect of effects) {
      if (effect.type === 'resetWindow') this.#window.reset();
      else if (effect.type === 'stateChange') {
        this.#refresh();
        this.events.emit('stateChange', { from: effect.from, to: effect.to });
      }
    }
    return effects;
  }

  /**
   * How long the breaker stays open after its `opens`-th opening. An interval function that
   * throws, or answers what is not a duration, gets the default: the breaker never throws from
   * the reaction that counts an outcome.
   */
  #openFor(opens: number): number {
    let ms: number;
    try {
      ms = this.#openMs.next(opens);
    } catch (error) {
      warnListenerError({ event: 'openMs', error });
      return DEFAULT_OPEN_MS;
    }
    return ms >= 0 ? ms : DEFAULT_OPEN_MS;
  }

  /** @internal The class of `error` for the window; a classifier that throws says "failure". */
  classify(error: unknown, ctx: CallContext | undefined): number {
    if (this.#isFailure !== undefined) {
      try {
        return this.#isFailure(error) ? FAILED : OK;
      } catch (thrown) {
        // Reported as a throwing listener is: a user's callback, not the call's outcome.
        warnListenerError({ event: 'isFailure', error: thrown });
        return FAILED;
      }
    }
    return isAbortError(error) && ctx?.signal?.aborted ? IGNORED : FAILED;
  }

  /** @internal Counts one outcome of a call admitted as `probe`. */
  record(kind: number, probe: boolean, durationMs: number): void {
    if (kind === IGNORED) {
      if (probe) this.#step({ type: 'probeDenied' });
      return;
    }
    const ok = kind === OK;
    if (this.#outcomeListened) this.events.emit('outcome', { ok, durationMs });
    const now = this.#windowNeedsNow ? this.#clock.now() : 0;
    const tripped = this.#window.record(ok, durationMs, now);
    if (tripped || this.#state.kind !== 'closed') {
      this.#step({ type: 'outcome', ok, probe, tripped });
    }
  }

  /** @internal A success on the fast path. */
  readonly succeed = <T>(value: T): T => {
    if (this.fast) {
      // Closed and untimed: the window is all a success can change.
      if (this.#window.record(true, 0, this.#windowNeedsNow ? this.#clock.now() : 0)) {
        this.#step({ type: 'outcome', ok: true, probe: false, tripped: true });
      }
    } else this.record(OK, false, 0);
    return value;
  };

  /**
   * @internal Whether a call may pass now: `false` (not a probe), `true` (a probe), or the
   * refusal.
   */
  admit(): boolean | TowerlineError {
    for (const effect of this.#step({ type: 'request' })) {
      if (effect.type === 'admit') return effect.probe;
      if (effect.type === 'reject') {
        const state = this.#state.kind;
        this.events.emit('rejected', { state, retryAfterMs: effect.retryAfterMs });
        return circuitOpen(effect.retryAfterMs);
      }
    }
    return false;
  }

  /** @internal The probe gate said no to a probe slot. */
  denyProbe(): TowerlineError {
    this.#step({ type: 'probeDenied' });
    const s = this.#state;
    const retryAfterMs = s.kind === 'open' ? Math.max(0, s.until - this.#clock.now()) : 0;
    this.events.emit('rejected', { state: s.kind, retryAfterMs });
    return circuitOpen(retryAfterMs);
  }

  /** @internal */
  get gate(): (() => boolean | Promise<boolean>) | undefined {
    return this.#gate;
  }

  /** @internal */
  get clock(): Clock {
    return this.#clock;
  }
}

function circuitOpen(retryAfterMs: number): TowerlineError {
  const when = Number.isFinite(retryAfterMs)
    ? `next probe in ${Math.ceil(retryAfterMs)} ms`
    : 'isolated';
  return new TowerlineError('ERR_CIRCUIT_OPEN', `the circuit is open (${when})`, {
    retryAfterMs,
    mayHaveExecuted: false,
  });
}
