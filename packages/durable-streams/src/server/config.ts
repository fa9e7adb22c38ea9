import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describeParseError } from '@towerline/config';
import { describeFileError, expectOptions } from '@towerline/core';
import { displayPath } from '@towerline/tls';
import { parse as parseToml } from 'smol-toml';
import * as v from 'valibot';
import { type ServerConfig, serverConfigSchema } from './config-schema.js';
import { readBounded } from './read-bounded.js';
import {
  coerceEnv,
  envName,
  expectation,
  issuePath,
  isUnknownKeyIssue,
  leavesOf,
  listsForTables,
  unknownKeyHint,
  unknownKeys,
} from './schema-tools.js';
import { type Locate, SOURCES } from './sources.js';
import { StartupError, startupError } from './startup-error.js';
import { nearest, showName } from './suggest.js';

export type { ServerConfig, ServerConfigInput } from './config-schema.js';
export { serverConfigSchema } from './config-schema.js';
export {
  STARTUP_CODES,
  StartupError,
  type StartupErrorCode,
  type StartupPhase,
  startupError,
} from './startup-error.js';

export type TransportMode = ServerConfig['transport']['mode'];
/** The HTTP versions served; `http3` parses but is refused by {@link validateConfig}. */
export type HttpVersion = 'http1' | 'http2';

/** Every key the schema declares: dotted key, `DS_*` variable, default, doc, in order. */
export const CONFIG_KEYS = leavesOf(serverConfigSchema).map(({ key, env, kind, doc, ...l }) => ({
  key,
  env,
  kind,
  doc,
  default: l.default,
}));
const LEAVES = leavesOf(serverConfigSchema);
const ENV_KEYS = new Map(LEAVES.map((l) => [l.env, l]));

export const PROFILES = ['default', 'dev', 'prod', 'prod-tls', 'prod-mtls'] as const;
export type Profile = (typeof PROFILES)[number];

/** Built-in defaults: what the seed documents (the schema's defaults). */
export function defaults(): ServerConfig {
  return v.parse(serverConfigSchema, {});
}

type Tree = Record<string, unknown>;
const isTree = (x: unknown): x is Tree => typeof x === 'object' && x !== null && !Array.isArray(x);

const durable = {
  storage: { mode: 'file-durable', data_dir: './data/streams' },
  limits: { max_memory_bytes: 536_870_912, max_stream_bytes: 268_435_456 },
};
const tlsTransport = (mode: 'tls' | 'mtls') => ({
  mode,
  http: { versions: ['http1', 'http2'] },
  tls: { alpn_protocols: ['http/1.1', 'h2'] },
});

/** Built-in profile layers, applied over the defaults. */
const PROFILE_LAYERS: Record<Profile, Tree> = {
  default: {},
  dev: { observability: { rust_log: 'debug' } },
  prod: durable,
  'prod-tls': { ...durable, transport: tlsTransport('tls') },
  'prod-mtls': { ...durable, transport: tlsTransport('mtls') },
};

/** One source of settings, with what it takes to say where a key came from. */
interface Layer {
  label: string;
  tree: Tree;
  /** The TOML text, to find a key's line. */
  text?: string;
  /** New path → the legacy path it was written as. */
  renamed?: Map<string, string>;
  /** Path → the variable that set it. */
  env?: Map<string, string>;
}

/** Moves the legacy fields (server.port, [tls], [log].rust_log) to their places. */
function legacy(tree: Tree, label: string, problems: string[]): Map<string, string> {
  const renamed = new Map<string, string>();
  const server = tree.server;
  if (isTree(server) && server.port !== undefined) {
    const port = server.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) {
      problems.push(`server.port (legacy) in ${label}: expected a port number from 0 to 65535`);
    } else if (server.bind_address === undefined) {
      server.bind_address = `0.0.0.0:${port}`;
      renamed.set('server.bind_address', 'server.port');
    }
    delete server.port;
  }
  if (isTree(tree.tls)) {
    const transport = isTree(tree.transport) ? tree.transport : {};
    const explicit = isTree(transport.tls) ? transport.tls : {};
    for (const key of Object.keys(tree.tls)) renamed.set(`transport.tls.${key}`, `tls.${key}`);
    transport.tls = { ...tree.tls, ...explicit };
    tree.transport = transport;
    delete tree.tls;
  }
  if (isTree(tree.log) && tree.log.rust_log !== undefined) {
    const observability = isTree(tree.observability) ? tree.observability : {};
    if (observability.rust_log === undefined) observability.rust_log = tree.log.rust_log;
    tree.observability = observability;
    renamed.set('observability.rust_log', 'log.rust_log');
    delete tree.log.rust_log;
    if (Object.keys(tree.log).length === 0) delete tree.log;
  }
  return renamed;
}

