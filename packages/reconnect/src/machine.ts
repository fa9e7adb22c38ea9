import { describeError, expectOptions, TowerlineError } from '@towerline/core';
import type { ConnectionState } from './state.js';

/** What every live state carries: the outage's bookkeeping. */
interface Progress {
  /** Connections made so far; the live one's number while connected. */
  generation: number;
  /** Connect attempts in the current outage, compared with `maxAttempts`; reset once healthy. */
  attempts: number;
  /** Consecutive failures since the last healthy connection: the backoff's attempt index. */
  failures: number;
  /** When the current outage began (`undefined` while up, and before any failure). */
  downSince: number | undefined;
  /** Numbers every connect attempt, so that a late outcome of an old one is recognised. */
  serial: number;
}

/**
 * The reconnector's state: a discriminated union whose members carry their own data (tower's
 * `enum State`). Pure data; the connection itself is part of `connected`.
 */
export type MachineState<C> =
  | ({ kind: 'idle' } & Progress)
  | ({ kind: 'connecting'; attempt: number } & Progress)
  | ({ kind: 'connected'; conn: C; attempt: number; healthy: boolean } & Progress)
  | ({ kind: 'reconnecting'; delayMs: number } & Progress)
  | { kind: 'failed'; failure: TowerlineError; generation: number; serial: number }
  | { kind: 'closed'; generation: number; serial: number };

/** What happens to the machine. `serial` ties an outcome or a timer to the attempt it belongs to. */
export type MachineEvent<C> =
  | { type: 'start' }
  | { type: 'connectSucceeded'; serial: number; conn: C }
  | { type: 'connectFailed'; serial: number; error: unknown }
  /** The state's one timer fired: connect timeout, backoff elapsed, or `minUptime` reached. */
  | { type: 'timer'; serial: number }
  | { type: 'lost'; generation: number; error: unknown }
  | { type: 'markHealthy'; generation: number }
  | { type: 'close' };

/** A notification for listeners: name and payload as in `ReconnectorEvents`. */
export type Notice =
  | ['stateChange', { from: ConnectionState; to: ConnectionState }]
  | ['connecting', { attempt: number }]
  | ['connectFailed', { attempt: number; error: unknown }]
  | ['connected', { attempt: number; downtimeMs: number; generation: number }]
  | ['healthy', { generation: number }]
  | ['disconnected', { error: unknown; generation: number }]
  | ['reconnectScheduled', { attempt: number; delayMs: number; error: unknown }]
  | ['gaveUp', { attempts: number; error: unknown }]
  | ['closed', Record<string, never>];

/**
 * What the interpreter must do, in order. A state has at most one timer: the interpreter clears
 * it whenever the state changes, so no effect ever cancels one.
 */
export type Effect<C> =
  | { type: 'connect'; attempt: number; serial: number }
  /** Aborts the signal of the attempt in flight or of the live connection. */
  | { type: 'abort'; reason: unknown }
  | { type: 'arm'; ms: number; serial: number; unref: boolean }
  | { type: 'watch'; conn: C; generation: number }
  | { type: 'unwatch' }
  | { type: 'dispose'; conn: C }
  | { type: 'emit'; notice: Notice }
  /** Feeds an event back in, after any raised by the effects before it (a `lost` inside `watch`). */
  | { type: 'raise'; event: MachineEvent<C> };

/** The settings and the moment a step is taken in; `delay` and `retryable` are the policies. */
export interface MachineEnv {
  now: number;
  name: string;
  maxAttempts: number;
  connectTimeout: number;
  minUptime: number;
  /** The backoff before the next attempt after `failures` consecutive failures. */
  delay(failures: number, error: unknown): number;
  /** Whether a failure is worth another attempt at all. */
  retryable(error: unknown): boolean;
}

export interface Step<C> {
  state: MachineState<C>;
  effects: Effect<C>[];
}

/** The state a new reconnector starts in. */
export function initialState<C>(): MachineState<C> {
  return { kind: 'idle', generation: 0, attempts: 0, failures: 0, downSince: undefined, serial: 0 };
}

