import {
  describeError,
  describeFileError,
  invalidArgument,
  isAbortError,
  isTowerlineError,
  TowerlineError,
} from '@towerline/core';
import { describe, expect, it } from 'vitest';

const secretCause = () =>
  Object.assign(new Error('connect to redis://admin:hunter2@db failed'), { code: 'ECONNRESET' });

describe('TowerlineError', () => {
  it('carries code, message, cause and attempts', () => {
    const cause = secretCause();
    const e = new TowerlineError('ERR_RETRY_EXHAUSTED', 'retry exhausted after 3 attempts', {
      cause,
      attempts: 3,
    });
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(TowerlineError);
    expect(e.name).toBe('TowerlineError');
    expect(e.code).toBe('ERR_RETRY_EXHAUSTED');
    expect(e.message).toBe('retry exhausted after 3 attempts');
    expect(e.cause).toBe(cause);
    expect(e.attempts).toBe(3);
    expect(String(e)).toBe('TowerlineError: retry exhausted after 3 attempts');
    expect(e.stack).toContain('TowerlineError: retry exhausted');
  });

  it('carries the other facts; problems are a frozen copy', () => {
    const problems = ['port: not a number'];
    const e = new TowerlineError('ERR_CONFIG_INVALID', 'invalid config', {
      mayHaveExecuted: true,
      retryAfterMs: 250,
      parameter: 'port',
      problems,
    });
    expect(e).toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      mayHaveExecuted: true,
      retryAfterMs: 250,
      parameter: 'port',
      problems: ['port: not a number'],
    });
    problems.push('later');
    expect(e.problems).toEqual(['port: not a number']);
    expect(Object.isFrozen(e.problems)).toBe(true);
  });

  it('has no cause when none is given, and keeps a falsy one', () => {
    expect('cause' in new TowerlineError('ERR_CLOSED', 'closed')).toBe(false);
    const zero = new TowerlineError('ERR_CLOSED', 'closed', { cause: 0 });
    expect('cause' in zero).toBe(true);
    expect(zero.cause).toBe(0);
  });

  it('toJSON names the cause by code or name, never by its message', () => {
    const e = new TowerlineError('ERR_RETRY_EXHAUSTED', 'retry exhausted after 2 attempts', {
      cause: secretCause(),
      attempts: 2,
    });
    expect(e.toJSON()).toEqual({
      name: 'TowerlineError',
      code: 'ERR_RETRY_EXHAUSTED',
      message: 'retry exhausted after 2 attempts',
      attempts: 2,
      mayHaveExecuted: undefined,
      retryAfterMs: undefined,
      parameter: undefined,
      problems: undefined,
      cause: 'ECONNRESET',
    });
    const json = JSON.stringify(e);
    expect(json).not.toContain('hunter2');
    expect(json).not.toContain('redis://');
    expect(JSON.parse(json)).toMatchObject({ code: 'ERR_RETRY_EXHAUSTED', cause: 'ECONNRESET' });
    const typeError = new TowerlineError('ERR_TIMEOUT', 't', { cause: new TypeError('secret') });
    expect(typeError.toJSON().cause).toBe('TypeError');
    expect(JSON.stringify(typeError)).not.toContain('secret');
  });

  it('isTowerlineError checks the class and, if given, the code', () => {
    const e = new TowerlineError('ERR_QUEUE_FULL', 'queue full');
    expect(isTowerlineError(e)).toBe(true);
    expect(isTowerlineError(e, 'ERR_QUEUE_FULL')).toBe(true);
    expect(isTowerlineError(e, 'ERR_CLOSED')).toBe(false);
    const lookalike = Object.assign(new Error('queue full'), {
      name: 'TowerlineError',
      code: 'ERR_QUEUE_FULL',
    });
    expect(isTowerlineError(lookalike)).toBe(false);
    expect(isTowerlineError(lookalike, 'ERR_QUEUE_FULL')).toBe(false);
    expect(isTowerlineError(undefined)).toBe(false);
    expect(isTowerlineError('ERR_QUEUE_FULL')).toBe(false);
  });
});

