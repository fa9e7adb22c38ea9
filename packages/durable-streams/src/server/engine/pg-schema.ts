/**
 * The postgres backend's tables and statements. One row per stream (its metadata, as the
 * SQLite store keeps it, plus the columns the shared sweep and fork counts need) and one row
 * per append; appends' data is stored uncompressed out of line (`STORAGE EXTERNAL`), so a read
 * of a slice of a large append fetches only the pages it spans.
 */

/** Statements run once per schema, under an advisory lock (instances may start together). */
export const schemaSql = (schema: string) => `
CREATE SCHEMA IF NOT EXISTS "${schema}";
SET LOCAL search_path TO "${schema}";
CREATE TABLE IF NOT EXISTS ds_store (k text PRIMARY KEY, v text NOT NULL);
CREATE SEQUENCE IF NOT EXISTS ds_stream_ids;
CREATE TABLE IF NOT EXISTS ds_streams (
  id bigint PRIMARY KEY,
  key text NOT NULL UNIQUE,
  meta text NOT NULL,
  refs integer NOT NULL DEFAULT 0,
  last_access bigint NOT NULL,
  ttl_ms bigint,
  expires_at bigint
);
CREATE TABLE IF NOT EXISTS ds_records (
  stream bigint NOT NULL,
  start bigint NOT NULL,
  count integer NOT NULL,
  bytes integer NOT NULL,
  tab bytea,
  data bytea NOT NULL,
  PRIMARY KEY (stream, start)
);
ALTER TABLE ds_records ALTER COLUMN data SET STORAGE EXTERNAL;
INSERT INTO ds_store (k, v) VALUES ('store_id', substr(md5(random()::text), 1, 8))
  ON CONFLICT (k) DO NOTHING;`;

const SYNC_COLUMNS = `s.id, s.meta, s.refs, s.last_access, r.start, r.count, r.bytes, r.tab
  FROM ds_streams s LEFT JOIN ds_records r ON r.stream = s.id`;

/** A stream's row and its record rows from `$3` when the local copy is stream `$2` (else all). */
export const SYNC_BY_KEY = `SELECT ${SYNC_COLUMNS}
  AND r.start >= (CASE WHEN s.id = $2::bigint THEN $3::bigint ELSE -1 END)
  WHERE s.key = $1 ORDER BY r.start`;

/** A stream's row by id, and its record rows from `$2`. */
export const SYNC_BY_ID = `SELECT ${SYNC_COLUMNS} AND r.start >= $2::bigint
  WHERE s.id = $1 ORDER BY r.start`;

export const LOCK_BY_ID =
  'SELECT id, meta, refs, last_access FROM ds_streams WHERE id = $1 FOR UPDATE';

export const LOCK_CHAIN =
  'SELECT id, meta, refs, last_access FROM ds_streams WHERE id = ANY($1::bigint[]) ORDER BY id DESC FOR UPDATE';

export const LOCK_KEY = 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))';

export const RECORDS_BETWEEN =
  'SELECT start, count, bytes, tab FROM ds_records WHERE stream = $1 AND start >= $2 AND start < $3 ORDER BY start';

/** Slices of entries of one stream: `(start, from, length, k)` each, answered by `k`. */
export const READ_SLICES = `SELECT q.k, substring(r.data FROM q.f + 1 FOR q.l) AS data
  FROM unnest($2::bigint[], $3::int[], $4::int[], $5::int[]) AS q(start, f, l, k)
  JOIN ds_records r ON r.stream = $1 AND r.start = q.start`;

export const EXPIRED = `SELECT key FROM ds_streams
  WHERE (expires_at IS NOT NULL AND expires_at <= $1)
     OR (ttl_ms IS NOT NULL AND last_access + ttl_ms <= $1)
  LIMIT 1000`;

export const TOUCH = `UPDATE ds_streams SET last_access = GREATEST(last_access, q.at)
  FROM unnest($1::bigint[], $2::bigint[]) AS q(id, at) WHERE ds_streams.id = q.id`;

/** `INSERT … VALUES` rows of `(stream, start, count, bytes, tab, data)`, parameters from `$at`. */
export function recordValues(n: number, at: number): string {
  const rows: string[] = [];
  for (let k = 0; k < n; k++) {
    const p = at + k * 5;
    rows.push(`($1, $${p}, $${p + 1}, $${p + 2}, $${p + 3}, $${p + 4})`);
  }
  return `INSERT INTO ds_records (stream, start, count, bytes, tab, data) VALUES ${rows.join(', ')}`;
}
