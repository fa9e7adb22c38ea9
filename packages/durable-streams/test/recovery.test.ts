/**
 * Damage made by hand, on real processes: a torn tail (the last batch cut short, or garbage
 * after the last batch) is truncated at start and appends after it survive the next restart —
 * the case that used to lose every later append — and a corrupt batch in the middle stops the
 * start with `[start_server]`, the file and the offset, until the operator asks to keep what
 * precedes it. SQLite (acid) gets a torn write-ahead log.
 */
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@towerline/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { failingStart, type ServerProcess, spawnServer } from './support/server-process.js';

const root = mkdtempSync(join(tmpdir(), 'towerline-ds-recovery-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const running: ServerProcess[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.kill9();
});

async function setup(mode: string, name: string) {
  const dataDir = join(root, `${mode}-${name}`);
  const port = await freePort();
  const env = {
    DS_STORAGE__MODE: mode,
    DS_STORAGE__DATA_DIR: dataDir,
    DS_SERVER__BIND_ADDRESS: `127.0.0.1:${port}`,
  };
  const url = `http://127.0.0.1:${port}/v1/stream/s`;
  const start = async (extra: Record<string, string> = {}) => {
    const s = await spawnServer({ ...env, ...extra });
    running.push(s);
    return s;
  };
  const append = async (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: `m${i};`,
      });
      expect(res.status).toBe(204);
    }
  };
  const read = async () => (await fetch(`${url}?offset=-1`)).text();
  const expected = (n: number) => Array.from({ length: n }, (_, i) => `m${i};`).join('');
  return { dataDir, env, url, start, append, read, expected };
}

/** The head segment of a log: the highest-numbered segment file with data in it. */
function headSegment(dataDir: string): string {
  const dir = join(dataDir, 'segments');
  const names = readdirSync(dir)
    .filter((n) => n.endsWith('.log') && statSync(join(dir, n)).size > 0)
    .sort();
  return join(dir, names.at(-1)!);
}

/** Offsets of the batch frames in a segment (magic, length, crc, count, body). */
function frames(path: string): number[] {
  const buf = readFileSync(path);
  const out: number[] = [];
  for (let at = 0; at + 16 <= buf.length; at += 16 + buf.readUInt32BE(at + 4)) out.push(at);
  return out;
}

describe.each(['file-fast', 'file-durable'] as const)('%s', (mode) => {
  it('a torn last batch is truncated; appends after it survive the next restart', async () => {
    const t = await setup(mode, 'torn');
    let server = await t.start();
    await fetch(t.url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    await t.append(0, 20);
    await server.kill9();
    // Half of a copy of the last batch: what a crash in the middle of its write leaves.
    const head = headSegment(t.dataDir);
    const buf = readFileSync(head);
    const last = frames(head).at(-1)!;
    appendFileSync(head, buf.subarray(last, last + Math.ceil((buf.length - last) / 2)));
    server = await t.start();
    expect(server.output()).toContain('truncated a torn tail');
    expect(await t.read()).toBe(t.expected(20));
    await t.append(20, 40);
    await server.kill9();
    server = await t.start();
    expect(await t.read()).toBe(t.expected(40));
  });

  it('garbage after the last batch is a torn tail too', async () => {
    const t = await setup(mode, 'garbage');
    let server = await t.start();
    await fetch(t.url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    await t.append(0, 5);
    await server.kill9();
    // A length prefix that swallows everything after it, and bytes that are no JSON at all.
    const garbage = Buffer.alloc(64, 0x1f);
    garbage.writeUInt32BE(0x44534231, 0);
    garbage.writeUInt32BE(1 << 20, 4);
    appendFileSync(headSegment(t.dataDir), garbage);
    server = await t.start();
    await t.append(5, 10);
    await server.kill9();
    server = await t.start();
    expect(await t.read()).toBe(t.expected(10));
  });

  it('a corrupt batch in the middle stops the start, naming file and offset, until told to truncate', async () => {
    const t = await setup(mode, 'corrupt');
    const server = await t.start();
    await fetch(t.url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    await t.append(0, 20);
    await server.kill9();
    const head = headSegment(t.dataDir);
    const at = frames(head)[5]!; // the create, then appends m0…m3, then m4: this one
    const buf = readFileSync(head);
    buf[at + 20] = buf[at + 20]! ^ 0xff;
    writeFileSync(head, buf);
    const failed = await failingStart(t.env);
    expect(failed.code).not.toBe(0);
    expect(failed.output).toContain('[start_server]');
    expect(failed.output).toContain(head);
    expect(failed.output).toContain(`offset ${at}`);
    expect(failed.output).toContain('DS_STORAGE__ON_CORRUPTION=truncate');
    // Recovery up to the corrupt batch, as the message says.
    const repaired = await t.start({ DS_STORAGE__ON_CORRUPTION: 'truncate' });
    expect(await t.read()).toBe(t.expected(4));
    await t.append(4, 8);
    await repaired.kill9();
    await t.start();
    expect(await t.read()).toBe(t.expected(8));
  });
});

describe('acid', () => {
  it('a torn write-ahead log tail is ignored; appends after it survive', async () => {
    const t = await setup('acid', 'torn-wal');
    let server = await t.start();
    await fetch(t.url, { method: 'PUT', headers: { 'content-type': 'text/plain' } });
    await t.append(0, 20);
    await server.kill9();
    appendFileSync(join(t.dataDir, 'streams.sqlite-wal'), Buffer.alloc(5000, 0xab));
    server = await t.start();
    expect(await t.read()).toBe(t.expected(20));
    await t.append(20, 40);
    await server.kill9();
    server = await t.start();
    expect(await t.read()).toBe(t.expected(40));
  });
});
