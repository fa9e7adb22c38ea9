import { type Layer, layerFn, type Service, ServiceBuilder, serviceFn } from '@towerline/core';
import { describe, expect, it, vi } from 'vitest';

/** A layer that records when it is entered and left, and tags the request. */
function tag(
  name: string,
  order: string[],
): Layer<Service<string, string>, Service<string, string>> {
  return layerFn((inner) => ({
    call: async (req, ctx) => {
      order.push(`${name} in`);
      const res = await inner.call(`${req}>${name}`, ctx);
      order.push(`${name} out`);
      return `${res}<${name}`;
    },
  }));
}

describe('ServiceBuilder', () => {
  it('the first layer added is the outermost (tower order)', async () => {
    const order: string[] = [];
    const svc = new ServiceBuilder()
      .layer(tag('a', order))
      .layer(tag('b', order))
      .layer(tag('c', order))
      .service(
        serviceFn(async (req: string) => {
          order.push('core');
          return `${req}=core`;
        }),
      );
    expect(await svc.call('req')).toBe('req>a>b>c=core<c<b<a');
    expect(order).toEqual(['a in', 'b in', 'c in', 'core', 'c out', 'b out', 'a out']);
  });

  it('wraps innermost first: b.wrap(s) happens before a.wrap(...)', () => {
    const wrapped: string[] = [];
    const spy = (name: string) =>
      layerFn((inner: Service<number, number>) => {
        wrapped.push(name);
        return inner;
      });
    new ServiceBuilder()
      .layer(spy('a'))
      .layer(spy('b'))
      .service(serviceFn((n: number) => n));
    expect(wrapped).toEqual(['b', 'a']);
  });

  it('passes the call context through every layer', async () => {
    const ac = new AbortController();
    const seen: unknown[] = [];
    const svc = new ServiceBuilder().layer(tag('a', [])).service(
      serviceFn((_req: string, ctx) => {
        seen.push(ctx);
        return 'x';
      }),
    );
    await svc.call('r', { signal: ac.signal });
    expect(seen).toEqual([{ signal: ac.signal }]);
  });

  it('with no layers, service() returns the inner service itself', () => {
    const inner = serviceFn(async (n: number) => n);
    expect(new ServiceBuilder().service(inner)).toBe(inner);
  });

  it('layer() returns a new builder; the old one is unchanged and reusable', async () => {
    const order: string[] = [];
    const base = new ServiceBuilder().layer(tag('a', order));
    const longer = base.layer(tag('b', order));
    const inner = serviceFn(async (s: string) => s);
    expect(await base.service(inner).call('x')).toBe('x>a<a');
    expect(await longer.service(inner).call('x')).toBe('x>a>b<b<a');
  });

  it('toLayer() nests a whole stack as one layer', async () => {
    const order: string[] = [];
    const nested = new ServiceBuilder().layer(tag('b', order)).layer(tag('c', order)).toLayer();
    const svc = new ServiceBuilder()
      .layer(tag('a', order))
      .layer(nested)
      .service(serviceFn(async (s: string) => s));
    expect(await svc.call('x')).toBe('x>a>b>c<c<b<a');
  });
});

describe('serviceFn', () => {
  it('passes the request and the context to the function', async () => {
    const fn = vi.fn(async (n: number) => n * 2);
    const svc = serviceFn(fn);
    const ctx = { signal: new AbortController().signal };
    expect(await svc.call(21, ctx)).toBe(42);
    expect(fn).toHaveBeenCalledWith(21, ctx);
  });

  it('accepts a synchronous function and returns a promise', async () => {
    const svc = serviceFn((s: string) => s.length);
    const result = svc.call('four');
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toBe(4);
  });

  it('turns a synchronous throw into a rejection', async () => {
    const boom = new Error('negative');
    const svc = serviceFn((n: number) => {
      if (n < 0) throw boom;
      return n;
    });
    let result: Promise<number> | undefined;
    expect(() => {
      result = svc.call(-1);
    }).not.toThrow();
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toBe(boom);
  });

  it('passes a rejection through unchanged', async () => {
    const boom = new Error('async');
    await expect(
      serviceFn(async () => {
        throw boom;
      }).call(undefined),
    ).rejects.toBe(boom);
  });
});

describe('layerFn', () => {
  it('makes a layer whose wrap is the function', () => {
    const fn = (s: Service<string, string>) => s;
    expect(layerFn(fn).wrap).toBe(fn);
  });
});
