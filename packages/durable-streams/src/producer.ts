import { backoff, describeValue, invalidArgument, serviceFn } from '@towerline/core';
import { RetryLayer, type RetryOptions } from '@towerline/retry';
import {
  checkResponse,
  isProtocolError,
  isTransient,
  protocolError,
  StreamHttpError,
  shownUrl,
} from './http-error.js';

/** How many times one append may be renumbered by the server's answers before it gives up. */
const MAX_RESYNCS = 16;

interface SentAppend extends AppendResult {
  /** Answered to the first attempt of this request (no earlier attempt could have stored it). */
  firstAttempt: boolean;
}

/** A `409` naming the sequence number the server expects (`Producer-Expected-Seq`). */
class SequenceGap extends Error {
  override readonly name = 'SequenceGap';
  constructor(
    readonly expected: number,
    readonly error: StreamHttpError,
  ) {
    super(error.message);
  }
}

const bodyLength = (body: Uint8Array | string) =>
  typeof body === 'string' ? body.length : body.byteLength;

/** A duplicate's answer: `Producer-Epoch` is ours and `Producer-Seq` is at or past `seq`. */
function echoesProducer(headers: Headers, epoch: number, seq: number): boolean {
  const echoedSeq = parseSeq(headers.get('producer-seq'));
  return (
    parseSeq(headers.get('producer-epoch')) === epoch && echoedSeq !== undefined && echoedSeq >= seq
  );
}

