/**
 * The Durable Streams protocol over HTTP, mountable on any `http`/`https`/`http2` (compat)
 * server: routing, bodies, overload control and replies here; the rules in `protocol/`; the
 * data in the engine. A change is answered once the engine says it is durable.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { expectOptions, type RandomSource, systemClock } from '@towerline/core';
import { Engine } from '../engine/engine.js';
import { StorageError } from '../engine/errors.js';
import type { Stream } from '../engine/stream.js';
import { decideAppend, decideCreate, type Limits } from '../protocol/decide.js';
import { formatOffset, nextCursor } from '../protocol/offsets.js';
import { type HeaderList, isProblem, type Problem, problem } from '../protocol/problem.js';
import { createdHeaders, streamHeaders, tailReadHeaders } from '../protocol/replies.js';
import {
  header,
  parseAppend,
  parseCreate,
  parseRead,
  type ReadRequest,
} from '../protocol/requests.js';
import { BodyMeter, drain, readBody } from './body.js';
import { type ShedReason, streamServerEvents } from './events.js';
import { LiveReads, type LiveStats } from './live.js';
import type { HandlerLogger, StreamHandlerOptions } from './options.js';
import { OverloadGuard } from './overload.js';
import { ReadCache } from './read-cache.js';
import { CatchUp } from './reads.js';
import { METHODS, Responder } from './respond.js';
import { SharedWrites } from './shared-writes.js';

const storageProblem = () => problem(503, 'storage is unavailable', ['retry-after', '5']);

export class StreamHandler {
  readonly basePath: string;
  readonly engine: Engine;
  readonly overload: OverloadGuard;
  /** `request`, `shed` and `failed`; `instrument()` of `@towerline/otel` turns them into metrics. */
  readonly events = streamServerEvents();
  readonly #responder: Responder;
  readonly #reads: ReadCache;
  readonly #live: LiveReads;
  readonly #catchUp: CatchUp;
  readonly #bodies = new BodyMeter();
  readonly #limits: Limits;
  readonly #shared: SharedWrites;
  readonly #now: () => number;
  readonly #random: RandomSource;
  readonly #logger: HandlerLogger | undefined;

  constructor(options: StreamHandlerOptions = {}) {
    expectOptions(options, true);
    this.basePath = (options.basePath ?? '/v1/stream').replace(/\/+$/, '');
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger;
    this.engine = options.engine ?? options.persistence ?? Engine.memory({ now: this.#now });
    this.#limits = { maxStreamBytes: options.maxStreamBytes };
    this.#responder = new Responder(options.corsOrigin ?? '*');
    this.#shared = new SharedWrites({
      engine: this.engine,
      responder: this.#responder,
      limits: this.#limits,
      basePath: this.basePath,
      now: this.#now,
      fail: (res, error) => this.#fail(res, error),
      location: (req, key) => this.#location(req, key),
    });
    this.#reads = new ReadCache(options.readCacheBytes ?? 32 * 1024 * 1024);
    const clock = options.clock ?? systemClock;
    const pageBytes = options.catchUpPageBytes ?? options.maxChunkBytes ?? 10 * 1024 * 1024;
    const held = () => this.engine.memoryBytes + this.#bodies.bytes + this.#catchUp.inFlight;
    this.overload = new OverloadGuard(
      {
        maxMemoryBytes: options.maxMemoryBytes,
        maxLiveConnections: options.maxLiveConnections,
        maxEventLoopLagMs: options.maxEventLoopLagMs,
        clock,
        random: this.#random,
      },
      {
        held,
        cached: () => this.#reads.bytes,
        shrinkCache: (bytes) => {
          this.#reads.shrink(bytes);
          return this.#reads.bytes;
        },
      },
    );
    this.#live = new LiveReads(
      this.engine,
      this.#responder,
      {
        longPollTimeoutMs: options.longPollTimeoutMs ?? 30_000,
        sseReconnectMs: options.sseReconnectMs ?? 60_000,
        maxChunkBytes: Math.min(pageBytes, 1024 * 1024),
        clock,
        cursor: (client) => nextCursor(client, this.#now(), this.#random),
        ...(options.liveBufferBytes !== undefined ? { bufferBytes: options.liveBufferBytes } : {}),
        ...(options.liveCoalesceMs !== undefined ? { coalesceMs: options.liveCoalesceMs } : {}),
        ...(options.liveCoalesceMaxMs !== undefined
          ? { coalesceMaxMs: options.liveCoalesceMaxMs }
          : {}),
        onError: (error) => this.#logError(error),
      },
      (delta) => {
        this.overload.live += delta;
      },
    );
    const max = options.maxMemoryBytes;
    this.#catchUp = new CatchUp(this.engine, this.#responder, this.#reads, {
      pageBytes,
      inlineBytes: Math.min(pageBytes, 1024 * 1024),
      roomFor: (bytes) => max === undefined || held() + this.#reads.bytes + bytes <= max,
    });
  }

  /** The stream set (read-only): key → stream. */
  get streams(): ReadonlyMap<string, Stream> {
    return this.engine.streams;
  }

  /** Answers a protocol request; false when `req` is not under `basePath`. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    // Split by hand: a WHATWG URL per request is a measurable share of a small append.
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q === -1 ? raw : raw.slice(0, q);
    if (path !== this.basePath && !path.startsWith(`${this.basePath}/`)) return false;
    if (this.events.observed('request')) this.#observe(req, res);
    try {
      const key = path.slice(this.basePath.length) || '/';
      const search = q === -1 ? '' : raw.slice(q + 1);
      const shared = this.engine.shared;
      const m = req.method;
      // Shared storage: this process's copy of the stream is refreshed from the database first
      // (a create, and an append to a stream known here, refresh under the row lock instead).
      const out =
        shared &&
        key !== '/' &&
        m !== 'OPTIONS' &&
        m !== 'PUT' &&
        !(m === 'POST' && this.engine.streams.has(key))
          ? shared.sync(key).then(() => this.#route(req, res, key, search))
          : this.#route(req, res, key, search);
      if (out) out.catch((error: unknown) => this.#fail(res, error));
    } catch (error) {
      this.#fail(res, error);
    }
    return true;
  }

  #route(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    search: string,
  ): void | Promise<void> {
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS')
      return drain(req, () => this.#responder.send(res, 204, this.#responder.preflight));
    const busy = this.overload.admit();
    if (busy) return this.#shed(res, busy, 'event_loop_lag');
    if (key === '/') return this.#refuse(req, res, problem(404, 'no stream path'));
    // A soft-deleted stream (deleted, still read by its forks) is gone for its own clients.
    if (method !== 'PUT' && this.engine.live(key)?.softDeleted)
      return this.#refuse(req, res, problem(410, 'the stream was deleted'));
    switch (method) {
      case 'POST':
        return this.#append(req, res, key);
      case 'GET':
        return this.#read(req, res, key, search);
      case 'PUT':
        return this.#create(req, res, key);
      // Bodies nobody reads are drained first: a reply before the request is whole would
      // cost the client its keep-alive connection.
      case 'HEAD':
        return drain(req, () => this.#head(res, key));
      case 'DELETE':
        return drain(req, () => this.#delete(res, key));
      default:
        return this.#refuse(req, res, problem(405, 'method not allowed', ['allow', METHODS]));
    }
  }

  /** Reports the request's outcome and duration once its response is done or abandoned. */
  #observe(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    res.once('close', () =>
      this.events.emit('request', {
        method: req.method ?? 'GET',
        status: res.statusCode,
        durationMs: performance.now() - started,
        completed: res.writableFinished,
      }),
    );
  }

  /** Sheds a request under overload at once, closing the connection rather than reading on. */
  #shed(res: ServerResponse, p: Problem, reason: ShedReason): void {
    this.events.emit('shed', { reason, status: p.status });
    this.#responder.problem(res, { ...p, headers: p.headers.concat('connection', 'close') });
  }

  /** Refuses a request, discarding a body it may be sending. */
  #refuse(req: IncomingMessage, res: ServerResponse, p: Problem): void {
    drain(req, () => this.#responder.problem(res, p));
  }

  #fail(res: ServerResponse, error: unknown): void {
    const storage = this.#logError(error);
    this.#responder.problem(res, storage ? storageProblem() : problem(500, 'internal error'));
  }

  /** Logs an internal or storage error; true for a storage error. */
  #logError(error: unknown): boolean {
    const storage = error instanceof StorageError;
    this.events.emit('failed', {
      errorType: storage ? error.code : ((error as Error)?.name ?? 'Error'),
    });
    this.#logger?.error(
      {
        'error.type': storage ? error.code : (error as Error)?.name,
        'error.message': (error as Error)?.message,
      },
      storage ? 'storage error' : 'internal error',
    );
    return storage;
  }

  /** What live reads hold now: SSE connections, long-polls, paused readers, unsent bytes. */
  get live(): LiveStats {
    return this.#live.stats;
  }

  /** Sends once every change accepted so far is durable: an answer never runs ahead of the disk. */
  #durably(res: ServerResponse, status: number, headers: HeaderList): void {
    this.engine.barrier(() => this.#responder.send(res, status, headers));
  }

  #answer(res: ServerResponse, status: number, headers: HeaderList) {
    return (error: Error | null) => {
      if (error) return this.#fail(res, error);
      this.#responder.send(res, status, headers);
    };
  }

  /**
   * Reads the body of a change whose headers parsed (else refuses it), within the memory
   * budget (else sheds it; 413 when it never could fit) and the stream size limit (else 413),
   * then hands it to `then`.
   */
  #withBody(
    req: IncomingMessage,
    res: ServerResponse,
    parsed: object,
    then: (body: Buffer) => void,
  ): void {
    const refused = isProblem(parsed) ? parsed : undefined;
    if (refused) {
      this.#refuse(req, res, refused);
      return;
    }
    // A body past the whole memory budget can never fit: 413 (by readBody), not "try later".
    const limit = Math.min(this.#limits.maxStreamBytes ?? Infinity, this.overload.maxBytes);
    const length = Number(req.headers['content-length']) || 0;
    const full = length <= limit && this.overload.admitBytes(length);
    if (full) {
      this.#shed(res, full, 'memory');
      return;
    }
    readBody(req, limit, this.#bodies, (error, body) => {
      if (error) this.#responder.problem(res, error);
      else then(body);
    });
  }

  #append(req: IncomingMessage, res: ServerResponse, key: string): void {
    const stream = this.engine.live(key);
    if (!stream) {
      this.#refuse(req, res, problem(404, 'no such stream'));
      return;
    }
    const a = parseAppend(req.headers);
    this.#withBody(req, res, a, (body) => {
      if (isProblem(a)) return;
      if (stream.removed) return this.#responder.problem(res, problem(404, 'no such stream'));
      if (this.engine.shared) return this.#shared.append(res, stream, a, body);
      const d = decideAppend(stream, a, body, this.#limits);
      if (d.kind === 'problem') return this.#responder.problem(res, d);
      if (d.kind === 'reply') return this.#durably(res, d.status, d.headers);
      // The reply says where this append ended, whatever was accepted after it meanwhile.
      const tail = formatOffset(stream.tail + d.spec.payload.count);
      const { status, headers } = d.reply;
      const close = d.spec.close;
      stream.lastAccess = this.#now();
      this.engine.append(stream, d.spec, (e) => {
        if (e) this.#fail(res, e);
        else this.#responder.sendTail(res, status, headers, tail, close);
      });
    });
  }

  #create(req: IncomingMessage, res: ServerResponse, key: string): void {
    const c = parseCreate(req.headers);
    this.#withBody(req, res, c, (body) => {
      if (isProblem(c)) return;
      if (this.engine.shared) return this.#shared.create(req, res, key, c, body);
      const d = decideCreate(key, c, body, this.basePath, this.engine, this.#limits);
      if (d.kind === 'problem') return this.#responder.problem(res, d);
      if (d.kind === 'reply') return this.#durably(res, d.status, d.headers);
      const headers = createdHeaders(d.spec).concat('location', this.#location(req, key));
      this.engine.create(d.spec, this.#answer(res, 201, headers));
    });
  }

  #head(res: ServerResponse, key: string): void {
    const s = this.engine.live(key);
    if (!s?.created) {
      this.#responder.send(res, 404, []);
      return;
    }
    this.#responder.send(res, 200, streamHeaders(s, true).concat('cache-control', 'no-store'));
  }

  #delete(res: ServerResponse, key: string): void {
    const s = this.engine.live(key);
    if (!s) {
      this.#responder.problem(res, problem(404, 'no such stream'));
      return;
    }
    this.#reads.delete(s);
    this.engine.delete(s, this.#answer(res, 204, []));
  }

  #read(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    search: string,
  ): void | Promise<void> {
    const r = parseRead(search);
    if (isProblem(r)) return this.#responder.problem(res, r);
    const stream = this.engine.live(key);
    if (!stream?.created) return this.#responder.problem(res, problem(404, 'no such stream'));
    stream.lastAccess = this.#now();
    if (r.offset !== 'now' && r.offset > stream.visibleTail)
      return this.#responder.problem(res, problem(400, 'offset beyond the end of the stream'));
    const position = r.offset === 'now' ? stream.visibleTail : r.offset;
    if (r.live !== undefined) {
      const busy = this.overload.admitLive();
      if (busy) {
        this.events.emit('shed', { reason: 'live_connections', status: busy.status });
        return this.#responder.problem(res, busy);
      }
    }
    if (r.live === 'sse') return this.#live.sse(res, stream, position, r.cursor);
    const cursor = r.live === 'long-poll' && !stream.visibleClosed ? this.#cursor(r) : undefined;
    if (r.offset === 'now' && (r.live === undefined || stream.visibleClosed)) {
      const h = [
        'content-type',
        stream.contentType,
        ...tailReadHeaders(stream, cursor),
        'cache-control',
        'no-store',
      ];
      if (r.live === 'long-poll') return this.#responder.send(res, 204, h);
      return this.#responder.send(res, 200, h, stream.json ? '[]' : '');
    }
    if (r.live === 'long-poll' && position >= stream.visibleTail)
      return this.#longPoll(req, res, key, stream, position, r);
    return this.#catchUp.serve(req, res, stream, position, cursor);
  }

  #cursor(r: ReadRequest): string {
    return nextCursor(r.cursor, this.#now(), this.#random);
  }

  async #longPoll(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    stream: Stream,
    position: number,
    r: ReadRequest,
  ): Promise<void> {
    if (stream.visibleClosed)
      return this.#responder.send(res, 204, tailReadHeaders(stream, undefined));
    const arrived = await this.#live.wait(stream, res);
    if (res.destroyed) return;
    if (stream.removed || this.engine.live(key) !== stream)
      return this.#responder.problem(res, problem(404, 'the stream was deleted'));
    if (!arrived || position >= stream.visibleTail)
      return this.#responder.send(res, 204, tailReadHeaders(stream, this.#cursor(r)));
    return this.#catchUp.serve(
      req,
      res,
      stream,
      position,
      stream.visibleClosed ? undefined : this.#cursor(r),
    );
  }

  #location(req: IncomingMessage, key: string): string {
    const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
    const host = header(req.headers, 'host') ?? header(req.headers, ':authority') ?? 'localhost';
    return `${secure ? 'https' : 'http'}://${host}${this.basePath}${key}`;
  }

  /** Ends every live read (long-poll, SSE); call before closing the server. */
  close(): void {
    this.overload.stop();
    this.#live.close();
  }
}

export type { HandlerLogger, StreamHandlerOptions } from './options.js';
export { serveRequest } from './serve.js';
