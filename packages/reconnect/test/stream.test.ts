import { backoff, VirtualClock } from '@towerline/core';
import { superviseStream } from '@towerline/reconnect';
import { describe, expect, it } from 'vitest';

/** Collects what a consumer loop sees, in the background. */
function consume<T>(stream: AsyncIterable<T>) {
  const seen: T[] = [];
  let error: unknown;
  let finished = false;
  const done = (async () => {
    try {
      for await (const value of stream) seen.push(value);
    } catch (e) {
      error = e;
    } finally {
      finished = true;
    }
  })();
  return {
    seen,
    done,
    get error() {
      return error;
    },
    get finished() {
      return finished;
    },
  };
}

describe('superviseStream', () => {
  it('yields every value and rebuilds after a failure, resuming where the builder says', async () => {
    const clock = new VirtualClock();
    let builds = 0;
    const stream = superviseStream(
      async function* () {
        builds++;
        yield `build ${builds}: a`;
        if (builds < 3) throw new Error('stream broke');
        yield `build ${builds}: b`;
      },
      { clock, policy: backoff.fixed(100) },
    );
    const c = consume(stream);
    await clock.advance(1_000);
    // The third build ends normally; an ended stream is rebuilt too.
    expect(c.seen.slice(0, 4)).toEqual(['build 1: a', 'build 2: a', 'build 3: a', 'build 3: b']);
    await stream.close();
    await c.done;
    expect(c.finished).toBe(true);
    expect(c.error).toBeUndefined();
    expect(clock.pending).toBe(0);
  });

  it('never polls a failed stream again', async () => {
    const clock = new VirtualClock();
    const nextCalls: number[] = [];
    let builds = 0;
    const stream = superviseStream(
      () => {
        const id = ++builds;
        return {
          [Symbol.asyncIterator]: () => ({
            next: async () => {
              nextCalls.push(id);
              if (nextCalls.filter((n) => n === id).length === 1) return { done: false, value: id };
              throw new Error(`build ${id} failed`);
            },
          }),
        };
      },
      { clock, policy: backoff.fixed(50) },
    );
    const c = consume(stream);
    await clock.advance(500);
    await stream.close();
    await c.done;
    for (let id = 1; id <= builds; id++) {
      expect(nextCalls.filter((n) => n === id).length).toBeLessThanOrEqual(2);
    }
    expect(builds).toBeGreaterThan(3);
  });

  it('does not hot-loop when every rebuild fails at once', async () => {
    const clock = new VirtualClock();
    let builds = 0;
    const stream = superviseStream(
      // biome-ignore lint/correctness/useYield: a stream that fails before its first value
      async function* () {
        builds++;
        throw new Error('no source');
      },
      { clock, policy: backoff.exponential({ initial: 10, multiplier: 2, max: 10_000 }) },
    );
    const c = consume(stream);
    await clock.advance(60_000);
    // 10 ms doubling to 10 s: about 10 rebuilds to reach the cap, then one per 10 s.
    expect(builds).toBeGreaterThan(5);
    expect(builds).toBeLessThanOrEqual(16);
    expect(stream.healthy).toBe(false);
    await stream.close();
    await c.done;
  });

  it('resets the backoff once a rebuilt stream yields', async () => {
    const clock = new VirtualClock();
    const delays: number[] = [];
    let builds = 0;
    const stream = superviseStream(
      async function* () {
        builds++;
        if (builds === 1 || builds === 2) throw new Error('early');
        yield builds;
        throw new Error('later');
      },
      { clock, policy: backoff.exponential({ initial: 100, multiplier: 2, max: 10_000 }) },
    );
    stream.events.on('reconnectScheduled', ({ delayMs }) => delays.push(delayMs));
    const c = consume(stream);
    await clock.advance(350);
    // build 1 fails (100), build 2 fails (200), build 3 yields then fails: back to 100.
    expect(delays.slice(0, 3)).toEqual([100, 200, 100]);
    await stream.close();
    await c.done;
  });

  it('is healthy while a build is yielding, unhealthy after it fails', async () => {
    const clock = new VirtualClock();
    let fail: (e: Error) => void = () => {};
    const stream = superviseStream(
      async function* () {
        yield 1;
        await new Promise((_, reject) => {
          fail = reject;
        });
      },
      { clock, policy: backoff.fixed(1_000) },
    );
    const c = consume(stream);
    await clock.advance(0);
    expect(c.seen).toEqual([1]);
    expect(stream.healthy).toBe(true);
    fail(new Error('gone'));
    await clock.advance(0);
    expect(stream.healthy).toBe(false);
    await stream.close();
    await c.done;
  });

  it('close() ends a consumer waiting on a stream that never yields, and aborts the build', async () => {
    const clock = new VirtualClock();
    let signal: AbortSignal | undefined;
    const stream = superviseStream(
      (s) => {
        signal = s;
        return { [Symbol.asyncIterator]: () => ({ next: () => new Promise<never>(() => {}) }) };
      },
      { clock },
    );
    const c = consume(stream);
    await clock.advance(10);
    expect(signal?.aborted).toBe(false);
    await stream.close();
    await c.done;
    expect(c.finished).toBe(true);
    expect(signal?.aborted).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('gives up after maxAttempts: the consumer sees ERR_RECONNECT_GAVE_UP', async () => {
    const clock = new VirtualClock();
    const stream = superviseStream(
      () => {
        throw new Error('cannot build');
      },
      { clock, maxAttempts: 3, policy: backoff.fixed(10) },
    );
    const c = consume(stream);
    await clock.advance(100);
    await c.done;
    expect(c.error).toMatchObject({ code: 'ERR_RECONNECT_GAVE_UP', attempts: 3 });
    expect(clock.pending).toBe(0);
  });

  it('rejects a builder that returns no AsyncIterable, with backoff', async () => {
    const clock = new VirtualClock();
    const stream = superviseStream(() => 42 as never, {
      clock,
      maxAttempts: 2,
      policy: backoff.fixed(10),
    });
    const c = consume(stream);
    await clock.advance(100);
    await c.done;
    expect((c.error as Error & { cause: { code: string } }).cause.code).toBe(
      'ERR_INVALID_ARGUMENT',
    );
  });

  it('ends when the consumer breaks out of its loop', async () => {
    const clock = new VirtualClock();
    let signal: AbortSignal | undefined;
    const stream = superviseStream(
      async function* (s) {
        signal = s;
        for (let i = 0; ; i++) yield i;
      },
      { clock },
    );
    const seen: number[] = [];
    for await (const v of stream) {
      seen.push(v);
      if (v === 2) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    expect(stream.reconnector.state).toBe('closed');
    expect(signal?.aborted).toBe(true);
  });

  it('has a single consumer', () => {
    const stream = superviseStream(async function* () {
      yield 1;
    });
    stream[Symbol.asyncIterator]();
    expect(() => stream[Symbol.asyncIterator]()).toThrow(/one consumer/);
    return stream.close();
  });
});