const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

function readToml(path: string, problems: string[]): Layer | undefined {
  const shown = displayPath(path);
  let text: string;
  try {
    // Any file type: `--config <(…)` (a FIFO) is read as it comes, never past the limit.
    const bytes = readBounded(path, MAX_CONFIG_BYTES);
    if (bytes === undefined) {
      problems.push(
        `${shown} is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB, the limit for a config file`,
      );
      return undefined;
    }
    text = bytes.toString('utf8');
  } catch (error) {
    problems.push(`${shown} ${describeFileError(error)}`);
    return undefined;
  }
  let tree: Tree;
  try {
    tree = parseToml(text) as Tree;
  } catch (error) {
    problems.push(`${shown} is not valid TOML: ${describeParseError(error, text)}`);
    return undefined;
  }
  const renamed = legacy(tree, shown, problems);
  return { label: shown, tree, text, renamed };
}

/** Why `dir` is not a directory to read config files from, or undefined when it is one. */
function notADirectory(dir: string): string | undefined {
  try {
    return statSync(dir).isDirectory() ? undefined : 'is not a directory';
  } catch (error) {
    const code = (error as { code?: string }).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : describeFileError(error);
  }
}

/** The `DS_*` layer: each known variable coerced to its key's type; unknown ones refused. */
function fromEnv(env: NodeJS.ProcessEnv, problems: string[]): Layer {
  const tree: Tree = {};
  const names = new Map<string, string>();
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('DS_') || raw === undefined || name === 'DS_PROFILE') continue;
    const leaf = ENV_KEYS.get(name);
    if (!leaf) {
      const prefix = `${name}__`;
      const inside = LEAVES.filter((l) => l.env.startsWith(prefix)).map((l) => l.env);
      const near = nearest(name, ENV_KEYS.keys());
      const hint =
        inside.length > 0
          ? `it names a table, not a key: set one of ${inside.slice(0, 3).join(', ')}${inside.length > 3 ? ', …' : ''}`
          : near
            ? `did you mean ${near}?`
            : 'see --help for the variables';
      problems.push(`unknown variable ${showName(name)}: ${hint}`);
      continue;
    }
    let node = tree;
    for (const p of leaf.path.slice(0, -1)) {
      if (!isTree(node[p])) node[p] = {};
      node = node[p] as Tree;
    }
    node[leaf.path.at(-1)!] = coerceEnv(raw, leaf.kind);
    names.set(leaf.key, name);
  }
  return { label: 'the environment', tree, env: names };
}

