/**
 * The small kit every role's actors are built with.
 *
 * A role's requests are described by an {@link Api} map in its protocol.ts. From it derive:
 * - {@link RequestMsg}: the tagged union of validated requests an actor receives
 *   (`{type, args, auth, replyTo}`), which its handler switches over exhaustively;
 * - the role's typed client (transport's `RoleClient<Api>`).
 *
 * {@link validated} turns a raw bridged request into a typed one using a per-verb validator
 * table, and {@link answer} runs a handler and sends its result or error as the reply envelope.
 */
import { dispatch, type Ref } from "nact";
import {
  NotFoundError,
  errorEnvelope,
  okEnvelope,
  type Api,
  type BridgedRequest,
  type Envelope,
  type SignedAuth,
} from "../../transport/index.ts";

/** One validated request for verb K of Api A. */
export type RequestOf<A extends Api, K extends keyof A & string> = {
  type: K;
  args: A[K]["req"];
  /**
   * The arguments as they arrived, before validation: the signature in `auth` covers these, so
   * this is what to pass on when another role authenticates the request (`access.check`).
   */
  rawArgs?: unknown;
  auth?: SignedAuth;
  subject: string;
  replyTo: Ref<Envelope<A[K]["res"]>>;
};

/** The union of validated requests of an Api. */
export type RequestMsg<A extends Api> = { [K in keyof A & string]: RequestOf<A, K> }[keyof A & string];

/** Per-verb validators from raw (decoded, untrusted) args to the typed request args. */
export type Validators<A extends Api> = { [K in keyof A & string]: (raw: unknown) => A[K]["req"] };

/**
 * Validates a bridged request; on failure the error is sent to the caller and undefined is
 * returned, so the actor just skips the message.
 */
export function validated<A extends Api>(validators: Validators<A>, msg: BridgedRequest): RequestMsg<A> | undefined {
  const check = (validators as Record<string, ((raw: unknown) => unknown) | undefined>)[msg.type];
  try {
    if (!check) throw new NotFoundError(`unknown request ${msg.type}`);
    const args = check(msg.args);
    return { ...msg, args, rawArgs: msg.args } as unknown as RequestMsg<A>;
  } catch (err) {
    dispatch(msg.replyTo, errorEnvelope(err));
    return undefined;
  }
}

/** Runs `fn` and replies with its value, or with the error it throws. Never throws itself. */
export async function answer<T>(replyTo: Ref<Envelope<T>>, fn: () => T | Promise<T>): Promise<void> {
  let env: Envelope<T>;
  try {
    env = okEnvelope(await fn());
  } catch (err) {
    env = errorEnvelope(err);
  }
  dispatch(replyTo, env);
}

/** For exhaustive switches over message unions. */
export function assertNever(x: never): never {
  throw new Error(`unhandled message: ${JSON.stringify(x)}`);
}

/**
 * nact allows only `[a-z0-9-$_.+!*'(),]` in actor names; project and package names also contain
 * `:` and other characters. This encoding is injective: `$` escapes every other byte as `$HH`.
 */
export function actorName(key: string): string {
  let out = "";
  for (const byte of Buffer.from(key, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += /[a-zA-Z0-9\-_.+!*'(),]/.test(ch) && byte < 128 ? ch : `$${byte.toString(16).padStart(2, "0")}`;
  }
  return out || "$";
}

/**
 * Entity children of an actor (one per project, package, repository/arch), spawned on demand and
 * stopped when idle. The parent stops them in its own turn ({@link Children.sweep}), never a
 * child by its own timer: nact drops messages sent to a stopped actor, and a child timing out
 * between the parent's lookup and its dispatch would lose a request.
 */
export class Children<M> {
  readonly #live = new Map<string, { ref: Ref<M>; lastUse: number }>();
  readonly #spawn: (name: string, key: string) => Ref<M>;
  readonly #idleMs: number;

  constructor(spawnChild: (name: string, key: string) => Ref<M>, idleMs = 5 * 60_000) {
    this.#spawn = spawnChild;
    this.#idleMs = idleMs;
  }

  get(key: string): Ref<M> {
    const now = Date.now();
    let c = this.#live.get(key);
    if (!c) {
      c = { ref: this.#spawn(actorName(key), key), lastUse: now };
      this.#live.set(key, c);
    }
    c.lastUse = now;
    return c.ref;
  }

  /** Stops children unused for the idle time; returns how many. */
  sweep(stopChild: (ref: Ref<M>) => void, now = Date.now()): number {
    let n = 0;
    for (const [key, c] of this.#live) {
      if (now - c.lastUse > this.#idleMs) {
        this.#live.delete(key);
        stopChild(c.ref);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.#live.size;
  }

  keys(): IterableIterator<string> {
    return this.#live.keys();
  }
}