function parseSeq(text: string | null): number | undefined {
  if (text === null || !/^\d{1,15}$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

export interface ProducerOptions {
  /** Stable identity of this writer across restarts. Default: a random UUID. */
  producerId?: string;
  /** Bump on every restart of the writer (fences the old one). Default 0. */
  epoch?: number;
  /** The stream's content type. Default `application/octet-stream`. */
  contentType?: string;
  /** Retries for transient failures; a retried append is deduplicated by the server. */
  retry?: Omit<RetryOptions, 'retryOn'>;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

export interface AppendResult {
  /**
   * The stream's tail after this append. `''` only for a retried append the server had
   * already applied and whose duplicate answer carried no tail (the reference server's `204`).
   */
  nextOffset: string;
  /** The HTTP status: a retried append the server had already applied answers like the first. */
  status: number;
}

/**
 * Appends to a Durable Stream as an idempotent producer (`Producer-Id`, `Producer-Epoch`,
 * `Producer-Seq`): appends go out one at a time, in order, and a failed one is retried with the
 * same sequence number, so the server applies it exactly once even when the first answer was
 * lost with the connection. An append that finally fails (retries used up, a 4xx) does not wedge
 * the ones after it: the next append learns from the server's answer (a `409` naming the
 * expected number) whether the failed one was stored, and takes its number if it was not. A 2xx
 * without `Stream-Next-Offset` (a proxy's page) is no acknowledgement: `ERR_PROTOCOL`.
 *
 * @example
 * ```ts
 * const producer = createProducer(url, { producerId: 'orders-1', contentType: 'application/json' });
 * await producer.append(JSON.stringify({ id: 1 }));
 * await producer.close();
 * ```
 */
export function createProducer(url: string, options: ProducerOptions = {}) {
  if (typeof url !== 'string' || !/^https?:\/\//.test(url))
    invalidArgument('url', 'expected an http(s) URL');
  const producerId = options.producerId ?? crypto.randomUUID();
  const epoch = options.epoch ?? 0;
  if (!Number.isSafeInteger(epoch) || epoch < 0)
    invalidArgument('epoch', `expected an integer >= 0, got ${describeValue(epoch)}`);
  const doFetch = options.fetch ?? fetch;
  const contentType = options.contentType ?? 'application/octet-stream';
  /** The next sequence number never sent yet. */
  let seq = 0;
  /** The highest sequence number the server acknowledged in this epoch (-1: none yet). */
  let acked = -1;
  /** Appends waiting for their turn: they carry the next numbers once sent. */
  let waiting = 0;
  let chain: Promise<unknown> = Promise.resolve();

  const post = serviceFn(
    async (req: {
      body: Uint8Array | string;
      seq: number;
      close: boolean;
      attempts: number;
    }): Promise<SentAppend> => {
      req.attempts++;
      const headers: Record<string, string> = {
        ...options.headers,
        'producer-id': producerId,
        'producer-epoch': String(epoch),
        'producer-seq': String(req.seq),
      };
      const hasBody = bodyLength(req.body) > 0;
      if (hasBody) headers['content-type'] = contentType;
      if (req.close) headers['stream-closed'] = 'true';
      const res = await doFetch(url, { method: 'POST', headers, body: hasBody ? req.body : null });
      if (res.status === 409) {
        const expected = parseSeq(res.headers.get('producer-expected-seq'));
        if (expected !== undefined) {
          await res.body?.cancel().catch(() => {});
          throw new SequenceGap(expected, new StreamHttpError(409, url, undefined));
        }
      }
      await checkResponse(res, url);
      await res.body?.cancel().catch(() => {});
      const nextOffset = res.headers.get('stream-next-offset');
      // A proxy's page or a stripped response is no proof the server stored anything. The one
      // answer without the tail that is an acknowledgement: a duplicate's 204 echoing this
      // producer's epoch and a sequence number at or past this one (the reference server's).
      if (!nextOffset && !(res.status === 204 && echoesProducer(res.headers, epoch, req.seq)))
        throw protocolError(
          `HTTP ${res.status} from ${shownUrl(url)} without Stream-Next-Offset: not an append acknowledgement`,
        );
      return { nextOffset: nextOffset ?? '', status: res.status, firstAttempt: req.attempts === 1 };
    },
  );
  const sender = new RetryLayer({
    maxAttempts: 8,
    backoff: backoff.exponentialRandom({ initial: 50, max: 5_000, jitter: 'decorrelated' }),
    delayFromError: (error) => (error instanceof StreamHttpError ? error.retryAfterMs : undefined),
    name: 'durable-streams:producer',
    ...options.retry,
    retryOn: (error) =>
      !(error instanceof SequenceGap) && !isProtocolError(error) && isTransient(error),
  }).wrap(post);

  /**
   * Sends one append in its turn. A number is never sent twice for two different appends unless
   * the server said it holds nothing there: an append that finally failed keeps its number
   * consumed (it may have been stored), and the next append learns the truth from the server —
   * a `409` sequence gap names the number it expects (the failed one was not stored: this append
   * takes it), and a `400` for a first append that is not number 0 means nothing of this epoch
   * was stored. A `204` duplicate answer to such a resent number means an earlier append holds
   * it after all: this one moves on to the next number.
   */
  const send = async (body: Uint8Array | string, close: boolean): Promise<AppendResult> => {
    const hasBody = bodyLength(body) > 0;
    const sentBefore = seq;
    let s = seq++;
    /** `s` was numbered by the server's answer, and an earlier append may have been sent with it. */
    let resent = false;
    let zeroProbe: unknown;
    for (let round = 0; ; round++) {
      let result: SentAppend;
      try {
        result = await sender.call({ body, seq: s, close, attempts: 0 });
      } catch (error) {
        if (zeroProbe !== undefined) throw zeroProbe;
        const gap = error instanceof SequenceGap ? error : undefined;
        if (gap && round < MAX_RESYNCS && gap.expected > acked && gap.expected < s) {
          s = gap.expected;
          resent = true;
          continue;
        }
        if (
          !gap &&
          round < MAX_RESYNCS &&
          error instanceof StreamHttpError &&
          error.status === 400 &&
          acked < 0 &&
          s > 0 &&
          sentBefore > 0
        ) {
          // Maybe "a new producer epoch starts at Producer-Seq 0": the failed first append
          // was not stored. Number 0 answers: stored (200), another 400, or already taken (204).
          zeroProbe = error;
          s = 0;
          resent = true;
          continue;
        }
        throw gap ? gap.error : error;
      }
      if (resent && hasBody && result.status === 204 && result.firstAttempt) {
        // A duplicate: an append that failed earlier was stored with this number after all.
        if (s > acked) acked = s;
        if (zeroProbe !== undefined) throw zeroProbe;
        s++;
        if (s >= seq) seq = s + 1;
        continue;
      }
      if (s > acked) acked = s;
      if (s >= seq) seq = s + 1;
      return { nextOffset: result.nextOffset, status: result.status };
    }
  };

  const enqueue = (
    body: Uint8Array | string,
    close: boolean,
    signal: AbortSignal | undefined,
  ): Promise<AppendResult> => {
    if (signal?.aborted) return Promise.reject(signal.reason);
    waiting++;
    const result = chain.then(() => {
      waiting--;
      // An append aborted before its turn takes no sequence number: the ones after it follow
      // without a gap. Once sent it runs to the end (retries included): abandoned half-way it
      // could be applied or not, and the next number would be a guess.
      if (signal?.aborted) throw signal.reason;
      return send(body, close);
    });
    // Order is kept even past a failure; the failure reaches this call's caller only.
    chain = result.catch(() => {});
    return result;
  };

  return {
    producerId,
    epoch,
    /**
     * Appends one batch; resolves once the server has it (exactly once). `signal` withdraws
     * the append while it waits behind earlier ones; once sent, it completes.
     */
    append: (body: Uint8Array | string, options: { signal?: AbortSignal } = {}) =>
      enqueue(body, false, options.signal),
    /** Closes the stream (optionally with a final batch); `signal` as for `append`. */
    close: (body: Uint8Array | string = '', options: { signal?: AbortSignal } = {}) =>
      enqueue(body, true, options.signal),
    /** The sequence number the next append will carry. */
    get nextSeq() {
      return seq + waiting;
    },
    retry: sender.events,
  };
}

export type Producer = ReturnType<typeof createProducer>;
