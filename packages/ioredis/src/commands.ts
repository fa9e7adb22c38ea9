import { hasFlag } from '@ioredis/commands';

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

/** `readonly` per Redis's own command table: safe to send twice. */
export function isReadOnlyCommand(name: string): boolean {
  try {
    return hasFlag(name.toLowerCase(), 'readonly');
  } catch {
    return false; // unknown command: assume it writes
  }
}

/** Default idempotency: read-only commands, and batches made only of them. */
export function isIdempotentRequest(request: RedisRequest): boolean {
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
