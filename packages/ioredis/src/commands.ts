import { createRequire } from 'node:module';
import * as pinned from '@ioredis/commands';

/** The part of `@ioredis/commands` read here. */
export interface CommandTable {
  hasFlag(command: string, flag: string): boolean;
}

/**
 * The command table shipped with the ioredis whose entry file is `ioredisEntry` (ioredis 6
 * ships `@ioredis/commands` 2, which knows commands 1.x does not: HTTL, VSIM, …). Falls back to
 * the copy this package pins when that table cannot be loaded.
 */
export function commandTableOf(ioredisEntry: string | undefined): CommandTable {
  try {
    if (ioredisEntry !== undefined) {
      const found = createRequire(ioredisEntry)('@ioredis/commands') as Partial<CommandTable>;
      if (typeof found.hasFlag === 'function') return found as CommandTable;
    }
  } catch {
    // not loadable from there (bundled, or an unusual layout): the pinned table answers
  }
  return pinned;
}

/** The entry file of the ioredis this module imports, or undefined when it cannot be found. */
function installedIoredis(): string | undefined {
  try {
    // The CommonJS build has no import.meta; it has __filename.
    const here = typeof __filename === 'string' ? __filename : import.meta.url;
    return createRequire(here).resolve('ioredis');
  } catch {
    return undefined;
  }
}

let table: CommandTable | undefined;
const installedTable = () => {
  table ??= commandTableOf(installedIoredis());
  return table;
};

/** A command argument as Redis takes it. */
export type RedisArg = string | number | Buffer;

/** One Redis command. */
export interface RedisCommand {
  kind?: 'command';
  name: string;
  args: RedisArg[];
}

/** Several commands in one round trip (`pipeline`) or one transaction (`multi`). */
export interface RedisBatch {
  kind: 'pipeline' | 'multi';
  commands: Array<[string, ...RedisArg[]]>;
}

/** One Redis command, a pipeline, or a MULTI/EXEC transaction. */
export type RedisRequest = RedisCommand | RedisBatch;

export const isBatch = (request: RedisRequest): request is RedisBatch =>
  request.kind === 'pipeline' || request.kind === 'multi';

/**
 * `readonly` per Redis's own command table, the one the installed ioredis ships: safe to send
 * twice.
 */
export function isReadOnlyCommand(name: string): boolean {
  try {
    return installedTable().hasFlag(name.toLowerCase(), 'readonly');
  } catch {
    return false; // unknown command: assume it writes
  }
}

/** Default idempotency: read-only commands, and batches made only of them. */
export function isIdempotentRequest(request: RedisRequest): boolean {
  // Not a request: nothing says it is safe to repeat.
  if (typeof request !== 'object' || request === null) return false;
  if (isBatch(request)) return request.commands.every(([name]) => isReadOnlyCommand(name));
  return isReadOnlyCommand(request.name);
}

/** A request's size for the queue's byte bound. */
export function sizeOfRequest(request: RedisRequest): number {
  const argsSize = (args: RedisArg[]) =>
    args.reduce<number>((n, a) => n + (typeof a === 'number' ? 8 : a.length), 0);
  if (isBatch(request)) {
    return request.commands.reduce((n, [name, ...args]) => n + name.length + argsSize(args), 0);
  }
  return request.name.length + argsSize(request.args);
}
