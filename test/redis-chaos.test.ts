/**
 * Chaos: 100 kill -9 / restart cycles of a durable redis-server (appendfsync always) under a
 * write workload through ResilientRedis. Every acknowledged SET must be readable afterwards,
 * the INCR counter must lie between the acknowledged INCRs and those plus the ones reported as
 * "may have executed" (nothing lost, nothing duplicated), and no promise may be left pending.
 */
import { backoff, isTowerlineError } from '@towerline/core';
import { ResilientRedis } from '@towerline/ioredis';
import { RedisServer } from '@towerline/testing';
import { Redis } from 'ioredis';
import { expect, it } from 'vitest';

const CYCLES = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it(`survives ${CYCLES} kill/restart cycles under writes: nothing lost, nothing duplicated`, async () => {
  const server = await RedisServer.start({ durable: true });
  const redis = new ResilientRedis({
    port: server.port,
    policy: backoff.exponentialRandom({ initial: 10, max: 200, jitter: 'decorrelated' }),
    minUptime: 100,
    queueTimeout: 20_000,
  });
  const acknowledged = new Map<string, string>();
  let incrAcked = 0;
  let incrAmbiguous = 0;
  let setAmbiguous = 0;
  let otherFailures = 0;
  let stopping = false;
  const worker = async (id: number) => {
    for (let n = 0; !stopping; n++) {
      const key = `chaos:${id}:${n}`;
      try {
        await redis.set(key, String(n));
        acknowledged.set(key, String(n));
      } catch (error) {
        if (isTowerlineError(error) && error.mayHaveExecuted) setAmbiguous++;
        else otherFailures++;
      }
      try {
        await redis.incr('chaos:counter');
        incrAcked++;
      } catch (error) {
        if (isTowerlineError(error) && error.mayHaveExecuted) incrAmbiguous++;
        else otherFailures++;
      }
    }
  };
  try {
    const workers = Array.from({ length: 8 }, (_, i) => worker(i));
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      await sleep(20 + Math.floor(Math.random() * 60));
      await server.kill();
      await sleep(5 + Math.floor(Math.random() * 40));
      await server.start();
      // Each cycle is an outage the client lives through: wait until it is back.
      if (redis.reconnector.state !== 'connected') await redis.reconnector.events.next('connected');
    }
    await sleep(200);
    stopping = true;
    await Promise.all(workers); // every request settled: none pending
    const checker = new Redis({ port: server.port, maxRetriesPerRequest: 3 });
    checker.on('error', () => {});
    const keys = [...acknowledged.keys()];
    let missing = 0;
    for (let i = 0; i < keys.length; i += 1_000) {
      const batch = keys.slice(i, i + 1_000);
      const values = await checker.mget(...batch);
      values.forEach((v, j) => {
        if (v !== acknowledged.get(batch[j]!)) missing++;
      });
    }
    const counter = Number(await checker.get('chaos:counter'));
    checker.disconnect();
    console.log(
      `chaos: ${CYCLES} cycles, ${redis.reconnector.stats.reconnects} reconnects, ` +
        `${acknowledged.size} SETs acknowledged (${missing} missing, ${setAmbiguous} may have executed), ` +
        `counter ${counter} for ${incrAcked} INCRs acknowledged + ${incrAmbiguous} may have executed ` +
        `(duplicated: ${Math.max(0, counter - incrAcked - incrAmbiguous)}), other failures ${otherFailures}`,
    );
    expect(server.starts).toBe(CYCLES + 1);
    expect(redis.reconnector.stats.reconnects).toBeGreaterThanOrEqual(CYCLES);
    expect(acknowledged.size).toBeGreaterThan(CYCLES);
    expect(missing).toBe(0);
    expect(counter).toBeGreaterThanOrEqual(incrAcked);
    expect(counter).toBeLessThanOrEqual(incrAcked + incrAmbiguous);
    expect(otherFailures).toBe(0);
  } finally {
    stopping = true;
    await redis.close();
    await server.close();
  }
}, 180_000);
