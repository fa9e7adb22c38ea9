import { backoff, type IntervalFunction, VirtualClock } from '@towerline/core';
import { type ConnectionState, Reconnector, type ReconnectorOptions } from '@towerline/reconnect';

/** A connection made by hand: tests decide when each connect attempt settles. */
export interface FakeConn {
  id: number;
  attempt: number;
  disposed: boolean;
  lost: ((error?: unknown) => void) | undefined;
  signal: AbortSignal;
}

interface PendingConnect {
  attempt: number;
  signal: AbortSignal;
  resolve: (conn: FakeConn) => void;
  reject: (error: unknown) => void;
}

export const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

/**
 * A reconnector on virtual time whose connect attempts wait for the test to settle them
 * (`succeed()`, `fail()`), or settle themselves by `auto` rules.
 */
export function fakeReconnector(
  options: Partial<ReconnectorOptions<FakeConn>> & {
    policy?: IntervalFunction;
    auto?: (attempt: number) => 'ok' | 'fail' | 'hang' | undefined;
  } = {},
) {
  const clock = new VirtualClock();
  const pending: PendingConnect[] = [];
  const conns: FakeConn[] = [];
  const transitions: Array<[ConnectionState, ConnectionState]> = [];
  let nextId = 1;
  const make = (p: { attempt: number; signal: AbortSignal }): FakeConn => {
    const conn: FakeConn = {
      id: nextId++,
      attempt: p.attempt,
      disposed: false,
      lost: undefined,
      signal: p.signal,
    };
    conns.push(conn);
    return conn;
  };
  const { auto, ...rest } = options;
  const r = new Reconnector<FakeConn>({
    clock,
    policy: options.policy ?? backoff.fixed(100),
    connectTimeout: Number.POSITIVE_INFINITY,
    minUptime: 1_000,
    connect: ({ attempt, signal }) =>
      new Promise<FakeConn>((resolve, reject) => {
        const rule = auto?.(attempt);
        if (rule === 'ok') return resolve(make({ attempt, signal }));
        if (rule === 'fail') return reject(refused());
        const entry: PendingConnect = { attempt, signal, resolve, reject };
        signal.addEventListener(
          'abort',
          () => {
            const i = pending.indexOf(entry);
            if (i !== -1) pending.splice(i, 1);
            reject(signal.reason);
          },
          { once: true },
        );
        if (rule !== 'hang') pending.push(entry);
      }),
    watch: (conn, lost) => {
      conn.lost = lost;
      return () => {
        conn.lost = undefined;
      };
    },
    dispose: (conn) => {
      conn.disposed = true;
    },
    ...rest,
  });
  r.events.on('stateChange', ({ from, to }) => transitions.push([from, to]));
  return {
    r,
    clock,
    conns,
    pending,
    transitions,
    /** Settles the oldest pending attempt with a new connection. */
    succeed() {
      const p = pending.shift();
      if (!p) throw new Error('no connect attempt pending');
      const conn = make(p);
      p.resolve(conn);
      return conn;
    },
    /** Fails the oldest pending attempt. */
    fail(error: unknown = refused()) {
      const p = pending.shift();
      if (!p) throw new Error('no connect attempt pending');
      p.reject(error);
    },
    /** Lets promise callbacks run without moving time. */
    settle: () => clock.advance(0),
  };
}
