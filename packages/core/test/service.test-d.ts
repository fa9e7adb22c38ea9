import {
  type Layer,
  layerFn,
  type RequestOf,
  type ResponseOf,
  type Service,
  ServiceBuilder,
  serviceFn,
} from '@towerline/core';
import { RetryLayer, type RetryService } from '@towerline/retry';
import { describe, expectTypeOf, it } from 'vitest';

type User = { id: number; name: string };
const users = serviceFn(async (id: number): Promise<User> => ({ id, name: 'x' }));

describe('ServiceBuilder types', () => {
  it('serviceFn infers Service<Req, Res>', () => {
    expectTypeOf(users).toEqualTypeOf<Service<number, User>>();
    expectTypeOf(serviceFn((s: string) => s.length)).toEqualTypeOf<Service<string, number>>();
    expectTypeOf<RequestOf<typeof users>>().toEqualTypeOf<number>();
    expectTypeOf<ResponseOf<typeof users>>().toEqualTypeOf<User>();
  });

  it('without layers, the service keeps its types', () => {
    expectTypeOf(new ServiceBuilder().service(users)).toEqualTypeOf<Service<number, User>>();
  });

  it('keeps the inner service types through a generic layer (RetryLayer)', () => {
    expectTypeOf(new RetryLayer().wrap(users)).toEqualTypeOf<RetryService<number, User>>();
    const svc = new ServiceBuilder().layer(new RetryLayer()).service(users);
    expectTypeOf(svc).toEqualTypeOf<Service<number, User>>();
    expectTypeOf(svc.call).parameter(0).toEqualTypeOf<number>();
    expectTypeOf(svc.call).returns.resolves.toEqualTypeOf<User>();
    const twice = new ServiceBuilder()
      .layer(new RetryLayer())
      .layer(new RetryLayer({ maxAttempts: 2 }))
      .service(users);
    expectTypeOf(twice).toEqualTypeOf<Service<number, User>>();
  });

  it('a concrete layer changes the outer type and fixes the inner one', () => {
    const codec: Layer<Service<string, number>, Service<Buffer, boolean>> = layerFn((s) => ({
      call: async (b: Buffer) => (await s.call(b.toString())) > 0,
    }));
    const svc = new ServiceBuilder()
      .layer(new RetryLayer())
      .layer(codec)
      .layer(new RetryLayer())
      .service(serviceFn(async (s: string) => s.length));
    expectTypeOf(svc).toEqualTypeOf<Service<Buffer, boolean>>();
    expectTypeOf(svc.call).parameter(0).toEqualTypeOf<Buffer>();
  });

  it('concrete layers chain: each one must produce what the one outside it takes', () => {
    const outer: Layer<Service<string, number>, Service<Buffer, boolean>> = layerFn((s) => ({
      call: async (b: Buffer) => (await s.call(b.toString())) > 0,
    }));
    const inner: Layer<Service<number, string>, Service<string, number>> = layerFn((s) => ({
      call: async (x: string) => (await s.call(x.length)).length,
    }));
    const builder = new ServiceBuilder().layer(outer).layer(inner);
    expectTypeOf(builder).toEqualTypeOf<
      ServiceBuilder<Service<number, string>, Service<Buffer, boolean>>
    >();
    const svc = builder.service(serviceFn(async (n: number) => String(n)));
    expectTypeOf(svc).toEqualTypeOf<Service<Buffer, boolean>>();
    expectTypeOf(builder.toLayer()).toEqualTypeOf<
      Layer<Service<number, string>, Service<Buffer, boolean>>
    >();
  });

  it('refuses a layer whose output does not fit the current inner type', () => {
    const toNumber: Layer<Service<string, string>, Service<string, number>> = layerFn((s) => ({
      call: async (x: string) => (await s.call(x)).length,
    }));
    const wantsBoolean: Layer<Service<string, boolean>, Service<string, boolean>> = layerFn(
      (s) => s,
    );
    // @ts-expect-error Service<string, number> is not the Service<string, boolean> it must be
    new ServiceBuilder().layer(wantsBoolean).layer(toNumber);
    // Fits: toNumber's output is what wantsNumber takes.
    const wantsNumber: Layer<Service<string, number>, Service<string, number>> = layerFn((s) => s);
    new ServiceBuilder().layer(wantsNumber).layer(toNumber);
  });

  it('refuses an inner service that does not fit the innermost layer', () => {
    const toNumber: Layer<Service<string, string>, Service<string, number>> = layerFn((s) => ({
      call: async (x: string) => (await s.call(x)).length,
    }));
    const builder = new ServiceBuilder().layer(new RetryLayer()).layer(toNumber);
    // @ts-expect-error the stack needs a Service<string, string>, not a Service<number, User>
    builder.service(users);
    builder.service(serviceFn(async (s: string) => s));
  });
});
