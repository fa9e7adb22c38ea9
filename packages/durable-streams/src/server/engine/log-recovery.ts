/**
 * Opening a log: the latest snapshot gives the stream table, the directories of sealed
 * segments say where each stream's entries are, and only the segments written since the
 * snapshot are replayed. A torn tail — the last batch of the last segment, cut short by a
 * crash — is truncated before anything new is written after it; a bad batch with a good one
 * after it is corruption, and stops the start with the file and offset (or, when the operator
 * asked for it, keeps everything before it and moves the rest aside).
 */
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { decodeBatch, MAGIC, recordSize, T_CREATE, T_DELETE } from './codec.js';
import { StorageError } from './errors.js';
import { LogStore, type LogStoreOptions, type RecoveredLog } from './log-store.js';
import {
  encodeIndex,
  headFlags,
  indexFile,
  loadDirectory,
  Segment,
  segmentFile,
  segmentNumber,
  syncDir,
  writeAtomic,
} from './segments.js';
import { decodeSnapshot, encodeSnapshot, restoreStreams, type SnapshotFile } from './snapshot.js';
import type { StreamTable } from './table.js';

export type OnCorruption = 'fail' | 'truncate';

export interface OpenLogOptions extends LogStoreOptions {
  onCorruption?: OnCorruption;
  /** Told about every repair (a truncated tail, segments moved aside). */
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

export interface LogRecovery {
  store: LogStore;
  /** Batches replayed at open, and the bytes cut off a torn tail. */
  replayed: number;
  truncated: number;
}

const MAGIC_BYTES = Buffer.from([
  MAGIC >>> 24,
  (MAGIC >>> 16) & 0xff,
  (MAGIC >>> 8) & 0xff,
  MAGIC & 0xff,
]);

function lock(dir: string): void {
  const path = join(dir, 'LOCK');
  if (existsSync(path)) {
    const pid = Number(readFileSync(path, 'utf8'));
    let alive = false;
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (error) {
        alive = (error as { code?: string }).code === 'EPERM';
      }
    }
    if (alive) throw new StorageError('ERR_STORAGE_LOCKED', `${dir} is in use by process ${pid}`);
  }
  writeFileSync(path, String(process.pid));
}

function readSnapshot(dir: string, warn: OpenLogOptions['warn']): SnapshotFile | undefined {
  for (const name of ['snapshot', 'snapshot.prev']) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    const snap = decodeSnapshot(readFileSync(path));
    if (snap) return snap;
    warn?.('snapshot is corrupt, trying the previous one', { 'file.path': path });
  }
  return undefined;
}

/** Opens (or creates) the log in `options.dir`, recovering the stream table into `table`. */
export async function openLog(
  options: OpenLogOptions,
  table: StreamTable,
  now: number,
): Promise<LogRecovery> {
  const { dir } = options;
  const segDir = join(dir, 'segments');
  mkdirSync(segDir, { recursive: true });
  lock(dir);
  try {
    return await recover(options, table, now);
  } catch (error) {
    rmSync(join(dir, 'LOCK'), { force: true });
    throw error;
  }
}

async function recover(
  options: OpenLogOptions,
  table: StreamTable,
  now: number,
): Promise<LogRecovery> {
  const { dir } = options;
  const segDir = join(dir, 'segments');
  const numbers = readdirSync(segDir)
    .map(segmentNumber)
    .filter((n): n is number => n !== undefined)
    .sort((a, b) => a - b);
  const snap = readSnapshot(dir, options.warn);
  if (!snap && numbers.length > 0 && numbers[0] !== 1)
    throw new StorageError(
      'ERR_STORAGE_CORRUPT',
      `${dir} has segments but no readable snapshot; history before ${segmentFile(numbers[0]!)} is gone`,
    );
  if (snap) {
    restoreStreams(table, snap.streams, now);
    table.nextId = Math.max(table.nextId, snap.nextId);
  }
  const storeId = snap?.storeId ?? randomUUID();
  const from = snap?.segment ?? 1;
  const segments: Segment[] = [];
  let replayed = 0;
  let truncated = 0;
  for (let k = 0; k < numbers.length; k++) {
    const n = numbers[k]!;
    const path = join(segDir, segmentFile(n));
    const size = statSync(path).size;
    const seg = new Segment(n, size, existsSync(join(segDir, indexFile(n))));
    if (n < from) {
      if (!seg.sealed || !loadDirectory(join(segDir, indexFile(n)), seg))
        await reindex(segDir, seg);
      segments.push(seg);
      continue;
    }
    const last = k === numbers.length - 1;
    const result = replay(seg, path, table, last, options);
    if (seg.sealed) seg.written = undefined;
    replayed += result.batches;
    truncated += result.truncated;
    segments.push(seg);
    if (result.stop) {
      for (const later of numbers.slice(k + 1)) moveAside(segDir, later);
      options.warn?.('moved the segments after a corrupt batch aside', {
        'file.path': path,
        'file.offset': seg.size,
      });
      break;
    }
  }
  let head = segments.at(-1);
  if (!head || head.sealed) {
    head = new Segment((head?.n ?? from - 1) + 1, 0, false);
    closeSync(openSync(join(segDir, segmentFile(head.n)), 'w'));
    syncDir(segDir);
    segments.push(head);
  }
  const headFd = openSync(join(segDir, segmentFile(head.n)), headFlags(options.sync, false));
  if (!snap) await writeAtomic(dir, 'snapshot', encodeSnapshot(table, storeId, head.n));
  const recovered: RecoveredLog = {
    segments,
    head,
    headFd,
    storeId,
    snapshotSegment: snap ? from : head.n,
    prevSnapshotSegment: snap ? Math.min(from, head.n) : head.n,
  };
  return { store: new LogStore(options, table, recovered), replayed, truncated };
}

