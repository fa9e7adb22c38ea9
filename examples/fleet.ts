/**
 * Three instances, one Redis, one PostgreSQL, a load generator.
 *
 * Each instance (examples/support/fleet-instance.ts, its own process) serves Durable Streams on
 * the same PostgreSQL schema, and a `/work` endpoint behind ONE rate limit of 90/s for the
 * whole fleet (GCRA on Redis); each admitted request is appended to the shared stream
 * `events`. The load generator sends far more than 90/s to all three; an SSE reader on
 * instance 1 follows the stream, and sees the appends of all three (LISTEN/NOTIFY). After 4 s
 * Redis is killed: every instance says so and limits itself to its share (30/s).
 * At the end the stream holds exactly one event per admitted request.
 *
 * `pnpm example examples/fleet.ts` (PostgreSQL on 127.0.0.1:5432, db `test`; a redis-server
 * binary on the PATH — the example starts its own).
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { followStream } from '@towerline/durable-streams';
import { RedisServer } from '@towerline/testing';
import pg from 'pg';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LIMIT = 90;
const schema = `fleet_example_${process.pid}`;
const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();
const t = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(4)}s`;

const redis = await RedisServer.start({ durable: false });
console.log(`${t()} redis-server on port ${redis.port}; PostgreSQL schema ${schema}`);

const instances = await Promise.all(
  [1, 2, 3].map(
    (n) =>
      new Promise<{ work: string; ds: string; stop: () => void }>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [
            '--conditions=source',
            '--import',
            'tsx',
            join(here, 'support', 'fleet-instance.ts'),
            String(n),
            String(redis.port),
            PG_URL,
            schema,
            String(LIMIT),
          ],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
            env: { ...process.env, DS_OBSERVABILITY__RUST_LOG: 'warn' },
          },
        );
        child.once('exit', (code) => reject(new Error(`instance ${n} exited ${code}`)));
        let buf = '';
        child.stdout!.on('data', (d: Buffer) => {
          buf += d;
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const line of lines) {
            const m = /^ready (\S+) (\S+)/.exec(line);
            if (m) resolve({ work: m[1]!, ds: m[2]!, stop: () => child.kill('SIGTERM') });
            else console.log(`${t()} ${line}`);
          }
        });
      }),
  ),
);
const eventsOn = (i: number) => `${instances[i]!.ds}/v1/stream/events`;
await fetch(eventsOn(0), { method: 'PUT', headers: { 'content-type': 'application/json' } });

// The SSE reader on instance 1: every instance's appends arrive here.
const seen = new Map<number, number>();
const reader = followStream(eventsOn(0), { live: 'sse' });
const reading = (async () => {
  for await (const batch of reader) {
    for (const e of JSON.parse(Buffer.from(batch.data).toString() || '[]') as Array<{
      from: number;
    }>)
      seen.set(e.from, (seen.get(e.from) ?? 0) + 1);
  }
})();

// The load generator: 24 loops, far more than 90/s, over all three instances.
let accepted = 0;
let limited = 0;
let stopping = false;
const loop = async (k: number) => {
  for (let i = 0; !stopping && i < 1_000_000; i++) {
    const r = await fetch(`${instances[(k + i) % 3]!.work}/work`).catch(() => undefined);
    if (r?.status === 202) accepted++;
    else if (r?.status === 429) {
      limited++;
      await new Promise((res) => setTimeout(res, 5));
    }
  }
};
const load = Promise.all(Array.from({ length: 24 }, (_, k) => loop(k)));
await new Promise((r) => setTimeout(r, 4_000));
const before = accepted;
console.log(
  `${t()} load: ${accepted} accepted in 4 s (${(accepted / 4).toFixed(0)}/s against ${LIMIT}/s), ${limited} answered 429; killing Redis`,
);
await redis.kill();
await new Promise((r) => setTimeout(r, 4_000));
stopping = true;
await load;
console.log(
  `${t()} load: ${accepted - before} accepted in the 4 s without Redis (each instance at most its share of ${LIMIT / 3}/s)`,
);

await new Promise((r) => setTimeout(r, 500));
const stored = (JSON.parse(await (await fetch(`${eventsOn(2)}?offset=-1`)).text()) as unknown[])
  .length;
await reader.close();
await reading.catch(() => {});
console.log(
  `${t()} stream 'events' read from instance 3: ${stored} events for ${accepted} accepted requests; the SSE reader on instance 1 saw ${[...seen].map(([from, c]) => `${c} from instance ${from}`).join(', ')}`,
);
for (const i of instances) i.stop();
await new Promise((r) => setTimeout(r, 1_000));
await redis.close();
const c = new pg.Client({ connectionString: PG_URL });
await c.connect();
await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
await c.end();
