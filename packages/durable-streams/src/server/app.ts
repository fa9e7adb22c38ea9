import { once } from 'node:events';
import { accessSync, constants, statSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createSecureServer } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { invalidArgument, isTowerlineError } from '@towerline/core';
import { displayPath, ServerTlsProvider, serverConfigFromFiles } from '@towerline/tls';
import {
  checkConfig,
  isLoopback,
  parseBind,
  parseCidr,
  type ServerConfig,
  StartupError,
  startupError,
} from './config.js';
import { Engine } from './engine/engine.js';
import {
  asStreamsLogger,
  createLogger,
  type Logger,
  type LogLevel,
  levelOf,
  type StreamsLogger,
} from './logging.js';
import { StreamHandler, serveRequest } from './transport/handler.js';

/** RFC 7239 node: `[v6]:port`, `[v6]`, `v4:port`, `v4` or an obfuscated name. */
function forwardedNode(node: string): string {
  if (node.startsWith('['))
    return node.slice(1, node.indexOf(']') === -1 ? undefined : node.indexOf(']'));
  const colons = node.split(':').length - 1;
  return colons === 1 ? node.slice(0, node.indexOf(':')) : node;
}

type Origin = { address: string | undefined; proto: string; identity: string | undefined };

/** Who sent a request, honouring forwarding headers only from trusted proxies. */
export function clientOrigin(
  req: IncomingMessage,
  config: ServerConfig,
  trusted: BlockList,
): Origin {
  if (typeof req?.socket !== 'object' || req.socket === null || typeof req.headers !== 'object')
    invalidArgument('req', 'expected an IncomingMessage');
  if (typeof config?.proxy !== 'object' || config.proxy === null)
    invalidArgument('config', 'expected a server config');
  if (typeof trusted?.check !== 'function') invalidArgument('trusted', 'expected a BlockList');
  return originOf(req, config, trusted);
}

/** {@link clientOrigin} without the argument checks: the server's own call, per request. */
function originOf(req: IncomingMessage, config: ServerConfig, trusted: BlockList): Origin {
  const peer = req.socket.remoteAddress?.replace(/^::ffff:/, '');
  const secure = (req.socket as TLSSocket).encrypted === true;
  const fromProxy =
    config.proxy.enabled &&
    peer !== undefined &&
    trusted.check(peer, isIP(peer) === 6 ? 'ipv6' : 'ipv4');
  let address = peer;
  let proto = secure ? 'https' : 'http';
  if (fromProxy && config.proxy.forwarded_headers === 'x-forwarded') {
    const xff = String(req.headers['x-forwarded-for'] ?? '')
      .split(',')[0]
      ?.trim();
    if (xff) address = xff;
    const xfp = req.headers['x-forwarded-proto'];
    if (typeof xfp === 'string' && xfp) proto = xfp;
  } else if (fromProxy && config.proxy.forwarded_headers === 'forwarded') {
    const first = String(req.headers.forwarded ?? '').split(',')[0] ?? '';
    for (const part of first.split(';')) {
      const [k, v] = part.split('=').map((s) => s.trim().replace(/^"|"$/g, ''));
      if (k?.toLowerCase() === 'for' && v) address = forwardedNode(v);
      if (k?.toLowerCase() === 'proto' && v) proto = v;
    }
  }
  // An identity header is believed only from a trusted proxy, over mTLS.
  const identityHeader = config.proxy.identity.header_name?.toLowerCase();
  const identity =
    fromProxy &&
    config.proxy.identity.mode === 'header' &&
    config.transport.mode === 'mtls' &&
    (!config.proxy.identity.require_tls || secure) &&
    identityHeader
      ? (req.headers[identityHeader] as string | undefined)
      : undefined;
  return { address, proto, identity };
}

export interface RunningApp {
  url: string;
  config: ServerConfig;
  handler: StreamHandler;
  tls: ServerTlsProvider | undefined;
  close(): Promise<void>;
}

