import type { CallContext } from './context.js';

export type { CallContext };

/**
 * An asynchronous function from `Req` to `Res`, the unit every layer wraps (tower's `Service`).
 * A plain object: anything with a `call` method is a service.
 */
export interface Service<Req, Res> {
  call(req: Req, ctx?: CallContext): Promise<Res>;
  /** Releases what the service holds; layers forward it to their inner service. */
  close?(): Promise<void>;
  [Symbol.asyncDispose]?(): Promise<void>;
}

/** Turns an `In` (usually a service) into an `Out` (usually a service wrapping it). */
export interface Layer<In, Out> {
  wrap(inner: In): Out;
}

/**
 * A layer that works on any service and keeps its request and response types, such as
 * `RetryLayer`. {@link ServiceBuilder} keeps the inner service's types through it.
 */
export interface ServiceLayer {
  wrap<Req, Res>(inner: Service<Req, Res>): Service<Req, Res>;
}

/** The request type of a service. */
export type RequestOf<S> = S extends Service<infer Req, any> ? Req : never;
/** The response type of a service. */
export type ResponseOf<S> = S extends Service<any, infer Res> ? Res : never;

/**
 * Makes a service from a function.
 *
 * @example
 * ```ts
 * const echo = serviceFn(async (s: string) => s.toUpperCase());
 * await echo.call('hi'); // 'HI'
 * ```
 */
export function serviceFn<Req, Res>(
  fn: (req: Req, ctx?: CallContext) => Promise<Res> | Res,
): Service<Req, Res> {
  return {
    call(req, ctx) {
      try {
        return Promise.resolve(fn(req, ctx));
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
}

/** Makes a layer from a function. */
export function layerFn<In, Out>(fn: (inner: In) => Out): Layer<In, Out> {
  return { wrap: fn };
}

/** Stands for "the service handed to `.service()`" while only type-preserving layers are stacked. */
declare const innermost: unique symbol;
type Innermost = typeof innermost;

type AsService<S> = S extends Service<infer Req, infer Res> ? Service<Req, Res> : never;

/**
 * Stacks layers around a service. The first layer added is the outermost, as in tower:
 * `new ServiceBuilder().layer(a).layer(b).service(s)` is `a.wrap(b.wrap(s))`.
 * Request and response types flow through the chain.
 *
 * @example
 * ```ts
 * const svc = new ServiceBuilder()
 *   .layer(new RetryLayer({ maxAttempts: 5 }))
 *   .layer(timeoutLayer)
 *   .service(serviceFn(async (id: number) => fetchUser(id)));
 * ```
 */
export class ServiceBuilder<Inner = Innermost, Outer = Innermost> {
  readonly #layers: ReadonlyArray<Layer<any, any>>;

  constructor(layers: ReadonlyArray<Layer<any, any>> = []) {
    this.#layers = layers;
  }

  /** Adds a layer inside the ones already added. */
  layer(layer: ServiceLayer): ServiceBuilder<Inner, Outer>;
  layer<In, Out extends Inner extends Innermost ? unknown : Inner>(
    layer: Layer<In, Out>,
  ): ServiceBuilder<In, Outer extends Innermost ? Out : Outer>;
  layer(layer: Layer<any, any>): ServiceBuilder<any, any> {
    return new ServiceBuilder([...this.#layers, layer]);
  }

  /** Wraps `inner` in every layer, innermost last-added, and returns the outermost result. */
  service<S extends Inner extends Innermost ? Service<any, any> : Inner>(
    inner: S,
  ): Outer extends Innermost ? AsService<S> : Outer {
    let current: unknown = inner;
    for (let i = this.#layers.length - 1; i >= 0; i--) current = this.#layers[i]!.wrap(current);
    return current as Outer extends Innermost ? AsService<S> : Outer;
  }

  /** The builder as one layer, to nest stacks. */
  toLayer(): Layer<Inner, Outer> {
    return { wrap: (inner) => this.service(inner as any) as Outer };
  }
}
