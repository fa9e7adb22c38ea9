import type { RequestContext } from './context.js';
import type { Service } from './service.js';

/**
 * A service's call split in two, so that layers stacked on it share one promise reaction on
 * the happy path instead of adding one each (`.then` per layer is most of what a layer costs).
 *
 * `service.call(req, ctx)` must behave exactly as
 * `start(req, c).then(undefined, (e) => recover(e, req, c))` with `c = RequestContext.from(ctx)`
 * (a synchronous throw from `start` counts as a rejection). An outer layer that finds a fused
 * path on its inner service calls `start` itself and hands a failure to `recover` before its
 * own failure handling, in the one reaction it attaches anyway. A layer that is itself fusable
 * passes both halves on, so a whole stack of them costs one reaction.
 *
 * @internal Exported for towerline's own layers; the shape may change between minor versions.
 */
export interface FusedPath<Req, Res> {
  /** Starts the call; the promise has none of this layer's failure handling attached. */
  start(req: Req, ctx: RequestContext): Promise<Res>;
  /** This layer's handling of a rejection of the promise `start` returned. */
  recover(error: unknown, req: Req, ctx: RequestContext): Promise<Res>;
  /**
   * This layer's observation of a fulfilment of the promise `start` returned (a breaker counts
   * a success, a metric records it), when it has one. Called by the layer that attached the
   * reaction, before it hands the value on; it must not throw. A fusable layer passes its inner
   * path's `succeeded` on (calling it first), so that observers stacked on one another still
   * share one reaction: `call` behaves as
   * `start(req, c).then((v) => (succeeded?.(v, req, c), v), (e) => recover(e, req, c))`.
   */
  succeeded?(value: Res, req: Req, ctx: RequestContext): void;
}

/**
 * Chains two `succeeded` observers, inner first; undefined when neither exists (so that the
 * layer attaching the reaction can skip the fulfilment handler altogether).
 */
export function chainSucceeded<Req, Res>(
  inner: FusedPath<Req, Res>['succeeded'],
  own: FusedPath<Req, Res>['succeeded'],
): FusedPath<Req, Res>['succeeded'] {
  if (inner === undefined) return own;
  if (own === undefined) return inner;
  return (value, req, ctx) => {
    inner(value, req, ctx);
    own(value, req, ctx);
  };
}

/**
 * Marks a service that reads or writes the {@link RequestContext} it is called with (a gRPC
 * unary call naming its channel, say) although it has no fused path: a layer above then hands
 * it a shared request context from the first attempt on, as it does for a fused one. `false`
 * says the opposite for a fused service that needs none (a breaker over a plain service).
 */
export const contextual: unique symbol = Symbol.for('towerline.contextual') as never;

/**
 * Whether `service` wants a shared request context: it says so with {@link contextual} (`true`
 * or `false`: a layer passing on what its inner service wants), or, saying nothing, it is fused.
 */
export function usesRequestContext(service: Service<unknown, unknown>): boolean {
  const says = (service as { [contextual]?: unknown })[contextual];
  if (says !== undefined) return says === true;
  return fusedPathOf(service) !== undefined;
}

/** The property under which a service offers its {@link FusedPath}. */
export const fused: unique symbol = Symbol.for('towerline.fused') as never;

/** A service that offers a {@link FusedPath}. */
export interface FusableService<Req, Res> extends Service<Req, Res> {
  readonly [fused]: FusedPath<Req, Res>;
}

/** The fused path `service` offers, if any. */
export function fusedPathOf<Req, Res>(service: Service<Req, Res>): FusedPath<Req, Res> | undefined {
  const path = (service as Partial<FusableService<Req, Res>>)[fused];
  return path && typeof path.start === 'function' && typeof path.recover === 'function'
    ? path
    : undefined;
}

/**
 * Runs one attempt through `path` (or `inner.call` when there is none) and returns its
 * outcome with the inner layers' recovery applied: the slow path, after a first failure.
 */
export function attemptThrough<Req, Res>(
  inner: Service<Req, Res>,
  path: FusedPath<Req, Res> | undefined,
  req: Req,
  ctx: RequestContext,
): Promise<Res> {
  if (path === undefined) {
    try {
      return inner.call(req, ctx);
    } catch (error) {
      return Promise.reject(error);
    }
  }
  let started: Promise<Res>;
  try {
    started = path.start(req, ctx);
  } catch (error) {
    return path.recover(error, req, ctx);
  }
  const succeeded = path.succeeded;
  return started.then(
    succeeded === undefined
      ? undefined
      : (value: Res) => {
          succeeded(value, req, ctx);
          return value;
        },
    (error: unknown) => path.recover(error, req, ctx),
  );
}
