/**
 * Who is asking: the user behind a request's signature. Unsigned requests are anonymous.
 */
import type { Logger } from "pino";
import type { RoleStore } from "../../storage/index.ts";
import { keys } from "../../storage/index.ts";
import { UnauthenticatedError, verifySignedAuth, type SignedAuth } from "../../transport/index.ts";

export const ANONYMOUS = "anonymous";

export class Identities {
  readonly #store: RoleStore;
  readonly #log: Logger;

  constructor(store: RoleStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /** The user name of a request; throws UnauthenticatedError for a bad or unknown signature. */
  userOf(msg: { subject: string; args: unknown; auth?: SignedAuth }): string {
    if (!msg.auth) return ANONYMOUS;
    const auth = verifySignedAuth(msg.subject, msg.args, msg.auth);
    const user = this.#store.get<string>(keys.userKey(auth.pubkey));
    if (!user) {
      this.#log.debug({ pubkey: auth.pubkey }, "unknown key");
      throw new UnauthenticatedError(`key ${auth.pubkey} is not registered`);
    }
    return user;
  }
}
