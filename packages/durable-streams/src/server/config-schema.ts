/**
 * The Durable Streams server's configuration, declared once. Everything else derives from this
 * schema: the `ServerConfig` type, the built-in defaults, the `DS_*` variable of every key, the
 * `--help` listing, unknown-key detection ("did you mean …?") and the type and range checks.
 *
 * Adding a key is one line in the section it belongs to, e.g. in `limits`:
 *
 *     max_live_connections: int(10_000, { min: 1 }, 'live readers (long-poll + SSE) at once'),
 *
 * which makes `[limits] max_live_connections` in TOML, `DS_LIMITS__MAX_LIVE_CONNECTIONS` in the
 * environment, a default of 10,000, a refusal of anything but a whole number >= 1, and a line in
 * `--help`. A new table is `name: section({ … })`.
 *
 * Why valibot (over zod and TypeBox): a schema is plain data whose parts (`entries`, `wrapped`,
 * `default`, `pipe`) are public, so the env mapping and the help text are a walk over it; it
 * has no dependencies, ships ESM and CJS, implements Standard Schema like zod, and only what is
 * used is bundled. Measured with esbuild (minified, gzipped): a probe schema of the same shape
 * is 1.9 KB with valibot, 6.6 KB with `zod/mini` and 92 KB with `zod`; this whole schema with
 * the valibot it uses is 3.3 KB. Installed, valibot is 1.9 MB, zod 8.2 MB. TypeBox
 * would add JSON Schema, which nothing here needs. valibot's own messages quote received values, so
 * `schema-tools.ts` writes every message from the structure instead.
 */
import * as v from 'valibot';
import { STORAGE_MODES } from './engine/engine.js';

type Doc = string;

/** A whole number in [min, max] (max defaults to the largest safe integer). */
export const int = (fallback: number, range: { min: number; max?: number }, doc: Doc) =>
  v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(range.min),
      v.maxValue(range.max ?? Number.MAX_SAFE_INTEGER),
      v.description(doc),
    ),
    fallback,
  );

export const flag = (fallback: boolean, doc: Doc) =>
  v.optional(v.pipe(v.boolean(), v.description(doc)), fallback);

export const oneOf = <const T extends readonly string[]>(
  values: T,
  fallback: T[number],
  doc: Doc,
) => v.optional(v.pipe(v.picklist(values), v.description(doc)), fallback);

/** What a string must be, for `text`: a test and, in words, what it accepts. */
export interface Rule {
  test: (value: string) => boolean;
  expected: string;
}

/** A string, optionally held to a {@link Rule}. */
export const text = (fallback: string, doc: Doc, rule?: Rule) =>
  v.optional(
    v.pipe(
      v.string(),
      v.check((s) => rule === undefined || rule.test(s), rule?.expected ?? 'a string'),
      v.description(doc),
    ),
    fallback,
  );

/** A list of `values`. */
export const listOf = <const T extends readonly string[]>(
  values: T,
  fallback: NoInfer<T[number]>[],
  doc: Doc,
) => v.optional(v.pipe(v.array(v.picklist(values)), v.description(doc)), fallback);

/** A list of strings. */
export const strings = (fallback: string[], doc: Doc) =>
  v.optional(v.pipe(v.array(v.string()), v.description(doc)), fallback);

const isPathLike = (s: string) => {
  if (s.length === 0 || s.length > 4096) return false;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 32) return false;
  return true;
};

/** An optional file path: one line, no control characters. */
export const filePath = (doc: Doc) =>
  v.optional(
    v.pipe(
      v.string(),
      v.check(isPathLike, 'a file path (one line; PEM content belongs in the file, not here)'),
      v.description(doc),
    ),
  );

/** A table whose keys all have defaults: a missing table is `{}`; an unknown key is an error. */
export const section = <const E extends v.ObjectEntries>(entries: E) =>
  v.optional(v.strictObject(entries), {} as never);

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'off']);

/** RUST_LOG syntax: `level` or `target=level`, comma-separated. */
const rustLog: Rule = {
  expected: 'comma-separated trace|debug|info|warn|error|off, or target=level',
  test: (value) =>
    value.split(',').every((directive) => {
      const d = directive.trim();
      const eq = d.indexOf('=');
      const level = (eq === -1 ? d : d.slice(eq + 1)).toLowerCase();
      return LOG_LEVELS.has(level) && (eq === -1 || /^[A-Za-z0-9_:.-]+$/.test(d.slice(0, eq)));
    }),
};

const corsOrigin: Rule = {
  expected: '"*" or one origin such as https://app.example.com (no path)',
  test: (s) => s === '*' || /^https?:\/\/[A-Za-z0-9.[\]:-]+$/.test(s),
};

