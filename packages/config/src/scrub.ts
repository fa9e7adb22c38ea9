/**
 * Masking of configuration values in problem messages. A message may come from a schema
 * library, a user's `parse` or `validate`, or a parser, and any of them may quote what it got:
 * a value (perhaps after the schema trimmed or lower-cased it), a key that is really a secret
 * pasted in the wrong place, a slice of the source text. Every token of a message that is found
 * in the input is replaced, whatever said it.
 */

/** What a configuration held, as text: its string values and its keys. */
export interface Secrets {
  readonly texts: readonly string[];
  readonly keys: ReadonlySet<string>;
}

const MAX_NODES = 20_000;
/** Shorter tokens are words like `to`, `of`, `not`: masked only when quoted whole. */
const MIN_TOKEN = 4;
const HIDDEN = '(value not shown)';

/** The strings and keys of every value given (a source text is one string), bounded. */
export function secretsOf(...values: unknown[]): Secrets {
  const texts: string[] = [];
  // Compared lower-cased: a schema may have lower-cased the value it quotes.
  const keys = new Set<string>();
  const stack = [...values];
  const seen = new Set<object>();
  let nodes = 0;
  while (stack.length > 0 && nodes++ < MAX_NODES) {
    const v = stack.pop();
    if (typeof v === 'string') {
      if (v.length > 0) texts.push(v.toLowerCase());
    } else if (typeof v === 'object' && v !== null && !seen.has(v)) {
      seen.add(v);
      // Plain data only: a Buffer or a class instance is not walked (its getters may throw).
      const proto = Object.getPrototypeOf(v);
      if (Array.isArray(v)) stack.push(...v);
      else if (proto === Object.prototype || proto === null) {
        for (const [k, child] of Object.entries(v)) {
          keys.add(k);
          stack.push(child);
        }
      }
    }
  }
  return { texts, keys };
}

const found = (core: string, s: Secrets) => {
  const lower = core.toLowerCase();
  return s.texts.some((t) => t.includes(lower));
};

/**
 * `message` with every quoted string that is a key or occurs in a value, and every bare token
 * of four characters or more that occurs in a value, replaced by `(value not shown)`. (A bare
 * key is left: messages name the settings they are about.)
 */
export function scrub(message: string, secrets: Secrets): string {
  if (secrets.texts.length === 0 && secrets.keys.size === 0) return message;
  // Quoted whole, any length: `"x"`, `'x'`, `` `x` ``.
  const out = message.replace(/(["'`])([^"'`\n]*)\1/g, (all, q: string, inner: string) =>
    inner.length > 0 && (secrets.keys.has(inner) || found(inner, secrets))
      ? `${q}${HIDDEN}${q}`
      : all,
  );
  // Bare tokens, without the punctuation around them (and never inside a mask made already).
  const bare = (token: string) => {
    const m = /^([^\p{L}\p{N}]*)(.*?)([^\p{L}\p{N}]*)$/su.exec(token)!;
    const core = m[2]!;
    if (core.length >= MIN_TOKEN && found(core, secrets)) return `${m[1]}${HIDDEN}${m[3]}`;
    // The whole token too (a value that is all punctuation, a regular expression's source).
    if (token.length >= MIN_TOKEN && found(token, secrets)) return HIDDEN;
    return token;
  };
  return out
    .split(HIDDEN)
    .map((segment) => segment.replace(/[^\s"'`]+/g, bare))
    .join(HIDDEN);
}
