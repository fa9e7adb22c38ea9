import * as grpc from '@grpc/grpc-js';
import {
  type CallContext,
  contextProblem,
  describeValue,
  expectObject,
  invalidArgument,
  isRequestContext,
} from '@towerline/core';

type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

/** How one unary call is made. */
export interface UnaryCallOptions {
  /** Per-call deadline, ms; the context's deadline wins when earlier. Default 10 000. */
  deadlineMs?: number;
  /**
   * Wait for the channel to become READY instead of failing at once with UNAVAILABLE while it
   * reconnects (grpc's `waitForReady`). Bounded by the deadline. Default false.
   */
  waitForReady?: boolean;
  /** Metadata for every call (or a function for fresh tokens per call). */
  metadata?: grpc.Metadata | (() => grpc.Metadata);
}

/** @internal Throws `ERR_INVALID_ARGUMENT` for call options of the wrong kind. */
export function checkUnaryCallOptions(options: UnaryCallOptions): void {
  const { deadlineMs, waitForReady, metadata } = options;
  if (deadlineMs !== undefined && (typeof deadlineMs !== 'number' || !(deadlineMs > 0)))
    invalidArgument('deadlineMs', `expected ms > 0, got ${describeValue(deadlineMs)}`);
  if (waitForReady !== undefined && typeof waitForReady !== 'boolean')
    invalidArgument('waitForReady', `expected a boolean, got ${describeValue(waitForReady)}`);
  if (
    metadata !== undefined &&
    typeof metadata !== 'function' &&
    !(metadata instanceof grpc.Metadata)
  )
    invalidArgument('metadata', 'expected a grpc.Metadata or a function returning one');
}

/**
 * UNAVAILABLE details grpc-js gives a call that never reached a server: no connection to pick,
 * the channel closed first, or the server refused the stream before reading it (REFUSED_STREAM).
 */
const NOT_SENT_DETAILS =
  /^(?:[a-z_]+: )?No connection established|^Channel closed before call started|^Stream refused by server/;

/** True for a status that proves the call never reached the server. */
export function isNotSentStatus(error: unknown): boolean {
  const e = error as { code?: unknown; details?: unknown } | undefined;
  return (
    e?.code === grpc.status.UNAVAILABLE &&
    typeof e.details === 'string' &&
    NOT_SENT_DETAILS.test(e.details)
  );
}

/** Statuses that are the server's definitive answer: repeating the call cannot change them. */
const DEFINITIVE = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.PERMISSION_DENIED,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNIMPLEMENTED,
  grpc.status.UNAUTHENTICATED,
]);

/** True for a status no repeat can change (INVALID_ARGUMENT, NOT_FOUND, …). */
export function isDefinitiveStatus(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && DEFINITIVE.has(code);
}

/** UNAVAILABLE: the channel has no working connection. */
export function isUnavailable(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === grpc.status.UNAVAILABLE;
}

/** The client's function for `method`, or `ERR_INVALID_ARGUMENT`. */
export function unaryMethod(client: grpc.Client, method: string): UnaryMethod {
  // On every call through the connector: the type check only, not the options' field scan.
  expectObject(client, 'client');
  const fn = (client as unknown as Record<string, UnaryMethod>)[method];
  if (typeof fn !== 'function') invalidArgument('method', `the client has no method ${method}`);
  return fn;
}

interface MethodConfig {
  name?: Array<{ service?: string; method?: string }>;
  retryPolicy?: unknown;
  hedgingPolicy?: unknown;
}

/**
 * Whether `method` of a client made by `ctor` is idempotent: its proto option
 * `idempotency_level` (IDEMPOTENT or NO_SIDE_EFFECTS, as @grpc/proto-loader keeps it), or a
 * `retryPolicy`/`hedgingPolicy` for it in the service config — the service owner's statement
 * that the method is safe to repeat.
 */
export function isIdempotentMethod(
  ctor: { service?: grpc.ServiceDefinition } | undefined,
  method: string,
  serviceConfig?: string | { methodConfig?: MethodConfig[] },
): boolean {
  const definition = ctor?.service?.[method] as
    | (grpc.MethodDefinition<unknown, unknown> & { options?: { idempotency_level?: unknown } })
    | undefined;
  const level = definition?.options?.idempotency_level;
  if (level === 'IDEMPOTENT' || level === 'NO_SIDE_EFFECTS') return true;
  if (!serviceConfig || !definition?.path) return false;
  let config: { methodConfig?: MethodConfig[] };
  try {
    config = typeof serviceConfig === 'string' ? JSON.parse(serviceConfig) : serviceConfig;
  } catch {
    return false;
  }
  const [, service, name] = /^\/([^/]+)\/([^/]+)$/.exec(definition.path) ?? [];
  return (config.methodConfig ?? []).some(
    (c) =>
      (c.retryPolicy !== undefined || c.hedgingPolicy !== undefined) &&
      (c.name ?? []).some(
        (n) =>
          (n.service === undefined || n.service === '' || n.service === service) &&
          (n.method === undefined || n.method === '' || n.method === name),
      ),
  );
}

function deadlineOf(ctx: CallContext | undefined, deadlineMs: number): number {
  const own = Date.now() + deadlineMs;
  if (ctx?.deadline === undefined) return own;
  // The context's deadline is on the monotonic clock; grpc wants wall-clock time.
  return Math.min(own, Date.now() + (ctx.deadline - performance.now()));
}

/**
 * One unary call. An aborted signal never starts it; an abort in flight cancels it and rejects
 * at once with the signal's reason. A failure that may have reached the server (anything but a
 * status proving it never left) marks a request context "may have executed".
 */
export function callUnary<Res>(
  client: grpc.Client,
  fn: UnaryMethod,
  request: unknown,
  ctx: CallContext | undefined,
  options: UnaryCallOptions,
  onFailure?: (error: unknown) => void,
): Promise<Res> {
  const problem = contextProblem(ctx);
  if (problem !== undefined) return Promise.reject(problem);
  const signal = ctx?.signal;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const { deadlineMs = 10_000, waitForReady = false } = options;
  return new Promise<Res>((resolve, reject) => {
    const base = typeof options.metadata === 'function' ? options.metadata() : options.metadata;
    // grpc-js takes waitForReady as a metadata option, not a call option.
    const metadata = base ? base.clone() : new grpc.Metadata();
    metadata.setOptions({ ...metadata.getOptions(), waitForReady });
    const onAbort = () => {
      if (isRequestContext(ctx)) ctx.mayHaveExecuted = true;
      reject(signal!.reason);
      call.cancel();
    };
    const call = fn.call(
      client,
      request,
      metadata,
      { deadline: deadlineOf(ctx, deadlineMs) },
      (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (!error) return resolve(response as Res);
        if (isRequestContext(ctx) && !isNotSentStatus(error)) ctx.mayHaveExecuted = true;
        onFailure?.(error);
        reject(error);
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
