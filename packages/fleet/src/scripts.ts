/**
 * The Lua scripts, each run with `EVALSHA` (one round trip; a `NOSCRIPT` reply — a restarted or
 * flushed Redis — loads it and runs it again). Time is Redis's own (`TIME`), so the replicas'
 * clocks never disagree about a window.
 */
import { createHash } from 'node:crypto';
import type { RedisArg, RedisCommands } from '@towerline/ioredis';

export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: RedisCommands, keys: string[], args: RedisArg[]): Promise<unknown> {
    try {
      return await redis.command('EVALSHA', this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!/NOSCRIPT/.test(String((error as Error)?.message))) throw error;
      await redis.command('SCRIPT', 'LOAD', this.source);
      return redis.command('EVALSHA', this.sha, keys.length, ...keys, ...args);
    }
  }
}

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000`;

/**
 * GCRA (the generic cell rate algorithm): one key per limit holds the theoretical arrival time.
 * ARGV: emission interval (ms per permit), tolerance (ms: burst × interval), permits.
 * Returns {1, 0} when taken, else {0, ms until they may be}.
 */
export const GCRA = new LuaScript(`${NOW}
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + n * interval
local over = new - now - tolerance
if over > 0.001 then return {0, math.ceil(over)} end
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil(new - now) + 1)
return {1, 0}`);

/** The window slots of a counter: `prefix:<slot>` hashes, summed over the last `slots`. */
const WINDOW = `local slotMs = tonumber(ARGV[1])
local slots = tonumber(ARGV[2])
local cur = math.floor(now / slotMs)
local function add(field, n)
  if n ~= 0 then
    local k = KEYS[1] .. ':' .. cur
    redis.call('HINCRBY', k, field, n)
    redis.call('PEXPIRE', k, slotMs * (slots + 1))
  end
end
local function sum(a, b)
  local x, y = 0, 0
  for i = 0, slots - 1 do
    local v = redis.call('HMGET', KEYS[1] .. ':' .. (cur - i), a, b)
    x = x + (tonumber(v[1]) or 0)
    y = y + (tonumber(v[2]) or 0)
  end
  return x, y
end`;

/**
 * Retry budget: adds this replica's deposits (ARGV 3) and withdrawals less its last claim
 * (ARGV 4), then claims for this replica its share (ARGV 7 of the fleet's deposits, or one of
 * ARGV 8 replicas) of the fleet's balance — deposits × percent (ARGV 5) + reserve (ARGV 6) −
 * withdrawals and claims outstanding. A claim counts as withdrawn until the next flush
 * settles it, so two replicas never spend the same balance. Returns {deposits, withdrawn, claim}.
 */
export const BUDGET = new LuaScript(`${NOW}
${WINDOW}
add('d', tonumber(ARGV[3]))
add('w', tonumber(ARGV[4]))
local d, w = sum('d', 'w')
local balance = d * tonumber(ARGV[5]) + tonumber(ARGV[6]) - w
if balance < 0 then balance = 0 end
local share = 1 / tonumber(ARGV[8])
if d > 0 then share = tonumber(ARGV[7]) / d end
if share > 1 then share = 1 end
local claim = math.floor(balance * share)
add('w', claim)
return {d, w, claim}`);

/**
 * Breaker: adds outcomes (ARGV 3 ok, 4 failed), opens the fleet (KEYS[2], for ARGV[7] ms) when
 * at least ARGV[6] calls failed at a rate of ARGV[5] or more; returns {ok, failed, open ms left}.
 */
export const BREAKER = new LuaScript(`${NOW}
${WINDOW}
add('ok', tonumber(ARGV[3]))
add('fail', tonumber(ARGV[4]))
local ok, fail = sum('ok', 'fail')
local total = ok + fail
if total >= tonumber(ARGV[6]) and fail >= tonumber(ARGV[5]) * total then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[7])
end
return {ok, fail, redis.call('PTTL', KEYS[2])}`);

/** Breaker closed by a successful probe: the open flag and the window's counts go. */
export const BREAKER_CLOSE = new LuaScript(`${NOW}
local slotMs = tonumber(ARGV[1])
local slots = tonumber(ARGV[2])
local cur = math.floor(now / slotMs)
redis.call('DEL', KEYS[2])
for i = 0, slots do redis.call('DEL', KEYS[1] .. ':' .. (cur - i)) end
return 1`);
