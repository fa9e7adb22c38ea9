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
 *   policy's 30 s cap. It is one connection per instance (the pool's few use the same).
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
  #closed = false;

  constructor(
    Resilient: new (options: ResilientPgOptions) => ResilientPg,
    url: string,
    channel: string,
    warn: Warn | undefined,
  ) {
    this.#warn = warn;
    this.#conn = new Resilient({
      client: { connectionString: url },
      name: 'ds:pg-listen',
      policy: reconnectPolicy(),
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
      // LISTEN is in place (setup ran): whatever changed before it is read now.
      this.#catchUp(true);
    });
    events.on('disconnected', () => this.#startPolling());
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
    await this.#conn.close();
  }
}
