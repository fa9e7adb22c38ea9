import { EventEmitter } from 'node:events';
import { backoff } from '@towerline/core';
import { type BreakerState, FleetRateLimiter, SharedBreaker } from '@towerline/fleet';
import { ResilientRedis } from '@towerline/ioredis';
import { RedisServer } from '@towerline/testing';
import { afterEach, describe, expect, it } from 'vitest';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function setup() {
  const server = await RedisServer.start({ durable: false });
  cleanups.push(() => server.close());
  const redis = new ResilientRedis({
    port: server.port,
    policy: backoff.exponentialRandom({ initial: 20, max: 100, jitter: 'full' }),
    queueTimeout: 500,
  });
  redis.reconnector.start();
  cleanups.push(() => redis.close());
  await redis.reconnector.whenReady();
  return { server, redis };
}

/** The breaker contract SharedBreaker drives, with state set by hand. */
class FakeBreaker extends EventEmitter {
  state: BreakerState = 'closed';
  to(state: BreakerState): void {
    const from = this.state;
    this.state = state;
    this.emit('stateChange', { from, to: state });
  }
  isolate(): void {
    this.to('isolated');
  }
  reset(): void {
    this.to('closed');
  }
  outcome(ok: boolean): void {
    this.emit('outcome', { ok, durationMs: 1 });
  }
}

describe('FleetRateLimiter on Redis', () => {
  it('a flushed script cache (NOSCRIPT) is reloaded; a refusal is answered locally until due', async () => {
    const { redis } = await setup();
    const l = new FleetRateLimiter({ redis, name: 't', limit: 10, burst: 1, expectedReplicas: 1 });
    expect(await l.acquire(1, undefined)).toBe(0);
    await redis.command('SCRIPT', 'FLUSH');
    const wait = await l.acquire(1, undefined);
    expect(wait).toBeGreaterThan(50);
    expect(wait).toBeLessThanOrEqual(100);
    // Remembered: no round trip until the wait is over.
    const again = l.acquire(1, undefined);
    expect(typeof again).toBe('number');
    expect(again).toBeGreaterThan(0);
  });

  it('Redis unreachable: local share with one fallback event, then recovered; open and closed modes', async () => {
    const { server, redis } = await setup();
    const events: string[] = [];
    const local = new FleetRateLimiter({
      redis,
      name: 'f',
      limit: 100,
      burst: 10,
      expectedReplicas: 10,
    });
    local.events.on('fallback', (e) => events.push(`fallback:${e.reason}`));
    local.events.on('recovered', () => events.push('recovered'));
    const open = new FleetRateLimiter({
      redis,
      name: 'o',
      limit: 1,
      expectedReplicas: 1,
      whenUnavailable: 'open',
    });
    const closed = new FleetRateLimiter({
      redis,
      name: 'c',
      limit: 1_000,
      expectedReplicas: 1,
      whenUnavailable: 'closed',
    });
    expect(await local.acquire(1, undefined)).toBe(0);
    await server.kill();
    await new Promise((r) => setTimeout(r, 100));
    // Share: 100/s ÷ 10 replicas = 10/s, burst 1.
    let admitted = 0;
    for (let i = 0; i < 20; i++) if ((await local.acquire(1, undefined)) === 0) admitted++;
    expect(admitted).toBe(1);
    expect(local.degraded).toBe(true);
    for (let i = 0; i < 5; i++) expect(await open.acquire(1, undefined)).toBe(0);
    expect(await closed.acquire(1, undefined)).toBe(1_000);
    await server.start();
    await redis.reconnector.whenReady();
    await new Promise((r) => setTimeout(r, 150));
    expect(await local.acquire(1, undefined)).toBe(0);
    expect(events).toEqual(['fallback:unreachable', 'recovered']);
  });
});

describe('SharedBreaker on Redis', () => {
  it('the fleet opens on the fleet rate, isolates closed breakers, and a probe closes it for all', async () => {
    const { redis } = await setup();
    const opts = { redis, name: 'b', minimumRequests: 10, flushMs: 50, probeIntervalMs: 300 };
    const a = new SharedBreaker(opts);
    const b = new SharedBreaker(opts);
    cleanups.push(async () => {
      a.close();
      b.close();
    });
    const ba = new FakeBreaker();
    const bb = new FakeBreaker();
    a.attach(ba);
    b.attach(bb);
    // A sees every failure; B sees few calls: the fleet's rate trips, B learns from A.
    for (let i = 0; i < 12; i++) ba.outcome(false);
    bb.outcome(true);
    await a.flush();
    await b.flush();
    expect(a.fleetOpen).toBe(true);
    expect(b.fleetOpen).toBe(true);
    expect(bb.state).toBe('isolated');
    expect(ba.state).toBe('isolated');
    // One probe per interval across the fleet.
    const grants = await Promise.all([a.probeGate(), b.probeGate(), a.probeGate()]);
    expect(grants.filter(Boolean)).toHaveLength(1);
    // The probe succeeded: its breaker closes, the fleet closes, the other is reset.
    ba.to('halfOpen');
    ba.to('closed');
    await new Promise((r) => setTimeout(r, 50));
    await b.flush();
    expect(b.fleetOpen).toBe(false);
    expect(bb.state).toBe('closed');
  });

  it('Redis unreachable: every probe is a local decision and no breaker stays isolated', async () => {
    const { server, redis } = await setup();
    const s = new SharedBreaker({ redis, name: 'd', minimumRequests: 2, flushMs: 50 });
    cleanups.push(async () => s.close());
    const br = new FakeBreaker();
    s.attach(br);
    br.outcome(false);
    br.outcome(false);
    await s.flush();
    expect(br.state).toBe('isolated');
    const events: string[] = [];
    s.events.on('fallback', () => events.push('fallback'));
    await server.kill();
    await new Promise((r) => setTimeout(r, 100));
    expect(await s.probeGate()).toBe(true);
    await s.flush();
    expect(br.state).toBe('closed');
    expect(events).toEqual(['fallback']);
  });
});
