import { ConfigProvider } from '@towerline/config';
import { backoff, VirtualClock } from '@towerline/core';
import { describe, expect, it, vi } from 'vitest';

interface AppConfig {
  listen: string;
  rateLimit: { requestsPerSecond: number; burst: number };
  sites: string[];
}

const base: AppConfig = {
  listen: ':8080',
  rateLimit: { requestsPerSecond: 10, burst: 5 },
  sites: ['a'],
};

const validate = (c: AppConfig) => {
  const problems: string[] = [];
  if (!(c.rateLimit.requestsPerSecond > 0))
    problems.push('rateLimit.requestsPerSecond must be > 0');
  if (!(c.rateLimit.burst > 0)) problems.push('rateLimit.burst must be > 0');
  if (c.sites.length === 0) problems.push('sites must not be empty');
  return problems;
};

/** A stream the test pushes values and failures into. */
function channel<T>() {
  const queue: Array<{ value?: T; error?: unknown }> = [];
  let wake: (() => void) | undefined;
  let builds = 0;
  return {
    get builds() {
      return builds;
    },
    push(value: T) {
      queue.push({ value });
      wake?.();
    },
    fail(error: unknown) {
      queue.push({ error });
      wake?.();
    },
    build: (signal: AbortSignal) => {
      builds++;
      return (async function* () {
        for (;;) {
          while (queue.length === 0) {
            if (signal.aborted) return;
            await new Promise<void>((r) => {
              wake = r;
              signal.addEventListener('abort', () => r(), { once: true });
            });
          }
          const item = queue.shift()!;
          if ('error' in item) throw item.error;
          yield item.value as T;
        }
      })();
    },
  };
}

