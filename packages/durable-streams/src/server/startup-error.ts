/** The startup phases, as the seed names them in its error messages. */
export type StartupPhase =
  | 'load_config'
  | 'validate_config'
  | 'check_tls_files'
  | 'build_tls_context'
  | 'bind_listener'
  | 'start_server';

const LIKELY: Record<StartupPhase, string> = {
  load_config:
    'TOML syntax errors, a --config path or --config-dir that does not exist, an unknown or misspelt key or DS_* variable, or a value of the wrong type or out of range',
  validate_config:
    'transport mode and TLS fields disagree, HTTP versions and ALPN do not match, proxy trust without trusted_proxies, identity header outside mtls, or an invalid address, base path or CIDR',
  check_tls_files: 'a cert, key or client CA path is missing, is a directory, or is not readable',
  build_tls_context:
    'malformed PEM, an empty certificate chain, a key that is missing or does not match the certificate, or an invalid client CA bundle',
  bind_listener:
    'the address is already in use, the port needs privileges, or the bind target is invalid',
  start_server:
    'the storage directory is not writable or full, or the storage backend failed to open (PostgreSQL down, or refusing the role, password or database of the URL)',
};

/** The stable code of each phase's failure, to match on instead of the message. */
export const STARTUP_CODES = {
  load_config: 'ERR_CONFIG_INVALID',
  validate_config: 'ERR_CONFIG_INVALID',
  check_tls_files: 'ERR_TLS_INVALID',
  build_tls_context: 'ERR_TLS_INVALID',
  bind_listener: 'ERR_BIND_FAILED',
  start_server: 'ERR_START_FAILED',
} as const satisfies Record<StartupPhase, string>;

export type StartupErrorCode = (typeof STARTUP_CODES)[StartupPhase];

/**
 * A startup failure: `[phase] what happened` plus the likely causes, with a stable `code` and
 * the `problems` found. Never quotes key material or a config value. The CLI exits 2 for the
 * phases that mean bad configuration or files (`exitCode`), 1 for the rest.
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  readonly code: StartupErrorCode;
  readonly problems: readonly string[];
  constructor(
    readonly phase: StartupPhase,
    message: string,
    options?: { cause?: unknown; problems?: readonly string[] },
  ) {
    super(`[${phase}] ${message}\n  likely cause: ${LIKELY[phase]}`, options);
    this.code = STARTUP_CODES[phase];
    this.problems = Object.freeze([...(options?.problems ?? [message])]);
  }

  /** The process exit code for this failure: 2 for bad configuration, 1 for runtime. */
  get exitCode(): 1 | 2 {
    return this.phase === 'bind_listener' || this.phase === 'start_server' ? 1 : 2;
  }
}

/** A StartupError listing `problems`, one per line when there are several. */
export function startupError(phase: StartupPhase, problems: readonly string[]): StartupError {
  const message =
    problems.length === 1
      ? problems[0]!
      : `${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
  return new StartupError(phase, message, { problems });
}
