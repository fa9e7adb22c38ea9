import {
  type Clock,
  describeError,
  ExponentialRandomBackoff,
  type IntervalFunction,
  invalidArgument,
  type RandomSource,
  systemClock,
  type TimerHandle,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
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

const CONNECTION_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_CONNECTION_LOST',
  'ERR_CONNECT_TIMEOUT',
]);

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

/** The default `isConnectionError`: socket-level error codes, on the error or its cause. */
export function isSocketError(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

interface Waiter<C> {
  resolve: (conn: C) => void;
  reject: (error: unknown) => void;
  cleanup: (() => void) | undefined;
}

type Pending<E> = { [K in keyof E]: [K, E[K]] }[keyof E];

/**
 * Owns one long-lived resource `C` (a socket, a client, a stream) and keeps it alive: connects,
 * watches, and on loss reconnects with backoff, through a closed set of states whose legal
 * transitions are listed in one table (`TRANSITIONS`).
 *
 * - Failures reported for the same connection generation join one reconnect.
 * - The backoff resets only once a connection has stayed up `minUptime` (flapping guard).
 * - After `maxAttempts` failed attempts in one outage: state `failed`, one `gaveUp` event, every
 *   waiter rejected with `ERR_RECONNECT_GAVE_UP`, no timer left.
 * - `close()` settles everything from any state and leaves no handle behind.
 * - Events are delivered after each step of the machine completes, so a listener may call
 *   back into it (even `close()`); a throwing listener is reported, never propagated.
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
export class Reconnector<C> {
  readonly events = new TypedEmitter<ReconnectorEvents>({ channel: 'towerline:reconnect' });
  readonly name: string;
  readonly #connect: ReconnectorOptions<C>['connect'];
  readonly #watch: ReconnectorOptions<C>['watch'];
  readonly #dispose: ReconnectorOptions<C>['dispose'];
  readonly #policy: IntervalFunction;
  readonly #maxAttempts: number;
  readonly #connectTimeout: number;
  readonly #minUptime: number;
  readonly #clock: Clock;
  readonly isConnectionError: (error: unknown) => boolean;
  readonly #retryOn: ((error: unknown) => boolean) | undefined;

  #state: ConnectionState = 'idle';
  #conn: C | undefined;
  #generation = 0;
  #healthy = false;
  /** Consecutive failures since the last healthy connection: the backoff's attempt index. */
  #failures = 0;
  /** Connect attempts in the current outage, compared with `maxAttempts`. */
  #attempts = 0;
  #downSince: number | undefined;
  /** The attempt in flight or the live connection's lifetime signal. */
  #lifetime: AbortController | undefined;
  #unwatch: (() => void) | undefined;
  #backoffTimer: TimerHandle | undefined;
  #connectTimer: TimerHandle | undefined;
  #uptimeTimer: TimerHandle | undefined;
  #failure: TowerlineError | undefined;
  #closing: Promise<void> | undefined;
  readonly #waiters = new Set<Waiter<C>>();
  readonly #stats: ReconnectorStats = {
    attempts: 0,
    failures: 0,
    reconnects: 0,
    disconnects: 0,
    lastError: undefined,
    downtimeMs: 0,
  };
  #pending: Array<Pending<ReconnectorEvents>> = [];
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
    this.#connect = options.connect;
    this.#watch = options.watch;
    this.#dispose = options.dispose;
    this.#policy = options.policy ?? defaultReconnectPolicy(options.random);
    if (typeof this.#policy?.next !== 'function') {
      invalidArgument('policy', 'expected an IntervalFunction');
    }
    this.#maxAttempts = maxAttempts;
    this.#connectTimeout = connectTimeout;
    this.#minUptime = minUptime;
    this.#clock = options.clock ?? systemClock;
    this.isConnectionError = options.isConnectionError ?? isSocketError;
    this.#retryOn = options.retryOn;
    this.name = options.name ?? 'reconnector';
    this.events.source = this.name;
  }

  get state(): ConnectionState {
    return this.#state;
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
    return this.#healthy;
  }

  /** The clock every timer of this reconnector runs on. */
  get clock(): Clock {
    return this.#clock;
  }

  /** The `ERR_RECONNECT_GAVE_UP` error once the state is `failed`. */
  get failure(): TowerlineError | undefined {
    return this.#failure;
  }

  get stats(): Readonly<ReconnectorStats> {
    return { ...this.#stats };
  }

  /** Starts connecting if idle. Safe to call in any state. */
  start(): void {
    if (this.#state !== 'idle') return;
    this.#attemptNow();
    this.#flush();
  }

  /**
   * The live connection, or the next one. Rejects with `ERR_CLOSED` after `close()`, with
   * `ERR_RECONNECT_GAVE_UP` after giving up, or with `signal.reason` on abort.
   */
  acquire(signal?: AbortSignal): Promise<C> {
    if (this.#state === 'connected') return Promise.resolve(this.#conn as C);
    if (this.#state === 'closed') return Promise.reject(closedError());
    if (this.#state === 'failed') return Promise.reject(this.#failure);
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

  /**
   * Reports that connection `generation` is broken (a request on it failed with a connection
   * error). Reports for an older generation, or repeated reports, join the reconnect already
   * under way.
   */
  reportLost(generation: number, error?: unknown): void {
    if (this.#state !== 'connected' || generation !== this.#generation) return;
    this.#lost(error ?? new TowerlineError('ERR_CONNECTION_LOST', 'connection reported lost'));
    this.#flush();
  }

  /**
   * Declares connection `generation` (default: the live one) healthy at once and resets the
   * backoff, as `minUptime` would. Streams call it when the rebuilt stream yields.
   */
  markHealthy(generation: number = this.#generation): void {
    this.#becomeHealthy(generation);
    this.#flush();
  }

  /**
   * Closes from any state: waiters rejected with `ERR_CLOSED`, the attempt in flight aborted,
   * every timer cleared, the connection disposed. Resolves when the dispose finished.
   * Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const conn = this.#conn;
    this.#teardown();
    this.#transition('closed');
    this.#rejectWaiters(closedError());
    this.#emit('closed', {});
    this.#closing = conn === undefined ? Promise.resolve() : this.#disposeConn(conn);
    this.#flush();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- the machine's steps; each leaves the state consistent before any event is delivered

  #attemptNow(): void {
    this.#transition('connecting');
    const attempt = ++this.#attempts;
    this.#stats.attempts++;
    const lifetime = new AbortController();
    this.#lifetime = lifetime;
    this.#emit('connecting', { attempt });
    if (Number.isFinite(this.#connectTimeout)) {
      const ms = this.#connectTimeout;
      this.#connectTimer = this.#clock.setTimeout(() => {
        this.#connectTimer = undefined;
        const error = new TowerlineError(
          'ERR_CONNECT_TIMEOUT',
          `connect attempt ${attempt} timed out after ${ms} ms`,
        );
        this.#attemptFailed(lifetime, error);
        this.#flush();
      }, ms);
    }
    let promise: Promise<C>;
    try {
      promise = Promise.resolve(this.#connect({ attempt, signal: lifetime.signal }));
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (conn) => {
        this.#attemptSucceeded(lifetime, attempt, conn);
        this.#flush();
      },
      (error: unknown) => {
        this.#attemptFailed(lifetime, error);
        this.#flush();
      },
    );
  }

  #attemptSucceeded(lifetime: AbortController, attempt: number, conn: C): void {
    if (this.#lifetime !== lifetime || this.#state !== 'connecting') {
      // Too late: timed out or closed meanwhile. Nobody will ever use it.
      void this.#disposeConn(conn);
      return;
    }
    this.#connectTimer = this.#cancel(this.#connectTimer);
    this.#conn = conn;
    const generation = ++this.#generation;
    const downtimeMs = this.#downSince === undefined ? 0 : this.#clock.now() - this.#downSince;
    if (this.#downSince !== undefined) this.#stats.downtimeMs += downtimeMs;
    this.#downSince = undefined;
    if (generation > 1) this.#stats.reconnects++;
    this.#transition('connected');
    this.#emit('connected', { attempt, downtimeMs, generation });
    try {
      const unwatch = this.#watch?.(conn, (error) => this.reportLost(generation, error));
      if (typeof unwatch === 'function') {
        // `lost` may have fired inside watch(): then the connection is already gone.
        if (this.#isLive(generation)) this.#unwatch = unwatch;
        else unwatch();
      }
    } catch (error) {
      if (this.#isLive(generation)) this.#lost(error);
      return;
    }
    if (!this.#isLive(generation)) return;
    if (this.#minUptime === 0) this.#becomeHealthy(generation);
    else if (Number.isFinite(this.#minUptime)) {
      this.#uptimeTimer = this.#clock.setTimeout(() => {
        this.#uptimeTimer = undefined;
        this.#becomeHealthy(generation);
        this.#flush();
      }, this.#minUptime);
      this.#clock.unref?.(this.#uptimeTimer);
    }
    for (const waiter of this.#takeWaiters()) waiter.resolve(conn);
  }

  /** Whether connection `generation` is still the live one (listeners and watch() may end it). */
  #isLive(generation: number): boolean {
    return this.#generation === generation && this.#state === 'connected';
  }

  #attemptFailed(lifetime: AbortController, error: unknown): void {
    if (this.#lifetime !== lifetime || this.#state !== 'connecting') return;
    this.#connectTimer = this.#cancel(this.#connectTimer);
    this.#lifetime = undefined;
    lifetime.abort(error);
    this.#stats.failures++;
    this.#stats.lastError = error;
    this.#downSince ??= this.#clock.now();
    this.#failures++;
    this.#scheduleOrGiveUp(error);
  }

  #lost(error: unknown): void {
    const conn = this.#conn as C;
    const generation = this.#generation;
    this.#teardown(error);
    this.#stats.disconnects++;
    this.#stats.lastError = error;
    this.#downSince = this.#clock.now();
    this.#failures++;
    this.#emit('disconnected', { error, generation });
    void this.#disposeConn(conn);
    this.#scheduleOrGiveUp(error);
  }

  #scheduleOrGiveUp(error: unknown): void {
    if (this.#attempts >= this.#maxAttempts || !this.#worthRetrying(error)) {
      this.#giveUp(error);
      return;
    }
    const raw = this.#policy.next(this.#failures, error);
    const delayMs = Number.isFinite(raw) && raw > 0 ? raw : 0;
    this.#transition('reconnecting');
    this.#emit('reconnectScheduled', { attempt: this.#attempts + 1, delayMs, error });
    this.#backoffTimer = this.#clock.setTimeout(() => {
      this.#backoffTimer = undefined;
      if (this.#state !== 'reconnecting') return;
      this.#attemptNow();
      this.#flush();
    }, delayMs);
  }

  #worthRetrying(error: unknown): boolean {
    if (!this.#retryOn) return true;
    try {
      return this.#retryOn(error) !== false;
    } catch {
      return true; // a broken predicate must not stop recovery
    }
  }

  #giveUp(error: unknown): void {
    const attempts = this.#attempts;
    this.#teardown();
    this.#transition('failed');
    this.#failure = new TowerlineError(
      'ERR_RECONNECT_GAVE_UP',
      `${this.name}: gave up after ${attempts} connect attempts (last error: ${describeError(error)})`,
      { cause: error, attempts },
    );
    this.#rejectWaiters(this.#failure);
    this.#emit('gaveUp', { attempts, error });
  }

  #becomeHealthy(generation: number): void {
    if (this.#state !== 'connected' || generation !== this.#generation || this.#healthy) return;
    this.#uptimeTimer = this.#cancel(this.#uptimeTimer);
    this.#healthy = true;
    this.#failures = 0;
    this.#attempts = 0;
    this.#emit('healthy', { generation });
  }

  /** Drops the live connection's watch, timers and signal; leaves the state to the caller. */
  #teardown(reason: unknown = closedError()): void {
    this.#backoffTimer = this.#cancel(this.#backoffTimer);
    this.#connectTimer = this.#cancel(this.#connectTimer);
    this.#uptimeTimer = this.#cancel(this.#uptimeTimer);
    const unwatch = this.#unwatch;
    this.#unwatch = undefined;
    if (unwatch) {
      try {
        unwatch();
      } catch {
        // A broken unwatch must not stop the machine.
      }
    }
    this.#lifetime?.abort(reason);
    this.#lifetime = undefined;
    this.#conn = undefined;
    this.#healthy = false;
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

  #takeWaiters(): Waiter<C>[] {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w.cleanup?.();
    return waiters;
  }

  #rejectWaiters(error: unknown): void {
    for (const waiter of this.#takeWaiters()) waiter.reject(error);
  }

  #transition(to: ConnectionState): void {
    const from = this.#state;
    if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
    this.#state = to;
    this.#emit('stateChange', { from, to });
  }

  #emit<K extends keyof ReconnectorEvents>(event: K, payload: ReconnectorEvents[K]): void {
    this.#pending.push([event, payload] as Pending<ReconnectorEvents>);
  }

  /** Delivers queued events in order; re-entrant calls append and are delivered by the outer loop. */
  #flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      for (let i = 0; i < this.#pending.length; i++) {
        const [event, payload] = this.#pending[i]!;
        this.events.emit(event, payload as never);
      }
    } finally {
      this.#pending = [];
      this.#flushing = false;
    }
  }
}

function closedError(): TowerlineError {
  return new TowerlineError('ERR_CLOSED', 'the reconnector is closed');
}
