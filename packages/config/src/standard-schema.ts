import { type Secrets, scrub, secretsOf } from './scrub.js';

/**
 * The Standard Schema interface (standardschema.dev, v1), declared here so that
 * `ConfigProvider` takes a schema from zod (3.24+), valibot (1.0+), ArkType or any other
 * implementer without depending on one: the spec asks implementers' users to copy these types.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': StandardSchemaProps<Input, Output>;
}

export interface StandardSchemaProps<Input = unknown, Output = Input> {
  readonly version: 1;
  readonly vendor: string;
  readonly validate: (
    value: unknown,
  ) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>;
  readonly types?: { readonly input: Input; readonly output: Output } | undefined;
}

export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardSchemaIssue> };

export interface StandardSchemaIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** `a.b[0].c` for an issue path. */
export function formatIssuePath(path: StandardSchemaIssue['path']): string {
  let out = '';
  for (const segment of path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

function valueAt(value: unknown, path: StandardSchemaIssue['path']): unknown {
  let node = value;
  for (const segment of path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/**
 * One problem line per issue: `path: message`. Some libraries quote the received value in their
 * messages (valibot: `received "hunter2"`); a string value found at the issue's path is masked,
 * so a secret that fails validation is not printed.
 */
export function schemaProblems(
  issues: ReadonlyArray<StandardSchemaIssue>,
  input: unknown,
  secrets: Secrets = secretsOf(input),
): string[] {
  return issues.map((issue) => {
    let message = scrub(String(issue.message), secrets);
    const value = valueAt(input, issue.path);
    if (typeof value === 'string' && value.length > 0) {
      message = message.split(JSON.stringify(value)).join('(value not shown)');
      if (value.length >= 4) message = message.split(value).join('(value not shown)');
    }
    // A message quoting the last key of its path is about that key (an unknown key, refused by
    // a strict object): the key may be a secret pasted in the wrong place, so it is not shown.
    const last = issue.path?.at(-1);
    const key = typeof last === 'object' && last !== null ? last.key : last;
    const original = String(issue.message);
    const aboutKey =
      typeof key === 'string' && ['"', "'", '`'].some((q) => original.includes(`${q}${key}${q}`));
    const path = aboutKey
      ? formatIssuePath([...(issue.path ?? []).slice(0, -1), `(a key of ${key.length} characters)`])
      : formatIssuePath(issue.path);
    return path === '' ? message : `${path}: ${message}`;
  });
}
