import { invalidArgument, TowerlineError } from '@towerline/core';
import { scrub, secretsOf } from './scrub.js';

/** 1-based line and column of a character offset in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  if (typeof text !== 'string') invalidArgument('text', 'expected a string');
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/** Where a parser says it failed: its `line`/`column` fields, or V8's "at position N". */
function positionOf(
  error: { line?: unknown; column?: unknown; message?: unknown },
  source: unknown,
): { line: number; column: number } | undefined {
  if (typeof error.line === 'number' && error.line > 0) {
    return { line: error.line, column: typeof error.column === 'number' ? error.column : 0 };
  }
  const message = String(error.message ?? '');
  const at = message.indexOf(' at position ');
  if (at !== -1 && typeof source === 'string') {
    const offset = Number.parseInt(message.slice(at + 13), 10);
    if (Number.isSafeInteger(offset)) return lineColumn(source, offset);
  }
  return undefined;
}

/**
 * A parse failure described by structure only: what the parser expected and where (line and
 * column), never the source line. Parsers print the offending line in their messages (smol-toml
 * and yaml in a code frame below the first line, V8's `JSON.parse` inside it: `Unexpected
 * token 'h', "…hunter2}" is not valid JSON`), and a config line may hold a password. A
 * `TowerlineError` is trusted as it is: its messages never quote input.
 *
 * @example
 * ```ts
 * try { parseToml(text) } catch (e) { throw new Error(`${path}: ${describeParseError(e, text)}`) }
 * // → "/etc/app.toml: each key-value declaration must be followed by an end-of-line (line 2, column 25)"
 * ```
 */
export function describeParseError(error: unknown, source?: unknown): string {
  if (error instanceof TowerlineError) return error.message;
  const e = (typeof error === 'object' && error !== null ? error : { message: error }) as {
    name?: unknown;
    message?: unknown;
    line?: unknown;
    column?: unknown;
  };
  let first = String(e.message ?? '').split('\n')[0]!;
  // V8's JSON messages quote a slice of the input after the token.
  if (first.startsWith('Unexpected token') || first.includes(' is not valid JSON')) {
    first = 'unexpected token';
  }
  for (const cut of [' in JSON at position ', ' at position ']) {
    const i = first.indexOf(cut);
    if (i !== -1) first = first.slice(0, i);
  }
  first = first.replace(/^Invalid TOML document: /, '');
  if (first.length > 160) first = `${first.slice(0, 160)}…`;
  if (first === '') first = typeof e.name === 'string' && e.name ? e.name : 'parse error';
  // A parser, a user's `parse` above all, may quote its input (`Cannot convert x to a BigInt`).
  if (source !== undefined) first = scrub(first, secretsOf(source));
  const at = positionOf(e, source);
  return at ? `${first} (line ${at.line}${at.column > 0 ? `, column ${at.column}` : ''})` : first;
}

/** The original error reduced to what {@link describeParseError} shows, for a `cause`. */
export function parseErrorCause(error: unknown, source?: unknown): unknown {
  if (error instanceof TowerlineError) return error;
  const safe = new Error(describeParseError(error, source));
  const name = (error as { name?: unknown })?.name;
  if (typeof name === 'string') safe.name = name;
  return safe;
}
