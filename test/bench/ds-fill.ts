/**
 * The history probe of the durable-streams bench, one process per step so that every RSS is
 * a process's own: `fill <mode> <dir> <warm> <n>` appends 100-byte messages round-robin over
 * 100 streams through the engine (in waves of 1,000, each wave one group commit) — `warm`
 * first, so that allocator and heap reach their working size, then `n` more — reports its RSS
 * after a full GC before and after the `n`, then waits to be killed (-9: nothing is flushed);
 * `open <mode> <dir>` opens the same directory, reports how long recovery took and its RSS,
 * reads one stream back whole, and closes cleanly. Results go to the parent over IPC.
 */
import { Engine, type StorageMode } from '@towerline/durable-streams';

type Stream = ReturnType<Engine['create']>;

const [step, mode, dir, warmText, countText] = process.argv.slice(2) as [
  string,
  StorageMode,
  string,
  string,
  string,
];
const STREAMS = 100;
const BODY = Buffer.alloc(100, 'x');
const config = {
  contentType: 'text/plain',
  ttlSeconds: undefined,
  expiresAt: undefined,
  expiresAtText: undefined,
};
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const rss = () => {
  gc();
  return process.memoryUsage().rss;
};
const barrier = (e: Engine) => new Promise<void>((resolve) => e.barrier(resolve));
const send = (m: unknown) => process.send?.(m);

async function fill(engine: Engine, streams: Stream[], count: number): Promise<void> {
  for (let done = 0; done < count; ) {
    const wave = Math.min(1_000, count - done);
    for (let k = 0; k < wave; k++) {
      const payload = { chunks: [BODY], bytes: BODY.length, count: BODY.length, table: undefined };
      const spec = { payload, close: false, producer: undefined, streamSeq: undefined };
      engine.append(streams[(done + k) % STREAMS]!, spec, () => {});
    }
    await barrier(engine);
    done += wave;
  }
}

if (step === 'fill') {
  const engine = await Engine.open({ mode, dataDir: dir });
  const streams = Array.from({ length: STREAMS }, (_, k) =>
    engine.create(
      {
        key: `/s${k}`,
        config,
        closed: false,
        fork: undefined,
        payload: { chunks: [], bytes: 0, count: 0, table: undefined },
      },
      () => {},
    ),
  );
  await barrier(engine);
  await fill(engine, streams, Number(warmText));
  const before = rss();
  const started = performance.now();
  await fill(engine, streams, Number(countText));
  const fillMs = performance.now() - started;
  await engine.settle();
  send({
    fillMs,
    rssBefore: before,
    rssAfter: rss(),
    inMemory: engine.storedBytes,
    indexBytes: engine.table.meter.bytes,
    commits: engine.commits,
  });
  setInterval(() => {}, 1_000); // until killed
} else {
  const started = performance.now();
  const engine = await Engine.open({ mode, dataDir: dir });
  const openMs = performance.now() - started;
  const rssOpen = rss();
  const s = engine.live('/s0')!;
  const plan = engine.plan(s, 0, Number.MAX_SAFE_INTEGER);
  const bytes = (await engine.read(plan.parts)).reduce((n, b) => n + b.length, 0);
  const closing = performance.now();
  await engine.close();
  send({
    openMs,
    rssOpen,
    replayed: engine.report.replayed,
    streamBytes: bytes,
    closeMs: performance.now() - closing,
  });
  process.disconnect?.();
}