/** The 1-based line that sets `dotted` in TOML `text` (a `key =` line or a table header). */
export function findKeyLine(text: string, dotted: string): number | undefined {
  const split = (s: string) => s.split('.').map((x) => x.trim().replace(/^["']|["']$/g, ''));
  let table: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t.startsWith('[')) {
      const close = t.indexOf(']');
      table = split(t.slice(t.startsWith('[[') ? 2 : 1, close === -1 ? undefined : close));
      if (table.join('.') === dotted) return i + 1;
      continue;
    }
    const eq = t.indexOf('=');
    if (eq > 0 && !t.startsWith('#') && [...table, ...split(t.slice(0, eq))].join('.') === dotted)
      return i + 1;
  }
  return undefined;
}

/** Merges `layer` into `into`, recording which layer set each path. */
function mergeInto(into: Tree, layer: Tree, index: number, prov: Map<string, number>, at = '') {
  for (const [k, value] of Object.entries(layer)) {
    const path = at ? `${at}.${k}` : k;
    prov.set(path, index);
    if (isTree(value)) {
      const target: Tree = isTree(into[k]) ? { ...(into[k] as Tree) } : {};
      mergeInto(target, value, index, prov, path);
      into[k] = target;
    } else {
      into[k] = value;
    }
  }
}

function locator(layers: Layer[], prov: Map<string, number>): Locate {
  return (keys) => {
    const names = keys.filter((k): k is string => typeof k === 'string');
    for (let n = names.length; n > 0; n--) {
      const path = names.slice(0, n).join('.');
      const index = prov.get(path);
      if (index === undefined) continue;
      const layer = layers[index]!;
      if (layer.env) return layer.env.get(path) ?? envName(names.slice(0, n));
      const original = layer.renamed?.get(path) ?? path;
      const line = layer.text === undefined ? undefined : findKeyLine(layer.text, original);
      return `${layer.label}${line ? ` line ${line}` : ''}${original === path ? '' : `, as ${original}`}`;
    }
    return 'the defaults';
  };
}

export interface LoadOptions {
  profile?: Profile;
  /** The `--config` file. */
  configPath?: string;
  /** Where `default.toml`, `<profile>.toml` and `local.toml` live. Default `./config`. */
  configDir?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Layers, later over earlier: built-in defaults → profile → `config/default.toml` →
 * `config/<profile>.toml` → `config/local.toml` → `--config <path>` → `DS_*` variables
 * (`DS_TRANSPORT__TLS__CERT_PATH`, …). Legacy fields are mapped on the way. Every problem in
 * every layer is reported at once as `[load_config]`: TOML syntax (file, line, column), an
 * unknown key or variable (with the nearest valid one), a value of the wrong type or out of
 * range (key, source, expected shape). No message quotes a value.
 */
export function loadConfig(options: LoadOptions = {}): ServerConfig {
  expectOptions(options, true);
  const profile = options.profile ?? 'default';
  if (!PROFILES.includes(profile)) {
    const near = nearest(String(profile), PROFILES);
    throw new StartupError(
      'load_config',
      `unknown profile ${showName(String(profile))}${near ? ` (did you mean ${near}?)` : ''}; expected one of ${PROFILES.join(', ')}`,
    );
  }
  const problems: string[] = [];
  const layers: Layer[] = [
    { label: `the ${profile} profile`, tree: structuredClone(PROFILE_LAYERS[profile]) },
  ];
  const dir = options.configDir ?? 'config';
  // The default ./config may be absent; a directory asked for must be there.
  if (options.configDir !== undefined) {
    const why = notADirectory(dir);
    if (why) problems.push(`--config-dir ${displayPath(dir)} ${why}`);
  }
  for (const name of ['default.toml', `${profile}.toml`, 'local.toml']) {
    const path = join(dir, name);
    const layer = existsSync(path) ? readToml(path, problems) : undefined;
    if (layer) layers.push(layer);
  }
  if (options.configPath !== undefined) {
    if (!existsSync(options.configPath)) {
      problems.push(`--config ${displayPath(options.configPath)} does not exist`);
    } else {
      const layer = readToml(options.configPath, problems);
      if (layer) layers.push(layer);
    }
  }
  layers.push(fromEnv(options.env ?? process.env, problems));
  for (const layer of layers) {
    for (const u of unknownKeys(serverConfigSchema, layer.tree, LEAVES)) {
      const key = u.path.map(showName).join('.');
      const original = layer.renamed?.get(u.path.join('.')) ?? u.path.join('.');
      const line = layer.text === undefined ? undefined : findKeyLine(layer.text, original);
      const where = `${layer.label}${line ? ` line ${line}` : ''}`;
      problems.push(`unknown key ${key} in ${where}: ${unknownKeyHint(u)}`);
    }
  }
  const tree: Tree = {};
  const prov = new Map<string, number>();
  for (const [i, layer] of layers.entries()) mergeInto(tree, layer.tree, i, prov);
  const locate = locator(layers, prov);
  for (const path of listsForTables(serverConfigSchema, tree)) {
    problems.push(`${path} (from ${locate(path.split('.'))}): expected a table, got a list`);
  }
  const parsed = v.safeParse(serverConfigSchema, tree);
  if (!parsed.success) {
    for (const issue of parsed.issues) {
      if (isUnknownKeyIssue(issue)) continue; // reported per layer above
      const { text, keys } = issuePath(issue);
      problems.push(`${text} (from ${locate(keys)}): ${expectation(serverConfigSchema, issue)}`);
    }
  }
  if (problems.length > 0) throw startupError('load_config', problems);
  const config = parsed.output as ServerConfig;
  SOURCES.set(config, locate);
  return config;
}

export {
  checkConfig,
  isLoopback,
  parseBind,
  parseCidr,
  validateConfig,
} from './validate.js';
