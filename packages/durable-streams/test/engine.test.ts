/**
 * The storage engine on its own: checksums, the record format, group commit, recovery through
 * snapshots and segment indexes, compaction, and what an append costs in memory.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '@towerline/core';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  batchSize,
  decodeBatch,
  encodeBatch,
  type LogRecord,
  type Payload,
  T_APPEND,
  T_COPY,
  T_CREATE,
  T_DELETE,
} from '../src/server/engine/codec.js';
import { CommitQueue } from '../src/server/engine/commit-queue.js';
import { crc32c } from '../src/server/engine/crc32c.js';
import { Engine, type StorageMode } from '../src/server/engine/engine.js';
import type { Stream } from '../src/server/engine/stream.js';

const root = mkdtempSync(join(tmpdir(), 'towerline-ds-engine-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `d${++dirs}`);

const config = (contentType = 'text/plain') => ({
  contentType,
  ttlSeconds: undefined,
  expiresAt: undefined,
  expiresAtText: undefined,
});
const bytes = (s: string | Buffer): Payload => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return { chunks: [b], bytes: b.length, count: b.length, table: undefined };
};
const NONE: Payload = { chunks: [], bytes: 0, count: 0, table: undefined };
const durable = (e: Engine) => new Promise<void>((resolve) => e.barrier(resolve));
const create = (e: Engine, key: string, payload = NONE, contentType?: string) =>
  e.create({ key, config: config(contentType), closed: false, fork: undefined, payload }, () => {});
const append = (
  e: Engine,
  s: Stream,
  payload: Payload,
  producer?: { id: string; epoch: number; seq: number },
) => e.append(s, { payload, close: false, producer, streamSeq: undefined }, () => {});
async function readAll(e: Engine, key: string): Promise<string> {
  const s = e.live(key)!;
  const bufs = await e.read(e.plan(s, 0, Number.MAX_SAFE_INTEGER).parts);
  return Buffer.concat(bufs).toString();
}

describe('CRC-32C', () => {
  it('matches the RFC 3720 test vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    const ascending = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    expect(crc32c(ascending)).toBe(0x46dd794e);
  });

  it('continues across pieces: crc(a ‖ b) = crc(b, crc(a))', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (data, cut) => {
        const b = Buffer.from(data);
        const at = Math.min(cut, b.length);
        expect(crc32c(b, crc32c(b, 0, 0, at), at)).toBe(crc32c(b));
      }),
    );
  });
});

const payloadArb = fc
  .array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 4 })
  .map((parts): Payload => {
    const chunks = parts.map((p) => Buffer.from(p));
    const n = chunks.reduce((a, c) => a + c.length, 0);
    const table = chunks.length > 1 ? Uint32Array.from(chunks.map((_, k) => k + 1)) : undefined;
    return { chunks, bytes: n, count: chunks.length > 1 ? chunks.length : n, table };
  });
const str = fc.string({ maxLength: 30 });
const num = fc.integer({ min: 0, max: 2 ** 40 });
const recordArb: fc.Arbitrary<LogRecord> = fc.oneof(
  fc.record({
    t: fc.constant(T_CREATE),
    id: fc.nat(),
    key: str,
    contentType: str,
    closed: fc.boolean(),
    ttlSeconds: fc.option(num, { nil: undefined }),
    expiresAt: fc.option(num, { nil: undefined }),
    expiresAtText: fc.constant(undefined),
    fork: fc.option(fc.record({ source: fc.nat(), position: num, offset: num, subOffset: num }), {
      nil: undefined,
    }),
    payload: payloadArb,
  }),
  fc.record({
    t: fc.constant(T_APPEND),
    id: fc.nat(),
    start: num,
    close: fc.boolean(),
    producer: fc.option(fc.record({ id: str, epoch: num, seq: num }), { nil: undefined }),
    streamSeq: fc.option(str, { nil: undefined }),
    payload: payloadArb,
  }),
  fc.record({ t: fc.constant(T_DELETE), id: fc.nat() }),
  fc.record({ t: fc.constant(T_COPY), id: fc.nat(), start: num, payload: payloadArb }),
);
/** A record as the decoder returns it: the data in one piece. */
const normal = (r: LogRecord) =>
  JSON.parse(
    JSON.stringify(
      r.t === T_DELETE
        ? r
        : { ...r, payload: { ...r.payload, chunks: [Buffer.concat(r.payload.chunks)] } },
      (_, v) =>
        v?.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v === undefined ? null : v,
    ),
  );

