/**
 * The rows the postgres store reads and writes: a change's records and its stream row, in one statement,
 * with the `NOTIFY` that wakes the other instances.
 */
import { ExponentialRandomBackoff, sleep } from '@towerline/core';
import type { ResilientPgPool } from '@towerline/pg';
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

/** Serialization failures, deadlocks, and a unique key taken by another instance meanwhile. */
const RETRYABLE = new Set(['40001', '40P01', '23505']);
/** The wait before retrying a transaction that lost a lock race to another instance. */
const LOCK_RACE_BACKOFF = new ExponentialRandomBackoff({ initial: 2, max: 64, jitter: 'full' });

/**
 * `run` in one transaction, run again (up to 8 times in all) when it lost a lock race to
 * another instance; any other failure, or the last, as a {@link storageError}.
 */
export async function retryingTransaction<T>(
  pool: ResilientPgPool,
  run: (c: pg.ClientBase) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await pool.transaction(run);
    } catch (error) {
      const code = (error as { code?: unknown })?.code;
      if (!(attempt < 8 && typeof code === 'string' && RETRYABLE.has(code))) {
        throw storageError(error);
      }
      // Another instance holds the same rows: step aside (full jitter, up to 64 ms) before
      // trying again, so that two instances retrying at once do not collide every time.
      await sleep(LOCK_RACE_BACKOFF.next(attempt));
    }
  }
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
