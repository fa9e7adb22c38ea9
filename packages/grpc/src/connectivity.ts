import * as grpc from '@grpc/grpc-js';
import {
  invalidArgument,
  type Readiness,
  systemClock,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';

/** grpc-js connectivity states by name. */
export type ConnectivityName = 'IDLE' | 'CONNECTING' | 'READY' | 'TRANSIENT_FAILURE' | 'SHUTDOWN';

export const STATE_NAMES: Record<number, ConnectivityName> = {
  [grpc.connectivityState.IDLE]: 'IDLE',
  [grpc.connectivityState.CONNECTING]: 'CONNECTING',
  [grpc.connectivityState.READY]: 'READY',
  [grpc.connectivityState.TRANSIENT_FAILURE]: 'TRANSIENT_FAILURE',
  [grpc.connectivityState.SHUTDOWN]: 'SHUTDOWN',
};

export type ConnectivityEvents = {
  /** The channel moved between grpc-js connectivity states. */
  stateChange: { from: ConnectivityName; to: ConnectivityName };
  /** READY after anything else. */
  connected: { downtimeMs: number };
  /** Left READY. */
  disconnected: { to: ConnectivityName };
};

/** The channel of a grpc-js client, or the channel itself. */
export function channelOf(target: grpc.Client | grpc.Channel): grpc.Channel {
  const channel =
    target instanceof grpc.Client
      ? (target.getChannel() as grpc.Channel)
      : (target as grpc.Channel);
  if (typeof channel?.getConnectivityState !== 'function') {
    invalidArgument('target', 'expected a grpc-js Client or Channel');
  }
  return channel;
}

/**
 * Reports a grpc-js channel's connectivity as towerline events (`stateChange`, `connected`,
 * `disconnected`), also published on `towerline:grpc:*` diagnostics channels. It is a
 * {@link Readiness}: a retry over a `unaryService` waits for READY instead of sleeping blind.
 * grpc-js keeps reconnecting this channel itself; for a channel under towerline's own
 * reconnect engine and backoff, use `resilientGrpc`.
 *
 * @example
 * ```ts
 * const watch = new GrpcConnectivity(client);
 * watch.events.on('stateChange', ({ from, to }) => log(from, to));
 * await watch.waitForReady({ timeoutMs: 5_000 });
 * ```
 */
export class GrpcConnectivity implements Readiness {
  readonly events: TypedEmitter<ConnectivityEvents>;
  readonly #channel: grpc.Channel;
  #state: ConnectivityName;
  #downSince: number | undefined = performance.now();
  #closed = false;

  constructor(
    target: grpc.Client | grpc.Channel,
    options: { name?: string; connect?: boolean } = {},
  ) {
    this.#channel = channelOf(target);
    this.events = new TypedEmitter({ channel: 'towerline:grpc', source: options.name ?? 'grpc' });
    this.#state = STATE_NAMES[this.#channel.getConnectivityState(options.connect ?? true)]!;
    if (this.#state === 'READY') this.#downSince = undefined;
    this.#watch();
  }

  get state(): ConnectivityName {
    return this.#state;
  }

  /** True while READY ({@link Readiness}). */
  get ready(): boolean {
    return this.#state === 'READY';
  }

  /** Resolves once READY, asking an idle channel to connect ({@link Readiness}). */
  whenReady(signal?: AbortSignal): Promise<void> {
    if (this.#state === 'IDLE') this.#channel.getConnectivityState(true);
    return this.waitForReady({
      timeoutMs: Number.POSITIVE_INFINITY,
      ...(signal ? { signal } : {}),
    });
  }

  /** Resolves once READY; rejects with `ERR_TIMEOUT`, `ERR_CLOSED` or the signal's reason. */
  waitForReady(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'READY') return Promise.resolve();
    if (this.#closed || this.#state === 'SHUTDOWN') {
      return Promise.reject(new TowerlineError('ERR_CLOSED', 'the channel is shut down'));
    }
    const { timeoutMs = 30_000, signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      // The system clock's timers keep a delay longer than a Node timer's 24.8 days.
      const timer = Number.isFinite(timeoutMs)
        ? systemClock.setTimeout(
            () =>
              finish(new TowerlineError('ERR_TIMEOUT', `channel not ready within ${timeoutMs} ms`)),
            timeoutMs,
          )
        : undefined;
      const sub = this.events.subscribe('stateChange', ({ to }) => {
        if (to === 'READY') finish(undefined);
        else if (to === 'SHUTDOWN')
          finish(new TowerlineError('ERR_CLOSED', 'the channel is shut down'));
      });
      const onAbort = () => finish(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (error: unknown) => {
        if (timer !== undefined) systemClock.clearTimeout(timer);
        sub.dispose();
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve();
        else reject(error);
      };
    });
  }

  /** Stops watching (the channel is the caller's to close). */
  close(): void {
    this.#closed = true;
  }

  #watch(): void {
    if (this.#closed || this.#state === 'SHUTDOWN') return;
    const current = this.#channel.getConnectivityState(false);
    // Infinity: grpc-js arms no timer; a shut-down channel calls every watcher once more.
    this.#channel.watchConnectivityState(current, Number.POSITIVE_INFINITY, () => {
      if (this.#closed) return;
      const next = STATE_NAMES[this.#channel.getConnectivityState(false)]!;
      if (next !== this.#state) this.#move(next);
      this.#watch();
    });
  }

  #move(to: ConnectivityName): void {
    const from = this.#state;
    this.#state = to;
    this.events.emit('stateChange', { from, to });
    if (to === 'READY') {
      const downtimeMs = this.#downSince === undefined ? 0 : performance.now() - this.#downSince;
      this.#downSince = undefined;
      this.events.emit('connected', { downtimeMs });
    } else if (from === 'READY') {
      this.#downSince = performance.now();
      this.events.emit('disconnected', { to });
    }
  }
}
