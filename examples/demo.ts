/**
 * `pnpm demo`: Redis that keeps dying, and a client that loses nothing it was not allowed to.
 *
 * Starts its own redis-server on a free port (durable: every write is fsynced before it is
 * acknowledged), runs a steady read/write workload through retry + reconnect + ioredis, kills
 * the server with SIGKILL a few times and starts it again, and shows a live status line. At the
 * end: a timeline of the outages and a summary — ops sent, succeeded, retried, rejected as
 * "may have executed", and lost (always 0: every acknowledged write is read back, and no
 * request is left pending).
 *
 *   pnpm demo                     # ~12 s against its own redis-server
 *   pnpm demo -- --duration 10    # seconds
 *   REDIS_URL=redis://127.0.0.1:6379 pnpm demo   # an existing server: outages are injected by
 *                                                # a fault proxy in front of it instead of kills
 *
 * redis-server must be on the PATH (Debian/Ubuntu: `apt-get install redis-server`; macOS:
 * `brew install redis`) unless REDIS_URL is set.
 */
import { parseArgs } from 'node:util';
import { isTowerlineError, ServiceBuilder, sleep } from '@towerline/core';
import { redisCommands, resilientRedis } from '@towerline/ioredis';
import { RetryLayer } from '@towerline/retry';
import { FaultProxy, RedisServer } from '@towerline/testing';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  // `pnpm demo -- --duration 10` hands the script a literal `--` first.
  args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--')),
  options: {
    duration: { type: 'string', default: '12' },
    workers: { type: 'string', default: '16' },
  },
});
const durationMs = Math.min(600, Math.max(3, Number(values.duration) || 12)) * 1000;
const workers = Math.min(256, Math.max(1, Number(values.workers) || 16));
const tty = process.stdout.isTTY === true;
const started = performance.now();
const now = () => performance.now() - started;
const at = (ms = now()) => `${(ms / 1000).toFixed(1).padStart(5)}s`;

// ---- the server, and how outages happen
const external = process.env.REDIS_URL;
let server: RedisServer | undefined;
let proxy: FaultProxy | undefined;
let port: number;
if (external) {
  const url = new URL(external);
  proxy = await FaultProxy.start({
    target: { host: url.hostname, port: Number(url.port || 6379) },
  });
  port = proxy.port;
  console.log(`towerline demo: ${external} through a fault proxy on 127.0.0.1:${port}`);
} else {
  server = await RedisServer.start({ durable: true });
  port = server.port;
  console.log(`towerline demo: own redis-server on 127.0.0.1:${port} (appendfsync always)`);
}
const outage = async () => {
  if (server) await server.kill();
  else await proxy!.refuse();
};
const recover = async () => {
  if (server) await server.start();
  else await proxy!.restore();
};
const run = `demo:${process.pid}:${Date.now().toString(36)}`;

// ---- the client stack, as the README composes it, with default options: retry (outer) over
// reconnect + ioredis (inner). Retry and reconnect share one request context: a command that
// may have executed (an INCR cut off in flight) is repeated only if Redis flags it read-only,
// and no command is sent more than 3 times in all.
const redis = resilientRedis({ port, name: 'demo' });
const retry = new RetryLayer();
const client = redisCommands(new ServiceBuilder().layer(retry).service(redis));

// ---- what happens, as it happens
interface Outage {
  down: number;
  up?: number;
  reconnected?: number;
}
const outages: Outage[] = [];
const stats = {
  sent: 0,
  ok: 0,
  retried: 0,
  mayHaveExecuted: 0,
  failed: 0,
  incrAcked: 0,
  incrAmbiguous: 0,
};
const acknowledged = new Map<string, string>(); // every SET the server acknowledged
let reconnects = 0;
retry.events.on('retry', () => {
  stats.retried++;
});
redis.reconnector.events.on('connected', ({ generation }) => {
  if (generation === 1) return;
  reconnects++;
  const o = outages.at(-1);
  if (o && o.reconnected === undefined) o.reconnected = now();
});

let windowOps = 0;
let opsPerSecond = 0;
const status = () =>
  `${at()} state=${redis.reconnector.state.padEnd(12)} ops/s=${String(opsPerSecond).padStart(6)} ` +
  `queued=${String(redis.service.stats.queued).padStart(4)} reconnects=${reconnects} retried=${stats.retried} ` +
  `resent=${redis.service.stats.retriedOnReconnect} requeued=${redis.service.stats.requeued} ` +
  `may-have-executed=${stats.mayHaveExecuted}`;
let lastLine = 0;
const ticker = setInterval(() => {
  opsPerSecond = windowOps * 5;
  windowOps = 0;
  if (tty) process.stdout.write(`\r${status()}\u001b[K`);
  else if (now() - lastLine >= 1_000) {
    lastLine = now();
    console.log(status());
  }
}, 200);
const log = (line: string) => {
  if (tty) process.stdout.write(`\r\u001b[K${line}\n${status()}`);
  else console.log(line);
};