function checkFile(path: string, what: string): void {
  const name = `${what} ${displayPath(path)}`;
  let info: ReturnType<typeof statSync>;
  try {
    info = statSync(path);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new StartupError(
      'check_tls_files',
      code === 'ENOENT' || code === 'ENOTDIR'
        ? `${name} does not exist`
        : code === 'EACCES'
          ? `${name} is not readable by this process (permission denied on the way to it)`
          : `${name} cannot be read (${code ?? 'error'})`,
    );
  }
  if (info.isDirectory())
    throw new StartupError('check_tls_files', `${name} is a directory, not a file`);
  if (!info.isFile())
    throw new StartupError('check_tls_files', `${name} is not a regular file (a FIFO or device)`);
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new StartupError('check_tls_files', `${name} is not readable by this process`);
  }
}

/** The loader's own reason for a refusal: the innermost `ERR_TLS_INVALID`, one line. */
function tlsReason(error: unknown): string {
  let reason: unknown = error;
  let e: unknown = error;
  // Bounded: a cause chain can be a cycle.
  for (let depth = 0; depth < 8 && e !== undefined && e !== null; depth++) {
    if (isTowerlineError(e, 'ERR_TLS_INVALID')) reason = e;
    e = (e as { cause?: unknown }).cause;
  }
  return String((reason as Error)?.message ?? reason).split('\n')[0]!;
}

/**
 * Starts the Durable Streams server from a loaded config, phase by phase; every failure is a
 * {@link StartupError} naming its phase. Certificates come from watched files and rotate live
 * (the client CA too, in mtls mode). Logs go to `logger` (pino, or any {@link StreamsLogger};
 * default ECS JSON lines on stdout at `observability.rust_log`).
 */
