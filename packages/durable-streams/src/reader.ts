import {
  expectSignal,
  type IntervalFunction,
  invalidArgument,
  type TypedEmitter,
} from '@towerline/core';
import {
  defaultReconnectPolicy,
  type ReconnectorEvents,
  superviseStream,
} from '@towerline/reconnect';
import { checkResponse, isTransient, protocolError, StreamHttpError } from './http-error.js';

/** One response's worth of stream data. */
export interface StreamBatch {
  /** The bytes, exactly as stored. */
  data: Uint8Array;
  /** The offset this batch starts at. */
  offset: string;
  /** Where the next read starts: resume from here. */
  nextOffset: string;
  /** The reader has caught up with everything written so far. */
  upToDate: boolean;
  /** The stream is closed and this is its last batch: EOF. */
  closed: boolean;
  contentType: string;
}

export interface FollowOptions {
  /** Where to start: an offset from an earlier batch, `-1` (the beginning, default) or `now`. */
  offset?: string;
  /** How to wait for new data once caught up. Default `long-poll`. */
  live?: 'long-poll' | 'sse' | false;
  signal?: AbortSignal;
  /** Reconnect backoff; a server's `Retry-After` wins over it. Default: the reconnector's. */
  policy?: IntervalFunction;
  /** Give up after this many failed attempts in a row. Default: never. */
  maxAttempts?: number;
  /** Headers for every request (auth). */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

/** A followed stream: iterate it; `close()` stops it; reconnect events on `events`. */
export interface FollowedStream extends AsyncIterable<StreamBatch> {
  readonly events: TypedEmitter<ReconnectorEvents>;
  /** Where a new follower would resume: the `nextOffset` of the last batch handed out. */
  readonly offset: string;
  close(): Promise<void>;
}

const bool = (v: string | null) => v?.toLowerCase() === 'true';

/** Handed by `read` to the loop that iterates: a `live: false` reader has caught up. */
const CAUGHT_UP = Object.freeze({}) as StreamBatch;

/** An SSE `control` event's fields, checked (a proxy or a broken server may send anything). */
function parseControl(data: string): {
  streamNextOffset: string;
  streamCursor?: string;
  upToDate?: boolean;
  streamClosed?: boolean;
} {
  let control: unknown;
  try {
    control = JSON.parse(data);
  } catch {
    throw protocolError('an SSE control event that is not JSON');
  }
  const c = control as { streamNextOffset?: unknown; streamCursor?: unknown } | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.streamNextOffset !== 'string' ||
    c.streamNextOffset === ''
  )
    throw protocolError('an SSE control event without streamNextOffset');
  if (c.streamCursor !== undefined && typeof c.streamCursor !== 'string')
    throw protocolError('an SSE control event with a streamCursor that is not a string');
  return control as ReturnType<typeof parseControl>;
}

function withRetryAfter(policy: IntervalFunction): IntervalFunction {
  return {
    max: policy.max,
    next: (attempt, error) => {
      const hinted = error instanceof StreamHttpError ? error.retryAfterMs : undefined;
      // `Retry-After: 0` (or a date past) is no reason to skip the backoff: a storm otherwise.
      return hinted !== undefined && hinted > 0
        ? Math.min(hinted, policy.max ?? hinted)
        : policy.next(attempt, error);
    },
  };
}

