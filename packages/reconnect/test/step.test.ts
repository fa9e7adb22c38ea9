/**
 * The reconnector's behaviour is one pure function, `step(state, event, env)`. This checks it
 * directly against a model written apart from it, for any sequence of events — current and
 * stale (late outcomes of old attempts, losses reported for old generations, old timers).
 */
import {
  type ConnectionState,
  canTransition,
  type Effect,
  initialState,
  type MachineEnv,
  type MachineEvent,
  type MachineState,
  step,
} from '@towerline/reconnect';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const MAX_ATTEMPTS = 3;
const CONNECT_TIMEOUT = 250;
const MIN_UPTIME = 300;
const delay = (failures: number) => 100 * failures;

interface Model {
  kind: ConnectionState;
  attempts: number;
  failures: number;
  generation: number;
  healthy: boolean;
}

type Conn = { id: number };

/** What a generated event aims at: the live attempt/connection, or an old one. */
type Aim = 'current' | 'stale';
type Command =
  | { type: 'start' }
  | { type: 'close' }
  | { type: 'ok' | 'fail' | 'timer' | 'lost' | 'healthy'; aim: Aim };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.constantFrom<Command>({ type: 'start' }, { type: 'close' }),
  fc.record({
    type: fc.constantFrom('ok', 'fail', 'timer', 'lost', 'healthy') as fc.Arbitrary<
      'ok' | 'fail' | 'timer' | 'lost' | 'healthy'
    >,
    aim: fc.constantFrom<Aim>('current', 'current', 'stale'),
  }),
);

const serialOf = (s: MachineState<Conn>) => s.serial;

function toEvent(c: Command, s: MachineState<Conn>, conn: Conn): MachineEvent<Conn> {
  if (c.type === 'start') return { type: 'start' };
  if (c.type === 'close') return { type: 'close' };
  const serial = c.aim === 'current' ? serialOf(s) : serialOf(s) - 1;
  const generation = c.aim === 'current' ? s.generation : s.generation - 1;
  switch (c.type) {
    case 'ok':
      return { type: 'connectSucceeded', serial, conn };
    case 'fail':
      return { type: 'connectFailed', serial, error: new Error('refused') };
    case 'timer':
      return { type: 'timer', serial };
    case 'lost':
      return { type: 'lost', generation, error: new Error('reset') };
    case 'healthy':
      return { type: 'markHealthy', generation };
  }
}

/** The model: what the state table and DESIGN.md say must happen. */
function expectNext(m: Model, c: Command): Model {
  const current = !('aim' in c) || c.aim === 'current';
  const fail = (): Model => {
    const failures = m.failures + 1;
    return m.attempts >= MAX_ATTEMPTS
      ? { ...m, kind: 'failed', failures, healthy: false }
      : { ...m, kind: 'reconnecting', failures, healthy: false };
  };
  if (c.type === 'close') return m.kind === 'closed' ? m : { ...m, kind: 'closed', healthy: false };
  if (!current) return m;
  switch (m.kind) {
    case 'idle':
      return c.type === 'start' ? { ...m, kind: 'connecting', attempts: m.attempts + 1 } : m;
    case 'connecting':
      if (c.type === 'ok') return { ...m, kind: 'connected', generation: m.generation + 1 };
      return c.type === 'fail' || c.type === 'timer' ? fail() : m;
    case 'connected':
      if (c.type === 'lost') return fail();
      if ((c.type === 'timer' || c.type === 'healthy') && !m.healthy) {
        return { ...m, healthy: true, failures: 0, attempts: 0 };
      }
      return m;
    case 'reconnecting':
      return c.type === 'timer' ? { ...m, kind: 'connecting', attempts: m.attempts + 1 } : m;
    default:
      return m;
  }
}

const env = (now: number): MachineEnv => ({
  now,
  name: 'test',
  maxAttempts: MAX_ATTEMPTS,
  connectTimeout: CONNECT_TIMEOUT,
  minUptime: MIN_UPTIME,
  delay,
  retryable: () => true,
});

