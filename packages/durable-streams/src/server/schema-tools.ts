/**
 * Walks a valibot schema as data: the leaves (key, default, doc, env variable), unknown keys
 * with the nearest valid one, env strings coerced to each leaf's type, and messages written
 * from an issue's structure (key, source, expected shape, kind of value) that never quote the
 * value: valibot's own messages do (`received "hunter2"`).
 */
import type * as v from 'valibot';
import { nearest, showName } from './suggest.js';

/** The parts of a valibot schema or action this module reads (all public properties). */
interface Node {
  type: string;
  kind?: string;
  entries?: Record<string, Node>;
  wrapped?: Node;
  default?: unknown;
  pipe?: Node[];
  item?: Node;
  options?: readonly unknown[];
  requirement?: unknown;
  description?: string;
  message?: unknown;
}

export type LeafKind = 'string' | 'number' | 'boolean' | 'list' | 'choice';

export interface Leaf {
  path: string[];
  key: string;
  env: string;
  kind: LeafKind;
  node: Node;
  doc: string;
  default: unknown;
}

const asNode = (schema: unknown) => schema as Node;

/** The schema under `optional` and its pipe's first element (the type). */
function base(node: Node): Node {
  const inner = node.type === 'optional' ? node.wrapped! : node;
  return inner.pipe ? inner.pipe[0]! : inner;
}

const actions = (node: Node): Node[] => {
  const inner = node.type === 'optional' ? node.wrapped! : node;
  return inner.pipe ? inner.pipe.slice(1) : [];
};

/** The entries of a table schema, or undefined for a leaf. */
export function entriesOf(node: Node): Record<string, Node> | undefined {
  const b = base(node);
  return b.type === 'strict_object' || b.type === 'object' ? b.entries : undefined;
}

export const envName = (path: readonly string[]) =>
  `DS_${path.map((p) => p.toUpperCase()).join('__')}`;

function kindOf(node: Node): LeafKind {
  const b = base(node);
  if (b.type === 'number') return 'number';
  if (b.type === 'boolean') return 'boolean';
  if (b.type === 'array') return 'list';
  if (b.type === 'picklist') return 'choice';
  return 'string';
}

/** Every leaf of a schema, in declaration order. */
export function leavesOf(schema: unknown, prefix: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  for (const [key, node] of Object.entries(entriesOf(asNode(schema)) ?? {})) {
    const path = [...prefix, key];
    if (entriesOf(node)) {
      out.push(...leavesOf(node, path));
      continue;
    }
    const doc = actions(node).find((a) => a.type === 'description')?.description ?? '';
    out.push({
      path,
      key: path.join('.'),
      env: envName(path),
      kind: kindOf(node),
      node,
      doc,
      default: node.type === 'optional' ? node.default : undefined,
    });
  }
  return out;
}

/** The schema at a path (through tables and list items), if any. */
export function nodeAt(schema: unknown, path: readonly (string | number)[]): Node | undefined {
  let node: Node | undefined = asNode(schema);
  for (const key of path) {
    if (node === undefined) return undefined;
    const b = base(node);
    node = typeof key === 'number' ? b.item : entriesOf(node)?.[key];
  }
  return node;
}

const quoteAll = (values: readonly unknown[]) => values.map((x) => JSON.stringify(x)).join(', ');

/** What a leaf accepts, in words, from its schema. */
export function expectedOf(node: Node): string {
  const b = base(node);
  const acts = actions(node);
  const req = (t: string) => acts.find((a) => a.type === t)?.requirement as number | undefined;
  switch (b.type) {
    case 'number': {
      const whole = acts.some((a) => a.type === 'integer');
      const [min, max] = [req('min_value'), req('max_value')];
      const noun = whole ? 'a whole number' : 'a number';
      if (min !== undefined && max !== undefined && max < Number.MAX_SAFE_INTEGER)
        return `${noun} from ${min} to ${max}`;
      if (min !== undefined) return `${noun} >= ${min}${whole ? ' (at most 2^53 - 1)' : ''}`;
      return noun;
    }
    case 'boolean':
      return 'true or false';
    case 'picklist':
      return `one of ${quoteAll(b.options ?? [])}`;
    case 'array': {
      const item = b.item!;
      return item.type === 'picklist'
        ? `a list of ${quoteAll(item.options ?? [])}`
        : `a list of ${expectedOf(item).replace(/^an? /, '')}s`;
    }
    case 'strict_object':
    case 'object':
      return 'a table';
    default: {
      const check = acts.find((a) => a.type === 'check');
      return typeof check?.message === 'string' ? check.message : 'a string';
    }
  }
}

