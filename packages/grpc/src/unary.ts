import * as grpc from '@grpc/grpc-js';
import {
  backoff,
  type CallContext,
  contextual,
  type ExponentialRandomBackoff,
  expectOptions,
  invalidArgument,
  isRequestContext,
  type Service,
} from '@towerline/core';
import { RetryLayer, type RetryOptions } from '@towerline/retry';
import { GrpcConnectivity } from './connectivity.js';
import {
  callUnary,
  checkUnaryCallOptions,
  isIdempotentMethod,
  isUnavailable,
  type UnaryCallOptions,
  unaryMethod,
} from './methods.js';

/**
 * Channel options that make grpc-js reconnect on the same schedule as `backoff.grpc()`
 * (1 s, ×1.6, ±20 %, cap 120 s), or on another exponential policy's numbers.
 */
export function grpcChannelOptions(
  policy: ExponentialRandomBackoff = backoff.grpc(),
): grpc.ChannelOptions {
  expectOptions(policy, false, 'policy');
  return {
    'grpc.initial_reconnect_backoff_ms': Math.round(policy.initial),
    'grpc.max_reconnect_backoff_ms': Math.round(policy.max),
  };
}

export interface UnaryOptions extends UnaryCallOptions {
  /**
   * Whether the method is safe to call twice. Default: its proto `idempotency_level`, else not.
   * A call that may have reached the server is retried only when true.
   */
  idempotent?: boolean;
}

const connectivities = new WeakMap<grpc.Channel, GrpcConnectivity>();

/** One watcher per channel, made on the first failure that needs it. */
function connectivityOf(client: grpc.Client): GrpcConnectivity {
  const channel = client.getChannel() as grpc.Channel;
  let c = connectivities.get(channel);
  if (!c) {
    c = new GrpcConnectivity(channel, { connect: false });
    connectivities.set(channel, c);
  }
  return c;
}

/**
 * One unary method of a grpc-js client as a towerline {@link Service}. `ctx.signal` cancels
 * the call (an aborted one never starts; an abort in flight rejects at once with its reason);
 * `ctx.deadline` bounds it. On the request's context it sets `idempotent` (from the option or
 * the method's proto options), marks a failure that may have reached the server, and, on
 * UNAVAILABLE, names the channel so that a retry waits for READY instead of sleeping blind.
 *
 * @example
 * ```ts
 * const sayHello = unaryService<HelloRequest, HelloReply>(client, 'sayHello');
 * const reply = await grpcRetry().wrap(sayHello).call({ name: 'world' });
 * ```
 */
export function unaryService<Req, Res>(
  client: grpc.Client,
  method: string,
  options: UnaryOptions = {},
): Service<Req, Res> {
  const fn = unaryMethod(client, method);
  expectOptions(options, true);
  checkUnaryCallOptions(options);
  const idempotent =
    options.idempotent ??
    isIdempotentMethod(client.constructor as { service?: grpc.ServiceDefinition }, method);
  const service: Service<Req, Res> & { [contextual]: true } = {
    // It names its channel on the request context: a retry above shares one from the start.
    [contextual]: true,
    call(request: Req, ctx?: CallContext): Promise<Res> {
      if (!isRequestContext(ctx)) return callUnary<Res>(client, fn, request, ctx, options);
      ctx.idempotent ??= idempotent;
      return callUnary<Res>(client, fn, request, ctx, options, (error) => {
        if (isUnavailable(error)) ctx.connection = connectivityOf(client);
      });
    },
    close: async () => client.close(),
  };
  return service;
}

export interface GrpcRetryOptions extends Omit<RetryOptions, 'retryOn'> {
  /** Status codes worth another attempt. Default `[UNAVAILABLE]`. */
  codes?: grpc.status[];
}

/**
 * A {@link RetryLayer} that retries only the gRPC status codes given (default UNAVAILABLE),
 * with the `grpc` backoff preset unless told otherwise. Like every `RetryLayer` it repeats a
 * call that may have reached the server only when the method is idempotent: UNAVAILABLE with
 * "No connection established" (the call never left) is retried, "Connection dropped" on a
 * non-idempotent method is not. After UNAVAILABLE it waits for the channel to be READY, at
 * most its backoff.
 */
export function grpcRetry(options: GrpcRetryOptions = {}): RetryLayer {
  expectOptions(options, true);
  const { codes = [grpc.status.UNAVAILABLE], ...rest } = options;
  if (!Array.isArray(codes) || !codes.every((c) => Number.isInteger(c) && c >= 0 && c <= 16))
    invalidArgument('codes', 'expected an array of gRPC status codes (integers 0..16)');
  const retryable = new Set<number>(codes);
  return new RetryLayer({
    backoff: backoff.grpc(),
    name: 'grpc',
    ...rest,
    retryOn: (error) => retryable.has((error as { code?: number })?.code as number),
  });
}
