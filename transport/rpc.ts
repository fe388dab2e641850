/**
 * Request/reply over NATS with kiln's envelope.
 *
 * A request payload is `{args, auth?}` (msgpack); the reply is an {@link Envelope}. Timeouts and
 * "no responders" become typed, retryable errors, and {@link RpcClient.call} is the single place
 * where retryable failures are retried, following one {@link Backoff} policy. A timed-out request
 * is retried only when the caller says it is idempotent: the first attempt may have been applied.
 */
import type { Msg, NatsConnection, Subscription } from "nats";
import { ErrorCode as NatsErrorCode, headers as natsHeaders } from "nats";
import type { Logger } from "pino";
import { decode, encode } from "./codec.ts";
import { backoff, delay, type Backoff } from "./backoff.ts";
import {
  InternalError,
  InvalidInputError,
  KilnError,
  NoRespondersError,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  errorEnvelope,
  okEnvelope,
  unwrapEnvelope,
} from "./errors.ts";
import type { SignedAuth } from "./auth.ts";

/** @default 10 seconds */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** The request as it travels. */
export interface RequestWire {
  args: unknown;
  auth?: SignedAuth;
}

/** What a handler learns about a request besides its arguments. */
export interface RequestMeta {
  subject: string;
  /** The `noun.verb` tail of the subject. */
  type: string;
  auth?: SignedAuth;
}

export type RequestHandler = (args: unknown, meta: RequestMeta) => Promise<unknown>;

/** Something that signs requests on behalf of a user (see auth.ts). */
export interface RequestSigner {
  sign(subject: string, args: unknown): SignedAuth;
}

export interface ServeOptions {
  /** Subject or wildcard to subscribe to. */
  subject: string;
  /** Queue group; requests are balanced over its members. Omit for every subscriber to answer. */
  queue?: string;
  handler: RequestHandler;
  log: Logger;
  /** Number of leading subject tokens before the `noun.verb` tail. */
  prefixTokens: number;
}

/**
 * Serves requests on a subject. Each request runs concurrently; replies always carry an envelope,
 * and a request with a malformed payload gets an ERR_INVALID_INPUT reply rather than silence.
 */
export function serve(nc: NatsConnection, opts: ServeOptions): Subscription {
  const { log } = opts;
  const handleOne = async (msg: Msg): Promise<void> => {
    const tokens = msg.subject.split(".");
    const type = tokens.slice(opts.prefixTokens).join(".");
    let reply: Uint8Array;
    try {
      const wire = decode<RequestWire>(msg.data);
      // `args` is absent when the caller passed undefined (the codec drops undefined fields).
      if (typeof wire !== "object" || wire === null || Array.isArray(wire) || wire instanceof Uint8Array) {
        throw new InvalidInputError("request payload must be {args, auth?}");
      }
      const meta: RequestMeta = { subject: msg.subject, type };
      if (wire.auth !== undefined) meta.auth = wire.auth;
      const value = await opts.handler(wire.args, meta);
      reply = encode(okEnvelope(value ?? null));
    } catch (err) {
      if (!(err instanceof KilnError) || err.code === "ERR_INTERNAL") {
        log.error({ err, subject: msg.subject }, "request failed");
      } else {
        log.debug({ code: err.code, msg: err.message, subject: msg.subject }, "request refused");
      }
      reply = encode(errorEnvelope(err));
    }
    if (msg.reply) {
      try {
        msg.respond(reply);
      } catch (err) {
        log.warn({ err, subject: msg.subject }, "reply not sent");
        // Tell the caller instead of letting it wait for its timeout (a reply over max_payload).
        const tooLarge = (err as { code?: string }).code === NatsErrorCode.MaxPayloadExceeded;
        const why = tooLarge
          ? new TooLargeError(`reply to ${type} exceeds the NATS max_payload`, {
              data: { limit: nc.info?.max_payload ?? null, size: reply.length },
            })
          : new InternalError(`reply to ${type} could not be sent: ${(err as Error).message}`);
        try {
          msg.respond(encode(errorEnvelope(why)));
        } catch {
          // The connection is gone; the caller times out.
        }
      }
    }
  };
  const sub = nc.subscribe(opts.subject, {
    ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
    callback: (err, msg) => {
      if (err) {
        log.warn({ err }, "subscription error");
        return;
      }
      void handleOne(msg);
    },
  });
  return sub;
}