// ---- the workload
let stopping = false;
async function worker(id: number) {
  for (let n = 0; !stopping; n++) {
    const key = `${run}:w${id}:${n}`;
    const value = `v${n}`;
    const ops: Array<[name: string, run: () => Promise<unknown>, onOk: () => void]> = [
      ['SET', () => client.set(key, value), () => acknowledged.set(key, value)],
      ['GET', () => client.get(key), () => {}],
      ['INCR', () => client.incr(`${run}:counter`), () => stats.incrAcked++],
    ];
    for (const [name, send, onOk] of ops) {
      stats.sent++;
      try {
        await send();
        onOk();
        stats.ok++;
        windowOps++;
      } catch (error) {
        const isIncr = name === 'INCR';
        if (isTowerlineError(error) && error.mayHaveExecuted) {
          stats.mayHaveExecuted++;
          if (isIncr) stats.incrAmbiguous++;
        } else {
          stats.failed++;
        }
        if (isIncr) continue;
        break; // this key's story is broken; start the next one
      }
    }
  }
}

// ---- chaos: an outage every few seconds; each next one only once the client is back (the
// default reconnect policy spreads attempts over 100 ms → 30 s so that a fleet does not herd:
// after a blip a lone client may take a few seconds to return)
const chaos = (async () => {
  const every = Math.max(2_000, Math.floor(durationMs / 4));
  for (let t = every; t < durationMs - 1_000; t = Math.max(t + every, now() + 1_000)) {
    await new Promise((r) => setTimeout(r, Math.max(0, t - now())));
    const o: Outage = { down: now() };
    outages.push(o);
    await outage();
    log(`${at(o.down)} -- ${server ? 'redis-server killed (SIGKILL)' : 'connections refused'} --`);
    await new Promise((r) => setTimeout(r, 600 + Math.floor(Math.random() * 900)));
    await recover();
    o.up = now();
    log(`${at(o.up)} -- ${server ? 'redis-server restarted' : 'proxy restored'} --`);
    if (redis.reconnector.state !== 'connected') {
      await Promise.race([
        redis.reconnector.events.next('connected'),
        sleep(30_000, { unref: true }), // never keeps the demo alive
      ]);
    }
  }
})();

const running = Array.from({ length: workers }, (_, i) => worker(i));
await new Promise((r) => setTimeout(r, durationMs));
stopping = true;
await chaos;
await Promise.all(running); // every request settles: none is left pending
clearInterval(ticker);
if (tty) process.stdout.write(`\r${status()}\u001b[K\n`);

// ---- read everything back with a plain client
const checker = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 3 });
checker.on('error', () => {});
await checker.connect();
let missing = 0;
const keys = [...acknowledged.keys()];
for (let i = 0; i < keys.length; i += 1_000) {
  const batch = keys.slice(i, i + 1_000);
  const found = await checker.mget(...batch);
  found.forEach((v, j) => {
    if (v !== acknowledged.get(batch[j]!)) missing++;
  });
}
const counter = Number(await checker.get(`${run}:counter`));
const incrOk = counter >= stats.incrAcked && counter <= stats.incrAcked + stats.incrAmbiguous;
if (external) await checker.del(`${run}:counter`, ...keys.slice(0, 100_000));
checker.disconnect();
await redis.close();
await proxy?.close();
await server?.close();

console.log('\ntimeline:');
for (const o of outages) {
  const back =
    o.reconnected === undefined
      ? 'not seen'
      : `${at(o.reconnected)} (${((o.reconnected - o.down) / 1000).toFixed(2)} s without Redis)`;
  console.log(
    `  down ${at(o.down)}  up ${o.up === undefined ? '?' : at(o.up)}  client back ${back}`,
  );
}
const lost = missing;
console.log(
  `\nsummary: ${stats.sent} ops sent, ${stats.ok} succeeded, ${stats.retried} retried, ` +
    `${redis.service.stats.retriedOnReconnect} resent after reconnect (read-only), ` +
    `${redis.service.stats.requeued} never written and sent on the next connection, ` +
    `${stats.mayHaveExecuted} rejected as "may have executed", ${stats.failed} failed otherwise, ` +
    `${acknowledged.size} acknowledged SETs read back (${missing} missing), ` +
    `INCR counter ${counter} for ${stats.incrAcked} acknowledged + ${stats.incrAmbiguous} ambiguous (${incrOk ? 'consistent' : 'INCONSISTENT'}), ` +
    `${outages.length} outages, ${reconnects} reconnects, lost = ${lost}`,
);
process.exitCode = lost === 0 && incrOk ? 0 : 1;
