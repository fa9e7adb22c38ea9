/**
 * The rows the postgres store reads and writes: a change's records and its stream row, in one statement,
 * with the `NOTIFY` that wakes the other instances.
 */
import type pg from 'pg';
import type { Part } from './backend.js';
import type { AppendRecord, CreateRecord, Payload } from './codec.js';
import { StorageError } from './errors.js';
import { tabBytes } from './pg-rows.js';
import { READ_SLICES, recordValues } from './pg-schema.js';
import { streamMeta } from './snapshot.js';
import type { Stream } from './stream.js';

/** A database failure as the engine reports it: its SQLSTATE, never the statement or values. */
export function storageError(error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const code = (error as { code?: unknown })?.code;
  return new StorageError(
    'ERR_STORAGE_FAILED',
    `PostgreSQL: ${typeof code === 'string' ? code : 'unavailable'}`,
    { cause: error },
  );
}

/** The five values of one record row: start, count, bytes, message table, data. */
function recordParams(start: number, p: Payload): unknown[] {
  return [
    start,
    p.count,
    p.bytes,
    tabBytes(p.table),
    p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks, p.bytes),
  ];
}

/** Appends' records and the stream's new row, under the row lock the caller holds. */
export async function writeAppends(
  c: pg.ClientBase,
  channel: string,
  note: string,
  s: Stream,
  records: AppendRecord[],
): Promise<void> {
  const values: unknown[] = [s.id, JSON.stringify(streamMeta(s)), s.lastAccess, note];
  let sql = `UPDATE ds_streams SET meta = $2, last_access = GREATEST(last_access, $3)
      WHERE id = $1 RETURNING pg_notify('${channel}', $4)`;
  const data = records.filter((r) => r.payload.count > 0);
  if (data.length > 0) {
    for (const r of data) values.push(...recordParams(r.start, r.payload));
    sql = `WITH ins AS (${recordValues(data.length, 5)}) ${sql}`;
  }
  await c.query(sql, values);
}

/** A new stream's row, its first record, and the reference it takes on its fork source. */
export async function writeCreate(
  c: pg.ClientBase,
  channel: string,
  note: string,
  now: number,
  s: Stream,
  record: CreateRecord,
): Promise<void> {
  const { ttlSeconds, expiresAt } = s.config;
  const values: unknown[] = [
    s.id,
    s.key,
    JSON.stringify(streamMeta(s)),
    now,
    ttlSeconds === undefined ? null : ttlSeconds * 1000,
    expiresAt ?? null,
    note,
  ];
  let sql = `INSERT INTO ds_streams (id, key, meta, refs, last_access, ttl_ms, expires_at)
      VALUES ($1, $2, $3, 0, $4, $5, $6) RETURNING pg_notify('${channel}', $7)`;
  if (record.payload.count > 0) {
    values.push(...recordParams(s.fork?.position ?? 0, record.payload));
    sql = `WITH ins AS (${recordValues(1, 8)}) ${sql}`;
  }
  await c.query(sql, values);
  if (s.fork)
    await c.query('UPDATE ds_streams SET refs = refs + 1 WHERE id = $1', [s.fork.source.id]);
}

/**
 * After a delete: the streams of the fork chain that are gone lose their rows, the others
 * (still referenced) keep theirs with the new references; the other instances are told.
 */
export async function writeDelete(
  c: pg.ClientBase,
  channel: string,
  note: string,
  chain: Stream[],
  locked: ReadonlyMap<number, unknown>,
): Promise<void> {
  for (const s of chain) {
    if (!locked.has(s.id)) continue;
    if (s.removed) {
      await c.query('DELETE FROM ds_records WHERE stream = $1', [s.id]);
      await c.query('DELETE FROM ds_streams WHERE id = $1', [s.id]);
    } else
      await c.query('UPDATE ds_streams SET meta = $2, refs = $3 WHERE id = $1', [
        s.id,
        JSON.stringify(streamMeta(s)),
        s.refs,
      ]);
  }
  await c.query(`SELECT pg_notify('${channel}', $1)`, [note]);
}

/** The data of `parts`, one statement per stream, sliced in the database. */
export async function readParts(
  q: (text: string, values?: unknown[]) => Promise<Array<Record<string, unknown>>>,
  parts: Part[],
): Promise<Buffer[]> {
  const out: Buffer[] = new Array(parts.length);
  const byOwner = new Map<Stream, number[]>();
  parts.forEach((p, k) => {
    const list = byOwner.get(p.owner);
    if (list) list.push(k);
    else byOwner.set(p.owner, [k]);
  });
  await Promise.all(
    [...byOwner].map(async ([owner, ks]) => {
      const idx = owner.index;
      const rows = (await q(READ_SLICES, [
        owner.id,
        ks.map((k) => idx.addr(parts[k]!.i)),
        ks.map((k) => parts[k]!.from),
        ks.map((k) => parts[k]!.to - parts[k]!.from),
        ks,
      ])) as Array<{ k: number; data: Buffer }>;
      for (const r of rows) out[r.k] = r.data;
    }),
  ).catch((e) => {
    throw storageError(e);
  });
  for (let k = 0; k < parts.length; k++)
    if (!out[k])
      throw new StorageError('ERR_STORAGE_CORRUPT', `stream ${parts[k]!.owner.id} lost a row`);
  return out;
}
