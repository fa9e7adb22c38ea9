/**
 * The latest writes of the log, kept in memory: a batch is encoded straight into a window and
 * written from it, and readers of the newest data (live tails) are served from it without a
 * read. Two windows are kept; a batch larger than a window gets a buffer of its own, not kept.
 */

export interface Window {
  seg: number;
  /** File offset of `buf[0]`. */
  start: number;
  /** Bytes of `buf` written and durable. */
  used: number;
  buf: Buffer;
}

export class WriteWindows {
  readonly #windows: Window[] = [];

  constructor(private readonly windowBytes: number) {}

  /** A window with room for `size` bytes at `offset` of segment `seg` (the head's end). */
  take(seg: number, offset: number, size: number): Window {
    const last = this.#windows.at(-1);
    if (
      last &&
      last.seg === seg &&
      last.start + last.used === offset &&
      last.buf.length - last.used >= size
    )
      return last;
    const win: Window = {
      seg,
      start: offset,
      used: 0,
      buf: Buffer.allocUnsafeSlow(Math.max(this.windowBytes, size)),
    };
    if (size > this.windowBytes) return win;
    this.#windows.push(win);
    if (this.#windows.length > 2) this.#windows.shift();
    return win;
  }

  /** `len` bytes at `off` of segment `seg`, if they are in a window (written and durable). */
  find(seg: number, off: number, len: number): Buffer | undefined {
    for (let w = this.#windows.length - 1; w >= 0; w--) {
      const win = this.#windows[w]!;
      if (win.seg === seg && off >= win.start && off + len <= win.start + win.used) {
        const at = off - win.start;
        return win.buf.subarray(at, at + len);
      }
    }
    return undefined;
  }

  /** Written bytes of the windows (their unwritten rest is allocated but never touched). */
  get memory(): number {
    let n = 0;
    for (const w of this.#windows) n += w.used;
    return n;
  }
}
