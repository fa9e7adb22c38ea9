import { layerFn, type Service, ServiceBuilder, serviceFn } from '@towerline/core';
import { describe, expect, it } from 'vitest';

describe('ServiceBuilder', () => {
  it('the first layer added is the outermost', async () => {
    const order: string[] = [];
    const tag = (name: string) =>
      layerFn(
        (inner: Service<string, string>): Service<string, string> => ({
          call: async (req, ctx) => {
            order.push(`${name} in`);
            const res = await inner.call(`${req}>${name}`, ctx);
            order.push(`${name} out`);
            return res;
          },
        }),
      );
    const svc = new ServiceBuilder()
      .layer(tag('a'))
      .layer(tag('b'))
      .layer(tag('c'))
      .service(serviceFn(async (req: string) => `${req}>core`));
    expect(await svc.call('req')).toBe('req>a>b>c>core');
    expect(order).toEqual(['a in', 'b in', 'c in', 'c out', 'b out', 'a out']);
  });

  it('toLayer() nests a whole stack', async () => {
    const upper = layerFn(
      (inner: Service<string, string>): Service<string, string> => ({
        call: async (req) => (await inner.call(req)).toUpperCase(),
      }),
    );
    const inner = new ServiceBuilder().layer(upper).toLayer();
    const svc = new ServiceBuilder().layer(inner).service(serviceFn(async (s: string) => `${s}!`));
    expect(await svc.call('hi')).toBe('HI!');
  });
});

describe('serviceFn', () => {
  it('passes the context through and turns a synchronous throw into a rejection', async () => {
    const ac = new AbortController();
    const seen: unknown[] = [];
    const svc = serviceFn((req: number, ctx) => {
      seen.push(ctx?.signal);
      if (req < 0) throw new Error('negative');
      return req * 2;
    });
    expect(await svc.call(2, { signal: ac.signal })).toBe(4);
    expect(seen[0]).toBe(ac.signal);
    const result = svc.call(-1);
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toThrow('negative');
  });
});
