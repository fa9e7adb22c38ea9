/**
 * Appends and creates on shared storage (several server processes on one database): decided
 * under the database's lock, against the state stored there, not the local copy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Engine } from '../engine/engine.js';
import type { Stream } from '../engine/stream.js';
import { decideAppend, decideCreate, forkSourceKey, type Limits } from '../protocol/decide.js';
import { formatOffset } from '../protocol/offsets.js';
import { problem } from '../protocol/problem.js';
import { createdHeaders } from '../protocol/replies.js';
import type { AppendRequest, CreateRequest } from '../protocol/requests.js';
import type { Responder } from './respond.js';

/** What the shared paths need of the handler. */
export interface SharedWriteDeps {
  engine: Engine;
  responder: Responder;
  limits: Limits;
  basePath: string;
  now: () => number;
  fail: (res: ServerResponse, error: unknown) => void;
  location: (req: IncomingMessage, key: string) => string;
}

export class SharedWrites {
  constructor(private readonly d: SharedWriteDeps) {}

  /** Shared storage: decided under the database's lock, against the state stored there. */
  append(res: ServerResponse, stream: Stream, a: AppendRequest, body: Buffer, again = true): void {
    stream.lastAccess = this.d.now();
    const shared = this.d.engine.shared!;
    shared.append(
      stream,
      // Soft-deleted (by another instance, perhaps): refused as the route refuses it here.
      () =>
        stream.softDeleted
          ? problem(410, 'the stream was deleted')
          : decideAppend(stream, a, body, this.d.limits),
      (error, out) => {
        if (error) return this.d.fail(res, error);
        if (out === 'gone' || !out) {
          // Deleted by another instance; perhaps created again there under the same key.
          if (!again) return this.d.responder.problem(res, problem(404, 'no such stream'));
          shared.sync(stream.key).then(
            () => {
              const now = this.d.engine.live(stream.key);
              if (!now || now === stream || now.softDeleted)
                return this.d.responder.problem(res, problem(404, 'no such stream'));
              this.append(res, now, a, body, false);
            },
            (e: unknown) => this.d.fail(res, e),
          );
          return;
        }
        const d = out.decision;
        if (d.kind === 'problem') return this.d.responder.problem(res, d);
        if (d.kind === 'reply') return this.d.responder.send(res, d.status, d.headers);
        const { status, headers } = d.reply;
        this.d.responder.sendTail(res, status, headers, formatOffset(out.tail), d.spec.close);
      },
    );
  }

  create(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    c: CreateRequest,
    body: Buffer,
  ): void {
    const source = c.fork ? forkSourceKey(c.fork.from, this.d.basePath) : undefined;
    this.d.engine.shared!.create(
      key,
      source,
      () => decideCreate(key, c, body, this.d.basePath, this.d.engine, this.d.limits),
      (error, out) => {
        if (error) return this.d.fail(res, error);
        const d = out === 'gone' || !out ? problem(404, 'no such stream') : out.decision;
        if (d.kind === 'problem') return this.d.responder.problem(res, d);
        if (d.kind === 'reply') return this.d.responder.send(res, d.status, d.headers);
        const headers = createdHeaders(d.spec).concat('location', this.d.location(req, key));
        this.d.responder.send(res, 201, headers);
      },
    );
  }
}
