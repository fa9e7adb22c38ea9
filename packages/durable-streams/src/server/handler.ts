import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Mutation, Persistence } from './persistence.js';
import {
  appendEntries,
  entriesFrom,
  expired,
  formatOffset,
  inherit,
  isJsonType,
  isTextual,
  jsonMessages,
  mediaType,
  newStream,
  nextBoundary,
  parseOffset,
  ReadCache,
  type StreamState,
  wake,
} from './store.js';

export interface StreamHandlerOptions {
  /** Where the protocol is mounted. Default `/v1/stream`. */
  basePath?: string;
  /** How long a long-poll waits for data, ms. Default 30 000. */
  longPollTimeoutMs?: number;
  /** SSE connections are closed after this long so clients re-collapse, ms. Default 60 000. */
  sseReconnectMs?: number;
  /** Largest catch-up response body, bytes. Default 1 MiB. */
  maxChunkBytes?: number;
  /** Largest stream, bytes (413 beyond). Default unlimited. */
  maxStreamBytes?: number;
  /** All streams together, bytes (413 beyond). Default unlimited. */
  maxMemoryBytes?: number;
  /** `Access-Control-Allow-Origin`. Default `*`. */
  corsOrigin?: string;
  /**
   * Byte budget for cached catch-up read bodies (ranges of an append-only stream never change,
   * so one body serves every reader of the same range). Default 32 MiB; 0 turns it off.
   */
  readCacheBytes?: number;
  /** Wall clock (ms), for TTLs and cursors. */
  now?: () => number;
  /** Where mutations are recorded before they are acknowledged; replayed at construction. */
  persistence?: Persistence;
}

const EXPOSE = [
  'Stream-Next-Offset',
  'Stream-Cursor',
  'Stream-Up-To-Date',
  'Stream-Closed',
  'Producer-Epoch',
  'Producer-Seq',
  'Producer-Expected-Seq',
  'Producer-Received-Seq',
  'etag',
  'content-type',
  'location',
  'stream-sse-data-encoding',
].join(', ');
const ALLOW = [
  'content-type',
  'authorization',
  'if-none-match',
  'Stream-Seq',
  'Stream-TTL',
  'Stream-Expires-At',
  'Stream-Closed',
  'Producer-Id',
  'Producer-Epoch',
  'Producer-Seq',
  'Stream-Forked-From',
  'Stream-Fork-Offset',
  'Stream-Fork-Sub-Offset',
].join(', ');
const CURSOR_EPOCH = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;
const UINT = /^(0|[1-9]\d*)$/;
const CATCH_UP_CACHE = 'public, max-age=60, stale-while-revalidate=300';

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};
const flag = (req: IncomingMessage, name: string) => header(req, name)?.toLowerCase() === 'true';

type Headers = Record<string, string>;

/**
 * The Durable Streams protocol as a Node request handler, mountable on any `http`/`https`/
 * `http2` (compat) server: `handle(req, res)` answers requests under `basePath` and returns
 * false for anything else.
 */
export class StreamHandler {
  readonly streams = new Map<string, StreamState>();
  readonly basePath: string;
  readonly #o: Required<
    Omit<
      StreamHandlerOptions,
      'maxStreamBytes' | 'maxMemoryBytes' | 'persistence' | 'readCacheBytes'
    >
  > &
    Pick<StreamHandlerOptions, 'maxStreamBytes' | 'maxMemoryBytes'>;
  readonly #open = new Set<ServerResponse>();
  /** CORS and browser-safety headers, on every response. */
  readonly #common: Headers;
  readonly #preflight: Headers;
  readonly #persistence: Persistence | undefined;
  #bytes = 0;
  #closing = false;
  readonly #reads: ReadCache;

