/**
 * JSON bodies of a JSON stream: a top-level array is one message per element, anything else
 * one message. Messages are stored as the client sent them (whitespace around them trimmed):
 * one scan finds the element boundaries and the nesting depth, `JSON.parse` checks the
 * grammar, and nothing is serialised again — so a body parses or is refused with a 400, and
 * deep nesting is refused before it can exhaust a stack.
 */
import { isUtf8 } from 'node:buffer';
import type { Payload } from '../engine/codec.js';
import { type Problem, problem } from './problem.js';

/** serde_json's default recursion limit, which the Rust reference server inherits. */
export const MAX_JSON_DEPTH = 128;

const COMMA = Buffer.from(',');
const EMPTY: Payload = { chunks: [], bytes: 0, count: 0, table: undefined };

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

interface Scan {
  /** [start, end) of each top-level element, when the body is an array. */
  elements: number[] | undefined;
  /** [start, end) of the value, whitespace trimmed. */
  first: number;
  last: number;
  depth: number;
}

function scan(body: Buffer): Scan {
  const n = body.length;
  let first = 0;
  while (first < n && isSpace(body[first]!)) first++;
  const array = body[first] === 0x5b;
  const elements: number[] | undefined = array ? [] : undefined;
  let depth = 0;
  let max = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  let end = first;
  for (let i = first; i < n; i++) {
    const c = body[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
      end = i + 1;
      continue;
    }
    if (isSpace(c)) continue;
    if (elements && depth === 1 && (c === 0x2c || c === 0x5d)) {
      if (start >= 0) elements.push(start, end);
      start = -1;
    } else if (elements && depth === 1 && start < 0) start = i;
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) max = depth;
      if (max > MAX_JSON_DEPTH) break;
    } else if (c === 0x5d || c === 0x7d) depth--;
    end = i + 1;
  }
  return { elements, first, last: end, depth: max };
}

/** The messages of a JSON body, or the problem with it. */
export function jsonPayload(body: Buffer, creating: boolean): Payload | Problem {
  if (!isUtf8(body)) return problem(400, 'a JSON body must be UTF-8');
  const s = scan(body);
  if (s.depth > MAX_JSON_DEPTH)
    return problem(400, `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    JSON.parse(body.toString('utf8'));
  } catch {
    return problem(400, 'invalid JSON');
  }
  if (!s.elements) {
    const data = body.subarray(s.first, s.last);
    return { chunks: [data], bytes: data.length, count: 1, table: undefined };
  }
  const count = s.elements.length / 2;
  if (count === 0) return creating ? EMPTY : problem(400, 'an empty JSON array appends nothing');
  const chunks: Buffer[] = [];
  const table = new Uint32Array(count);
  let bytes = 0;
  for (let k = 0; k < count; k++) {
    if (k > 0) {
      chunks.push(COMMA);
      bytes++;
    }
    const part = body.subarray(s.elements[k * 2]!, s.elements[k * 2 + 1]!);
    chunks.push(part);
    bytes += part.length;
    table[k] = bytes;
  }
  return { chunks, bytes, count, table: count > 1 ? table : undefined };
}
