/**
 * The postgres store's `LISTEN` connection: how the other instances' changes reach this one's
 * live readers. A `NOTIFY` sent while it is down is lost for good, so a reader must never
 * depend on one alone:
 *
 * - every (re)connect, the first included, makes the store re-read each stream someone waits
 *   on (`catchUp`) — the changes made while it was down;
 * - while it is down, the same re-read runs every {@link POLL_MS} (one round at a time), so
 *   readers keep up through the pool even while `LISTEN` itself cannot come back;
 * - it reconnects with a short capped backoff ({@link reconnectPolicy}): the time from the
 *   database being back to notifications flowing again is about a second, not the default
 *   policy's 30 s cap. It is one connection per instance (the pool's few use the same);
 * - it is idle, so a link that died without a word (no FIN, no RST) would look alive and
 *   deliver nothing forever: a `SELECT 1` every `heartbeatMs`, unanswered within as long,
 *   reports it lost (and polling takes over until it is back).
 */
import { ExponentialRandomBackoff } from '@towerline/core';
import type { ResilientPg, ResilientPgOptions } from '@towerline/pg';
import type pg from 'pg';

/** Time between two catch-up rounds while the `LISTEN` connection is down, ms. */
export const POLL_MS = 1_000;

/** Reconnect backoff of the store's connections: 100–800 ms, then 100 ms – 1 s, jittered. */
export const reconnectPolicy = (): ExponentialRandomBackoff =>
  new ExponentialRandomBackoff({
    initial: 100,
    multiplier: 2,
    max: 1_000,
    jitter: 'decorrelated',
    spread: 8,
  });

/** Time between two heartbeats of the `LISTEN` connection, and the longest wait for one, ms. */
export const HEARTBEAT_MS = 5_000;

/**
 * Longest connect attempt of the `LISTEN` connection (LISTEN included), ms: one made into a
 * silent link is given up after this, not the default 10 s.
 */
export const CONNECT_TIMEOUT_MS = 5_000;

/** What the listener drives: the store, once it is open. */
export interface ListenHost {
  /** A notification's payload. */
  noted(payload: string): void;
  /** Re-reads every stream someone waits on: notifications may have been missed. */
  catchUp(): Promise<void>;
}

type Warn = (message: string, fields: Record<string, unknown>) => void;

export class PgListener {
  readonly #conn: ResilientPg;
  readonly #warn: Warn | undefined;
  #host: ListenHost | undefined;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #again = false;
  #beat: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pinging = false;
  #closed = false;
  readonly #heartbeatMs: number;

  constructor(
    Resilient: new (options: ResilientPgOptions) => ResilientPg,
    url: string,
    channel: string,
    warn: Warn | undefined,
    heartbeatMs = HEARTBEAT_MS,
  ) {
    this.#warn = warn;
    this.#heartbeatMs = heartbeatMs;
    this.#conn = new Resilient({
      client: { connectionString: url },
      name: 'ds:pg-listen',
      policy: reconnectPolicy(),
      connectTimeout: CONNECT_TIMEOUT_MS,
      setup: async (client: pg.Client) => {
        client.on('notification', (n) => {
          if (n.channel === channel && n.payload) this.#host?.noted(n.payload);
        });
        await client.query(`LISTEN "${channel}"`);
      },
    });
    const events = this.#conn.reconnector.events;
    events.on('connected', () => {
      this.#stopPolling();
      this.#startBeating();
      // LISTEN is in place (setup ran): whatever changed before it is read now.
      this.#catchUp(true);
    });
    events.on('disconnected', () => {
      this.#stopBeating();
      this.#startPolling();
    });
    this.#startPolling();
    this.#conn.reconnector.start();
  }

  /** Whether notifications are being received. */
  get listening(): boolean {
    return this.#conn.reconnector.state === 'connected';
  }

  /** The store to drive; until then there is no reader to wake. */
  attach(host: ListenHost): void {
    this.#host = host;
  }

  #startPolling(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#catchUp(false), POLL_MS);
    this.#timer.unref();
  }

  #stopPolling(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #startBeating(): void {
    if (this.#closed || this.#beat !== undefined) return;
    this.#beat = setInterval(() => this.#ping(), this.#heartbeatMs);
    this.#beat.unref();
  }

  #stopBeating(): void {
    clearInterval(this.#beat);
    this.#beat = undefined;
  }

  /** One heartbeat: a failure or no answer in time is a lost connection. */
  #ping(): void {
    const r = this.#conn.reconnector;
    const client = r.current;
    if (this.#pinging || !client) return;
    const generation = r.generation;
    this.#pinging = true;
    const timeout = new Promise<Error>((resolve) => {
      this.#pingTimer = setTimeout(
        () => resolve(new Error('the LISTEN connection stopped answering')),
        this.#heartbeatMs,
      );
      this.#pingTimer.unref();
    });
    const answer = client.query('SELECT 1').then(
      () => undefined,
      (error: unknown) => error,
    );
    void Promise.race([answer, timeout]).then((error) => {
      clearTimeout(this.#pingTimer);
      this.#pingTimer = undefined;
      this.#pinging = false;
      if (error !== undefined && !this.#closed) r.reportLost(generation, error);
    });
  }

  /**
   * One catch-up round at a time. One asked for after a reconnect while a round runs (it may
   * have read before LISTEN was back) runs once more after it. A poll's failure is the outage
   * itself, not worth a warning.
   */
  #catchUp(afterConnect: boolean): void {
    const host = this.#host;
    if (!host || this.#closed) return;
    if (this.#round) {
      if (afterConnect) this.#again = true;
      return;
    }
    this.#round = host.catchUp().then(
      () => {},
      (error: Error) => {
        if (afterConnect)
          this.#warn?.('postgres refresh failed', { 'error.message': error.message });
      },
    );
    void this.#round.then(() => {
      this.#round = undefined;
      if (this.#again) {
        this.#again = false;
        this.#catchUp(true);
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopPolling();
    this.#stopBeating();
    clearTimeout(this.#pingTimer);
    await this.#conn.close();
  }
}