/** Parses `text/event-stream` into `{ event, data }` records. */
async function* sseEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let i = buffer.search(/\r?\n/); i !== -1; i = buffer.search(/\r?\n/)) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(buffer[i] === '\r' ? i + 2 : i + 1);
      if (line === '') {
        if (data.length) yield { event, data: data.join('\n') };
        event = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // comment / keep-alive
      } else {
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
    }
  }
  throw Object.assign(new Error('the event stream ended'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Follows a Durable Stream and keeps following it through connection drops, server restarts
 * and 5xx/429 responses (honouring `Retry-After`): every failure rebuilds the read with backoff
 * from the last `Stream-Next-Offset` handed out, so no batch is lost and none is delivered
 * twice. Ends cleanly when the stream is closed; a 404/400/410 ends it with an error.
 * Runs on towerline's reconnect engine (`superviseStream`).
 *
 * @example
 * ```ts
 * for await (const batch of followStream('https://host/v1/stream/orders', { live: 'sse' })) {
 *   handle(batch.data);
 *   checkpoint(batch.nextOffset);
 * }
 * ```
 */
export function followStream(url: string, options: FollowOptions = {}): FollowedStream {
  if (typeof url !== 'string' || !/^https?:\/\//.test(url))
    invalidArgument('url', 'expected an http(s) URL');
  if (options.fetch !== undefined && typeof options.fetch !== 'function')
    invalidArgument('fetch', 'expected a fetch function');
  const signal = expectSignal(options.signal, 'signal');
  const doFetch = options.fetch ?? fetch;
  const live = options.live ?? 'long-poll';
  if (live !== 'long-poll' && live !== 'sse' && live !== false)
    invalidArgument('live', "expected 'long-poll', 'sse' or false");
  let offset = options.offset ?? '-1';
  let cursor: string | undefined;

  const request = (signal: AbortSignal, params: Record<string, string>) => {
    const u = new URL(url);
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
    return doFetch(u, { signal, headers: options.headers ?? {} });
  };

  async function* read(signal: AbortSignal): AsyncGenerator<StreamBatch> {
    for (;;) {
      const caughtUpMode = live !== false && offset !== '-1';
      if (live === 'sse' && caughtUpMode) {
        yield* readSse(signal);
        return;
      }
      const params: Record<string, string> = { offset };
      if (live === 'long-poll' && caughtUpMode) {
        params.live = 'long-poll';
        if (cursor) params.cursor = cursor;
      }
      const res = await request(signal, params);
      await checkResponse(res, url);
      const data = res.status === 204 ? new Uint8Array() : new Uint8Array(await res.arrayBuffer());
      const next = res.headers.get('stream-next-offset');
      if (!next) throw protocolError('response without Stream-Next-Offset');
      cursor = res.headers.get('stream-cursor') ?? cursor;
      const batch: StreamBatch = {
        data,
        offset,
        nextOffset: next,
        upToDate: bool(res.headers.get('stream-up-to-date')),
        closed: bool(res.headers.get('stream-closed')),
        contentType: res.headers.get('content-type') ?? 'application/octet-stream',
      };
      // Nothing, no progress, yet not caught up: asking again at once would be a request storm.
      if (batch.data.length === 0 && !batch.closed && !batch.upToDate && next === offset)
        throw protocolError('a read that returned nothing, moved no offset and is not up to date');
      if (batch.data.length > 0 || batch.closed) yield batch;
      // Handed out (the consumer asked for more): a rebuild resumes after it.
      offset = next;
      if (batch.closed) return;
      if (live === false && batch.upToDate) {
        yield CAUGHT_UP;
        return;
      }
    }
  }

  async function* readSse(signal: AbortSignal): AsyncGenerator<StreamBatch> {
    const res = await request(signal, { offset, live: 'sse', ...(cursor ? { cursor } : {}) });
    await checkResponse(res, url);
    if (!res.body) throw protocolError('SSE response without a body');
    const base64 = res.headers.get('stream-sse-data-encoding') === 'base64';
    const contentType = res.headers.get('content-type') ?? 'text/event-stream';
    let pending: Uint8Array[] = [];
    for await (const { event, data } of sseEvents(res.body)) {
      if (event === 'data') {
        pending.push(
          base64
            ? new Uint8Array(Buffer.from(data.replace(/[\r\n]/g, ''), 'base64'))
            : new TextEncoder().encode(data),
        );
      } else if (event === 'control') {
        const control = parseControl(data);
        cursor = control.streamCursor ?? cursor;
        const joined = Buffer.concat(pending);
        pending = [];
        const batch: StreamBatch = {
          data: new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength),
          offset,
          nextOffset: control.streamNextOffset,
          upToDate: control.upToDate === true || control.streamClosed === true,
          closed: control.streamClosed === true,
          contentType,
        };
        if (batch.data.length > 0 || batch.closed) yield batch;
        offset = batch.nextOffset;
        if (batch.closed) return;
      }
    }
  }

  const supervised = superviseStream<StreamBatch>((signal) => read(signal), {
    name: `follow:${new URL(url).pathname}`,
    policy: withRetryAfter(options.policy ?? defaultReconnectPolicy()),
    // A missing stream stays missing: only network failures and 5xx/408/429 are retried.
    retryOn: isTransient,
    ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
  });
  const onAbort = () => void supervised.close();
  signal?.addEventListener('abort', onAbort, { once: true });

  async function* iterate(): AsyncGenerator<StreamBatch> {
    try {
      // Aborted before the first read: no request goes out.
      signal?.throwIfAborted();
      for await (const batch of supervised) {
        if (batch === CAUGHT_UP) return;
        yield batch;
        if (batch.closed) return;
      }
      signal?.throwIfAborted();
    } catch (error) {
      // A final HTTP answer surfaces as itself, not wrapped in the give-up.
      const cause = (error as { cause?: unknown }).cause;
      throw cause instanceof StreamHttpError && !cause.transient ? cause : error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await supervised.close();
    }
  }

  const iterator = iterate();
  return {
    events: supervised.events,
    get offset() {
      return offset;
    },
    close: () => {
      signal?.removeEventListener('abort', onAbort);
      return supervised.close();
    },
    [Symbol.asyncIterator]: () => iterator,
  };
}