/** `ERR_CLOSED` for everything a closed reconnector refuses. */
export function closedError(): TowerlineError {
  return new TowerlineError('ERR_CLOSED', 'the reconnector is closed');
}

/**
 * The whole behaviour of a reconnector as one pure function: the next state and the effects
 * to run, from the current state, an event and the environment. Events that do not apply to
 * the state (a late outcome of an old attempt, a loss reported for an old generation, a second
 * close) leave the state as it is; a connection that arrives too late is disposed.
 */
export function step<C>(s: MachineState<C>, e: MachineEvent<C>, env: MachineEnv): Step<C> {
  expectOptions(s, false, 'state');
  expectOptions(e, false, 'event');
  expectOptions(env, false, 'env');
  return advance(s, e, env);
}

/** @internal {@link step} without the argument checks: the reconnector's own, well-formed calls. */
export function advance<C>(s: MachineState<C>, e: MachineEvent<C>, env: MachineEnv): Step<C> {
  const fx: Effect<C>[] = [];
  const state = next(s, e, env, fx);
  return { state, effects: fx };
}

function next<C>(
  s: MachineState<C>,
  e: MachineEvent<C>,
  env: MachineEnv,
  fx: Effect<C>[],
): MachineState<C> {
  if (e.type === 'connectSucceeded' && !(s.kind === 'connecting' && e.serial === s.serial)) {
    fx.push({ type: 'dispose', conn: e.conn }); // too late: timed out or closed meanwhile
    return s;
  }
  if (e.type === 'close') return close(s, fx);
  switch (s.kind) {
    case 'idle':
      return e.type === 'start' ? attempt(s, env, fx) : s;
    case 'connecting':
      if (e.type === 'connectSucceeded') return connected(s, e.conn, env, fx);
      if (e.type === 'connectFailed' && e.serial === s.serial) return failed(s, e.error, env, fx);
      if (e.type === 'timer' && e.serial === s.serial) {
        const error = new TowerlineError(
          'ERR_CONNECT_TIMEOUT',
          `connect attempt ${s.attempt} timed out after ${env.connectTimeout} ms`,
        );
        return failed(s, error, env, fx);
      }
      return s;
    case 'connected':
      if (e.type === 'lost' && e.generation === s.generation) return lost(s, e.error, env, fx);
      if (
        (e.type === 'timer' && e.serial === s.serial) ||
        (e.type === 'markHealthy' && e.generation === s.generation)
      ) {
        return healthy(s, fx);
      }
      return s;
    case 'reconnecting':
      return e.type === 'timer' && e.serial === s.serial ? attempt(s, env, fx) : s;
    default:
      return s;
  }
}

function emit<C>(fx: Effect<C>[], notice: Notice): void {
  fx.push({ type: 'emit', notice });
}

function moved<C>(fx: Effect<C>[], from: ConnectionState, to: ConnectionState): void {
  emit(fx, ['stateChange', { from, to }]);
}

function progress(s: Progress): Progress {
  const { generation, attempts, failures, downSince, serial } = s;
  return { generation, attempts, failures, downSince, serial };
}

function attempt<C>(
  s: Extract<MachineState<C>, { kind: 'idle' | 'reconnecting' }>,
  env: MachineEnv,
  fx: Effect<C>[],
): MachineState<C> {
  const p = progress(s);
  const n = p.attempts + 1;
  const serial = p.serial + 1;
  moved(fx, s.kind, 'connecting');
  emit(fx, ['connecting', { attempt: n }]);
  fx.push({ type: 'connect', attempt: n, serial });
  if (Number.isFinite(env.connectTimeout)) {
    fx.push({ type: 'arm', ms: env.connectTimeout, serial, unref: false });
  }
  return { kind: 'connecting', ...p, attempts: n, serial, attempt: n };
}

