/**
 * What the composition chaos tests share: settlement tracking (so "promises pending after the
 * run" is a number, not a hang), bounded waits, and a snapshot of the process's live handles
 * (so a test can prove it left no socket, timer or child process behind).
 */
import { isTowerlineError } from '@towerline/core';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A random integer in [lo, hi]. */
export const between = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** Counts calls that have not settled yet. */
export class Settlements {
  started = 0;
  settled = 0;

  get pending(): number {
    return this.started - this.settled;
  }

  /** Tracks `promise`'s settlement and returns it unchanged. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.started++;
    promise.then(
      () => this.settled++,
      () => this.settled++,
    );
    return promise;
  }

  /** Resolves once nothing is pending, or after `timeoutMs` (whichever first); bounded. */
  async drained(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (this.pending > 0 && performance.now() < deadline) await sleep(20);
    return this.pending;
  }
}

/** `promise`, or `undefined` after `ms`; the timer never outlives the race. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every 10 ms until it holds; throws `what` after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

/** Error tallies by a short label (`ERR_CONNECTION_LOST/mayHaveExecuted`, `ECONNRESET`, …). */
export class ErrorTally {
  readonly counts = new Map<string, number>();

  add(error: unknown): void {
    const label = labelOf(error);
    this.counts.set(label, (this.counts.get(label) ?? 0) + 1);
  }

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  toString(): string {
    if (this.counts.size === 0) return 'none';
    return [...this.counts].map(([k, v]) => `${k}×${v}`).join(', ');
  }
}

export function isAmbiguous(error: unknown): boolean {
  return (error as { mayHaveExecuted?: unknown } | undefined)?.mayHaveExecuted === true;
}

function labelOf(error: unknown): string {
  if (isTowerlineError(error)) {
    const cause = (error as { cause?: unknown }).cause;
    const inner = cause === undefined ? '' : ` <- ${shortLabel(cause)}`;
    return `${error.code}${error.mayHaveExecuted ? '/mayHaveExecuted' : ''}${inner}`;
  }
  return shortLabel(error);
}

function shortLabel(error: unknown): string {
  const e = error as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  if (e?.code !== undefined) return String(e.code);
  if (typeof e?.name === 'string' && e.name !== 'Error') return e.name;
  return typeof e?.message === 'string' ? e.message.slice(0, 60) : String(error);
}

/** Live handles by kind, for the kinds a test must not leave behind. */
export function liveHandles(): Record<string, number> {
  const kinds = ['TCPSocketWrap', 'TCPServerWrap', 'ProcessWrap', 'PipeWrap', 'Timeout'];
  const counts: Record<string, number> = Object.fromEntries(kinds.map((k) => [k, 0]));
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind in counts) counts[kind]!++;
  }
  return counts;
}

/**
 * Waits (bounded) until no more handles of each kind are alive than in `before`, and returns
 * the excess that remains (empty when nothing was left behind).
 */
export async function leftBehind(
  before: Record<string, number>,
  timeoutMs = 3_000,
): Promise<Record<string, number>> {
  const excess = () => {
    const now = liveHandles();
    const out: Record<string, number> = {};
    for (const [kind, n] of Object.entries(now)) {
      if (n > (before[kind] ?? 0)) out[kind] = n - (before[kind] ?? 0);
    }
    return out;
  };
  const deadline = performance.now() + timeoutMs;
  let left = excess();
  while (Object.keys(left).length > 0 && performance.now() < deadline) {
    await sleep(50);
    left = excess();
  }
  return left;
}

/** p50 and max of `values` (ms, rounded to 0.1). */
export function summary(values: number[]): { p50: number; max: number } {
  if (values.length === 0) return { p50: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { p50: r(sorted[Math.floor((sorted.length - 1) / 2)]!), max: r(sorted.at(-1)!) };
}
