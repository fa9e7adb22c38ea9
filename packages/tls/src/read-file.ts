import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { describeFileError, TowerlineError } from '@towerline/core';
import { displayPath, formatBytes, invalid } from './pem.js';

// O_NONBLOCK: opening a FIFO must not wait for a writer (a stall); fstat then refuses it.
const FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

function checkStats(stats: Stats, name: string, maxBytes: number): void {
  if (stats.isDirectory()) throw invalid(`${name} is a directory, not a file`);
  if (!stats.isFile()) throw invalid(`${name} is not a regular file (a FIFO, socket or device)`);
  if (stats.size > maxBytes) {
    throw invalid(
      `${name} is ${formatBytes(stats.size)}; the limit is ${formatBytes(maxBytes)} (is it the right file?)`,
    );
  }
}

const grew = (name: string, maxBytes: number) =>
  invalid(`${name} grew past ${formatBytes(maxBytes)} while it was read`);

function readError(error: unknown, name: string): Error {
  if (error instanceof TowerlineError) return error;
  // Only the system code travels: an fs error's message repeats the path, shown or not.
  const code = (error as { code?: string })?.code;
  return invalid(
    `${name} ${describeFileError(error)}`,
    code ? Object.assign(new Error(code), { code }) : undefined,
  );
}

/**
 * Reads a PEM file: a regular file no larger than `maxBytes`, opened without blocking. The
 * message names the file by {@link displayPath}, so a key passed where a path belongs is not
 * echoed.
 */
export async function readPemFile(
  path: string,
  what: string,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<{ text: string; name: string }> {
  const name = `${what} ${displayPath(path)}`;
  try {
    signal?.throwIfAborted();
    const handle = await open(path, FLAGS);
    try {
      checkStats(await handle.stat(), name, maxBytes);
      const bytes = await handle.readFile({ signal });
      if (bytes.length > maxBytes) throw grew(name, maxBytes);
      return { text: bytes.toString('utf8'), name };
    } finally {
      await handle.close();
    }
  } catch (error) {
    // An abort is the caller's, not the file's: it rejects with the signal's reason.
    if (signal?.aborted) throw signal.reason;
    throw readError(error, name);
  }
}

/** {@link readPemFile}, synchronously. */
export function readPemFileSync(
  path: string,
  what: string,
  maxBytes: number,
): { text: string; name: string } {
  const name = `${what} ${displayPath(path)}`;
  try {
    const fd = openSync(path, FLAGS);
    try {
      checkStats(fstatSync(fd), name, maxBytes);
      const bytes = readFileSync(fd);
      if (bytes.length > maxBytes) throw grew(name, maxBytes);
      return { text: bytes.toString('utf8'), name };
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw readError(error, name);
  }
}
