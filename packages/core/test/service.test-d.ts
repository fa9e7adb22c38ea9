import { type Layer, layerFn, type Service, ServiceBuilder, serviceFn } from '@towerline/core';
import { RetryLayer } from '@towerline/retry';
import { describe, expectTypeOf, it } from 'vitest';

const inner = serviceFn(async (id: number) => ({ id, name: 'x' }));

describe('ServiceBuilder types', () => {
  it('keeps the inner service types through a generic layer', () => {
    const svc = new ServiceBuilder().layer(new RetryLayer()).service(inner);
    expectTypeOf(svc).toEqualTypeOf<Service<number, { id: number; name: string }>>();
    expectTypeOf(svc.call).parameter(0).toEqualTypeOf<number>();
  });

  it('a concrete layer changes the outer type', () => {
    const codec: Layer<Service<string, number>, Service<Buffer, boolean>> = layerFn((s) => ({
      call: async (b: Buffer) => (await s.call(b.toString())) > 0,
    }));
    const svc = new ServiceBuilder()
      .layer(new RetryLayer())
      .layer(codec)
      .service(serviceFn(async (s: string) => s.length));
    expectTypeOf(svc).toEqualTypeOf<Service<Buffer, boolean>>();
  });

  it('refuses a layer whose output does not fit the current inner type', () => {
    const toNumber: Layer<Service<string, string>, Service<string, number>> = layerFn((s) => ({
      call: async (x: string) => (await s.call(x)).length,
    }));
    const wantsBoolean: Layer<Service<string, boolean>, Service<string, boolean>> = layerFn(
      (s) => s,
    );
    // @ts-expect-error Service<string, number> is not a Service<string, boolean>
    new ServiceBuilder().layer(wantsBoolean).layer(toNumber);
    // @ts-expect-error the stack expects Service<string, string>, not Service<number, ...>
    new ServiceBuilder().layer(toNumber).service(inner);
  });
});