export async function startApp(
  input: ServerConfig,
  logger?: StreamsLogger | Logger,
): Promise<RunningApp> {
  const { config, problems } = checkConfig(input);
  if (problems.length) throw startupError('validate_config', problems);
  const logs = asStreamsLogger(
    logger ?? createLogger({ level: levelOf(config.observability.rust_log) }),
  );
  const log = (level: LogLevel, fields: Record<string, unknown>) => {
    const { message, ...rest } = fields;
    logs[level](rest, message as string | undefined);
  };
  const t = config.transport;
  let tls: ServerTlsProvider | undefined;
  let files: ReturnType<typeof serverConfigFromFiles> | undefined;
  if (t.mode !== 'http') {
    checkFile(t.tls.cert_path!, 'cert');
    checkFile(t.tls.key_path!, 'key');
    if (t.mode === 'mtls') checkFile(t.tls.client_ca_path!, 'client CA');
    files = serverConfigFromFiles(
      {
        cert: t.tls.cert_path!,
        key: t.tls.key_path!,
        ...(t.mode === 'mtls' ? { clientCa: t.tls.client_ca_path! } : {}),
      },
      {
        context: { minVersion: `TLSv${t.tls.min_version}`, maxVersion: `TLSv${t.tls.max_version}` },
        name: 'ds:tls',
      },
    );
    try {
      // failFast: the first refusal is the startup error, at once, with the loader's reason.
      await files.start({ timeout: 10_000, failFast: true });
    } catch (error) {
      await files.close();
      throw new StartupError('build_tls_context', tlsReason(error));
    }
    tls = new ServerTlsProvider(files, {
      ALPNProtocols: t.tls.alpn_protocols,
      ...(t.mode === 'mtls' ? { requestCert: true, rejectUnauthorized: true } : {}),
    });
    tls.events.on('rotated', ({ version, serialNumber }) =>
      log('info', {
        message: 'certificate rotated',
        'tls.version': version,
        'tls.server.serial': serialNumber,
      }),
    );
    files.events.on('rejected', ({ error }) =>
      log('warn', {
        message: 'certificate update refused',
        'error.type': error.code,
        'error.message': error.message.split('\n')[0],
      }),
    );
  }
  let engine: Engine;
  try {
    engine = await Engine.open({
      mode: config.storage.mode,
      dataDir: config.storage.data_dir,
      onCorruption: config.storage.on_corruption,
      ...(config.storage.mode === 'postgres'
        ? {
            postgresUrl: config.storage.postgres_url,
            postgresSchema: config.storage.postgres_schema,
          }
        : {}),
      warn: (message, fields) => log('warn', { message, ...fields }),
    });
  } catch (error) {
    await files?.close();
    throw new StartupError(
      'start_server',
      `storage ${config.storage.mode} at ${
        config.storage.mode === 'postgres'
          ? `schema ${config.storage.postgres_schema}`
          : config.storage.data_dir
      }: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (engine.report.truncated > 0 || engine.report.replayed > 0)
    log('info', {
      message: 'storage recovered',
      'storage.batches_replayed': engine.report.replayed,
      'storage.bytes_truncated': engine.report.truncated,
      'event.duration': Math.round(engine.report.ms * 1e6),
    });
  const lim = config.limits;
  const handler = new StreamHandler({
    basePath: config.http.stream_base_path,
    longPollTimeoutMs: t.connection.long_poll_timeout_secs * 1000,
    sseReconnectMs: t.connection.sse_reconnect_interval_secs * 1000,
    maxMemoryBytes: lim.max_memory_bytes,
    maxStreamBytes: lim.max_stream_bytes,
    ...(lim.max_live_connections > 0 ? { maxLiveConnections: lim.max_live_connections } : {}),
    ...(lim.max_event_loop_lag_ms > 0 ? { maxEventLoopLagMs: lim.max_event_loop_lag_ms } : {}),
    catchUpPageBytes: lim.catch_up_page_bytes,
    corsOrigin: config.http.cors_origins,
    engine,
    logger: logs,
  });
  const sweep = setInterval(() => engine.sweep(), 60_000);
  sweep.unref();
  const requestLevel = config.observability.request_log_level.toLowerCase();
  const logRequests = requestLevel !== 'off' && requestLevel in logs;
  const trusted = new BlockList();
  for (const cidr of config.proxy.trusted_proxies) {
    const c = parseCidr(cidr)!;
    trusted.addSubnet(c.address, c.bits, isIP(c.address) === 6 ? 'ipv6' : 'ipv4');
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (!logRequests) return serveRequest(handler, req, res);
    const started = performance.now();
    res.once('finish', () => {
      const origin = originOf(req, config, trusted);
      log(requestLevel as LogLevel, {
        message: 'request',
        'http.request.method': req.method,
        'url.path': (req.url ?? '').split('?')[0],
        'http.response.status_code': res.statusCode,
        'client.address': origin.address,
        'url.scheme': origin.proto,
        ...(origin.identity ? { 'enduser.id': origin.identity } : {}),
        'network.protocol.version': req.httpVersion,
        'event.duration': Math.round((performance.now() - started) * 1e6),
      });
    });
    serveRequest(handler, req, res);
  };
  const server: Server =
    t.mode === 'http'
      ? createHttpServer(onRequest)
      : t.http.versions.includes('http2')
        ? (createSecureServer(
            { ...tls!.serverOptions(), allowHTTP1: t.http.versions.includes('http1') },
            onRequest as never,
          ) as unknown as Server)
        : createHttpsServer(tls!.serverOptions(), onRequest);
  tls?.attach(server as never);
  const { host, port } = parseBind(config.server.bind_address)!;
  if (!isLoopback(host) && config.http.cors_origins === '*') {
    log('warn', {
      message:
        'listening beyond loopback with http.cors_origins "*": any web page a user opens can read and write these streams; set http.cors_origins to your origin, or bind 127.0.0.1',
      'server.address': host,
    });
  }
  try {
    server.listen(port, host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => {
        throw error;
      }),
    ]);
  } catch (error) {
    handler.close();
    clearInterval(sweep);
    await engine.close();
    await files?.close();
    const code = (error as { code?: string }).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the address is already in use'
        : code === 'EACCES'
          ? 'permission denied: ports below 1024 need privileges'
          : code === 'EADDRNOTAVAIL'
            ? 'the address is not on this machine'
            : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
              ? 'the host name does not resolve'
              : 'the listener failed';
    throw new StartupError(
      'bind_listener',
      `cannot listen on ${config.server.bind_address}: ${why} (${code ?? 'error'})`,
      { cause: error },
    );
  }
  const address = server.address() as { address: string; port: number };
  const shown = address.address.includes(':') ? `[${address.address}]` : address.address;
  const url = `${t.mode === 'http' ? 'http' : 'https'}://${shown}:${address.port}`;
  log('info', {
    message: 'listening',
    'url.full': url,
    'storage.mode': config.storage.mode,
    'transport.mode': t.mode,
  });
  return {
    url,
    config,
    handler,
    tls,
    close: async () => {
      handler.close();
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      server.close();
      await once(server, 'close').catch(() => {});
      clearInterval(sweep);
      tls?.close();
      await files?.close();
      await engine.close();
    },
  };
}
