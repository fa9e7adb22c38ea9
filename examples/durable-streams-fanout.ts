/**
 * Fan-out: 200 SSE readers follow one stream while a writer appends 2,000 messages in bursts.
 * The server builds one frame per batch for all the readers at the same offset and writes it
 * to each in one go; the handler's `live` figures show the connections, the readers it paused
 * because their socket was full, and the bytes waiting in sockets. Every reader ends with every
 * message once.
 *
 *   pnpm example examples/durable-streams-fanout.ts
 */
import { followStream, startDurableStreamsServer } from '@towerline/durable-streams';

const READERS = 200;
const MESSAGES = 2_000;
const server = await startDurableStreamsServer({
  liveBufferBytes: 256 * 1024, // a reader with more unsent is paused, then resumes from its offset
  liveCoalesceMs: 3, // deliveries to a stream's readers at least 3 ms apart…
  liveCoalesceMaxMs: 12, // …growing to 12 ms under a flood (fewer, larger socket writes)
});
const url = `${server.url}/v1/stream/prices`;
await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' } });

const followers = Array.from({ length: READERS }, () =>
  followStream(url, { offset: 'now', live: 'sse' }),
);
const received = followers.map(async (f) => {
  const seen: number[] = [];
  for await (const batch of f) {
    for (const m of JSON.parse(new TextDecoder().decode(batch.data)) as Array<{ n: number }>)
      seen.push(m.n);
    if (seen.length >= MESSAGES) break;
  }
  await f.close();
  return seen;
});
// Wait until every reader holds its SSE connection.
for (let i = 0; i < 200 && server.handler.live.sse < READERS; i++)
  await new Promise((r) => setTimeout(r, 10));
console.log(`live: ${JSON.stringify(server.handler.live)}`);

const started = performance.now();
for (let n = 0; n < MESSAGES; n += 20) {
  // Bursts of 20 concurrent appends: readers get them in a frame or a few, not 20 wake-ups.
  await Promise.all(
    Array.from({ length: 20 }, (_, k) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ n: n + k }),
      }),
    ),
  );
}
const all = await Promise.all(received);
const ms = performance.now() - started;
const ok = all.every((seen) => seen.length === MESSAGES && new Set(seen).size === MESSAGES);
console.log(
  `${READERS} readers × ${MESSAGES} messages in ${ms.toFixed(0)} ms: ${ok ? 'every reader got every message once' : 'MISSING MESSAGES'}`,
);
await server.close();
if (!ok) process.exit(1);
