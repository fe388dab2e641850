/**
 * Who is asking: the user behind a request's signature, and the users kiln knows.
 *
 * A signed request is checked (signature, digest, time within the skew window), its nonce must be
 * new (nonces are remembered, in memory and in LMDB, for as long as the skew window lets a
 * request be accepted, so a replay is refused even across a restart), and its key must belong to
 * a registered user. Unsigned requests are anonymous. While no user exists, the first `user.add`
 * of an admin signed by the key it registers is allowed: that is how `kiln up` bootstraps its
 * admin identity.
 */
import type { Logger } from "pino";
import type { RoleStore } from "../../storage/index.ts";
import { keys } from "../../storage/index.ts";
import {
  ConflictError,
  DEFAULT_MAX_SKEW_MS,
  InvalidInputError,
  NotFoundError,
  UnauthenticatedError,
  isUserPublicKey,
  verifySignedAuth,
  type SignedAuth,
} from "../../transport/index.ts";
import { validateUserName } from "../common/names.ts";

export const ANONYMOUS = "anonymous";

export interface UserRecord {
  name: string;
  pubkey: string;
  admin: boolean;
  created: number;
}

/** The authenticated caller of a request. */
export interface Caller {
  user: string;
  admin: boolean;
  anonymous: boolean;
}

export const ANONYMOUS_CALLER: Caller = { user: ANONYMOUS, admin: false, anonymous: true };

export class Identities {
  readonly #store: RoleStore;
  readonly #log: Logger;
  readonly #nonces = new Map<string, number>();
  readonly #maxSkewMs: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(store: RoleStore, log: Logger, maxSkewMs = DEFAULT_MAX_SKEW_MS) {
    this.#store = store;
    this.#log = log;
    this.#maxSkewMs = maxSkewMs;
    const now = Date.now();
    for (const { key, value } of store.scan<number>(keys.noncesAll())) {
      if (value > now) this.#nonces.set(String(key[1]), value);
      else void store.db.remove(key);
    }
    this.#sweeper = setInterval(() => this.#sweep(), 60_000).unref();
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  /** Authenticates a request; throws UnauthenticatedError naming what is wrong. */
  callerOf(msg: { subject: string; args: unknown; auth?: SignedAuth; type?: string }): Caller {
    if (!msg.auth) return ANONYMOUS_CALLER;
    const auth = verifySignedAuth(msg.subject, msg.args, msg.auth, { maxSkewMs: this.#maxSkewMs });
    if (this.#nonces.has(auth.nonce)) throw new UnauthenticatedError("request replayed (nonce already used)");
    const expiry = auth.time + 2 * this.#maxSkewMs;
    this.#nonces.set(auth.nonce, expiry);
    void this.#store.db.put(keys.nonce(auth.nonce), expiry);
    const name = this.#store.get<string>(keys.userKey(auth.pubkey));
    if (!name) {
      if (msg.type === "user.add" && this.isEmpty()) {
        const a = msg.args as { pubkey?: unknown; admin?: unknown };
        if (a.pubkey === auth.pubkey && a.admin === true) return { user: "(bootstrap)", admin: true, anonymous: false };
      }
      this.#log.debug({ pubkey: auth.pubkey }, "unknown key");
      throw new UnauthenticatedError(`key ${auth.pubkey} is not registered with this kiln`);
    }
    const rec = this.#store.get<UserRecord>(keys.user(name));
    return { user: name, admin: rec?.admin === true, anonymous: false };
  }

  /** The caller's user name (for records and events). */
  userOf(msg: { subject: string; args: unknown; auth?: SignedAuth; type?: string }): string {
    return this.callerOf(msg).user;
  }

  isEmpty(): boolean {
    for (const _ of this.#store.scanKeys(keys.usersAll())) return false;
    return true;
  }

  user(name: string): UserRecord | undefined {
    return this.#store.get<UserRecord>(keys.user(name));
  }

  list(): UserRecord[] {
    return [...this.#store.scan<UserRecord>(keys.usersAll())].map((e) => e.value);
  }

  async add(name: string, pubkey: string, admin: boolean): Promise<UserRecord> {
    validateUserName(name);
    if (!isUserPublicKey(pubkey))
      throw new InvalidInputError(`'${pubkey.slice(0, 80)}' is not an nkey user public key (U…)`);
    if (this.user(name)) throw new ConflictError(`user '${name}' already exists`);
    const other = this.#store.get<string>(keys.userKey(pubkey));
    if (other) throw new ConflictError(`that key already belongs to user '${other}'`);
    const rec: UserRecord = { name, pubkey, admin, created: Date.now() };
    await this.#store.transact(() => {
      void this.#store.db.put(keys.user(name), rec);
      void this.#store.db.put(keys.userKey(pubkey), name);
    });
    return rec;
  }

  async remove(name: string): Promise<void> {
    const rec = this.user(name);
    if (!rec) throw new NotFoundError(`user '${name}' does not exist`);
    const admins = this.list().filter((u) => u.admin);
    if (rec.admin && admins.length === 1) throw new ConflictError(`user '${name}' is the last admin`);
    await this.#store.transact(() => {
      void this.#store.db.remove(keys.user(name));
      void this.#store.db.remove(keys.userKey(rec.pubkey));
    });
  }

  #sweep(): void {
    const now = Date.now();
    for (const [n, exp] of this.#nonces) {
      if (exp <= now) {
        this.#nonces.delete(n);
        void this.#store.db.remove(keys.nonce(n));
      }
    }
  }
}
