import {
  type Clock,
  contextProblem,
  isAbortSignal,
  type Readiness,
  systemClock,
  type TimerHandle,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
import {
  advance,
  closedError,
  type Effect,
  initialState,
  type MachineEnv,
  type MachineEvent,
  type MachineState,
  type Notice,
} from './machine.js';
import {
  countNotice,
  machineEnv,
  type ReconnectorEvents,
  type ReconnectorOptions,
  type ReconnectorStats,
} from './reconnector-options.js';
import { isSocketError } from './socket-errors.js';
import { type ConnectionState, canTransition, IllegalTransitionError } from './state.js';

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
    const env = machineEnv(options);
    this.#connect = options.connect;
    this.#watch = options.watch;
    this.#dispose = options.dispose;
    this.#clock = options.clock ?? systemClock;
    this.isConnectionError = options.isConnectionError ?? isSocketError;
    this.name = env.name;
    this.events.source = this.name;
    this.#env = env;
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
    if (signal !== undefined && !isAbortSignal(signal))
      return Promise.reject(contextProblem({ signal }));
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
        const { state, effects } = advance(from, e, { ...this.#env, now: this.#clock.now() });
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
        countNotice(this.#stats, effect.notice);
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