describe('ConfigProvider', () => {
  it('get() before any value throws ERR_NOT_READY; start() resolves with the first valid value', async () => {
    const ch = channel<AppConfig>();
    const config = new ConfigProvider<AppConfig>({ source: ch.build, validate });
    expect(config.ready).toBe(false);
    expect(() => config.get().listen).toThrow(expect.objectContaining({ code: 'ERR_NOT_READY' }));
    const started = config.start({ timeout: 5_000 });
    ch.push({ ...base, sites: [] }); // invalid: skipped, start keeps waiting
    ch.push(base);
    expect(await started).toEqual(base);
    expect(config.get()).toEqual(base);
    expect(config.version).toBe(1);
    expect(config.healthy).toBe(true);
    await config.close();
  });

  it('swaps to every valid value, bumps version and keeps the old one on invalid input', async () => {
    const ch = channel<AppConfig>();
    const config = new ConfigProvider<AppConfig>({ source: ch.build, validate });
    const updated = vi.fn();
    const rejected = vi.fn();
    config.events.on('updated', updated);
    config.events.on('rejected', rejected);
    const started = config.start();
    ch.push(base);
    await started;
    ch.push({ ...base, rateLimit: { requestsPerSecond: 0, burst: 0 } });
    await vi.waitFor(() => expect(rejected).toHaveBeenCalledTimes(1));
    const error = rejected.mock.calls[0]![0].error;
    expect(error.code).toBe('ERR_CONFIG_INVALID');
    expect(error.problems).toEqual([
      'rateLimit.requestsPerSecond must be > 0',
      'rateLimit.burst must be > 0',
    ]);
    expect(error.message).toContain('2 problems');
    expect(config.get()).toEqual(base);
    const next = { ...base, sites: ['a', 'b'] };
    ch.push(next);
    await vi.waitFor(() => expect(config.version).toBe(2));
    expect(config.get()).toEqual(next);
    expect(updated.mock.calls.map((c) => c[0].version)).toEqual([1, 2]);
    await config.close();
  });

  it('serves an immutable snapshot', async () => {
    const config = new ConfigProvider<AppConfig>({ initial: structuredClone(base) });
    const snapshot = config.get();
    expect(Object.isFrozen(snapshot)).toBe(true);
    expect(Object.isFrozen(snapshot.rateLimit)).toBe(true);
    expect(() => {
      (snapshot.rateLimit as { burst: number }).burst = 99;
    }).toThrow(TypeError);
  });

  it('rejects start() when the source fails before any value, and recovers later', async () => {
    const clock = new VirtualClock();
    const ch = channel<AppConfig>();
    const config = new ConfigProvider<AppConfig>({ source: ch.build, clock });
    const started = config.start();
    ch.fail(new Error('secret store down'));
    await expect(started).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    expect(config.healthy).toBe(false);
    await clock.advance(20); // rebuilt after the 10 ms backoff
    ch.push(base);
    await vi.waitFor(() => expect(config.version).toBe(1));
    expect(config.healthy).toBe(true);
    await config.close();
  });

  it('does not hot-loop when every rebuild fails at once (counted on virtual time)', async () => {
    const clock = new VirtualClock();
    let builds = 0;
    const config = new ConfigProvider<AppConfig>({
      clock,
      // biome-ignore lint/correctness/useYield: fails before any value, every time
      source: async function* () {
        builds++;
        throw new Error('no source');
      },
    });
    config.start().catch(() => {});
    await clock.advance(60_000);
    // 10 ms doubling to 10 s: ~11 rebuilds to reach the cap, then one per 10 s.
    expect(builds).toBeGreaterThan(8);
    expect(builds).toBeLessThanOrEqual(20);
    await config.close();
  });

  it('start() rejects on timeout and on abort', async () => {
    const clock = new VirtualClock();
    const ch = channel<AppConfig>();
    const config = new ConfigProvider<AppConfig>({ source: ch.build, clock });
    const timedOut = config.start({ timeout: 1_000 });
    const outcome = expect(timedOut).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
    await clock.advance(1_000);
    await outcome;
    const ac = new AbortController();
    const aborted = config.start({ signal: ac.signal });
    ac.abort(new Error('shutting down'));
    await expect(aborted).rejects.toThrow('shutting down');
    await config.close();
    expect(clock.pending).toBe(0);
  });

  it('warns about static keys and keeps them, swapping the dynamic part whole', async () => {
    const config = new ConfigProvider<AppConfig>({
      initial: base,
      staticKeys: ['listen'],
      validate,
    });
    const warned = vi.fn();
    config.events.on('staticChange', warned);
    const result = await config.reload({
      listen: ':9090',
      rateLimit: { requestsPerSecond: 50, burst: 10 },
      sites: ['x', 'y'],
    });
    expect(result).toEqual({
      listen: ':8080',
      rateLimit: { requestsPerSecond: 50, burst: 10 },
      sites: ['x', 'y'],
    });
    expect(config.get()).toBe(result);
    expect(warned).toHaveBeenCalledTimes(1);
    expect(warned.mock.calls[0]![0].changed).toEqual(['listen']);
    expect(warned.mock.calls[0]![0].message).toContain('listen');
  });

  it('rejects an invalid reload, keeping the old value', async () => {
    const config = new ConfigProvider<AppConfig>({ initial: base, validate });
    await expect(config.reload({ ...base, sites: [] })).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      problems: ['sites must not be empty'],
    });
    expect(config.get()).toBe(config.get());
    expect(config.get()).toEqual(base);
  });

  it('serialises reloads: N concurrent reloads cause at most 2 loads, and the newest input wins', async () => {
    let input = { ...base, sites: ['v0'] };
    let loads = 0;
    const gates: Array<() => void> = [];
    const config = new ConfigProvider<AppConfig>({
      initial: base,
      source: {
        load: async () => {
          loads++;
          const snapshot = input; // what the file says when the read starts
          await new Promise<void>((r) => gates.push(r));
          return snapshot;
        },
      },
    });
    const first = config.reload();
    input = { ...base, sites: ['v1'] };
    const rest = Array.from({ length: 10 }, () => config.reload());
    input = { ...base, sites: ['v2'] };
    await vi.waitFor(() => expect(gates).toHaveLength(1));
    gates.shift()!();
    expect((await first).sites).toEqual(['v0']);
    await vi.waitFor(() => expect(gates).toHaveLength(1));
    gates.shift()!();
    const results = await Promise.all(rest);
    // The queued reload read the newest input, never an older one.
    for (const r of results) expect(r.sites).toEqual(['v2']);
    expect(loads).toBe(2);
    expect(config.loads).toBe(2);
    expect(config.get().sites).toEqual(['v2']);
  });

  it('reload() with a value or a loader; the latest queued input wins', async () => {
    const config = new ConfigProvider<AppConfig>({ initial: base });
    let release!: () => void;
    const slow = config.reload(async () => {
      await new Promise<void>((r) => {
        release = r;
      });
      return { ...base, sites: ['slow'] };
    });
    const a = config.reload({ ...base, sites: ['a'] });
    const b = config.reload(() => ({ ...base, sites: ['b'] }));
    expect(a).toBe(b);
    release();
    await slow;
    expect((await b).sites).toEqual(['b']);
    expect(config.version).toBe(3);
  });

  it('reload() without input needs a load() source', async () => {
    const config = new ConfigProvider<AppConfig>({ initial: base });
    await expect(config.reload()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('does not bump the version for identical input', async () => {
    const config = new ConfigProvider<AppConfig>({ initial: base });
    await config.reload(structuredClone(base));
    expect(config.version).toBe(1);
  });

  it('parses raw input and reports parse errors as rejections', async () => {
    const config = new ConfigProvider<AppConfig, string>({
      parse: (text) => JSON.parse(text) as AppConfig,
    });
    await config.reload(JSON.stringify(base));
    await expect(config.reload('{"listen": ')).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    });
    expect(config.get()).toEqual(base);
  });

  it('throws on an invalid initial value', () => {
    expect(
      () => new ConfigProvider<AppConfig>({ initial: { ...base, sites: [] }, validate }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
  });

  it('close() stops the source and leaves no timer; later calls reject with ERR_CLOSED', async () => {
    const clock = new VirtualClock();
    const ch = channel<AppConfig>();
    const config = new ConfigProvider<AppConfig>({
      source: ch.build,
      clock,
      policy: backoff.fixed(1_000),
    });
    const started = config.start();
    ch.push(base);
    await started;
    ch.fail(new Error('x'));
    await clock.advance(0);
    expect(clock.pending).toBe(1); // the rebuild backoff
    await config.close();
    expect(clock.pending).toBe(0);
    expect(config.get()).toEqual(base);
    await expect(config.reload(base)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(config.start()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

describe('ConfigProvider.reload({ signal })', () => {
  it('loads nothing for an aborted signal; a later abort ends the wait, the load still applies', async () => {
    let release!: (raw: { n: number }) => void;
    let loads = 0;
    const config = new ConfigProvider<{ n: number }>({
      initial: { n: 0 },
      source: {
        load: () => {
          loads++;
          return new Promise<{ n: number }>((r) => {
            release = r;
          });
        },
      },
    });
    const reason = new Error('request ended');
    await expect(config.reload(undefined, { signal: AbortSignal.abort(reason) })).rejects.toBe(
      reason,
    );
    expect(loads).toBe(0);
    const ac = new AbortController();
    const waiting = config.reload(undefined, { signal: ac.signal });
    const other = config.reload({ n: 5 }); // queued behind the running load
    ac.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    release({ n: 1 });
    expect(await other).toEqual({ n: 5 });
    expect(config.get().n).toBe(5);
    expect(config.version).toBe(3);
    // A live signal changes nothing.
    expect(await config.reload({ n: 7 }, { signal: new AbortController().signal })).toEqual({
      n: 7,
    });
    await config.close();
  });
});
