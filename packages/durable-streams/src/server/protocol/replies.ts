/**
 * The headers of the protocol's replies, as flat name/value lists (what `writeHead` takes
 * without building an object per response).
 */
import type { Stream } from '../engine/stream.js';
import type { CreateSpec } from '../engine/table.js';
import { formatOffset } from './offsets.js';
import type { HeaderList } from './problem.js';

export const CATCH_UP_CACHE = 'public, max-age=60, stale-while-revalidate=300';

export function tailHeaders(tail: number, closed: boolean): HeaderList {
  return closed
    ? ['stream-next-offset', formatOffset(tail), 'stream-closed', 'true']
    : ['stream-next-offset', formatOffset(tail)];
}

/** Content type, tail and expiry of a stream (PUT and HEAD), as its checked state has it. */
export function streamHeaders(s: Stream, visible = false): HeaderList {
  const h = [
    'content-type',
    s.contentType,
    ...tailHeaders(visible ? s.visibleTail : s.tail, visible ? s.visibleClosed : s.closed),
  ];
  if (s.config.ttlSeconds !== undefined) h.push('stream-ttl', String(s.config.ttlSeconds));
  if (s.config.expiresAtText !== undefined) h.push('stream-expires-at', s.config.expiresAtText);
  return h;
}

/** The headers of a 201: the stream as its create makes it. */
export function createdHeaders(spec: CreateSpec): HeaderList {
  const { config, fork, payload, closed } = spec;
  const h = [
    'content-type',
    config.contentType,
    ...tailHeaders((fork?.position ?? 0) + payload.count, closed),
  ];
  if (config.ttlSeconds !== undefined) h.push('stream-ttl', String(config.ttlSeconds));
  if (config.expiresAtText !== undefined) h.push('stream-expires-at', config.expiresAtText);
  return h;
}

/** The ETag of a range of a stream, unquoted: the store, the stream, the range. */
export const etagBase = (storeId: string, s: Stream, start: number, end: number): string =>
  `${storeId}${s.id.toString(36)}:${formatOffset(start)}:${formatOffset(end)}`;

/** Headers of a catch-up page ending at `end`; the ETag says whether it ends a closed stream. */
export function pageHeaders(
  s: Stream,
  end: number,
  base: string,
  cursor: string | undefined,
): { headers: HeaderList; etag: string } {
  const upToDate = end >= s.visibleTail;
  const closedNow = s.visibleClosed && upToDate;
  const etag = `"${base}${closedNow ? ':c' : ''}"`;
  const h = [
    'content-type',
    s.contentType,
    'stream-next-offset',
    formatOffset(end),
    'etag',
    etag,
    'cache-control',
    CATCH_UP_CACHE,
  ];
  if (upToDate) h.push('stream-up-to-date', 'true');
  if (closedNow) h.push('stream-closed', 'true');
  else if (cursor !== undefined) h.push('stream-cursor', cursor);
  return { headers: h, etag };
}

/** Headers of a read at the tail with nothing to return (`offset=now`, a long-poll timeout). */
export function tailReadHeaders(s: Stream, cursor: string | undefined): HeaderList {
  const h = tailHeaders(s.visibleTail, s.visibleClosed);
  h.push('stream-up-to-date', 'true');
  if (!s.visibleClosed && cursor !== undefined) h.push('stream-cursor', cursor);
  return h;
}