const of = <T extends Effect<Conn>['type']>(effects: Effect<Conn>[], type: T) =>
  effects.filter((e): e is Extract<Effect<Conn>, { type: T }> => e.type === type);

describe('step (the reconnector as a function)', () => {
  it('follows the model for any sequence of current and stale events', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
        let s: MachineState<Conn> = initialState();
        let m: Model = { kind: 'idle', attempts: 0, failures: 0, generation: 0, healthy: false };
        let gaveUp = 0;
        commands.forEach((c, i) => {
          const conn = { id: i };
          const from = s;
          const { state, effects } = step(s, toEvent(c, s, conn), env(i * 10));
          const expected = expectNext(m, c);
          // The state kind and its data follow the model.
          expect(state.kind).toBe(expected.kind);
          expect(state.generation).toBe(expected.generation);
          if ('attempts' in state) {
            expect(state.attempts).toBe(expected.attempts);
            expect(state.failures).toBe(expected.failures);
          }
          if (state.kind === 'connected') expect(state.healthy).toBe(expected.healthy);
          // One stateChange per change of kind, along the table; none otherwise.
          const changes = of(effects, 'emit').filter((e) => e.notice[0] === 'stateChange');
          if (state.kind !== from.kind) {
            expect(changes.map((e) => e.notice[1])).toEqual([{ from: from.kind, to: state.kind }]);
            expect(canTransition(from.kind, state.kind)).toBe(true);
          } else {
            expect(changes).toHaveLength(0);
          }
          // An unchanged state runs no effect, except disposing a connection that came too late.
          if (state === from) {
            expect(effects.every((e) => e.type === 'dispose')).toBe(true);
            expect(effects.length).toBe(c.type === 'ok' ? 1 : 0);
          }
          // At most one timer, and it is the one the state needs.
          const arms = of(effects, 'arm');
          expect(arms.length).toBeLessThanOrEqual(1);
          if (state !== from && state.kind === 'connecting') {
            expect(of(effects, 'connect')).toEqual([
              { type: 'connect', attempt: expected.attempts, serial: state.serial },
            ]);
            expect(arms.map((a) => a.ms)).toEqual([CONNECT_TIMEOUT]);
          }
          if (state !== from && state.kind === 'reconnecting') {
            expect(arms.map((a) => a.ms)).toEqual([delay(expected.failures)]);
          }
          if (state.kind === 'connected' && from.kind === 'connecting') {
            expect(arms.map((a) => [a.ms, a.unref])).toEqual([[MIN_UPTIME, true]]);
            expect(of(effects, 'watch')).toEqual([
              { type: 'watch', conn, generation: state.generation },
            ]);
          }
          // A connection that is given up is unwatched and disposed, exactly once.
          if (from.kind === 'connected' && state.kind !== 'connected') {
            expect(of(effects, 'unwatch')).toHaveLength(1);
            expect(of(effects, 'dispose').map((e) => e.conn)).toEqual([from.conn]);
          }
          if (state.kind === 'failed' && from.kind !== 'failed') {
            gaveUp++;
            expect(state.failure.code).toBe('ERR_RECONNECT_GAVE_UP');
            expect(state.failure.attempts).toBe(MAX_ATTEMPTS);
          }
          if (state.kind === 'closed' || state.kind === 'failed') expect(arms).toHaveLength(0);
          s = state;
          m = expected;
        });
        expect(gaveUp).toBeLessThanOrEqual(1);
      }),
      { numRuns: 2_000 },
    );
  });

  it('is pure: the same state, event and environment give the same result, and no input is changed', () => {
    const s = step<Conn>(initialState(), { type: 'start' }, env(0)).state;
    const frozen = JSON.stringify(s);
    const a = step(s, { type: 'connectFailed', serial: s.serial, error: 'x' }, env(5));
    const b = step(s, { type: 'connectFailed', serial: s.serial, error: 'x' }, env(5));
    expect(JSON.stringify(s)).toBe(frozen);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });
});
