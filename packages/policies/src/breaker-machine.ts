/** The breaker's state names, as reported by `state` and `stateChange`. */
export type BreakerStateName = 'closed' | 'open' | 'halfOpen' | 'isolated';

/**
 * The breaker's state: a discriminated union whose members carry their own data (as the
 * reconnector's). Pure data.
 */
export type BreakerState =
  | { kind: 'closed' }
  /** `opens`: consecutive openings without a close between, for the open-duration backoff. */
  | { kind: 'open'; until: number; opens: number }
  /** `admitted` probes let through so far, `succeeded` of them; `opens` carried for a reopen. */
  | { kind: 'halfOpen'; admitted: number; succeeded: number; opens: number }
  | { kind: 'isolated' };

/** What happens to the breaker. */
export type BreakerEvent =
  /** A call asks to pass. */
  | { type: 'request' }
  /** A probe slot was granted but the probe gate said no: the slot is handed back. */
  | { type: 'probeDenied' }
  /**
   * A call's outcome. `probe`: it was admitted as a half-open probe. `tripped`: the failure
   * window, having counted this outcome, says the thresholds are crossed (read in the closed
   * state only; a slow success can trip it too).
   */
  | { type: 'outcome'; ok: boolean; probe: boolean; tripped: boolean }
  | { type: 'isolate' }
  | { type: 'reset' };

/** What the interpreter must do, in order. */
export type BreakerEffect =
  | { type: 'admit'; probe: boolean }
  /** Refuse the call with `ERR_CIRCUIT_OPEN`; `retryAfterMs` until the next probe may pass. */
  | { type: 'reject'; retryAfterMs: number }
  /** Forget the failure window's counts (on closing). */
  | { type: 'resetWindow' }
  | { type: 'stateChange'; from: BreakerStateName; to: BreakerStateName };

/** The settings and the moment a step is taken in. */
export interface BreakerEnv {
  now: number;
  /** Probes half-open admits, and the successes among them that close the breaker; >= 1. */
  halfOpenProbes: number;
  /** How long the breaker stays open after its `opens`-th consecutive opening (1-based). */
  openMs(opens: number): number;
}

export interface BreakerStep {
  state: BreakerState;
  effects: BreakerEffect[];
}

const CLOSED: BreakerState = { kind: 'closed' };

function moveTo(from: BreakerState, to: BreakerState, effects: BreakerEffect[]): BreakerStep {
  if (from.kind !== to.kind) effects.push({ type: 'stateChange', from: from.kind, to: to.kind });
  return { state: to, effects };
}

function open(from: BreakerState, opens: number, env: BreakerEnv): BreakerStep {
  return moveTo(from, { kind: 'open', until: env.now + env.openMs(opens), opens }, []);
}

/**
 * The breaker as a step function: one state and one event in, the next state and the effects
 * out, with no clock and no I/O (resilience4j's `CircuitBreakerStateMachine`, as a table).
 *
 * - closed: every call passes; an outcome that trips the window opens it.
 * - open: calls are refused until `until`; the first call after it becomes the first probe.
 * - halfOpen: exactly `halfOpenProbes` calls pass as probes, the rest are refused; a probe that
 *   fails reopens (for longer: `opens` grows), all of them succeeding closes.
 * - isolated: everything is refused until `reset`.
 */
export function breakerStep(
  state: BreakerState,
  event: BreakerEvent,
  env: BreakerEnv,
): BreakerStep {
  switch (event.type) {
    case 'isolate':
      return moveTo(state, { kind: 'isolated' }, []);
    case 'reset':
      return moveTo(state, CLOSED, [{ type: 'resetWindow' }]);
    case 'request':
      switch (state.kind) {
        case 'closed':
          return { state, effects: [{ type: 'admit', probe: false }] };
        case 'isolated':
          return { state, effects: [{ type: 'reject', retryAfterMs: Number.POSITIVE_INFINITY }] };
        case 'open':
          if (env.now < state.until) {
            return { state, effects: [{ type: 'reject', retryAfterMs: state.until - env.now }] };
          }
          return moveTo(
            state,
            { kind: 'halfOpen', admitted: 1, succeeded: 0, opens: state.opens },
            [{ type: 'admit', probe: true }],
          );
        case 'halfOpen':
          if (state.admitted < env.halfOpenProbes) {
            return {
              state: { ...state, admitted: state.admitted + 1 },
              effects: [{ type: 'admit', probe: true }],
            };
          }
          // Every probe is out: the next may pass once they are back.
          return { state, effects: [{ type: 'reject', retryAfterMs: 0 }] };
      }
      break;
    case 'probeDenied':
      if (state.kind === 'halfOpen') {
        if (state.admitted <= 1 && state.succeeded === 0) {
          // The only probe was refused by the gate: back to open, for the same time again.
          return open(state, state.opens, env);
        }
        return { state: { ...state, admitted: state.admitted - 1 }, effects: [] };
      }
      return { state, effects: [] };
    case 'outcome':
      switch (state.kind) {
        case 'closed':
          return event.tripped ? open(state, 1, env) : { state, effects: [] };
        case 'halfOpen':
          // A call admitted before the breaker opened says nothing about the peer now.
          if (!event.probe) return { state, effects: [] };
          if (!event.ok) return open(state, state.opens + 1, env);
          if (state.succeeded + 1 >= env.halfOpenProbes) {
            return moveTo(state, CLOSED, [{ type: 'resetWindow' }]);
          }
          return { state: { ...state, succeeded: state.succeeded + 1 }, effects: [] };
        default:
          return { state, effects: [] };
      }
  }
  return { state, effects: [] };
}

/** The initial state. */
export const closedState: BreakerState = CLOSED;