/** Replays one segment; truncates a torn tail; says whether to stop (truncate-on-corruption). */
function replay(
  seg: Segment,
  path: string,
  table: StreamTable,
  last: boolean,
  options: OpenLogOptions,
): { batches: number; truncated: number; stop: boolean } {
  const buf = readFileSync(path);
  let at = 0;
  let batches = 0;
  while (at < buf.length) {
    const scan = decodeBatch(buf, at);
    const bad: string | undefined = scan.ok ? undefined : scan.reason;
    if (scan.ok) {
      scan.records.forEach((r, k) => {
        try {
          table.replay(r, seg.addr(scan.data[k]!));
        } catch (error) {
          // Only the table's own checks (RangeError) judge the log; anything else is a fault of
          // this server, reported as one, not as damage `on_corruption` would cut away.
          if (!(error instanceof RangeError))
            throw new StorageError('ERR_STORAGE_FAILED', `replaying ${path} failed`, {
              cause: error,
            });
          // The checksum held: this is not the disk but a record out of order.
          throw new StorageError(
            'ERR_STORAGE_CORRUPT',
            `record ${k} of the batch in ${path} at offset ${at} does not follow from the ones before it (${(error as Error).message})`,
          );
        }
        if (r.t !== T_DELETE && r.payload.count > 0) {
          const start = r.t === T_CREATE ? (r.fork?.position ?? 0) : r.start;
          seg.note(r.id, start, scan.data[k]!, r.payload.bytes, recordSize(r));
        }
      });
    }
    if (bad === undefined && scan.ok) {
      batches++;
      at = scan.end;
      continue;
    }
    const torn = last && !laterBatch(buf, at);
    if (!torn && options.onCorruption !== 'truncate')
      throw new StorageError(
        'ERR_STORAGE_CORRUPT',
        `corrupt batch in ${path} at offset ${at} (${bad}); a valid batch follows it, so this is ` +
          'not a torn write. To keep every batch before it and move the rest aside, start once ' +
          'with storage.on_corruption = "truncate" (DS_STORAGE__ON_CORRUPTION=truncate)',
      );
    truncate(path, at);
    seg.size = at;
    if (torn)
      options.warn?.('truncated a torn tail', {
        'file.path': path,
        'file.offset': at,
        'file.size': buf.length - at,
      });
    return { batches, truncated: buf.length - at, stop: !torn };
  }
  seg.size = at;
  return { batches, truncated: 0, stop: false };
}

/** Whether a valid batch starts anywhere after `at`. */
function laterBatch(buf: Buffer, at: number): boolean {
  for (let p = buf.indexOf(MAGIC_BYTES, at + 1); p !== -1; p = buf.indexOf(MAGIC_BYTES, p + 1))
    if (decodeBatch(buf, p).ok) return true;
  return false;
}

function truncate(path: string, size: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, size);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function moveAside(segDir: string, n: number): void {
  const stamp = Date.now();
  for (const name of [segmentFile(n), indexFile(n)]) {
    const path = join(segDir, name);
    if (existsSync(path)) renameSync(path, `${path}.corrupt-${stamp}`);
  }
}

/** Rebuilds a sealed segment's missing index from its batches. */
async function reindex(segDir: string, seg: Segment): Promise<void> {
  const path = join(segDir, segmentFile(seg.n));
  const buf = readFileSync(path);
  let at = 0;
  while (at < buf.length) {
    const scan = decodeBatch(buf, at);
    if (!scan.ok)
      throw new StorageError(
        'ERR_STORAGE_CORRUPT',
        `corrupt batch in ${path} at offset ${at} (${scan.reason}) while rebuilding its index`,
      );
    scan.records.forEach((r, k) => {
      if (r.t === T_DELETE || r.payload.count === 0) return;
      const start = r.t === T_CREATE ? (r.fork?.position ?? 0) : r.start;
      seg.note(r.id, start, scan.data[k]!, r.payload.bytes, recordSize(r));
    });
    at = scan.end;
  }
  await writeAtomic(segDir, indexFile(seg.n), encodeIndex(seg));
  seg.sealed = true;
  seg.written = undefined;
  seg.inMemory = false;
}