function connected<C>(
  s: Extract<MachineState<C>, { kind: 'connecting' }>,
  conn: C,
  env: MachineEnv,
  fx: Effect<C>[],
): MachineState<C> {
  const generation = s.generation + 1;
  const downtimeMs = s.downSince === undefined ? 0 : env.now - s.downSince;
  moved(fx, 'connecting', 'connected');
  emit(fx, ['connected', { attempt: s.attempt, downtimeMs, generation }]);
  fx.push({ type: 'watch', conn, generation });
  const up: MachineState<C> = {
    kind: 'connected',
    ...progress(s),
    generation,
    downSince: undefined,
    conn,
    attempt: s.attempt,
    healthy: false,
  };
  // Healthy at once, unless watch() already found it dead: its `lost` is raised first.
  if (env.minUptime === 0) fx.push({ type: 'raise', event: { type: 'markHealthy', generation } });
  else if (Number.isFinite(env.minUptime)) {
    fx.push({ type: 'arm', ms: env.minUptime, serial: s.serial, unref: true });
  }
  return up;
}

function healthy<C>(s: Extract<MachineState<C>, { kind: 'connected' }>, fx: Effect<C>[]) {
  if (s.healthy) return s;
  emit(fx, ['healthy', { generation: s.generation }]);
  return { ...s, healthy: true, failures: 0, attempts: 0 };
}

function failed<C>(
  s: Extract<MachineState<C>, { kind: 'connecting' }>,
  error: unknown,
  env: MachineEnv,
  fx: Effect<C>[],
): MachineState<C> {
  fx.push({ type: 'abort', reason: error });
  emit(fx, ['connectFailed', { attempt: s.attempt, error }]);
  const p = progress(s);
  return retryOrGiveUp(
    s.kind,
    { ...p, failures: p.failures + 1, downSince: p.downSince ?? env.now },
    error,
    env,
    fx,
  );
}

function lost<C>(
  s: Extract<MachineState<C>, { kind: 'connected' }>,
  error: unknown,
  env: MachineEnv,
  fx: Effect<C>[],
): MachineState<C> {
  fx.push({ type: 'unwatch' }, { type: 'abort', reason: error });
  emit(fx, ['disconnected', { error, generation: s.generation }]);
  fx.push({ type: 'dispose', conn: s.conn });
  const p = progress(s);
  return retryOrGiveUp(
    s.kind,
    { ...p, failures: p.failures + 1, downSince: env.now },
    error,
    env,
    fx,
  );
}

function retryOrGiveUp<C>(
  from: ConnectionState,
  p: Progress,
  error: unknown,
  env: MachineEnv,
  fx: Effect<C>[],
): MachineState<C> {
  if (p.attempts >= env.maxAttempts || !env.retryable(error)) {
    const failure = new TowerlineError(
      'ERR_RECONNECT_GAVE_UP',
      `${env.name}: gave up after ${p.attempts} connect attempts (last error: ${describeError(error)})`,
      { cause: error, attempts: p.attempts },
    );
    moved(fx, from, 'failed');
    emit(fx, ['gaveUp', { attempts: p.attempts, error }]);
    return { kind: 'failed', failure, generation: p.generation, serial: p.serial };
  }
  const raw = env.delay(p.failures, error);
  const delayMs = Number.isFinite(raw) && raw > 0 ? raw : 0;
  moved(fx, from, 'reconnecting');
  emit(fx, ['reconnectScheduled', { attempt: p.attempts + 1, delayMs, error }]);
  fx.push({ type: 'arm', ms: delayMs, serial: p.serial, unref: false });
  return { kind: 'reconnecting', ...p, delayMs };
}

function close<C>(s: MachineState<C>, fx: Effect<C>[]): MachineState<C> {
  if (s.kind === 'closed') return s;
  const reason = closedError();
  if (s.kind === 'connecting') fx.push({ type: 'abort', reason });
  if (s.kind === 'connected') fx.push({ type: 'unwatch' }, { type: 'abort', reason });
  moved(fx, s.kind, 'closed');
  emit(fx, ['closed', {}]);
  if (s.kind === 'connected') fx.push({ type: 'dispose', conn: s.conn });
  return { kind: 'closed', generation: s.generation, serial: s.serial };
}
