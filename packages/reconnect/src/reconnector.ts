import {
  type Clock,
  ExponentialRandomBackoff,
  type IntervalFunction,
  invalidArgument,
  type RandomSource,
  type Readiness,
  systemClock,
  type TimerHandle,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
import {
  closedError,
  type Effect,
  initialState,
  type MachineEnv,
  type MachineEvent,
  type MachineState,
  type Notice,
  step,
} from './machine.js';
import { isSocketError } from './socket-errors.js';
import { type ConnectionState, canTransition, IllegalTransitionError } from './state.js';

/** Handed to `connect` for every attempt. */
export interface ConnectContext {
  /** 1-based number of this attempt within the current outage. */
  attempt: number;
  /**
   * Aborted when the attempt times out, when the reconnector closes, and later when the
   * connection this attempt produced is lost or disposed. Tie the socket's life to it.
   */
  signal: AbortSignal;
}

export interface ReconnectorOptions<C> {
  /** Makes one connection. Reject (or honour `signal`) to fail the attempt. */
  connect: (ctx: ConnectContext) => Promise<C>;
  /**
   * Watches a live connection and calls `lost(error)` when it dies (a socket's `close`, a
   * heartbeat that went unanswered). Returns a function that stops watching.
   */
  watch?: (conn: C, lost: (error?: unknown) => void) => (() => void) | undefined | void;
  /** Releases a connection that is lost, replaced, arrived too late or closed. */
  dispose?: (conn: C) => void | Promise<void>;
  /** Delay before the next attempt. Default: exponential 100 ms doubling to 30 s, decorrelated jitter. */
  policy?: IntervalFunction;
  /** Connect attempts per outage before giving up (state `failed`). Default: unlimited. */
  maxAttempts?: number;
  /** Upper bound on one connect attempt, ms. Default 10 000 (ioredis' `connectTimeout`). */
  connectTimeout?: number;
  /**
   * How long a connection must stay up before the backoff resets (the flapping guard), ms.
   * Default 1 000. `Infinity`: only {@link Reconnector.markHealthy} resets it.
   */
  minUptime?: number;
  /** Whether an error from a request means the connection itself is broken. */
  isConnectionError?: (error: unknown) => boolean;
  /**
   * Whether a connect failure or a loss is worth another attempt. Default: always. An error
   * this refuses (a 404, bad credentials) ends the machine at once: state `failed`, `gaveUp`.
   */
  retryOn?: (error: unknown) => boolean;
  clock?: Clock;
  /** Used by the default policy's jitter. */
  random?: RandomSource;
  /** A name for events and metrics (`redis`, `config:tls`, …). */
  name?: string;
}

export type ReconnectorEvents = {
  stateChange: { from: ConnectionState; to: ConnectionState };
  connecting: { attempt: number };
  /** A connect attempt failed (error or timeout); `reconnectScheduled` or `gaveUp` follows. */
  connectFailed: { attempt: number; error: unknown };
  connected: { attempt: number; downtimeMs: number; generation: number };
  /** The connection proved itself (stayed up `minUptime`, or `markHealthy`); backoff reset. */
  healthy: { generation: number };
  disconnected: { error: unknown; generation: number };
  reconnectScheduled: { attempt: number; delayMs: number; error: unknown };
  gaveUp: { attempts: number; error: unknown };
  closed: Record<string, never>;
};

export interface ReconnectorStats {
  /** Connect attempts ever made. */
  attempts: number;
  /** Connect attempts that failed (error or timeout). */
  failures: number;
  /** Successful connections after the first. */
  reconnects: number;
  /** Connections lost. */
  disconnects: number;
  /** The latest connect or connection error. */
  lastError: unknown;
  /** Total time spent without a connection after having lost one, ms (finished outages). */
  downtimeMs: number;
}

/**
 * The reconnect policy used when none is given: exponential from 100 ms doubling to 30 s, with
 * decorrelated jitter over `[100 ms, 8 × d]` — the first reconnect comes after 100–800 ms. On
 * 10,000 clients that lose their server at once (`pnpm bench herd`), no 100 ms window holds more
 * than 5 % of the attempts once the outage lasts 10 s or more (AWS's spread of 3 keeps 8 % of
 * them in one window: the first attempts of everyone fall within 200 ms), and the recovery wave
 * is spread as thin as with full jitter while clients come back sooner.
 */
export function defaultReconnectPolicy(random?: RandomSource): ExponentialRandomBackoff {
  return new ExponentialRandomBackoff({
    initial: 100,
    multiplier: 2,
    max: 30_000,
    jitter: 'decorrelated',
    spread: 8,
    ...(random ? { random } : {}),
  });
}

interface Waiter<C> {
  resolve: (conn: C) => void;
  reject: (error: unknown) => void;
  cleanup: (() => void) | undefined;
}

/**
 * Owns one long-lived resource `C` (a socket, a client, a stream) and keeps it alive: connects,
 * watches, and on loss reconnects with backoff. Its whole behaviour is one pure function,
 * {@link step}, from a state (a union whose members carry their own data) and an event to the
 * next state and the effects to run; this class only runs those effects (timers, the connect
 * call, watching, disposing) and feeds their outcomes back in as events.
 *
 * - Failures reported for the same connection generation join one reconnect.
 * - The backoff resets only once a connection has stayed up `minUptime` (flapping guard).
 * - After `maxAttempts` failed attempts in one outage: state `failed`, one `gaveUp` event, every
 *   waiter rejected with `ERR_RECONNECT_GAVE_UP`, no timer left.
 * - `close()` settles everything from any state and leaves no handle behind.
 * - Events are delivered after each step completes, so a listener may call back into it (even
 *   `close()`); a throwing listener is reported, never propagated.
 *
 * It is also a {@link Readiness}: `ready` and `whenReady()`, which a retry waits on.
 *
 * @example
 * ```ts
 * const r = new Reconnector({
 *   connect: ({ signal }) => LineClient.connect({ host, port, signal }),
 *   watch: (client, lost) => { client.socket.once('close', lost); return () => client.socket.off('close', lost) },
 *   dispose: (client) => client.close(),
 * });
 * r.events.on('reconnectScheduled', ({ attempt, delayMs }) => log(attempt, delayMs));
 * const client = await r.acquire();
 * ```
 */
export class Reconnector<C> implements Readiness {
  readonly events = new TypedEmitter<ReconnectorEvents>({ channel: 'towerline:reconnect' });
  readonly name: string;
  readonly isConnectionError: (error: unknown) => boolean;
  readonly #connect: ReconnectorOptions<C>['connect'];
  readonly #watch: ReconnectorOptions<C>['watch'];
  readonly #dispose: ReconnectorOptions<C>['dispose'];
  readonly #clock: Clock;
  readonly #env: Omit<MachineEnv, 'now'>;

  #state: MachineState<C> = initialState();
  /** The live connection: `#state.conn` while connected, read on every request. */
  #conn: C | undefined;
  /** `#state.generation`, read on every request. */
  #generation = 0;
  #timer: TimerHandle | undefined;
  /** The signal of the attempt in flight, then of the connection it made. */
  #lifetime: AbortController | undefined;
  #unwatch: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** The dispose of the connection that was live at `close()`. */
  #closeDispose: Promise<void> | undefined;
  readonly #waiters = new Set<Waiter<C>>();
  readonly #stats: ReconnectorStats = {
    attempts: 0,
    failures: 0,
    reconnects: 0,
    disconnects: 0,
    lastError: undefined,
    downtimeMs: 0,
  };
  readonly #inbox: MachineEvent<C>[] = [];
  #notices: Notice[] = [];
  #running = false;
  #flushing = false;

  constructor(options: ReconnectorOptions<C>) {
    if (typeof options?.connect !== 'function') invalidArgument('connect', 'expected a function');
    for (const name of ['watch', 'dispose', 'isConnectionError', 'retryOn'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') {
        invalidArgument(name, 'expected a function');
      }
    }
    const {
      maxAttempts = Number.POSITIVE_INFINITY,
      connectTimeout = 10_000,
      minUptime = 1_000,
    } = options;
    if (!(maxAttempts >= 1) || !(Number.isInteger(maxAttempts) || maxAttempts === Infinity)) {
      invalidArgument('maxAttempts', `expected an integer >= 1 or Infinity, got ${maxAttempts}`);
    }
    if (!(connectTimeout > 0)) {
      invalidArgument('connectTimeout', `expected ms > 0 or Infinity, got ${connectTimeout}`);
    }
    if (!(minUptime >= 0)) {
      invalidArgument('minUptime', `expected ms >= 0 or Infinity, got ${minUptime}`);
    }
    const policy = options.policy ?? defaultReconnectPolicy(options.random);
    if (typeof policy?.next !== 'function')
      invalidArgument('policy', 'expected an IntervalFunction');
    const retryOn = options.retryOn;
    this.#connect = options.connect;
    this.#watch = options.watch;
    this.#dispose = options.dispose;
    this.#clock = options.clock ?? systemClock;
    this.isConnectionError = options.isConnectionError ?? isSocketError;
    this.name = options.name ?? 'reconnector';
    this.events.source = this.name;
    this.#env = {
      name: this.name,
      maxAttempts,
      connectTimeout,
      minUptime,
      delay: (failures, error) => policy.next(failures, error),
      retryable: (error) => {
        if (!retryOn) return true;
        try {
          return retryOn(error) !== false;
        } catch {
          return true; // a broken predicate must not stop recovery
        }
      },
    };
  }

  get state(): ConnectionState {
    return this.#state.kind;
  }

  /** The live connection, or `undefined` unless the state is `connected`. */
  get current(): C | undefined {
    return this.#conn;
  }

  /** Increments with every connection made; a request remembers the one it ran on. */
  get generation(): number {
    return this.#generation;
  }

  /** True from the moment the live connection proved itself until it is lost. */
  get healthy(): boolean {
    return this.#state.kind === 'connected' && this.#state.healthy;
  }

  /** True while connected ({@link Readiness}). */
  get ready(): boolean {
    return this.#conn !== undefined;
  }

  /** The clock every timer of this reconnector runs on. */
  get clock(): Clock {
    return this.#clock;
  }

  /** The `ERR_RECONNECT_GAVE_UP` error once the state is `failed`. */
  get failure(): TowerlineError | undefined {
    return this.#state.kind === 'failed' ? this.#state.failure : undefined;
  }

  /** A snapshot of the machine's state, with its data (for tests and debugging). */
  get snapshot(): Readonly<MachineState<C>> {
    return this.#state;
  }

  get stats(): Readonly<ReconnectorStats> {
    return { ...this.#stats };
  }

  /** Starts connecting if idle. Safe to call in any state. */
  start(): void {
    if (this.#state.kind === 'idle') this.#dispatch({ type: 'start' });
  }

  /**
   * The live connection, or the next one. Rejects with `ERR_CLOSED` after `close()`, with
   * `ERR_RECONNECT_GAVE_UP` after giving up, or with `signal.reason` on abort.
   */
  acquire(signal?: AbortSignal): Promise<C> {
    const s = this.#state;
    if (s.kind === 'connected') return Promise.resolve(s.conn);
    if (s.kind === 'closed') return Promise.reject(closedError());
    if (s.kind === 'failed') return Promise.reject(s.failure);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const promise = new Promise<C>((resolve, reject) => {
      const waiter: Waiter<C> = { resolve, reject, cleanup: undefined };
      if (signal) {
        const onAbort = () => {
          this.#waiters.delete(waiter);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.#waiters.add(waiter);
    });
    this.start();
    return promise;
  }

  /** Resolves once connected ({@link Readiness}); starts connecting if idle. */
  whenReady(signal?: AbortSignal): Promise<void> {
    return this.acquire(signal).then(noop);
  }

  /**
   * Reports that connection `generation` is broken (a request on it failed with a connection
   * error). Reports for an older generation, or repeated reports, join the reconnect already
   * under way.
   */
  reportLost(generation: number, error?: unknown): void {
    if (this.#state.kind !== 'connected' || generation !== this.#state.generation) return;
    this.#dispatch({ type: 'lost', generation, error: error ?? lostError() });
  }

  /**
   * Declares connection `generation` (default: the live one) healthy at once and resets the
   * backoff, as `minUptime` would. Streams call it when the rebuilt stream yields.
   */
  markHealthy(generation: number = this.#state.generation): void {
    this.#dispatch({ type: 'markHealthy', generation });
  }

  /**
   * Closes from any state: waiters rejected with `ERR_CLOSED`, the attempt in flight aborted,
   * every timer cleared, the connection disposed. Resolves when the dispose finished.
   * Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#dispatch({ type: 'close' });
    // Read a turn later: a close() made from inside a step runs when that step is done.
    this.#closing = Promise.resolve().then(() => this.#closeDispose);
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- the interpreter: feeds events to `step`, runs its effects, then tells the listeners

  /** Runs an event to completion; events raised meanwhile (a `lost` inside `watch`) queue behind it. */
  #dispatch(event: MachineEvent<C>): void {
    this.#inbox.push(event);
    if (this.#running) return;
    this.#running = true;
    try {
      for (let e = this.#inbox.shift(); e !== undefined; e = this.#inbox.shift()) {
        const from = this.#state;
        const { state, effects } = step(from, e, { ...this.#env, now: this.#clock.now() });
        if (state !== from) {
          if (state.kind !== from.kind && !canTransition(from.kind, state.kind)) {
            throw new IllegalTransitionError(from.kind, state.kind);
          }
          this.#timer = this.#cancel(this.#timer);
          this.#state = state;
          this.#conn = state.kind === 'connected' ? state.conn : undefined;
          this.#generation = state.generation;
        }
        for (const effect of effects) this.#run(effect);
      }
      this.#settleWaiters();
    } finally {
      this.#running = false;
    }
    this.#flush();
  }

  #run(effect: Effect<C>): void {
    switch (effect.type) {
      case 'connect':
        this.#startAttempt(effect.attempt, effect.serial);
        return;
      case 'abort':
        this.#lifetime?.abort(effect.reason);
        this.#lifetime = undefined;
        return;
      case 'arm': {
        const { serial } = effect;
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = undefined;
          this.#dispatch({ type: 'timer', serial });
        }, effect.ms);
        if (effect.unref) this.#clock.unref?.(this.#timer);
        return;
      }
      case 'watch':
        this.#startWatching(effect.conn, effect.generation);
        return;
      case 'unwatch': {
        const unwatch = this.#unwatch;
        this.#unwatch = undefined;
        try {
          unwatch?.();
        } catch {
          // A broken unwatch must not stop the machine.
        }
        return;
      }
      case 'dispose': {
        const disposed = this.#disposeConn(effect.conn);
        if (this.#state.kind === 'closed') this.#closeDispose ??= disposed;
        return;
      }
      case 'emit':
        this.#count(effect.notice);
        this.#notices.push(effect.notice);
        return;
      case 'raise':
        this.#inbox.push(effect.event);
        return;
    }
  }

  #startAttempt(attempt: number, serial: number): void {
    const lifetime = new AbortController();
    this.#lifetime = lifetime;
    let promise: Promise<C>;
    try {
      promise = Promise.resolve(this.#connect({ attempt, signal: lifetime.signal }));
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (conn) => this.#dispatch({ type: 'connectSucceeded', serial, conn }),
      (error: unknown) => this.#dispatch({ type: 'connectFailed', serial, error }),
    );
  }

  #startWatching(conn: C, generation: number): void {
    try {
      const unwatch = this.#watch?.(conn, (error) => this.reportLost(generation, error));
      if (typeof unwatch !== 'function') return;
      // `lost` may have been called inside watch(): then it is queued, and will unwatch.
      this.#unwatch = unwatch;
    } catch (error) {
      this.#dispatch({ type: 'lost', generation, error });
    }
  }

  /** Waiters follow the state the machine came to rest in. */
  #settleWaiters(): void {
    if (this.#waiters.size === 0) return;
    const s = this.#state;
    if (s.kind !== 'connected' && s.kind !== 'failed' && s.kind !== 'closed') return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    const error = s.kind === 'failed' ? s.failure : closedError();
    for (const w of waiters) {
      w.cleanup?.();
      if (s.kind === 'connected') w.resolve(s.conn);
      else w.reject(error);
    }
  }

  #count([event, payload]: Notice): void {
    const stats = this.#stats;
    switch (event) {
      case 'connecting':
        stats.attempts++;
        return;
      case 'connectFailed':
        stats.failures++;
        stats.lastError = payload.error;
        return;
      case 'connected':
        stats.downtimeMs += payload.downtimeMs;
        if (payload.generation > 1) stats.reconnects++;
        return;
      case 'disconnected':
        stats.disconnects++;
        stats.lastError = payload.error;
        return;
      default:
        return;
    }
  }

  #cancel(handle: TimerHandle | undefined): undefined {
    if (handle !== undefined) this.#clock.clearTimeout(handle);
    return undefined;
  }

  async #disposeConn(conn: C): Promise<void> {
    try {
      await this.#dispose?.(conn);
    } catch {
      // The connection is being thrown away; its dispose error changes nothing.
    }
  }

  /** Delivers queued notices in order; re-entrant steps append and are delivered by the outer loop. */
  #flush(): void {
    if (this.#running || this.#flushing) return;
    this.#flushing = true;
    try {
      for (let i = 0; i < this.#notices.length; i++) {
        const [event, payload] = this.#notices[i]!;
        this.events.emit(event, payload as never);
      }
    } finally {
      this.#notices = [];
      this.#flushing = false;
    }
  }
}

function noop(): void {}

function lostError(): TowerlineError {
  return new TowerlineError('ERR_CONNECTION_LOST', 'connection reported lost');
}
