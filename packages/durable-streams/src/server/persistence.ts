import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** One change to the stream set, as written to disk and replayed on start. */
export type Mutation =
  | {
      t: 'create';
      key: string;
      contentType: string;
      ttlSeconds?: number | undefined;
      expiresAt?: number | undefined;
      expiresAtText?: string | undefined;
      closed: boolean;
      fork?: { source: string; position: number; offset: number; subOffset: number } | undefined;
      units: Buffer[];
    }
  | {
      t: 'append';
      key: string;
      units: Buffer[];
      close: boolean;
      producer?: { id: string; epoch: number; seq: number } | undefined;
      streamSeq?: string | undefined;
    }
  | { t: 'delete'; key: string };

/** Where mutations go before a request is acknowledged. */
export interface Persistence {
  /** Every mutation ever recorded, in order. */
  load(): Mutation[];
  /** Records one mutation; resolved means it is as durable as the mode promises. */
  record(mutation: Mutation): void;
  close(): void;
}

export type StorageMode = 'memory' | 'file-fast' | 'file-durable' | 'acid';

export const STORAGE_MODES: readonly StorageMode[] = [
  'memory',
  'file-fast',
  'file-durable',
  'acid',
];

function encode(m: Mutation): Buffer {
  const { units, ...rest } = m as Mutation & { units?: Buffer[] };
  const header = Buffer.from(JSON.stringify({ ...rest, n: units?.length ?? 0 }));
  const parts: Buffer[] = [u32(header.length), header];
  for (const u of units ?? []) parts.push(u32(u.length), u);
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

function decodeAll(buf: Buffer): Mutation[] {
  const out: Mutation[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const hlen = buf.readUInt32BE(at);
    if (at + 4 + hlen > buf.length) break; // a torn tail from a crash: ignore it
    const header = JSON.parse(buf.subarray(at + 4, at + 4 + hlen).toString()) as Mutation & {
      n: number;
    };
    let p = at + 4 + hlen;
    const units: Buffer[] = [];
    let torn = false;
    for (let i = 0; i < header.n; i++) {
      if (p + 4 > buf.length) {
        torn = true;
        break;
      }
      const len = buf.readUInt32BE(p);
      if (p + 4 + len > buf.length) {
        torn = true;
        break;
      }
      units.push(Buffer.from(buf.subarray(p + 4, p + 4 + len)));
      p += 4 + len;
    }
    if (torn) break;
    const { n: _n, ...rest } = header;
    out.push(header.t === 'delete' ? (rest as Mutation) : ({ ...rest, units } as Mutation));
    at = p;
  }
  return out;
}

/**
 * An append-only journal file. `file-fast` writes without waiting for the disk (buffered by the
 * OS: a crash may lose the last acknowledged appends); `file-durable` calls fdatasync before a
 * request is acknowledged (an acknowledged append survives a crash).
 */
export class JournalFile implements Persistence {
  readonly #fd: number;
  readonly #path: string;
  readonly #sync: boolean;

  constructor(dir: string, sync: boolean) {
    mkdirSync(dir, { recursive: true });
    this.#path = join(dir, 'streams.journal');
    this.#fd = openSync(this.#path, 'a+');
    this.#sync = sync;
  }

  load(): Mutation[] {
    return decodeAll(readFileSync(this.#path));
  }

  record(mutation: Mutation): void {
    const bytes = encode(mutation);
    let written = 0;
    while (written < bytes.length) written += writeSync(this.#fd, bytes, written);
    if (this.#sync) fdatasyncSync(this.#fd);
  }

  close(): void {
    closeSync(this.#fd);
  }
}

interface SqliteDb {
  pragma(s: string): unknown;
  exec(s: string): void;
  prepare(s: string): { run(...a: unknown[]): unknown; all(): Array<{ body: Buffer }> };
  transaction<F extends (...a: never[]) => unknown>(f: F): F;
  close(): void;
}

/**
 * SQLite (better-sqlite3) in WAL mode, `synchronous=FULL`, one transaction per mutation: an
 * acknowledged append survives a crash, and a half-written one is never seen.
 */
export class SqliteStore implements Persistence {
  readonly #db: SqliteDb;
  readonly #insert: { run(...a: unknown[]): unknown };

  /** Opens (or creates) `streams.sqlite` in `dir`. */
  static async open(dir: string): Promise<SqliteStore> {
    mkdirSync(dir, { recursive: true });
    // Loaded only in acid mode; a variable specifier keeps it an optional native dependency.
    const specifier = 'better-sqlite3';
    const mod = (await import(specifier)) as unknown as {
      default: new (path: string) => SqliteDb;
    };
    return new SqliteStore(new mod.default(join(dir, 'streams.sqlite')));
  }

  private constructor(db: SqliteDb) {
    this.#db = db;
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS mutations (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)',
    );
    const insert = this.#db.prepare('INSERT INTO mutations (body) VALUES (?)');
    this.#insert = {
      run: this.#db.transaction((body: Buffer) => insert.run(body)) as (b: Buffer) => unknown,
    };
  }

  load(): Mutation[] {
    const rows = this.#db.prepare('SELECT body FROM mutations ORDER BY id').all();
    return rows.flatMap((r) => decodeAll(r.body));
  }

  record(mutation: Mutation): void {
    this.#insert.run(encode(mutation));
  }

  close(): void {
    this.#db.close();
  }
}

/** The persistence for a storage mode (`memory` has none). */
export async function openPersistence(
  mode: StorageMode,
  dataDir: string | undefined,
): Promise<Persistence | undefined> {
  if (mode === 'memory') return undefined;
  if (!dataDir) throw new Error(`storage mode ${mode} needs a data directory`);
  if (mode === 'acid') return SqliteStore.open(dataDir);
  return new JournalFile(dataDir, mode === 'file-durable');
}
