import { constants, watch } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  describeFileError,
  describeValue,
  expectOptions,
  invalidArgument,
  TowerlineError,
} from '@towerline/core';
import type { ConfigSource } from './provider-options.js';

export interface FileSourceOptions {
  /** Quiet time after the last change before reading, ms. Default 50. */
  debounceMs?: number;
  /** Times to re-read when the files change while being read. Default 3. */
  consistencyRetries?: number;
  /** The largest file read, bytes; a larger one is an error, not a read. Default 16 MiB. */
  maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
// O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
const FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Reads a regular file of at most `maxBytes`; anything else throws a coded Error. */
async function readText(path: string, maxBytes: number): Promise<string> {
  const handle = await open(path, FLAGS);
  try {
    const stats = await handle.stat();
    const refuse = (code: string, why: string) => Object.assign(new Error(why), { code });
    if (stats.isDirectory()) throw refuse('EISDIR', 'is a directory');
    if (!stats.isFile()) throw refuse('ENOTREG', 'not a regular file');
    if (stats.size > maxBytes) throw refuse('EFBIG', 'too large');
    const bytes = await handle.readFile();
    if (bytes.length > maxBytes) throw refuse('EFBIG', 'too large');
    return bytes.toString('utf8');
  } finally {
    await handle.close();
  }
}

function fileProblem(error: unknown, maxBytes: number): string {
  const code = (error as { code?: string })?.code;
  if (code === 'ENOTREG') return 'is not a regular file (a FIFO, socket or device)';
  if (code === 'EFBIG') return `is larger than the ${maxBytes}-byte limit (maxBytes)`;
  return describeFileError(error);
}

type Contents<F> = F extends string ? string : { [K in keyof F]: string };

async function readAll(
  paths: ReadonlyArray<readonly [string, string]>,
  maxBytes: number,
): Promise<Record<string, string>> {
  const entries = await Promise.all(
    paths.map(async ([name, path]) => {
      try {
        return [name, await readText(path, maxBytes)] as const;
      } catch (error) {
        const code = (error as { code?: string })?.code;
        throw new TowerlineError('ERR_CONFIG_INVALID', `${path} ${fileProblem(error, maxBytes)}`, {
          cause: code ? Object.assign(new Error(code), { code }) : error,
          parameter: name,
        });
      }
    }),
  );
  return Object.fromEntries(entries);
}

const same = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).every((k) => a[k] === b[k]);

/**
 * Reads every file twice and keeps the result only when both reads agree, so that a cert and a
 * key written one after the other are never paired across a rotation.
 */
async function readConsistent(
  paths: ReadonlyArray<readonly [string, string]>,
  retries: number,
  maxBytes: number,
): Promise<Record<string, string>> {
  let first = await readAll(paths, maxBytes);
  for (let i = 0; i < retries; i++) {
    const second = await readAll(paths, maxBytes);
    if (same(first, second)) return first;
    first = second;
  }
  return first;
}

/**
 * A config source that watches files. It watches their directories, so it survives in-place
 * writes, write-to-temp-then-rename and the Kubernetes `..data` symlink swap; changes are
 * debounced; several files (a cert and its key) are read as one consistent snapshot; a value is
 * pushed only when some content changed. Half-written input reaches `parse`/`validate` like any
 * other and is refused there; the next change event brings the complete file. A read error ends
 * the stream and the provider rebuilds it with backoff.
 *
 * `files` is one path (the value is its text) or a map of names to paths (the value maps the
 * same names to texts).
 *
 * @example
 * ```ts
 * const tls = new ConfigProvider({
 *   source: fileSource({ cert: '/etc/tls/tls.crt', key: '/etc/tls/tls.key' }),
 *   parse: ({ cert, key }) => loadTlsConfigSync({ cert, key }),
 * });
 * ```
 */
export function fileSource<F extends string | Record<string, string>>(
  files: F,
  options: FileSourceOptions = {},
): Required<ConfigSource<Contents<F>>> & { load: () => Promise<Contents<F>>; paths: string[] } {
  if (typeof files !== 'string') expectOptions(files, false, 'files');
  expectOptions(options, true);
  const single = typeof files === 'string';
  const named: Array<readonly [string, string]> = single
    ? [['file', resolve(files)]]
    : Object.entries(files as Record<string, string>).map(([k, p]) => [k, resolve(p)] as const);
  if (named.length === 0) invalidArgument('files', 'expected at least one path');
  for (const [name, path] of named) {
    if (typeof path !== 'string' || path === '')
      invalidArgument(`files.${name}`, 'expected a path');
  }
  const { debounceMs = 50, consistencyRetries = 3, maxBytes = DEFAULT_MAX_BYTES } = options;
  if (typeof debounceMs !== 'number' || !(debounceMs >= 0))
    invalidArgument('debounceMs', `expected ms >= 0, got ${describeValue(debounceMs)}`);
  if (!(Number.isSafeInteger(maxBytes) && maxBytes > 0))
    invalidArgument('maxBytes', 'expected a positive whole number of bytes');
  const shape = (contents: Record<string, string>) =>
    (single ? contents.file : contents) as Contents<F>;
  const load = async () => shape(await readConsistent(named, consistencyRetries, maxBytes));

  async function* stream(signal: AbortSignal): AsyncGenerator<Contents<F>> {
    let dirty = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    let debounce: ReturnType<typeof setTimeout> | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onChange = () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        dirty = true;
        poke();
      }, debounceMs);
    };
    const watchers = [...new Set(named.map(([, p]) => dirname(p)))].map((dir) => {
      const w = watch(dir, { persistent: false }, onChange);
      w.on('error', (error) => {
        failure = error;
        poke();
      });
      return w;
    });
    const onAbort = () => poke();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      let last = await readConsistent(named, consistencyRetries, maxBytes);
      yield shape(last);
      while (!signal.aborted) {
        if (!dirty && failure === undefined) {
          await new Promise<void>((r) => {
            wake = r;
          });
          continue;
        }
        if (failure !== undefined) throw failure;
        dirty = false;
        const next = await readConsistent(named, consistencyRetries, maxBytes);
        if (same(last, next)) continue;
        last = next;
        yield shape(next);
      }
    } finally {
      clearTimeout(debounce);
      signal.removeEventListener('abort', onAbort);
      for (const w of watchers) w.close();
    }
  }

  return { stream, load, paths: named.map(([, p]) => p) };
}