describe('invalidArgument', () => {
  it('throws ERR_INVALID_ARGUMENT naming the parameter', () => {
    let thrown: unknown;
    try {
      invalidArgument('timeout', 'expected >= 0, got -1');
    } catch (error) {
      thrown = error;
    }
    expect(isTowerlineError(thrown, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect(thrown).toMatchObject({
      parameter: 'timeout',
      message: 'invalid timeout: expected >= 0, got -1',
    });
  });
});

describe('describeError', () => {
  it('uses the code, else the name, else the type; never the message', () => {
    expect(describeError(secretCause())).toBe('ECONNRESET');
    expect(describeError(new TypeError('secret'))).toBe('TypeError');
    expect(describeError(Object.assign(new Error('secret'), { code: '' }))).toBe('Error');
    expect(describeError({ message: 'secret' })).toBe('Error');
    expect(describeError('secret string')).toBe('string');
    expect(describeError(42)).toBe('number');
    expect(describeError(undefined)).toBeUndefined();
    expect(describeError(null)).toBeUndefined();
  });
});

describe('isAbortError', () => {
  it('recognises DOM AbortErrors, p-retry style AbortErrors and ABORT_ERR codes', () => {
    expect(isAbortError(new DOMException('aborted', 'AbortError'))).toBe(true);
    expect(isAbortError(AbortSignal.abort().reason)).toBe(true);
    expect(isAbortError(Object.assign(new Error('x'), { name: 'AbortError' }))).toBe(true);
    expect(isAbortError(Object.assign(new Error('x'), { code: 'ABORT_ERR' }))).toBe(true);
    expect(isAbortError(new Error('AbortError'))).toBe(false);
    expect(isAbortError(new DOMException('late', 'TimeoutError'))).toBe(false);
    expect(isAbortError('AbortError')).toBe(false);
    expect(isAbortError(null)).toBe(false);
  });
});

describe('describeFileError', () => {
  it('says why a file could not be read, without the path', () => {
    const withCode = (code?: string) => Object.assign(new Error('/etc/secret'), { code });
    expect(describeFileError(withCode('ENOENT'))).toBe('does not exist');
    expect(describeFileError(withCode('EISDIR'))).toBe('is a directory, not a file');
    expect(describeFileError(withCode('EACCES'))).toBe('is not readable');
    expect(describeFileError(withCode('EPERM'))).toBe('is not readable');
    expect(describeFileError(withCode('EMFILE'))).toBe('cannot be read (EMFILE)');
    expect(describeFileError(undefined)).toBe('cannot be read (error)');
  });
});

describe('the brand (one process, two copies of core)', () => {
  it('recognises an error made by another copy of the module, and nothing else', async () => {
    // A query string makes Vite load errors.ts a second time: another class, as the CommonJS
    // build beside the ESM build would be.
    const other = (await import(
      '../src/errors.ts?second-copy' as string
    )) as typeof import('../src/errors.js');
    expect(other.TowerlineError).not.toBe(TowerlineError);
    const foreign = new other.TowerlineError('ERR_CONFIG_INVALID', 'bad');
    expect(foreign instanceof TowerlineError).toBe(true);
    expect(isTowerlineError(foreign, 'ERR_CONFIG_INVALID')).toBe(true);
    expect(isTowerlineError(foreign, 'ERR_CLOSED')).toBe(false);
    expect(new TowerlineError('ERR_CLOSED', 'x') instanceof other.TowerlineError).toBe(true);
    expect(new Error('x') instanceof TowerlineError).toBe(false);
    expect(Object.assign(new Error('x'), { code: 'ERR_CLOSED' }) instanceof TowerlineError).toBe(
      false,
    );
    expect((null as unknown) instanceof TowerlineError).toBe(false);
    expect(isTowerlineError('ERR_CLOSED')).toBe(false);
    // The brand is not enumerable: spreads, JSON and inspect stay as they were.
    expect(Object.getOwnPropertySymbols({ ...foreign })).toEqual([]);
    expect(JSON.parse(JSON.stringify(foreign))).not.toHaveProperty('brand');
  });

  it('keeps the prototype check for a subclass', () => {
    class Special extends TowerlineError {}
    expect(new Special('ERR_CLOSED', 'x') instanceof Special).toBe(true);
    expect(new Special('ERR_CLOSED', 'x') instanceof TowerlineError).toBe(true);
    expect(new TowerlineError('ERR_CLOSED', 'x') instanceof Special).toBe(false);
  });
});
