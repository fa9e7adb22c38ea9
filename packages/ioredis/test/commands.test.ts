import { createRequire } from 'node:module';
import { isReadOnlyCommand } from '@towerline/ioredis';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { commandTableOf } from '../src/commands.js';

const require = createRequire(import.meta.url);
const version = (entry: string) =>
  (createRequire(entry)('@ioredis/commands/package.json') as { version: string }).version;

describe('the ioredis major under test', () => {
  it('is the one the vitest project names (ioredis 5 by default, ioredis 6 in project ioredis6)', () => {
    const name = process.env.TOWERLINE_TEST_IOREDIS ?? 'ioredis';
    const { Redis: expected } = require(name) as typeof import('ioredis');
    expect(Redis).toBe(expected);
    const major = (require(`${name}/package.json`) as { version: string }).version.split('.')[0];
    expect(major).toBe(name === 'ioredis6' ? '6' : '5');
  });
});

describe('command flags come from the installed ioredis', () => {
  it("reads ioredis 6's table (commands 2.x) when ioredis 6 is the one installed", () => {
    const six = require.resolve('ioredis6');
    expect(version(six)).toMatch(/^2\./);
    const table = commandTableOf(six);
    // Read-only commands @ioredis/commands 1.5 does not know: resent after a reconnect only
    // when the table says so.
    for (const name of ['httl', 'hpttl', 'vsim', 'vcard']) {
      expect(table.hasFlag(name, 'readonly'), name).toBe(true);
    }
    expect(table.hasFlag('hsetex', 'readonly')).toBe(false);
  });

  it("reads ioredis 5's table (commands 1.x) for ioredis 5, and the pinned copy as a fallback", () => {
    const five = require.resolve('ioredis');
    expect(version(five)).toMatch(/^1\./);
    expect(() => commandTableOf(five).hasFlag('httl', 'readonly')).toThrow();
    expect(commandTableOf(undefined).hasFlag('get', 'readonly')).toBe(true);
    expect(commandTableOf('/nonexistent/x.js').hasFlag('get', 'readonly')).toBe(true);
  });

  it('isReadOnlyCommand answers from the table of the ioredis this package imports', () => {
    const installed = require('ioredis/package.json') as { version: string };
    expect(isReadOnlyCommand('HTTL')).toBe(installed.version.startsWith('6.'));
    expect(isReadOnlyCommand('GET')).toBe(true);
    expect(isReadOnlyCommand('INCR')).toBe(false);
  });
});
