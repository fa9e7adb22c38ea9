import { CONFIG_KEYS, PROFILES } from './server/config.js';

const PROFILE_NOTES: Record<(typeof PROFILES)[number], string> = {
  default: 'http on 0.0.0.0:4437, memory storage (the built-in defaults)',
  dev: 'default, with rust_log = "debug"',
  prod: 'file-durable storage in ./data/streams, larger limits',
  'prod-tls': 'prod over TLS with HTTP/1.1 and HTTP/2 (set the cert and key paths)',
  'prod-mtls': 'prod-tls, and clients must show a certificate (set client_ca_path too)',
};

export const EXIT_CODES = { ok: 0, runtime: 1, config: 2 } as const;

const shown = (value: unknown) => (value === undefined ? '(unset)' : JSON.stringify(value));

/** The `--help` text: flags, profiles, config files, the env convention, every key, exit codes. */
export function helpText(name = 'towerline-ds'): string {
  const keys = CONFIG_KEYS.map((k) => `  ${k.key} = ${shown(k.default)}\n      ${k.env}: ${k.doc}`);
  return `Usage: ${name} [--profile NAME] [--config FILE] [--config-dir DIR]

The Durable Streams server (HTTP API at http.stream_base_path, health at /healthz, /readyz).

Options:
  --profile NAME     built-in profile (default: $DS_PROFILE or "default")
  --config FILE      one more TOML file, applied after the config directory's files
  --config-dir DIR   where default.toml, <profile>.toml and local.toml are read (default: ./config)
  -h, --help         print this help and exit
  -V, --version      print the version and exit

Profiles:
${PROFILES.map((p) => `  ${p.padEnd(10)} ${PROFILE_NOTES[p]}`).join('\n')}

Configuration, later layers over earlier ones:
  1. built-in defaults   2. the profile   3. <config-dir>/default.toml
  4. <config-dir>/<profile>.toml   5. <config-dir>/local.toml   6. --config FILE
  7. environment: DS_<SECTION>__<KEY>, the TOML path in upper case joined by "__"
     (transport.tls.cert_path -> DS_TRANSPORT__TLS__CERT_PATH). Lists are comma-separated or
     JSON ("h2,http/1.1" or '["h2","http/1.1"]'); booleans are true or false.
  An unknown key or DS_* variable is an error that names the nearest valid one.

Keys (TOML key = default, then its variable):
${keys.join('\n')}

Exit codes:
  0  stopped cleanly (SIGINT or SIGTERM), or --help / --version
  1  runtime failure: the listener could not bind, the storage did not open, a crash
  2  bad configuration or usage: [load_config], [validate_config], [check_tls_files],
     [build_tls_context], or an unknown option
`;
}
