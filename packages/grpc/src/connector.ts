import * as grpc from '@grpc/grpc-js';
import { type CallContext, invalidArgument, type Service } from '@towerline/core';
import {
  type ConnectionOptions,
  type Connector,
  fromConnector,
  type ReconnectService,
} from '@towerline/reconnect';
import {
  callUnary,
  checkUnaryCallOptions,
  isDefinitiveStatus,
  isIdempotentMethod,
  isNotSentStatus,
  isUnavailable,
  type UnaryCallOptions,
  unaryMethod,
} from './methods.js';

/** One unary call: the client's method name, its request, and optional per-call metadata. */
export interface GrpcRequest {
  method: string;
  request: unknown;
  metadata?: grpc.Metadata;
}

type ClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client;

export interface GrpcConnectorOptions extends UnaryCallOptions {
  /** `host:port`, or a function asked before every attempt (service discovery). */
  target: string | (() => string | Promise<string>);
  /** The client class: from `makeGenericClientConstructor`, `loadPackageDefinition` or codegen. */
  client: ClientConstructor;
  /** Default: insecure. A function is asked before every attempt (rotating certificates). */
  credentials?:
    | grpc.ChannelCredentials
    | (() => grpc.ChannelCredentials | Promise<grpc.ChannelCredentials>);
  /** Passed to every channel; `grpc.service_config` also tells which methods are idempotent. */
  channelOptions?: grpc.ChannelOptions;
  /** Methods safe to call twice, besides those the proto options or service config name. */
  idempotentMethods?: string[];
  /** Names the connection in events and metrics. Default `grpc`. */
  name?: string;
}

const lostChannel = () =>
  Object.assign(new Error('the channel left READY'), { code: 'ECONNRESET' });

/** Resolves once the channel is READY; one connection attempt (TRANSIENT_FAILURE fails it). */
function ready(client: grpc.Client, signal: AbortSignal): Promise<grpc.Client> {
  const channel = client.getChannel();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (signal.aborted) return reject(signal.reason);
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return resolve(client);
      if (
        state === grpc.connectivityState.TRANSIENT_FAILURE ||
        state === grpc.connectivityState.SHUTDOWN
      ) {
        return reject(
          Object.assign(new Error('the channel could not connect'), { code: 'ECONNREFUSED' }),
        );
      }
      channel.watchConnectivityState(state, Number.POSITIVE_INFINITY, check);
    };
    check();
  });
}

/**
 * The @grpc/grpc-js {@link Connector}: the channel's readiness under towerline's reconnect
 * engine, on towerline's backoff. Each attempt makes a channel and waits for READY (one
 * connection attempt: TRANSIENT_FAILURE fails it); a channel that leaves READY is lost, closed
 * and replaced after the policy's delay, so grpc-js's own reconnect schedule never applies. A
 * call that never reached a server (no connection, refused stream) waits for the next channel;
 * one that may have is resent only for an idempotent method (proto `idempotency_level`, a
 * service-config retry or hedging policy, or `idempotentMethods`).
 */
export function grpcConnector(
  options: GrpcConnectorOptions,
): Connector<grpc.Client, GrpcRequest, unknown> {
  if (typeof options?.client !== 'function')
    invalidArgument('client', 'expected a grpc-js client class');
  if (typeof options.target !== 'string' && typeof options.target !== 'function') {
    invalidArgument('target', 'expected host:port or a function');
  }
  checkUnaryCallOptions(options);
  const Client = options.client;
  const serviceConfig = options.channelOptions?.['grpc.service_config'] as string | undefined;
  const named = new Set(options.idempotentMethods ?? []);
  const idempotent = new Map<string, boolean>();
  return {
    name: options.name ?? 'grpc',
    async connect({ signal }) {
      const target = typeof options.target === 'function' ? await options.target() : options.target;
      const credentials =
        typeof options.credentials === 'function'
          ? await options.credentials()
          : (options.credentials ?? grpc.credentials.createInsecure());
      signal.throwIfAborted();
      const client = new Client(target, credentials, options.channelOptions);
      try {
        return await ready(client, signal);
      } catch (error) {
        client.close();
        throw error;
      }
    },
    watch(client, lost) {
      let watching = true;
      const channel = client.getChannel();
      channel.watchConnectivityState(grpc.connectivityState.READY, Number.POSITIVE_INFINITY, () => {
        if (watching) lost(lostChannel());
      });
      return () => {
        watching = false;
      };
    },
    dispose: (client) => client.close(),
    send: (client, req, ctx: CallContext | undefined) =>
      callUnary(client, unaryMethod(client, req.method), req.request, ctx, {
        ...options,
        ...(req.metadata ? { metadata: req.metadata } : {}),
      }),
    isConnectionError: isUnavailable,
    neverWritten: isNotSentStatus,
    isDefinitive: isDefinitiveStatus,
    classify(req) {
      let yes = idempotent.get(req.method);
      if (yes === undefined) {
        yes =
          named.has(req.method) || isIdempotentMethod(Client as never, req.method, serviceConfig);
        idempotent.set(req.method, yes);
      }
      return { idempotent: yes };
    },
    sizeOf: () => 256,
  };
}

export interface ResilientGrpcOptions extends GrpcConnectorOptions, ConnectionOptions {}

/**
 * A gRPC channel kept alive by towerline's reconnect engine, as a service of unary calls
 * (`{ method, request }`); `grpcMethods(stack)` gives typed methods over it or any stack
 * composed on it. While the channel is down, calls wait (bounded) and go out the moment it is
 * READY again.
 *
 * @example
 * ```ts
 * const greeter = resilientGrpc({ target: '127.0.0.1:50051', client: GreeterClient });
 * const api = grpcMethods<{ sayHello: [HelloRequest, HelloReply] }>(
 *   new ServiceBuilder().layer(new RetryLayer()).service(greeter),
 * );
 * const reply = await api.sayHello({ name: 'world' });
 * ```
 */
export function resilientGrpc(
  options: ResilientGrpcOptions,
): ReconnectService<grpc.Client, GrpcRequest, unknown> {
  return fromConnector(grpcConnector(options), options);
}

/** A map of unary method names to their `[request, response]` types. */
export type UnaryMethods = Record<string, [request: unknown, response: unknown]>;

/** Typed unary methods over a service of {@link GrpcRequest}s. */
export type GrpcMethods<M extends UnaryMethods> = {
  [K in keyof M]: (request: M[K][0], ctx?: CallContext) => Promise<M[K][1]>;
} & {
  /** The same methods, each called with `ctx` unless a call passes its own. */
  with(ctx: CallContext): GrpcMethods<M>;
};

/**
 * Typed unary methods over any stack that ends in {@link resilientGrpc}; method names come
 * from the type map, calls go through the whole stack.
 */
export function grpcMethods<M extends UnaryMethods>(
  service: Service<GrpcRequest, unknown>,
  bound?: CallContext,
): GrpcMethods<M> {
  const cache = new Map<string | symbol, unknown>();
  return new Proxy({} as GrpcMethods<M>, {
    get(_, name) {
      if (name === 'with') return (ctx: CallContext) => grpcMethods<M>(service, ctx);
      if (typeof name !== 'string' || name === 'then') return undefined;
      let fn = cache.get(name);
      if (!fn) {
        fn = (request: unknown, ctx?: CallContext) =>
          service.call({ method: name, request }, ctx ?? bound);
        cache.set(name, fn);
      }
      return fn;
    },
  });
}
