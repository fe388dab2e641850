/**
 * Makes a nact actor reachable over NATS: requests on a role's subjects become messages
 * `{type, args, auth, subject, replyTo}` in the actor's mailbox, and the envelope the actor sends
 * to `replyTo` becomes the NATS reply. The actor decides everything else.
 */
import type { NatsConnection, Subscription } from "nats";
import { dispatch, query, type Ref } from "nact";
import type { Logger } from "pino";
import type { SignedAuth } from "./auth.ts";
import { TimeoutError, unwrapEnvelope, type Envelope } from "./errors.ts";
import { serve, type RequestHandler, DEFAULT_REQUEST_TIMEOUT_MS } from "./rpc.ts";

/** The message a bridged actor receives for each request. */
export interface BridgedRequest<T extends string = string> {
  type: T;
  args: unknown;
  auth?: SignedAuth;
  subject: string;
  replyTo: Ref<Envelope<unknown>>;
}

export interface BridgeOptions {
  subject: string;
  queue?: string;
  prefixTokens: number;
  log: Logger;
  /** Requests answered without the actor (e.g. blob verbs): type → handler. */
  direct?: { types: ReadonlySet<string>; handler: RequestHandler };
  /** @default just under the client's default timeout */
  queryTimeoutMs?: number;
}

export function bridgeActor(nc: NatsConnection, actor: Ref<BridgedRequest>, opts: BridgeOptions): Subscription {
  const timeout = opts.queryTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS - 500;
  const handler: RequestHandler = async (args, meta) => {
    if (opts.direct?.types.has(meta.type)) return opts.direct.handler(args, meta);
    let env: Envelope<unknown>;
    try {
      env = await query(
        actor,
        (replyTo: Ref<Envelope<unknown>>): BridgedRequest => ({
          type: meta.type,
          args,
          ...(meta.auth ? { auth: meta.auth } : {}),
          subject: meta.subject,
          replyTo,
        }),
        timeout
      );
    } catch {
      throw new TimeoutError(`${meta.type} did not finish within ${timeout} ms`);
    }
    return unwrapEnvelope(env);
  };
  return serve(nc, {
    subject: opts.subject,
    prefixTokens: opts.prefixTokens,
    handler,
    log: opts.log,
    ...(opts.queue ? { queue: opts.queue } : {}),
  });
}

/** Sends an envelope to a reply ref; for actors answering bridged requests. */
export function reply<T>(to: Ref<Envelope<T>>, env: Envelope<T>): void {
  dispatch(to, env);
}
