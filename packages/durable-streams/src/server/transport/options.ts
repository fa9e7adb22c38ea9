/** The options of the protocol handler (the server and the app build them from the config). */
import type { Clock, RandomSource } from '@towerline/core';
import type { Engine } from '../engine/engine.js';

/** What the handler reports: internal errors and storage failures (request lines are the app's). */
export interface HandlerLogger {
  error(fields: Record<string, unknown>, message: string): void;
}

export interface StreamHandlerOptions {
  /** Where the protocol is mounted. Default `/v1/stream`. */
  basePath?: string;
  /** How long a long-poll waits for data, ms. Default 30 000. */
  longPollTimeoutMs?: number;
  /** SSE connections are closed after this long so clients re-collapse, ms. Default 60 000. */
  sseReconnectMs?: number;
  /**
   * Largest catch-up response body, bytes. Default 10 MiB: a client that reads a stream with
   * one request (the official client's `body()`) gets a whole dev-profile stream
   * (`max_stream_bytes`). Larger pages are streamed from storage, so memory stays bounded.
   */
  catchUpPageBytes?: number;
  /** @deprecated The old name of `catchUpPageBytes`. */
  maxChunkBytes?: number;
  /** Largest stream, bytes (413 beyond). Default unlimited. */
  maxStreamBytes?: number;
  /** Memory for data (read cache included), bytes: 503 with `Retry-After` beyond. */
  maxMemoryBytes?: number;
  /** Long-poll and SSE connections at once: 503 with `Retry-After` beyond. */
  maxLiveConnections?: number;
  /**
   * Unsent bytes an SSE connection may hold (its socket buffer) before it is paused; it
   * resumes from its own offset once the client has read them. Default 256 KiB.
   */
  liveBufferBytes?: number;
  /**
   * Least time between two deliveries to a stream's live readers, ms: appends that arrive
   * meanwhile go out together, in one frame per reader. Default 3 — an append after a quiet
   * spell goes out at once; 0 delivers every turn of the event loop. Whatever it is, a delivery
   * that took d ms of the event loop is followed by d ms for the rest of the server.
   */
  liveCoalesceMs?: number;
  /**
   * What that least time grows to under a flood (deliveries carrying four commits or more: it
   * doubles at each), ms; back to `liveCoalesceMs` at the first delivery that carries at most one.
   * Default 12: under a flood each reader is written to at most ~80 times a second per stream,
   * each write carrying more. At least `liveCoalesceMs`.
   */
  liveCoalesceMaxMs?: number;
  /** Refuse requests (503) while the event loop lags more than this, ms. */
  maxEventLoopLagMs?: number;
  /** `Access-Control-Allow-Origin`. Default `*`. */
  corsOrigin?: string;
  /** Byte budget for cached catch-up read bodies. Default 32 MiB; 0 turns it off. */
  readCacheBytes?: number;
  /** Wall clock (ms), for TTLs and cursors. Default `Date.now`. */
  now?: () => number;
  /** Timers (long-poll, SSE, lag sampling). Default the system clock. */
  clock?: Clock;
  random?: RandomSource;
  /** The storage engine (`Engine.open`); default a fresh memory engine. */
  engine?: Engine;
  /** @deprecated The old name of `engine`. */
  persistence?: Engine;
  logger?: HandlerLogger;
}