/** The kind of a value, never the value. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a table';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'a number that is not finite';
    if (!Number.isInteger(value)) return 'a fractional number';
    if (!Number.isSafeInteger(value)) return 'a number too large to be exact';
    if (value < 0) return 'a negative number';
    return value === 0 ? 'zero' : 'a number';
  }
  if (typeof value === 'string') return value === '' ? 'an empty string' : 'a string';
  if (typeof value === 'boolean') return 'true/false';
  if (value instanceof Date) return 'a date';
  return typeof value;
}

/**
 * An env string as the leaf's type: booleans and numbers when they read as one, lists as JSON
 * (`["a","b"]`) or comma-separated. What does not read as the type stays a string, for the
 * schema to refuse with the expected shape.
 */
export function coerceEnv(raw: string, kind: LeafKind): unknown {
  const t = raw.trim();
  if (kind === 'boolean') {
    const lower = t.toLowerCase();
    return lower === 'true' ? true : lower === 'false' ? false : raw;
  }
  if (kind === 'number') return t !== '' && Number.isFinite(Number(t)) ? Number(t) : raw;
  if (kind === 'list') {
    if (t.startsWith('[')) {
      try {
        return JSON.parse(t) as unknown;
      } catch {
        return raw;
      }
    }
    return t === '' ? [] : t.split(',').map((s) => s.trim());
  }
  return raw;
}

export interface UnknownKey {
  path: string[];
  /** The valid key (full dotted path) it is probably a typo of. */
  suggestion: string | undefined;
  /** Keys valid where it stands. */
  valid: string[];
}

/** Keys in `tree` that the schema does not declare, each with the nearest valid key. */
export function unknownKeys(
  schema: unknown,
  tree: unknown,
  allLeaves: readonly Leaf[],
  prefix: string[] = [],
): UnknownKey[] {
  const entries = entriesOf(asNode(schema));
  if (!entries || tree === null || typeof tree !== 'object' || Array.isArray(tree)) return [];
  const out: UnknownKey[] = [];
  for (const [key, value] of Object.entries(tree)) {
    const node = entries[key];
    if (node) {
      if (entriesOf(node)) out.push(...unknownKeys(node, value, allLeaves, [...prefix, key]));
      continue;
    }
    const here = Object.keys(entries);
    const sibling = nearest(key, here);
    // The same key in another table ("stream_base_path" under [server]) is a likelier fix.
    const elsewhere = allLeaves.find((l) => l.path.at(-1) === key)?.key;
    out.push({
      path: [...prefix, key],
      suggestion: sibling ? [...prefix, sibling].join('.') : elsewhere,
      valid: here,
    });
  }
  return out;
}

/**
 * Paths where `tree` has a list but the schema a table: valibot's object schemas take an array
 * for an object (`limits = []` would pass as `{}`).
 */
export function listsForTables(schema: unknown, tree: unknown, prefix: string[] = []): string[] {
  const entries = entriesOf(asNode(schema));
  if (!entries || !isPlainTree(tree)) return [];
  const out: string[] = [];
  for (const [key, value] of Object.entries(tree)) {
    const node = entries[key];
    if (!node || !entriesOf(node)) continue;
    if (Array.isArray(value)) out.push([...prefix, key].join('.'));
    else out.push(...listsForTables(node, value, [...prefix, key]));
  }
  return out;
}

const isPlainTree = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

/** `did you mean …?` or the valid keys, for an unknown key's message. */
export function unknownKeyHint(u: UnknownKey, asEnv = false): string {
  if (u.suggestion) {
    const shown = asEnv ? envName(u.suggestion.split('.')) : u.suggestion;
    return `did you mean ${shown}?`;
  }
  return `valid here: ${u.valid.join(', ')}`;
}

/** The dotted path of a valibot issue (`transport.http.versions[0]`) and its segments. */
export function issuePath(issue: v.BaseIssue<unknown>): {
  text: string;
  keys: (string | number)[];
} {
  const keys = (issue.path ?? []).map((p) => p.key as string | number);
  let text = '';
  for (const k of keys)
    text += typeof k === 'number' ? `[${k}]` : text === '' ? showName(k) : `.${showName(k)}`;
  return { text, keys };
}

/** True for valibot's "unknown key in a strict object" issue, reported separately. */
export const isUnknownKeyIssue = (issue: v.BaseIssue<unknown>) =>
  issue.type === 'strict_object' && issue.expected === 'never';

/** `expected …, got …` for an issue, from the schema at its path. */
export function expectation(schema: unknown, issue: v.BaseIssue<unknown>): string {
  const { keys } = issuePath(issue);
  const node = nodeAt(schema, keys);
  let expected = node ? expectedOf(node) : 'a valid value';
  // A value of the wrong type fails before any rule: name the type first.
  if (node && issue.kind === 'schema' && base(node).type === 'string' && expected !== 'a string')
    expected = `a string (${expected})`;
  let got = describeValue(issue.input);
  if (issue.type === 'max_value') got = 'a number above the maximum';
  else if (issue.type === 'min_value' && got === 'a number') got = 'a number below the minimum';
  const hint =
    typeof issue.input === 'number' && base(node ?? { type: '' }).type === 'picklist'
      ? ' (quote it: it is a string)'
      : '';
  return `expected ${expected}, got ${got}${hint}`;
}