  constructor(options: StreamHandlerOptions = {}) {
    this.basePath = (options.basePath ?? '/v1/stream').replace(/\/+$/, '');
    this.#o = {
      basePath: this.basePath,
      longPollTimeoutMs: options.longPollTimeoutMs ?? 30_000,
      sseReconnectMs: options.sseReconnectMs ?? 60_000,
      maxChunkBytes: options.maxChunkBytes ?? 1024 * 1024,
      maxStreamBytes: options.maxStreamBytes,
      maxMemoryBytes: options.maxMemoryBytes,
      corsOrigin: options.corsOrigin ?? '*',
      now: options.now ?? Date.now,
    };
    this.#persistence = options.persistence;
    this.#reads = new ReadCache(options.readCacheBytes ?? 32 * 1024 * 1024);
    // What a browser reads on every response; the allowed methods and request headers matter
    // only in the answer to a preflight (Fetch standard, CORS protocol), so only that has them.
    this.#common = {
      'access-control-allow-origin': this.#o.corsOrigin,
      'access-control-expose-headers': EXPOSE,
      'x-content-type-options': 'nosniff',
      'cross-origin-resource-policy': 'cross-origin',
    };
    this.#preflight = {
      'access-control-allow-methods': 'GET, POST, PUT, DELETE, HEAD, OPTIONS',
      'access-control-allow-headers': ALLOW,
      'access-control-max-age': '86400',
    };
    if (this.#persistence) this.#replay(this.#persistence.load());
  }

  /** Answers a protocol request; false when `req` is not under `basePath`. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    // Split by hand: a WHATWG URL per request is a measurable share of a small append.
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q === -1 ? raw : raw.slice(0, q);
    if (path !== this.basePath && !path.startsWith(`${this.basePath}/`)) return false;
    const search = q === -1 ? '' : raw.slice(q + 1);
    const method = (req.method ?? 'GET').toUpperCase();
    const run = async () => {
      if (method === 'OPTIONS') return this.#send(res, 204, this.#preflight);
      const key = path.slice(this.basePath.length) || '/';
      if (key === '/') return this.#send(res, 404, {}, 'no stream path');
      // A soft-deleted stream (deleted, still read by its forks) is gone for its own clients.
      if (method !== 'PUT' && this.#live(key)?.softDeleted) {
        if (method === 'POST') await this.#drain(req);
        return this.#send(res, 410, {}, 'the stream was deleted');
      }
      switch (method) {
        case 'PUT':
          return this.#create(req, res, key);
        case 'POST':
          return this.#append(req, res, key);
        case 'GET':
          return this.#read(req, res, key, new URLSearchParams(search));
        case 'HEAD':
          return this.#head(res, key);
        case 'DELETE':
          return this.#delete(res, key);
        default:
          return this.#send(res, 405, { allow: 'GET, POST, PUT, DELETE, HEAD, OPTIONS' });
      }
    };
    run().catch((error: unknown) => {
      const status = (error as { status?: number }).status ?? 500;
      if (!res.headersSent)
        this.#send(
          res,
          status,
          {},
          status === 500 ? 'internal error' : String((error as Error).message),
        );
      else res.destroy();
    });
    return true;
  }

  /** Ends every live read (long-poll, SSE); call before closing the server. */
  close(): void {
    this.#closing = true;
    for (const s of this.streams.values()) wake(s);
    for (const res of this.#open) res.end();
    this.#open.clear();
  }

  // ---- operations

  /** The stream at `key`, unless it expired (then it is deleted, softly if forks use it). */
  #live(key: string): StreamState | undefined {
    const s = this.streams.get(key);
    if (s && !s.softDeleted && expired(s, this.#o.now())) {
      this.#deleteStream(s);
      return s.softDeleted ? s : undefined;
    }
    return s;
  }

  /** Deletes a stream: softly while forks reference it, else for good (and its sources too). */
  #deleteStream(s: StreamState, record = true): void {
    if (record) this.#persistence?.record({ t: 'delete', key: s.path });
    if (s.refs > 0) {
      s.softDeleted = true;
      wake(s);
      return;
    }
    this.#remove(s);
    // Cascade: a soft-deleted source whose last fork just went is cleaned up too.
    let source = s.fork ? this.streams.get(s.fork.source) : undefined;
    while (source) {
      source.refs--;
      if (!source.softDeleted || source.refs > 0) break;
      this.#remove(source);
      source = source.fork ? this.streams.get(source.fork.source) : undefined;
    }
  }

  #remove(s: StreamState): void {
    if (this.streams.get(s.path) !== s) return;
    this.streams.delete(s.path);
    this.#reads.delete(s);
    this.#bytes -= s.bytes;
    s.closed = true;
    wake(s);
  }

  #touch(s: StreamState): void {
    s.lastAccess = this.#o.now();
  }

  async #create(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
    const forkedFrom = header(req, 'stream-forked-from');
    if (
      forkedFrom === undefined &&
      (header(req, 'stream-fork-offset') !== undefined ||
        header(req, 'stream-fork-sub-offset') !== undefined)
    ) {
      return this.#send(res, 400, {}, 'fork headers need Stream-Forked-From');
    }
    const requestedType = header(req, 'content-type')?.trim();
    let contentType = requestedType || 'application/octet-stream';
    const ttlText = header(req, 'stream-ttl');
    const expiresText = header(req, 'stream-expires-at');
    if (ttlText !== undefined && expiresText !== undefined) {
      return this.#send(res, 400, {}, 'Stream-TTL and Stream-Expires-At are exclusive');
    }
    let ttlSeconds: number | undefined;
    if (ttlText !== undefined) {
      if (!UINT.test(ttlText) || !Number.isSafeInteger(Number(ttlText)))
        return this.#send(res, 400, {}, 'invalid Stream-TTL');
      ttlSeconds = Number(ttlText);
    }
    let expiresAt: number | undefined;
    if (expiresText !== undefined) {
      expiresAt = Date.parse(expiresText);
      if (!/^\d{4}-\d{2}-\d{2}T/.test(expiresText) || Number.isNaN(expiresAt)) {
        return this.#send(res, 400, {}, 'invalid Stream-Expires-At');
      }
    }
    const closed = flag(req, 'stream-closed');
    const body = await this.#body(req);
    // A fork: resolve the source and the divergence point first.
    let fork:
      | { source: StreamState; position: number; offset: number; subOffset: number }
      | undefined;
    if (forkedFrom !== undefined) {
      const resolved = this.#resolveFork(req, forkedFrom);
      if (typeof resolved === 'number')
        return this.#send(res, resolved, {}, 'invalid fork request');
      fork = resolved;
      if (requestedType && mediaType(requestedType) !== mediaType(fork.source.contentType)) {
        return this.#send(res, 409, {}, 'a fork has its source content type');
      }
      contentType = fork.source.contentType;
      if (ttlSeconds === undefined && expiresAt === undefined) {
        ttlSeconds = fork.source.ttlSeconds;
        expiresAt = fork.source.expiresAt;
      }
    }
    const existing = this.#live(key);
    if (existing) {
      const same =
        !existing.softDeleted &&
        mediaType(existing.contentType) === mediaType(contentType) &&
        existing.ttlSeconds === ttlSeconds &&
        existing.expiresAt === expiresAt &&
        existing.closed === closed &&
        existing.fork?.source === fork?.source.path &&
        (fork === undefined ||
          (existing.fork?.offset === fork.offset && existing.fork.subOffset === fork.subOffset));
      if (!same) return this.#send(res, 409, {}, 'a stream with another configuration exists here');
      return this.#send(res, 200, this.#streamHeaders(existing));
    }
    let units: Buffer[] = [];
    if (body.length > 0) {
      const parsed = this.#units(isJsonType(contentType), body, true);
      if (typeof parsed === 'string') return this.#send(res, 400, {}, parsed);
      units = parsed;
    }
    const adding = units.reduce((n, u) => n + u.length, 0) + (fork ? fork.source.bytes : 0);
    if (this.#overLimit(0, adding)) return this.#send(res, 413, {}, 'size limit');
    const mutation: Mutation = {
      t: 'create',
      key,
      contentType,
      ttlSeconds,
      expiresAt,
      expiresAtText:
        expiresText ?? (expiresAt !== undefined ? fork?.source.expiresAtText : undefined),
      closed,
      fork: fork && {
        source: fork.source.path,
        position: fork.position,
        offset: fork.offset,
        subOffset: fork.subOffset,
      },
      units,
    };
    this.#persistence?.record(mutation);
    const stream = this.#applyCreate(mutation);
    this.#send(res, 201, { ...this.#streamHeaders(stream), location: this.#location(req, key) });
  }

  async #append(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
    const stream = this.#live(key);
    if (!stream) {
      await this.#drain(req);
      return this.#send(res, 404, {}, 'no such stream');
    }
    const closing = flag(req, 'stream-closed');
    // Producer headers: all three or none.
    const pid = header(req, 'producer-id');
    const pepoch = header(req, 'producer-epoch');
    const pseq = header(req, 'producer-seq');
    const some = +(pid !== undefined) + +(pepoch !== undefined) + +(pseq !== undefined);
    if (some !== 0 && some !== 3) {
      await this.#drain(req);
      return this.#send(res, 400, {}, 'Producer-Id, Producer-Epoch and Producer-Seq go together');
    }
    let producer: { id: string; epoch: number; seq: number } | undefined;
    if (some === 3) {
      const epoch = Number(pepoch);
      const seq = Number(pseq);
      if (
        !pid ||
        !UINT.test(pepoch!) ||
        !UINT.test(pseq!) ||
        !Number.isSafeInteger(epoch) ||
        !Number.isSafeInteger(seq)
      ) {
        await this.#drain(req);
        return this.#send(res, 400, {}, 'invalid producer headers');
      }
      producer = { id: pid, epoch, seq };
    }
    const body = await this.#body(req);
    if (stream.closed) {
      const byCloser =
        producer !== undefined &&
        stream.closedBy !== undefined &&
        stream.closedBy.id === producer.id &&
        stream.closedBy.epoch === producer.epoch &&
        stream.closedBy.seq === producer.seq;
      if ((closing && body.length === 0) || byCloser) {
        return this.#send(res, 204, {
          ...this.#tailHeaders(stream),
          ...(producer
            ? { 'producer-epoch': String(producer.epoch), 'producer-seq': String(producer.seq) }
            : {}),
        });
      }
      return this.#send(res, 409, this.#tailHeaders(stream), 'the stream is closed');
    }
    if (body.length === 0 && !closing) return this.#send(res, 400, {}, 'empty body');
    if (body.length > 0) {
      const ct = header(req, 'content-type');
      if (!ct) return this.#send(res, 400, {}, 'Content-Type is required');
      if (ct !== stream.contentType && mediaType(ct) !== mediaType(stream.contentType))
        return this.#send(res, 409, {}, 'content type mismatch');
    }
    let units: Buffer[] = [];
    if (body.length > 0) {
      const parsed = this.#units(stream.json, body, false);
      if (typeof parsed === 'string') return this.#send(res, 400, {}, parsed);
      units = parsed;
    }
    const extra: Headers = {};
    if (producer) {
      const state = stream.producers.get(producer.id);
      if (state && producer.epoch < state.epoch) {
        return this.#send(
          res,
          403,
          { 'producer-epoch': String(state.epoch) },
          'stale producer epoch',
        );
      }
      if (!state || producer.epoch > state.epoch) {
        if (producer.seq !== 0) {
          return this.#send(
            res,
            state ? 400 : 400,
            {},
            'a new producer epoch starts at Producer-Seq 0',
          );
        }
      } else if (producer.seq <= state.lastSeq) {
        return this.#send(res, 204, {
          ...this.#tailHeaders(stream),
          'producer-epoch': String(producer.epoch),
          'producer-seq': String(state.lastSeq),
        });
      } else if (producer.seq > state.lastSeq + 1) {
        return this.#send(
          res,
          409,
          {
            'producer-expected-seq': String(state.lastSeq + 1),
            'producer-received-seq': String(producer.seq),
          },
          'producer sequence gap',
        );
      }
      extra['producer-epoch'] = String(producer.epoch);
      extra['producer-seq'] = String(producer.seq);
    }
    const streamSeq = header(req, 'stream-seq');
    if (
      streamSeq !== undefined &&
      stream.lastStreamSeq !== undefined &&
      streamSeq <= stream.lastStreamSeq
    ) {
      return this.#send(res, 409, {}, 'Stream-Seq regression');
    }
    let adding = 0;
    for (const u of units) adding += u.length;
    if (this.#overLimit(stream.bytes, adding)) return this.#send(res, 413, {}, 'size limit');
    // Every check passed: record, then change state.
    const mutation: Mutation = { t: 'append', key, units, close: closing, producer, streamSeq };
    this.#persistence?.record(mutation);
    this.#applyAppend(stream, mutation);
    this.#touch(stream);
    this.#send(
      res,
      producer && units.length > 0 ? 200 : 204,
      Object.assign(extra, this.#tailHeaders(stream)),
    );
  }

  #head(res: ServerResponse, key: string): void {
    const stream = this.#live(key);
    if (stream)
      this.#send(res, 200, { ...this.#streamHeaders(stream), 'cache-control': 'no-store' });
    else this.#send(res, 404);
  }

  #delete(res: ServerResponse, key: string): void {
    const stream = this.#live(key);
    if (!stream) {
      this.#send(res, 404, {}, 'no such stream');
      return;
    }
    this.#deleteStream(stream);
    this.#send(res, 204);
  }

  async #read(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    query: URLSearchParams,
  ): Promise<void> {
    const stream = this.#live(key);
    const live = query.get('live');
    const offsetText = query.get('offset');
    if (query.getAll('offset').length > 1 || (offsetText !== null && offsetText === '')) {
      return this.#send(res, 400, {}, 'invalid offset');
    }
    if (live !== null && live !== 'long-poll' && live !== 'sse')
      return this.#send(res, 400, {}, 'invalid live mode');
    if (live !== null && offsetText === null)
      return this.#send(res, 400, {}, 'live reads need an offset');
    const parsed = parseOffset(offsetText ?? '-1');
    if (parsed === undefined) return this.#send(res, 400, {}, 'invalid offset');
    if (!stream) return this.#send(res, 404, {}, 'no such stream');
    this.#touch(stream);
    if (parsed !== 'now' && parsed > stream.tail)
      return this.#send(res, 400, {}, 'offset beyond the end of the stream');
    const position = parsed === 'now' ? stream.tail : parsed;
    if (live === 'sse') return this.#sse(res, stream, position, query.get('cursor'));
    if (parsed === 'now' && (live === null || stream.closed)) {
      const headers: Headers = {
        'content-type': stream.contentType,
        ...this.#tailHeaders(stream),
        'stream-up-to-date': 'true',
        'cache-control': 'no-store',
      };
      if (live === 'long-poll')
        return this.#send(res, 204, { ...headers, ...this.#cursorHeader(stream, query) });
      return this.#send(res, 200, headers, stream.json ? '[]' : '');
    }
    if (live === 'long-poll' && position >= stream.tail && !stream.closed) {
      const arrived = await this.#wait(stream, res);
      if (!arrived || this.#live(key) !== stream) {
        if (res.destroyed) return;
        if (this.#live(key) !== stream) return this.#send(res, 404, {}, 'the stream was deleted');
        return this.#send(res, 204, {
          ...this.#tailHeaders(stream),
          'stream-up-to-date': 'true',
          ...this.#cursorHeader(stream, query),
        });
      }
    }
    if (live === 'long-poll' && position >= stream.tail && stream.closed) {
      return this.#send(res, 204, { ...this.#tailHeaders(stream), 'stream-up-to-date': 'true' });
    }
    const read = this.#reads.get(stream, position) ?? this.#gather(stream, position);
    const { end, body } = read;
    const upToDate = end >= stream.tail;
    const closedNow = stream.closed && upToDate;
    const etag = `"${read.etagBase}${closedNow ? ':c' : ''}"`;
    const headers: Headers = {
      'content-type': stream.contentType,
      'stream-next-offset': formatOffset(end),
      etag,
      'cache-control': CATCH_UP_CACHE,
      ...(upToDate ? { 'stream-up-to-date': 'true' } : {}),
      ...(closedNow ? { 'stream-closed': 'true' } : {}),
      ...(live === 'long-poll' && !closedNow ? this.#cursorHeader(stream, query) : {}),
    };
    if (header(req, 'if-none-match') === etag) return this.#send(res, 304, { etag });
    this.#send(res, 200, headers, body);
  }

  /** Builds the body of a catch-up read from `position` and caches it. */
  #gather(stream: StreamState, position: number) {
    const { entries, end } = entriesFrom(stream, position, this.#o.maxChunkBytes);
    const body = stream.json
      ? Buffer.from(`[${entries.map((e) => e.data.toString('utf8')).join(',')}]`)
      : entries.length === 1
        ? entries[0]!.data
        : Buffer.concat(entries.map((e) => e.data));
    const read = {
      position,
      tail: stream.tail,
      end,
      body,
      etagBase: `${stream.id}:${formatOffset(position)}:${formatOffset(end)}`,
    };
    this.#reads.set(stream, read);
    return read;
  }

  /** Waits for an append or close on `stream`, the timeout, or the client leaving. */
  #wait(stream: StreamState, res: ServerResponse): Promise<boolean> {
    if (this.#closing) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (arrived: boolean) => {
        clearTimeout(timer);
        stream.waiters.delete(onData);
        res.off('close', onGone);
        this.#open.delete(res);
        resolve(arrived);
      };
      const onData = () => done(true);
      const onGone = () => done(false);
      const timer = setTimeout(() => done(false), this.#o.longPollTimeoutMs);
      stream.waiters.add(onData);
      res.once('close', onGone);
      this.#open.add(res);
    });
  }

  async #sse(res: ServerResponse, stream: StreamState, start: number, cursor: string | null) {
    const base64 = !isTextual(stream.contentType);
    res.writeHead(200, {
      ...this.#common,
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...(base64 ? { 'stream-sse-data-encoding': 'base64' } : {}),
    });
    res.flushHeaders();
    this.#open.add(res);
    let gone = false;
    res.once('close', () => {
      gone = true;
      this.#open.delete(res);
      wake(stream);
    });
    const deadline = Date.now() + this.#o.sseReconnectMs;
    let position = start;
    let first = true;
    let lastCursor = cursor;
    while (!gone && !this.#closing && Date.now() < deadline) {
      if (this.streams.get(stream.path) !== stream) break;
      const { entries, end } = entriesFrom(stream, position, this.#o.maxChunkBytes);
      if (entries.length > 0) {
        const payload = stream.json
          ? `[${entries.map((e) => e.data.toString('utf8')).join(',')}]`
          : base64
            ? Buffer.concat(entries.map((e) => e.data)).toString('base64')
            : Buffer.concat(entries.map((e) => e.data)).toString('utf8');
        res.write(
          `event: data\n${payload
            .split(/\r\n|\r|\n/)
            .map((l) => `data:${l}`)
            .join('\n')}\n\n`,
        );
        position = end;
      }
      const upToDate = position >= stream.tail;
      const closed = stream.closed && upToDate;
      if (entries.length > 0 || first || closed) {
        const control: Record<string, unknown> = { streamNextOffset: formatOffset(position) };
        if (!closed) {
          lastCursor = this.#cursor(lastCursor);
          control.streamCursor = lastCursor;
        }
        if (upToDate) control.upToDate = true;
        if (closed) control.streamClosed = true;
        res.write(`event: control\ndata:${JSON.stringify(control)}\n\n`);
        first = false;
      }
      if (closed) break;
      if (!upToDate) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
        function done() {
          clearTimeout(timer);
          stream.waiters.delete(done);
          resolve();
        }
        stream.waiters.add(done);
      });
    }
    this.#open.delete(res);
    res.end();
  }

  // ---- helpers

  /** Validates fork headers; a status code when they are refused. */
  #resolveFork(
    req: IncomingMessage,
    forkedFrom: string,
  ): { source: StreamState; position: number; offset: number; subOffset: number } | number {
    const path = forkedFrom.split('?')[0]!;
    const key = path.startsWith(`${this.basePath}/`) ? path.slice(this.basePath.length) : path;
    const offsetText = header(req, 'stream-fork-offset');
    const subText = header(req, 'stream-fork-sub-offset');
    let offset: number | undefined;
    if (offsetText !== undefined) {
      const parsed = parseOffset(offsetText);
      if (parsed === undefined || parsed === 'now' || offsetText === '-1') return 400;
      offset = parsed;
    }
    if (subText !== undefined && (!UINT.test(subText) || !Number.isSafeInteger(Number(subText)))) {
      return 400;
    }
    const source = this.#live(key);
    if (!source) return 404;
    if (source.softDeleted) return 409;
    const anchor = offset ?? source.tail;
    if (anchor > source.tail) return 400;
    const sub = subText === undefined ? 0 : Number(subText);
    if (sub > 0 && anchor + sub > nextBoundary(source, anchor)) return 400;
    return { source, position: anchor + sub, offset: anchor, subOffset: sub };
  }

  #location(req: IncomingMessage, key: string): string {
    const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
    const host = header(req, 'host') ?? header(req, ':authority') ?? 'localhost';
    return `${secure ? 'https' : 'http'}://${host}${this.basePath}${key}`;
  }

  #cursor(client: string | null): string {
    const interval = Math.floor((this.#o.now() - CURSOR_EPOCH) / CURSOR_INTERVAL_MS);
    const theirs = client !== null && UINT.test(client) ? Number(client) : -1;
    if (theirs >= interval) return String(theirs + 1 + Math.floor(Math.random() * 180));
    return String(interval);
  }

  #cursorHeader(stream: StreamState, query: URLSearchParams): Headers {
    if (stream.closed) return {};
    return { 'stream-cursor': this.#cursor(query.get('cursor')) };
  }

  #units(json: boolean, body: Buffer, creating: boolean): Buffer[] | string {
    if (!json) return [body];
    const messages = jsonMessages(body);
    if (messages === 'invalid') return 'invalid JSON';
    if (messages === 'empty-array') return creating ? [] : 'an empty JSON array appends nothing';
    return messages;
  }

  /** Whether adding `adding` bytes to a stream holding `streamBytes` breaks a limit. */
  #overLimit(streamBytes: number, adding: number): boolean {
    if (this.#o.maxStreamBytes !== undefined && streamBytes + adding > this.#o.maxStreamBytes)
      return true;
    return this.#o.maxMemoryBytes !== undefined && this.#bytes + adding > this.#o.maxMemoryBytes;
  }

  // ---- state changes: the live path and the replay of a persisted journal share them

  #applyCreate(m: Extract<Mutation, { t: 'create' }>): StreamState {
    const stream = newStream(
      m.key,
      {
        contentType: m.contentType,
        ttlSeconds: m.ttlSeconds,
        expiresAt: m.expiresAt,
        expiresAtText: m.expiresAtText,
      },
      this.#o.now(),
    );
    if (m.fork) {
      const source = this.streams.get(m.fork.source);
      if (source) {
        inherit(stream, source, m.fork.position);
        source.refs++;
      }
      stream.fork = { source: m.fork.source, offset: m.fork.offset, subOffset: m.fork.subOffset };
    }
    if (m.units.length) appendEntries(stream, m.units);
    this.#bytes += stream.bytes;
    stream.closed = m.closed;
    this.streams.set(m.key, stream);
    return stream;
  }

  #applyAppend(stream: StreamState, m: Extract<Mutation, { t: 'append' }>): void {
    if (m.producer) {
      stream.producers.set(m.producer.id, { epoch: m.producer.epoch, lastSeq: m.producer.seq });
    }
    if (m.streamSeq !== undefined) stream.lastStreamSeq = m.streamSeq;
    const before = stream.bytes;
    if (m.units.length) appendEntries(stream, m.units);
    this.#bytes += stream.bytes - before;
    if (m.close) {
      stream.closed = true;
      stream.closedBy = m.producer;
      wake(stream);
    }
  }

  /** Rebuilds the stream set from a journal. */
  #replay(mutations: Mutation[]): void {
    for (const m of mutations) {
      if (m.t === 'create') this.#applyCreate(m);
      else {
        const stream = this.streams.get(m.key);
        if (!stream) continue;
        if (m.t === 'append') this.#applyAppend(stream, m);
        else this.#deleteStream(stream, false);
      }
    }
  }

  #tailHeaders(stream: StreamState): Headers {
    return {
      'stream-next-offset': formatOffset(stream.tail),
      ...(stream.closed ? { 'stream-closed': 'true' } : {}),
    };
  }

  #streamHeaders(stream: StreamState): Headers {
    return {
      'content-type': stream.contentType,
      ...this.#tailHeaders(stream),
      ...(stream.ttlSeconds !== undefined ? { 'stream-ttl': String(stream.ttlSeconds) } : {}),
      ...(stream.expiresAtText !== undefined ? { 'stream-expires-at': stream.expiresAtText } : {}),
    };
  }

  /** The request body, refused with 413 past `maxStreamBytes` (events: cheaper than for-await). */
  #body(req: IncomingMessage): Promise<Buffer> {
    const limit = this.#o.maxStreamBytes ?? Number.POSITIVE_INFINITY;
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          req.removeAllListeners('data');
          req.resume();
          reject(Object.assign(new Error('request body too large'), { status: 413 }));
          return;
        }
        chunks.push(chunk);
      });
      // A body that came in one chunk is copied (small ones into Node's shared pool): kept as
      // is, it would pin the whole socket read it came in, headers included, per append.
      req.once('end', () =>
        resolve(chunks.length === 1 ? Buffer.from(chunks[0]!) : Buffer.concat(chunks, size)),
      );
      req.once('error', reject);
    });
  }

  async #drain(req: IncomingMessage): Promise<void> {
    for await (const _ of req) {
      // discard
    }
  }

  #send(res: ServerResponse, status: number, headers: Headers = {}, body?: string | Buffer): void {
    if (res.headersSent || res.destroyed) return;
    const isError = status >= 400 && body !== undefined && typeof body === 'string';
    if (isError) {
      const problem = JSON.stringify({ type: 'about:blank', title: String(body), status });
      res.writeHead(status, {
        ...this.#common,
        ...headers,
        'content-type': 'application/problem+json',
      });
      res.end(problem);
      return;
    }
    res.writeHead(status, { ...this.#common, ...headers });
    res.end(status === 204 || status === 304 ? undefined : body);
  }
}

/**
 * The whole server's request handler: the protocol under the handler's base path, `/healthz`
 * and `/readyz`, and a problem+json 404 for anything else.
 */
export function serveRequest(
  handler: StreamHandler,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  if (handler.handle(req, res)) return;
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz' || path === '/readyz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok' }));
    return;
  }
  res.writeHead(404, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title: 'not found', status: 404 }));
}