const pgUrl: Rule = {
  expected: 'empty, or a postgres:// or postgresql:// URL',
  test: (s) => s === '' || /^postgres(ql)?:\/\/[^\s]+$/.test(s),
};

const pgName: Rule = {
  expected: 'a PostgreSQL identifier: lowercase letters, digits and _, starting with a letter',
  test: (s) => /^[a-z_][a-z0-9_]{0,50}$/.test(s),
};

const directory: Rule = { expected: 'a directory path (one line)', test: isPathLike };

/** The server's configuration schema: see the top of this file for how to add a key. */
export const serverConfigSchema = v.strictObject({
  server: section({
    bind_address: text('0.0.0.0:4437', 'host:port to listen on (127.0.0.1:4437 keeps it local)'),
  }),
  limits: section({
    max_memory_bytes: int(104_857_600, { min: 1 }, 'bytes of stream data held, all streams'),
    max_stream_bytes: int(10_485_760, { min: 1 }, 'bytes one stream may hold'),
    max_live_connections: int(
      10_000,
      { min: 0 },
      'live readers (long-poll + SSE) at once; 0: no limit',
    ),
    catch_up_page_bytes: int(10_485_760, { min: 1 }, 'largest answer to one catch-up read, bytes'),
    max_event_loop_lag_ms: int(2_000, { min: 0 }, 'event-loop lag that answers 503; 0: off'),
  }),
  http: section({
    cors_origins: text('*', 'Access-Control-Allow-Origin: "*" or one origin', corsOrigin),
    // Checked by validateConfig: the seed puts a bad base path in [validate_config].
    stream_base_path: text('/v1/stream', 'where the protocol is mounted, starting with /'),
  }),
  storage: section({
    mode: oneOf(STORAGE_MODES, 'memory', 'storage backend'),
    data_dir: text('./data/streams', 'directory of the file and acid backends', directory),
    postgres_url: text(
      '',
      'PostgreSQL URL of the postgres backend (postgres://host:port/db)',
      pgUrl,
    ),
    postgres_schema: text('durable_streams', 'PostgreSQL schema of the postgres backend', pgName),
    on_corruption: oneOf(
      ['fail', 'truncate'],
      'fail',
      'a corrupt batch mid-log: refuse to start, or keep what precedes it',
    ),
  }),
  transport: section({
    mode: oneOf(['http', 'tls', 'mtls'], 'http', 'http, or TLS (mtls: clients show certificates)'),
    http: section({
      versions: listOf(['http1', 'http2', 'http3'], ['http1'], 'HTTP versions (http2 needs TLS)'),
    }),
    connection: section({
      long_poll_timeout_secs: int(30, { min: 1, max: 3_600 }, 'long-poll wait, seconds'),
      sse_reconnect_interval_secs: int(60, { min: 1, max: 86_400 }, 'SSE retry hint, seconds'),
    }),
    tls: section({
      cert_path: filePath('certificate chain, PEM (tls, mtls)'),
      key_path: filePath('private key, PEM (tls, mtls)'),
      client_ca_path: filePath('CA bundle for client certificates, PEM (mtls)'),
      min_version: oneOf(['1.2', '1.3'], '1.2', 'lowest TLS version'),
      max_version: oneOf(['1.2', '1.3'], '1.3', 'highest TLS version'),
      alpn_protocols: listOf(['http/1.1', 'h2'], ['http/1.1'], 'ALPN, matching the versions'),
    }),
  }),
  proxy: section({
    enabled: flag(false, 'trust forwarding headers from trusted_proxies'),
    forwarded_headers: oneOf(['none', 'x-forwarded', 'forwarded'], 'none', 'which headers'),
    trusted_proxies: strings([], 'proxy addresses or CIDRs'),
    identity: section({
      mode: oneOf(['none', 'header'], 'none', 'identity from a proxy header (mtls only)'),
      header_name: v.optional(v.pipe(v.string(), v.description('the identity header'))),
      require_tls: flag(true, 'believe the identity header only over TLS'),
    }),
  }),
  observability: section({
    rust_log: text('info', 'log level, RUST_LOG syntax', rustLog),
    request_log_level: oneOf(
      ['trace', 'debug', 'info', 'warn', 'error', 'off'],
      'info',
      'level of the one log line per request',
    ),
  }),
});

/** The loaded configuration: the schema's output. */
export type ServerConfig = v.InferOutput<typeof serverConfigSchema>;
/** What a file or the environment may set: every key optional. */
export type ServerConfigInput = v.InferInput<typeof serverConfigSchema>;
