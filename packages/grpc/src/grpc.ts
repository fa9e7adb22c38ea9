import * as grpc from '@grpc/grpc-js';
import {
  backoff,
  type CallContext,
  type ExponentialRandomBackoff,
  invalidArgument,
  type Service,
  TowerlineError,
  TypedEmitter,
} from '@towerline/core';
import { RetryLayer, type RetryOptions } from '@towerline/retry';

/** grpc-js connectivity states by name. */
export type ConnectivityName = 'IDLE' | 'CONNECTING' | 'READY' | 'TRANSIENT_FAILURE' | 'SHUTDOWN';

const NAMES: Record<number, ConnectivityName> = {
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

/**
 * Channel options that make grpc-js reconnect on the same schedule as `backoff.grpc()`
 * (1 s, ×1.6, ±20 %, cap 120 s), or on another exponential policy's numbers.
 */
export function grpcChannelOptions(
  policy: ExponentialRandomBackoff = backoff.grpc(),
): grpc.ChannelOptions {
  return {
    'grpc.initial_reconnect_backoff_ms': Math.round(policy.initial),
    'grpc.max_reconnect_backoff_ms': Math.round(policy.max),
  };
}

/**
 * Reports a grpc-js channel's connectivity as towerline events (`stateChange`, `connected`,
 * `disconnected`), also published on `towerline:grpc:*` diagnostics channels. grpc-js keeps
 * reconnecting the channel itself; this makes it observable and waitable.
 *
 * @example
 * ```ts
 * const watch = new GrpcConnectivity(client);
 * watch.events.on('stateChange', ({ from, to }) => log(from, to));
 * await watch.waitForReady({ timeoutMs: 5_000 });
 * ```
 */
export class GrpcConnectivity {
  readonly events: TypedEmitter<ConnectivityEvents>;
  readonly #channel: grpc.Channel;
  #state: ConnectivityName;
  #downSince: number | undefined = performance.now();
  #closed = false;

  constructor(
    target: grpc.Client | grpc.Channel,
    options: { name?: string; connect?: boolean } = {},
  ) {
    this.#channel = target instanceof grpc.Client ? (target.getChannel() as grpc.Channel) : target;
    if (typeof this.#channel?.getConnectivityState !== 'function') {
      invalidArgument('target', 'expected a grpc-js Client or Channel');
    }
    this.events = new TypedEmitter({ channel: 'towerline:grpc', source: options.name ?? 'grpc' });
    this.#state = NAMES[this.#channel.getConnectivityState(options.connect ?? true)]!;
    if (this.#state === 'READY') this.#downSince = undefined;
    this.#watch();
  }

  get state(): ConnectivityName {
    return this.#state;
  }

  /** Resolves once READY; rejects with `ERR_TIMEOUT`, `ERR_CLOSED` or the signal's reason. */
  waitForReady(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state === 'READY') return Promise.resolve();
    if (this.#closed || this.#state === 'SHUTDOWN') {
      return Promise.reject(new TowerlineError('ERR_CLOSED', 'the channel is shut down'));
    }
    const { timeoutMs = 30_000, signal } = options;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new TowerlineError('ERR_TIMEOUT', `channel not ready within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const sub = this.events.subscribe('connected', () => finish(undefined));
      const onAbort = () => finish(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const finish = (error: unknown) => {
        clearTimeout(timer);
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
    // grpc-js has no "forever": re-arm every minute; each arm costs one timer, nothing else.
    this.#channel.watchConnectivityState(current, Date.now() + 60_000, () => {
      if (this.#closed) return;
      const next = NAMES[this.#channel.getConnectivityState(false)]!;
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

export interface UnaryOptions {
  /** Per-call deadline, ms. Default 10 000. */
  deadlineMs?: number;
  /**
   * Wait for the channel to become READY instead of failing at once with UNAVAILABLE while it
   * reconnects (grpc's `waitForReady`). Bounded by the deadline. Default false.
   */
  waitForReady?: boolean;
  /** Metadata for every call (or a function for fresh tokens per call). */
  metadata?: grpc.Metadata | (() => grpc.Metadata);
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: Res) => void,
) => grpc.ClientUnaryCall;

/**
 * One unary method of a grpc-js client as a towerline {@link Service}; `ctx.signal` cancels
 * the call.
 *
 * @example
 * ```ts
 * const sayHello = unaryService<HelloRequest, HelloReply>(client, 'sayHello', { waitForReady: true });
 * const reply = await grpcRetry().wrap(sayHello).call({ name: 'world' });
 * ```
 */
export function unaryService<Req, Res>(
  client: grpc.Client,
  method: string,
  options: UnaryOptions = {},
): Service<Req, Res> {
  const fn = (client as unknown as Record<string, UnaryMethod<Req, Res>>)[method];
  if (typeof fn !== 'function') invalidArgument('method', `the client has no method ${method}`);
  const { deadlineMs = 10_000, waitForReady = false } = options;
  return {
    call(request: Req, ctx?: CallContext): Promise<Res> {
      const signal = ctx?.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
      return new Promise<Res>((resolve, reject) => {
        const base = typeof options.metadata === 'function' ? options.metadata() : options.metadata;
        // grpc-js takes waitForReady as a metadata option, not a call option.
        const metadata = base ? base.clone() : new grpc.Metadata();
        metadata.setOptions({ ...metadata.getOptions(), waitForReady });
        const call = fn.call(
          client,
          request,
          metadata,
          { deadline: Date.now() + deadlineMs },
          (error, response) => {
            signal?.removeEventListener('abort', onAbort);
            if (error) reject(error);
            else resolve(response as Res);
          },
        );
        const onAbort = () => call.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    close: async () => client.close(),
  };
}

export interface GrpcRetryOptions extends Omit<RetryOptions, 'retryOn'> {
  /** Status codes worth another attempt. Default `[UNAVAILABLE]`. */
  codes?: grpc.status[];
}

/**
 * A {@link RetryLayer} that retries only the gRPC status codes given (default UNAVAILABLE),
 * with the `grpc` backoff preset unless told otherwise.
 */
export function grpcRetry(options: GrpcRetryOptions = {}): RetryLayer {
  const { codes = [grpc.status.UNAVAILABLE], ...rest } = options;
  const retryable = new Set<number>(codes);
  return new RetryLayer({
    backoff: backoff.grpc(),
    name: 'grpc',
    ...rest,
    retryOn: (error) => retryable.has((error as { code?: number })?.code as number),
  });
}
