import { isTowerlineError } from '@towerline/core';
import { describe, expect, it } from 'vitest';
import { resolveDriver } from '../src/server/engine/sqlite-store.js';

describe('better-sqlite3 is an optional peer, asked for by acid mode only', () => {
  it('is found when installed', () => {
    expect(resolveDriver('better-sqlite3')).toMatch(/better-sqlite3/);
  });

  it('names the install command when it is missing', () => {
    let thrown: unknown;
    try {
      resolveDriver('better-sqlite3-not-installed');
    } catch (error) {
      thrown = error;
    }
    expect(isTowerlineError(thrown, 'ERR_DEPENDENCY_MISSING')).toBe(true);
    expect((thrown as Error).message).toBe(
      'storage mode acid needs the optional dependency better-sqlite3-not-installed: npm install better-sqlite3-not-installed',
    );
    expect((thrown as Error & { parameter?: string }).parameter).toBe('storage.mode');
  });
});
