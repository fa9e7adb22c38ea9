/**
 * The delivery window of a stream's feed, in virtual time: `coalesceMs` while deliveries carry
 * one commit or two, doubling at each delivery that carries four or more (a flood) up to
 * `coalesceMaxMs`, back to `coalesceMs` at the first that carries at most one; two deliveries
 * are never closer than the window, and every commit is delivered.
 */
import { VirtualClock } from '@towerline/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Engine } from '../src/server/engine/engine.js';
import type { Stream } from '../src/server/engine/stream.js';
import { Feed, type FeedHost } from '../src/server/transport/fanout.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function feedOn(clock: VirtualClock, coalesceMs: number, coalesceMaxMs: number) {
  // Only what a flush with no SSE reader touches: the feed answers its long-polls, and one
  // that never leaves marks every flush.
  const stream = {
    waiters: new Set<() => void>(),
    contentType: 'text/plain',
    removed: false,
    visibleTail: 1,
    visibleClosed: false,
    softDeleted: false,
  } as unknown as Stream;
  const host: FeedHost = {
    engine: {} as Engine,
    closing: false,
    maxChunkBytes: 1 << 20,
    bufferBytes: 1 << 18,
    coalesceMs,
    coalesceMaxMs,
    clock,
    cursor: () => '1',
    end: () => {},
    release: () => {},
    onError: (error) => {
      throw error;
    },
  };
  const feed = new Feed(stream, host);
  const flushes: Array<{ at: number; window: number }> = [];
  feed.polls.add({
    tail: 0,
    closed: false,
    done: () => flushes.push({ at: clock.now(), window: feed.window }),
  });
  /** One commit, as the engine wakes a stream's waiters. */
  const commit = () => {
    const waiters = [...stream.waiters];
    stream.waiters.clear();
    for (const w of waiters) w();
  };
  return { feed, flushes, commit };
}

describe('the delivery window of a feed', () => {
  it('grows under a flood, resets on a trickle, spaces deliveries by it, delivers everything', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 40 }),
        fc.array(
          fc.record({
            commits: fc.integer({ min: 0, max: 9 }),
            advance: fc.integer({ min: 0, max: 25 }),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        async (coalesceMs, extra, steps) => {
          const coalesceMaxMs = coalesceMs + extra;
          const clock = new VirtualClock();
          const { feed, flushes, commit } = feedOn(clock, coalesceMs, coalesceMaxMs);
          // The model: commits since the last delivery, and the window each delivery sets.
          let pending = 0;
          let window = coalesceMs;
          let seen = 0;
          const expectWindows = () => {
            for (; seen < flushes.length; seen++) {
              if (pending >= 4) window = Math.min(coalesceMaxMs, Math.max(1, window * 2));
              else if (pending <= 1) window = coalesceMs;
              // Every commit so far is in this delivery (they are made between deliveries).
              pending = 0;
              expect(flushes[seen]!.window).toBe(window);
              if (seen > 0) {
                const gap = flushes[seen]!.at - flushes[seen - 1]!.at;
                expect(gap).toBeGreaterThanOrEqual(flushes[seen - 1]!.window);
              }
            }
          };
          for (const step of steps) {
            for (let i = 0; i < step.commits; i++) commit();
            pending += step.commits;
            await turn();
            expectWindows();
            for (let ms = 0; ms < step.advance; ms++) {
              await clock.advance(1);
              await turn();
              expectWindows();
            }
          }
          // Whatever is pending goes out within one window.
          await clock.advance(coalesceMaxMs + 1);
          await turn();
          expectWindows();
          expect(pending).toBe(0);
          expect(feed.window).toBeLessThanOrEqual(Math.max(1, coalesceMaxMs));
          feed.polls.clear();
          feed.releaseIfIdle();
        },
      ),
      { numRuns: 150 },
    );
  });

  it('five commits a millisecond grow the window to its largest; one commit after a quiet spell goes out at once', async () => {
    const clock = new VirtualClock();
    const { feed, flushes, commit } = feedOn(clock, 3, 12);
    for (let ms = 0; ms < 60; ms++) {
      for (let i = 0; i < 5; i++) commit();
      await clock.advance(1);
      await turn();
    }
    expect(feed.window).toBe(12);
    // Deliveries under the flood were at least 12 ms apart once the window had grown.
    const late = flushes.slice(-3).map((f) => f.at);
    expect(late[2]! - late[1]!).toBeGreaterThanOrEqual(12);
    await clock.advance(50);
    await turn();
    const before = flushes.length;
    commit();
    await turn();
    // Out in the same turn (the last delivery was long ago), and the window is back.
    expect(flushes.length).toBe(before + 1);
    expect(feed.window).toBe(3);
    feed.polls.clear();
    feed.releaseIfIdle();
  });
});
