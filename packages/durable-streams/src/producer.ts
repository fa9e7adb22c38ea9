import { backoff, describeValue, invalidArgument, serviceFn } from '@towerline/core';
import { RetryLayer, type RetryOptions } from '@towerline/retry';
import { checkResponse, isTransient, StreamHttpError } from './http-error.js';

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
  /** The stream's tail after this append. */
  nextOffset: string;
  /** The HTTP status: a retried append the server had already applied answers like the first. */
  status: number;
}

/**
 * Appends to a Durable Stream as an idempotent producer (`Producer-Id`, `Producer-Epoch`,
 * `Producer-Seq`): appends go out one at a time, in order, and a failed one is retried with the
 * same sequence number, so the server applies it exactly once even when the first answer was
 * lost with the connection.
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
  let seq = 0;
  /** Appends waiting for their turn: they carry the next numbers once sent. */
  let waiting = 0;
  let chain: Promise<unknown> = Promise.resolve();

  const post = serviceFn(
    async (req: {
      body: Uint8Array | string;
      seq: number;
      close: boolean;
    }): Promise<AppendResult> => {
      const headers: Record<string, string> = {
        ...options.headers,
        'producer-id': producerId,
        'producer-epoch': String(epoch),
        'producer-seq': String(req.seq),
      };
      const hasBody = typeof req.body === 'string' ? req.body.length > 0 : req.body.byteLength > 0;
      if (hasBody) headers['content-type'] = contentType;
      if (req.close) headers['stream-closed'] = 'true';
      const res = await doFetch(url, { method: 'POST', headers, body: hasBody ? req.body : null });
      await checkResponse(res, url);
      await res.body?.cancel().catch(() => {});
      return {
        nextOffset: res.headers.get('stream-next-offset') ?? '',
        status: res.status,
      };
    },
  );
  const sender = new RetryLayer({
    maxAttempts: 8,
    backoff: backoff.exponentialRandom({ initial: 50, max: 5_000, jitter: 'decorrelated' }),
    delayFromError: (error) => (error instanceof StreamHttpError ? error.retryAfterMs : undefined),
    name: 'durable-streams:producer',
    ...options.retry,
    retryOn: isTransient,
  }).wrap(post);

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
      return sender.call({ body, seq: seq++, close });
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
