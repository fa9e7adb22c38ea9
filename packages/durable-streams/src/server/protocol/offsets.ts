/**
 * Offsets and cursors. An offset is `<segment>_<position>`, both zero-padded to 16 digits (the
 * reference server's shape; the segment part is always 0 here), so offsets sort
 * lexicographically and never collide with the sentinels `-1` and `now`. For byte streams a
 * position is a byte count; for JSON streams a message count.
 */

const SEGMENT = '0000000000000000';
const OFFSET_RE = /^\d{16}_(\d{16})$/;
export const UINT = /^(0|[1-9]\d*)$/;

export const formatOffset = (position: number): string =>
  `${SEGMENT}_${String(position).padStart(16, '0')}`;

/** Parses a client offset: `-1` → 0, `now` → 'now', a minted offset → its position. */
export function parseOffset(value: string): number | 'now' | undefined {
  if (value === '-1') return 0;
  if (value === 'now') return 'now';
  const match = OFFSET_RE.exec(value);
  if (!match) return undefined;
  const n = Number(match[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses a whole non-negative number, or undefined. */
export function parseUint(text: string): number | undefined {
  if (!UINT.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

const CURSOR_EPOCH = Date.UTC(2024, 9, 9);
const CURSOR_INTERVAL_MS = 20_000;

/**
 * The next `Stream-Cursor`: the current 20-second interval since a fixed epoch, or — when the
 * client already holds that interval or a later one — a jump past it, so that a CDN never
 * answers a live read with the response it cached for the previous one.
 */
export function nextCursor(client: string | null, now: number, random: () => number): string {
  const interval = Math.floor((now - CURSOR_EPOCH) / CURSOR_INTERVAL_MS);
  const theirs = client !== null && UINT.test(client) ? Number(client) : -1;
  if (theirs >= interval) return String(theirs + 1 + Math.floor(random() * 180));
  return String(interval);
}
