/**
 * One instance of examples/fleet.ts: a Durable Streams server on the shared PostgreSQL, and a
 * `/work` endpoint behind the fleet's rate limit (Redis) that records each admitted request
 * as an append to the shared stream. Prints `ready <url>`, then one line a second.
 * Usage: fleet-instance.ts <n> <redis port> <pg url> <pg schema> <fleet limit>
 */

import { once } from 'node:events';
import { createServer } from 'node:http';
import { backoff } from '@towerline/core';
import { startDurableStreamsServer } from '@towerline/durable-streams';
import { FleetRateLimiter } from '@towerline/fleet';
import { ResilientRedis } from '@towerline/ioredis';

const [n, redisPort, pgUrl, schema, limit] = process.argv.slice(2);
const say = (line: string) => console.log(`[instance ${n}] ${line}`);

const ds = await startDurableStreamsServer({
  storage: 'postgres',
  postgresUrl: pgUrl!,
  postgresSchema: schema!,
});
const redis = new ResilientRedis({
  port: Number(redisPort),
  policy: backoff.exponentialRandom({ initial: 100, max: 1_000, jitter: 'full' }),
  queueTimeout: 500,
});
redis.reconnector.start();
const limiter = new FleetRateLimiter({
  redis,
  name: 'work',
  limit: Number(limit),
  expectedReplicas: 3,
  timeoutMs: 1_000,
});
limiter.events.on('fallback', (e) =>
  say(`rate limit is LOCAL now (${e.reason}): this instance's share, ${Number(limit) / 3}/s`),
);
limiter.events.on('recovered', (e) => say(`rate limit is the fleet's again after ${e.downMs} ms`));

const stream = `${ds.url}/v1/stream/events`;
let admitted = 0;
let refused = 0;
const front = createServer(async (req, res) => {
  const wait = await limiter.acquire(1, undefined);
  if (wait > 0) {
    refused++;
    res.writeHead(429, { 'retry-after-ms': String(wait) }).end();
    return;
  }
  admitted++;
  const r = await fetch(stream, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ from: Number(n), at: Date.now() }),
  });
  await r.arrayBuffer();
  res.writeHead(r.ok ? 202 : 503).end();
  req.resume();
});
front.listen(0, '127.0.0.1');
await once(front, 'listening');
const port = (front.address() as { port: number }).port;
const tick = setInterval(() => {
  say(
    `admitted ${String(admitted).padStart(3)}/s, refused ${String(refused).padStart(4)}/s, limit ${limiter.degraded ? 'local' : 'fleet (Redis)'}`,
  );
  admitted = 0;
  refused = 0;
}, 1_000);
console.log(`ready http://127.0.0.1:${port} ${ds.url}`);
process.on('message', () => {});
process.once('SIGTERM', async () => {
  clearInterval(tick);
  front.closeAllConnections();
  front.close();
  await redis.close().catch(() => {});
  await ds.close();
  process.exit(0);
});
