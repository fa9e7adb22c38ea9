import { type ConnectionState, canTransition } from '@towerline/reconnect';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fakeReconnector } from './fake-connection.js';

const DELAY = 100;
const MIN_UPTIME = 300;
const MAX_ATTEMPTS = 3;

/** The state table as a model: what the machine must do, written independently of it. */
interface Model {
  state: ConnectionState;
  attempts: number;
  healthy: boolean;
  now: number;
  backoffDueAt: number;
  healthyDueAt: number;
}

type Real = ReturnType<typeof fakeReconnector> & {
  waiters: Array<{ settled: boolean; outcome?: 'resolved' | 'rejected' }>;
  gaveUp: number;
};

function beginAttempt(m: Model): void {
  m.state = 'connecting';
  m.attempts++;
}

function failOrSchedule(m: Model): void {
  m.healthy = false;
  if (m.attempts >= MAX_ATTEMPTS) m.state = 'failed';
  else {
    m.state = 'reconnecting';
    m.backoffDueAt = m.now + DELAY;
  }
}

async function checkInvariants(m: Model, real: Real): Promise<void> {
  await real.settle();
  const { r } = real;
  expect(r.state).toBe(m.state);
  expect(r.current !== undefined).toBe(m.state === 'connected');
  expect(r.healthy).toBe(m.healthy);
  for (const [from, to] of real.transitions) expect(canTransition(from, to)).toBe(true);
  expect(real.gaveUp).toBe(m.state === 'failed' || real.gaveUp > 0 ? 1 : 0);
  if (m.state === 'closed' || m.state === 'failed') {
    expect(real.clock.pending).toBe(0);
    expect(real.pending).toHaveLength(0);
  }
  if (m.state === 'connected' || m.state === 'closed' || m.state === 'failed') {
    expect(real.waiters.every((w) => w.settled)).toBe(true);
  }
  if (m.state === 'connecting') expect(real.pending).toHaveLength(1);
  if (m.state === 'reconnecting') expect(real.pending).toHaveLength(0);
}

class Start implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, real: Real) {
    real.r.start();
    if (m.state === 'idle') beginAttempt(m);
    await checkInvariants(m, real);
  }
  toString = () => 'start';
}

class Acquire implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, real: Real) {
    const w: Real['waiters'][number] = { settled: false };
    real.waiters.push(w);
    real.r.acquire().then(
      () => Object.assign(w, { settled: true, outcome: 'resolved' }),
      () => Object.assign(w, { settled: true, outcome: 'rejected' }),
    );
    if (m.state === 'idle') beginAttempt(m);
    await checkInvariants(m, real);
  }
  toString = () => 'acquire';
}

class ConnectOk implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => m.state === 'connecting';
  async run(m: Model, real: Real) {
    real.succeed();
    m.state = 'connected';
    m.healthy = false;
    m.healthyDueAt = m.now + MIN_UPTIME;
    await checkInvariants(m, real);
  }
  toString = () => 'connect-ok';
}

class ConnectFail implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => m.state === 'connecting';
  async run(m: Model, real: Real) {
    real.fail();
    failOrSchedule(m);
    await checkInvariants(m, real);
  }
  toString = () => 'connect-fail';
}

class Drop implements fc.AsyncCommand<Model, Real> {
  check = (m: Readonly<Model>) => m.state === 'connected';
  async run(m: Model, real: Real) {
    real.r.current!.lost!(new Error('drop'));
    if (m.healthy) m.attempts = 0;
    failOrSchedule(m);
    await checkInvariants(m, real);
  }
  toString = () => 'drop';
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, real: Real) {
    await real.clock.advance(this.ms);
    const t = m.now + this.ms;
    if (m.state === 'connected' && !m.healthy && m.healthyDueAt <= t) {
      m.healthy = true;
      m.attempts = 0;
    }
    if (m.state === 'reconnecting' && m.backoffDueAt <= t) beginAttempt(m);
    m.now = t;
    await checkInvariants(m, real);
  }
  toString = () => `advance(${this.ms})`;
}

class Close implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, real: Real) {
    await real.r.close();
    m.state = 'closed';
    m.healthy = false;
    await checkInvariants(m, real);
  }
  toString = () => 'close';
}

describe('Reconnector model', () => {
  it('follows the state table for any sequence of connect-ok/connect-fail/drop/close/acquire', async () => {
    // Close ends everything interesting, so it is drawn far less often than the rest.
    const often = [
      fc.constant(new ConnectOk()),
      fc.constant(new ConnectFail()),
      fc.constant(new Drop()),
      fc.constantFrom(50, 100, 250, 400).map((ms) => new Advance(ms)),
    ];
    const commands = fc.commands(
      [
        ...often,
        ...often,
        ...often,
        fc.constant(new Start()),
        fc.constant(new Acquire()),
        fc.constant(new Close()),
      ],
      { maxCommands: 60, size: 'large' },
    );
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const h = fakeReconnector({ maxAttempts: MAX_ATTEMPTS, minUptime: MIN_UPTIME });
        const real: Real = { ...h, waiters: [], gaveUp: 0 };
        h.r.events.on('gaveUp', () => {
          real.gaveUp++;
        });
        const model: Model = {
          state: 'idle',
          attempts: 0,
          healthy: false,
          now: 0,
          backoffDueAt: 0,
          healthyDueAt: 0,
        };
        try {
          await fc.asyncModelRun(() => ({ model, real }), cmds);
        } finally {
          await h.r.close();
          await h.settle();
          // Whatever happened, close() settles every waiter and leaves no timer behind.
          expect(real.waiters.every((w) => w.settled)).toBe(true);
          expect(h.clock.pending).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});