describe('batch frames', () => {
  it('decode to what was encoded; any flipped byte is caught', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        (records, flip) => {
          const size = batchSize(records);
          const buf = Buffer.alloc(size);
          const data = new Float64Array(records.length);
          expect(encodeBatch(buf, 0, records, data)).toBe(size);
          const scan = decodeBatch(buf, 0);
          expect(scan.ok).toBe(true);
          if (!scan.ok) return;
          expect(scan.records.map(normal)).toEqual(records.map(normal));
          records.forEach((r, k) => {
            if (r.t !== T_DELETE && r.payload.bytes > 0)
              expect(buf.subarray(data[k]!, data[k]! + r.payload.bytes)).toEqual(
                Buffer.concat(r.payload.chunks),
              );
          });
          const at = flip % size;
          buf[at] = buf[at]! ^ (1 + (flip % 255));
          expect(decodeBatch(buf, 0).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a frame cut short anywhere is not a batch', () => {
    const records: LogRecord[] = [
      {
        t: T_APPEND,
        id: 1,
        start: 0,
        close: false,
        producer: undefined,
        streamSeq: undefined,
        payload: bytes('hello'),
      },
    ];
    const buf = Buffer.alloc(batchSize(records));
    encodeBatch(buf, 0, records, new Float64Array(1));
    for (let cut = 0; cut < buf.length; cut++)
      expect(decodeBatch(buf.subarray(0, cut), 0).ok).toBe(false);
  });
});

describe('group commit', () => {
  it('appends that arrive while a batch is being written go out together, acknowledged in order', async () => {
    const clock = new VirtualClock();
    const writes: number[] = [];
    let release: (() => void) | undefined;
    const q = new CommitQueue(
      (batch, done) => {
        writes.push(batch.length);
        release = () => done(null, new Float64Array(batch.length));
      },
      () => {},
      () => {},
      (fn) => setImmediate(fn),
      clock,
    );
    const acked: number[] = [];
    const write = { record: { t: T_DELETE, id: 1 } as LogRecord, stream: undefined as never };
    q.push(write, 0, () => acked.push(0));
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([1]);
    for (let i = 1; i <= 5; i++) q.push(write, 0, () => acked.push(i));
    let barrier = false;
    q.barrier(() => {
      barrier = true;
    });
    expect(acked).toEqual([]);
    await clock.advance(2); // the write took 2 ms
    release!();
    expect(acked).toEqual([0]);
    // The five queued meanwhile wait (at most half the last write) for the writer just
    // acknowledged to come back; it does, and all six go out as one batch.
    expect(writes).toEqual([1]);
    q.push(write, 0, () => acked.push(6));
    expect(writes).toEqual([1, 6]);
    release!();
    expect(acked).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(barrier).toBe(true);
  });

  it('the gathering wait ends after half the last write, with whoever came', async () => {
    const clock = new VirtualClock();
    const writes: number[] = [];
    let release: (() => void) | undefined;
    const q = new CommitQueue(
      (batch, done) => {
        writes.push(batch.length);
        release = () => done(null, new Float64Array(batch.length));
      },
      () => {},
      () => {},
      (fn) => fn(),
      clock,
    );
    const write = { record: { t: T_DELETE, id: 1 } as LogRecord, stream: undefined as never };
    for (let i = 0; i < 4; i++) q.push(write, 0, () => {});
    expect(writes).toEqual([1]); // the first went at once (synchronous schedule), three wait
    await clock.advance(4);
    release!();
    expect(writes).toEqual([1]);
    await clock.advance(1.9);
    expect(writes).toEqual([1]);
    await clock.advance(0.2);
    expect(writes).toEqual([1, 3]);
    release!();
  });

  it('a failed write fails its batch, everything queued, and every later change', async () => {
    let fail: (() => void) | undefined;
    const failures: Error[] = [];
    const q = new CommitQueue(
      (_batch, done) => {
        fail = () => done(new Error('EIO'), undefined);
      },
      () => {},
      (e) => failures.push(e),
      (fn) => fn(),
    );
    const results: Array<string | null> = [];
    const write = { record: { t: T_DELETE, id: 1 } as LogRecord, stream: undefined as never };
    q.push(write, 0, (e) => results.push(e?.message ?? null));
    q.push(write, 0, (e) => results.push(e?.message ?? null));
    fail!();
    q.push(write, 0, (e) => results.push(e?.message ?? null));
    expect(results).toEqual(['EIO', 'EIO', 'EIO']);
    expect(failures).toHaveLength(1);
  });

  it.each(['file-fast', 'file-durable', 'acid'] as StorageMode[])(
    '%s: 200 concurrent appends take far fewer batches, and readers see only durable data',
    async (mode) => {
      const e = await Engine.open({ mode, dataDir: freshDir() });
      const s = create(e, '/a');
      await durable(e);
      const before = e.commits.batches;
      let acked = 0;
      for (let i = 0; i < 200; i++)
        e.append(
          s,
          { payload: bytes('x'), close: false, producer: undefined, streamSeq: undefined },
          () => acked++,
        );
      expect(s.tail).toBe(200); // accepted: checked state is ahead…
      expect(s.visibleTail).toBe(0); // …readers see nothing yet
      await durable(e);
      expect(acked).toBe(200);
      expect(s.visibleTail).toBe(200);
      expect(e.commits.batches - before).toBeLessThan(5);
      await e.close();
    },
  );
});

describe('recovery', () => {
  it('file-durable: many sealed segments; a restart replays the head only and reads the same', async () => {
    const dataDir = freshDir();
    let e = await Engine.open({ mode: 'file-durable', dataDir, segmentRecords: 40 });
    const streams = ['/a', '/b', '/c'].map((k) => create(e, k));
    const json = create(e, '/j', NONE, 'application/json');
    for (let i = 0; i < 300; i++) {
      append(e, streams[i % 3]!, bytes(`${i};`), { id: 'p', epoch: 1, seq: Math.floor(i / 3) });
      if (i % 3 === 0) {
        const m = `{"n":${i}}`;
        const table = Uint32Array.from([m.length, m.length * 2 + 1]);
        const two = Buffer.from(`${m},${m}`);
        append(e, json, { chunks: [two], bytes: two.length, count: 2, table });
      }
      if (i % 25 === 0) await durable(e);
    }
    await e.settle();
    const before = await Promise.all(['/a', '/b', '/c'].map((k) => readAll(e, k)));
    const jsonPlan = e.plan(json, 3, 1 << 20); // from the middle of an append of two messages
    const jsonBefore = Buffer.concat(await e.read(jsonPlan.parts)).toString();
    expect(
      readdirSync(join(dataDir, 'segments')).filter((n) => n.endsWith('.idx')).length,
    ).toBeGreaterThan(5);
    await e.close();
    e = await Engine.open({ mode: 'file-durable', dataDir, segmentRecords: 40 });
    expect(e.report.replayed).toBeLessThan(40);
    expect(e.live('/a')!.loaded).toBe(false); // the index stays on disk until the stream is read
    expect(await Promise.all(['/a', '/b', '/c'].map((k) => readAll(e, k)))).toEqual(before);
    expect(e.live('/a')!.producers.get('p')).toEqual({ epoch: 1, lastSeq: 99 });
    const j = e.live('/j')!;
    expect(Buffer.concat(await e.read(e.plan(j, 3, 1 << 20).parts)).toString()).toBe(jsonBefore);
    await e.close();
  });

  it('a corrupt snapshot falls back to the previous one and replays from there', async () => {
    const dataDir = freshDir();
    let e = await Engine.open({ mode: 'file-fast', dataDir, segmentRecords: 10 });
    const s = create(e, '/a');
    for (let i = 0; i < 100; i++) {
      append(e, s, bytes(`${i},`));
      await durable(e);
    }
    const want = await readAll(e, '/a');
    await e.close();
    const snap = readFileSync(join(dataDir, 'snapshot'));
    snap[snap.length - 2] = snap[snap.length - 2]! ^ 1;
    writeFileSync(join(dataDir, 'snapshot'), snap);
    e = await Engine.open({ mode: 'file-fast', dataDir, segmentRecords: 10 });
    expect(await readAll(e, '/a')).toBe(want);
    await e.close();
  });
});

describe('compaction', () => {
  it('reclaims deleted streams: dead segments go, live data moves and reads the same', async () => {
    const dataDir = freshDir();
    let e = await Engine.open({ mode: 'file-durable', dataDir, segmentRecords: 30 });
    const keep = create(e, '/keep');
    const gone = [create(e, '/gone1'), create(e, '/gone2')];
    for (let i = 0; i < 600; i++) {
      append(e, i % 10 === 0 ? keep : gone[i % 2]!, bytes(`${i}:${'x'.repeat(50)};`));
      if (i % 20 === 0) await durable(e);
    }
    await durable(e);
    const want = await readAll(e, '/keep');
    const segmentsBefore = readdirSync(join(dataDir, 'segments')).filter((n) =>
      n.endsWith('.log'),
    ).length;
    for (const s of gone) e.delete(s, () => {});
    // Seal two more segments so that no snapshot needs the old ones.
    for (let i = 0; i < 70; i++) {
      append(e, keep, bytes('k;'));
      await durable(e);
    }
    const report = await e.compact();
    expect(report.deleted).toBeGreaterThan(0);
    expect(report.copied).toBeGreaterThan(0);
    const segmentsAfter = readdirSync(join(dataDir, 'segments')).filter((n) =>
      n.endsWith('.log'),
    ).length;
    expect(segmentsAfter).toBeLessThan(segmentsBefore);
    const all = await readAll(e, '/keep');
    expect(all.startsWith(want)).toBe(true);
    await e.close();
    e = await Engine.open({ mode: 'file-durable', dataDir, segmentRecords: 30 });
    expect(await readAll(e, '/keep')).toBe(all);
    expect(e.live('/gone1')).toBeUndefined();
    await e.close();
  });
});

describe('memory', () => {
  it.each(['memory', 'file-fast'] as StorageMode[])(
    '%s: an append costs 20 bytes of index (in 1,024-entry chunks), nothing on the heap',
    async (mode) => {
      const e = await Engine.open({ mode, ...(mode === 'memory' ? {} : { dataDir: freshDir() }) });
      const s = create(e, '/a');
      await durable(e);
      const base = e.table.meter.bytes;
      for (let i = 0; i < 50_000; i++) append(e, s, bytes('0123456789'));
      await durable(e);
      const perAppend = (e.table.meter.bytes - base) / 50_000;
      expect(perAppend).toBeGreaterThan(19);
      expect(perAppend).toBeLessThan(21);
      await e.close();
    },
  );

  it('a deleted stream gives its index and (memory mode) its data back', async () => {
    const e = Engine.memory();
    const s = create(e, '/a');
    const base = { index: e.table.meter.bytes, data: e.storedBytes };
    for (let i = 0; i < 5_000; i++) append(e, s, bytes('0123456789'));
    expect(e.storedBytes).toBeGreaterThan(base.data + 49_000);
    e.delete(s, () => {});
    expect(e.storedBytes).toBe(0);
    expect(e.table.meter.bytes).toBeLessThan(base.index);
  });
});

describe('expiry', () => {
  it('sweep deletes expired streams, softly while forks read them', () => {
    let now = 1_000_000;
    const e = Engine.memory({ now: () => now });
    const a = e.create(
      {
        key: '/ttl',
        config: { ...config(), ttlSeconds: 10 },
        closed: false,
        fork: undefined,
        payload: bytes('abc'),
      },
      () => {},
    );
    e.create(
      {
        key: '/fork',
        config: config(),
        closed: false,
        fork: { source: a, position: 2, offset: 2, subOffset: 0 },
        payload: NONE,
      },
      () => {},
    );
    e.create(
      { key: '/plain', config: config(), closed: false, fork: undefined, payload: NONE },
      () => {},
    );
    now += 11_000;
    expect(e.sweep()).toBe(1);
    expect(a.softDeleted).toBe(true);
    expect(e.streams.has('/plain')).toBe(true);
    const f = e.live('/fork')!;
    expect(Buffer.concat(e.read(e.plan(f, 0, 100).parts) as Buffer[]).toString()).toBe('ab');
  });
});