export interface CallOptions {
  /** @default {@link DEFAULT_REQUEST_TIMEOUT_MS} */
  timeoutMs?: number;
  /** Safe to repeat after a timeout (reads, puts of the same content). @default false */
  idempotent?: boolean;
  /** Sign the request with the client's signer. @default true when a signer is set */
  sign?: boolean;
  /** Gives up waiting and retrying when aborted. */
  signal?: AbortSignal;
}

export interface RpcClientOptions {
  backoff?: Backoff;
  timeoutMs?: number;
  signer?: RequestSigner;
}

/** Low-level caller: one subject, one envelope, typed errors, retries. */
export class RpcClient {
  readonly nc: NatsConnection;
  readonly #backoff: Backoff;
  readonly #timeoutMs: number;
  readonly #signer: RequestSigner | undefined;

  constructor(nc: NatsConnection, opts: RpcClientOptions = {}) {
    this.nc = nc;
    this.#backoff = opts.backoff ?? backoff();
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#signer = opts.signer;
  }

  /** The same connection with another signer (or none). */
  withSigner(signer: RequestSigner | undefined): RpcClient {
    return new RpcClient(this.nc, { backoff: this.#backoff, timeoutMs: this.#timeoutMs, signer });
  }

  async call<T>(subject: string, args: unknown, opts: CallOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once<T>(subject, args, opts);
      } catch (err) {
        const retry =
          err instanceof KilnError &&
          err.retryable &&
          (err.code !== "ERR_TIMEOUT" || opts.idempotent === true) &&
          !opts.signal?.aborted;
        const wait = retry ? this.#backoff.delay(attempt) : undefined;
        if (wait === undefined) throw err;
        await delay(wait, opts.signal);
      }
    }
  }

  async #once<T>(subject: string, args: unknown, opts: CallOptions): Promise<T> {
    const wire: RequestWire = { args };
    if (this.#signer && opts.sign !== false) wire.auth = this.#signer.sign(subject, args);
    const timeout = opts.timeoutMs ?? this.#timeoutMs;
    let msg: Msg;
    try {
      msg = await this.nc.request(subject, encode(wire), { timeout, noMux: false, headers: natsHeaders() });
    } catch (err) {
      throw mapNatsError(err, subject, timeout);
    }
    return unwrapEnvelope<T>(decode(msg.data));
  }
}

/** Maps nats.js request failures to kiln's retryable errors. */
export function mapNatsError(err: unknown, subject: string, timeoutMs: number): Error {
  const code = (err as { code?: string } | null)?.code;
  if (code === NatsErrorCode.NoResponders) return new NoRespondersError(`no responders for ${subject}`, { cause: err });
  if (code === NatsErrorCode.Timeout) return new TimeoutError(`no reply from ${subject} within ${timeoutMs} ms`);
  if (
    code === NatsErrorCode.ConnectionClosed ||
    code === NatsErrorCode.ConnectionDraining ||
    code === NatsErrorCode.Disconnect
  ) {
    return new UnavailableError(`NATS connection unavailable (${code})`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The request/response map of one role: for each `noun.verb`, what is sent and what comes back.
 * Each role's protocol.ts declares one, and both its typed client and its actor messages derive
 * from it.
 */
export type Api = Record<string, { req: unknown; res: unknown }>;

/** A typed client for one role (or one scheduler arch, or one worker). */
export class RoleClient<A extends Api> {
  readonly rpc: RpcClient;
  readonly #subjectFor: (type: string) => string;

  constructor(rpc: RpcClient, subjectFor: (type: string) => string) {
    this.rpc = rpc;
    this.#subjectFor = subjectFor;
  }

  call<K extends keyof A & string>(type: K, args: A[K]["req"], opts?: CallOptions): Promise<A[K]["res"]> {
    return this.rpc.call<A[K]["res"]>(this.#subjectFor(type), args, opts);
  }

  subject(type: keyof A & string): string {
    return this.#subjectFor(type);
  }
}
