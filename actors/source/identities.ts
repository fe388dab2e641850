/**
 * Who is asking: the user behind a request's signature, and the users and groups kiln knows.
 *
 * A signed request is checked (signature, digest, time within the skew window), its nonce must be
 * new (nonces are remembered, in memory and in LMDB, for as long as the skew window lets a
 * request be accepted, so a replay is refused even across a restart), and its key must belong to
 * a registered user. Unsigned requests are anonymous. While no admin exists, the first `user.add`
 * of an admin signed by the key it registers is allowed: that is how `kiln up` bootstraps its
 * admin identity (service users, which `kiln up` registers before, do not count).
 *
 * The nonce space is the only thing a refused request may write: a request that is refused after
 * its signature was found good (forbidden, say) keeps its nonce, so that it cannot be replayed
 * later when the rules have changed. Everything else a refused request leaves untouched.
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
import { quoteForMessage, validateGroupName, validateUserName } from "../common/names.ts";
import { ANONYMOUS_PRINCIPAL, type Principal } from "./access.ts";

export const ANONYMOUS = "anonymous";

export interface UserRecord {
  name: string;
  pubkey: string;
  admin: boolean;
  /** A kiln role's identity: reads everything, changes nothing. */
  service?: boolean;
  created: number;
}

export interface GroupRecord {
  name: string;
  members: string[];
  updated: number;
}

/** The authenticated caller of a request. */
export type Caller = Principal;

export const ANONYMOUS_CALLER: Caller = ANONYMOUS_PRINCIPAL;

/** What a request says about itself, enough to authenticate it. */
export interface SignedRequest {
  subject: string;
  args: unknown;
  auth?: SignedAuth;
  type?: string;
}

export class Identities {
  readonly #store: RoleStore;
  readonly #log: Logger;
  readonly #nonces = new Map<string, number>();
  readonly #maxSkewMs: number;
  readonly #sweeper: NodeJS.Timeout;
  /** user → groups, rebuilt when groups change. */
  #memberships: Map<string, Set<string>> | undefined;

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
  callerOf(msg: SignedRequest): Caller {
    if (msg.auth === undefined) return ANONYMOUS_CALLER;
    const auth = verifySignedAuth(msg.subject, msg.args, msg.auth, { maxSkewMs: this.#maxSkewMs });
    if (this.#nonces.has(auth.nonce)) throw new UnauthenticatedError("request replayed (nonce already used)");
    const expiry = auth.time + 2 * this.#maxSkewMs;
    this.#nonces.set(auth.nonce, expiry);
    void this.#store.db.put(keys.nonce(auth.nonce), expiry);
    const name = this.#store.get<string>(keys.userKey(auth.pubkey));
    if (!name) {
      if (msg.type === "user.add" && !this.hasAdmin()) {
        const a = msg.args as { pubkey?: unknown; admin?: unknown };
        if (a.pubkey === auth.pubkey && a.admin === true) {
          return { user: "(bootstrap)", admin: true, service: false, anonymous: false, groups: new Set() };
        }
      }
      this.#log.debug({ pubkey: auth.pubkey }, "unknown key");
      throw new UnauthenticatedError(`key ${auth.pubkey} is not registered with this kiln`);
    }
    return this.principalOf(name);
  }

  /** A registered user as a principal (groups included). */
  principalOf(name: string): Caller {
    const rec = this.#store.get<UserRecord>(keys.user(name));
    return {
      user: name,
      admin: rec?.admin === true,
      service: rec?.service === true,
      anonymous: false,
      groups: this.#groupsOf(name),
    };
  }

  hasAdmin(): boolean {
    for (const { value } of this.#store.scan<UserRecord>(keys.usersAll())) if (value.admin) return true;
    return false;
  }

  user(name: string): UserRecord | undefined {
    return this.#store.get<UserRecord>(keys.user(name));
  }

  list(): UserRecord[] {
    return [...this.#store.scan<UserRecord>(keys.usersAll())].map((e) => e.value);
  }

  async add(name: string, pubkey: string, opts: { admin?: boolean; service?: boolean } = {}): Promise<UserRecord> {
    validateUserName(name);
    if (!isUserPublicKey(pubkey)) {
      throw new InvalidInputError(`${quoteForMessage(pubkey)} is not an nkey user public key (U…)`);
    }
    if (opts.admin && opts.service) throw new InvalidInputError("a user is either an admin or a service, not both");
    if (this.user(name)) throw new ConflictError(`user '${name}' already exists`);
    const other = this.#store.get<string>(keys.userKey(pubkey));
    if (other) throw new ConflictError(`that key already belongs to user '${other}'`);
    const rec: UserRecord = {
      name,
      pubkey,
      admin: opts.admin === true,
      ...(opts.service ? { service: true } : {}),
      created: Date.now(),
    };
    await this.#store.transact(() => {
      void this.#store.db.put(keys.user(name), rec);
      void this.#store.db.put(keys.userKey(pubkey), name);
    });
    return rec;
  }

  /**
   * Registers (or re-keys) the service user of a kiln process that hosts roles next to the
   * source role. Only the process that owns the source role's data calls this, at start.
   */
  async ensureService(name: string, pubkey: string): Promise<void> {
    validateUserName(name);
    if (!isUserPublicKey(pubkey)) throw new InvalidInputError("service key is not an nkey user public key");
    const rec = this.user(name);
    if (rec && rec.pubkey === pubkey && rec.service === true) return;
    if (rec && rec.service !== true) {
      throw new ConflictError(`user '${name}' exists and is not a service user; pick another role identity name`);
    }
    const other = this.#store.get<string>(keys.userKey(pubkey));
    if (other && other !== name) throw new ConflictError(`the role key already belongs to user '${other}'`);
    await this.#store.transact(() => {
      if (rec) void this.#store.db.remove(keys.userKey(rec.pubkey));
      void this.#store.db.put(keys.user(name), {
        name,
        pubkey,
        admin: false,
        service: true,
        created: rec?.created ?? Date.now(),
      } satisfies UserRecord);
      void this.#store.db.put(keys.userKey(pubkey), name);
    });
    this.#log.info({ user: name }, "service user registered");
  }

  async remove(name: string): Promise<void> {
    const rec = this.user(name);
    if (!rec) throw new NotFoundError(`user '${name}' does not exist`);
    const admins = this.list().filter((u) => u.admin);
    if (rec.admin && admins.length === 1) throw new ConflictError(`user '${name}' is the last admin`);
    // A later user of the same name must not inherit the memberships.
    const groups = this.groups().filter((g) => g.members.includes(name));
    await this.#store.transact(() => {
      void this.#store.db.remove(keys.user(name));
      void this.#store.db.remove(keys.userKey(rec.pubkey));
      for (const g of groups) {
        void this.#store.db.put(keys.group(g.name), {
          ...g,
          members: g.members.filter((m) => m !== name),
          updated: Date.now(),
        } satisfies GroupRecord);
      }
    });
    this.#memberships = undefined;
  }

  // ---- groups ------------------------------------------------------------------------------

  groups(): GroupRecord[] {
    return [...this.#store.scan<GroupRecord>(keys.groupsAll())].map((e) => e.value);
  }

  /** Creates or replaces a group; members must be registered users. */
  async setGroup(name: string, members: string[]): Promise<GroupRecord> {
    validateGroupName(name);
    const unique = [...new Set(members)].sort();
    for (const m of unique) {
      if (!this.user(m)) throw new NotFoundError(`user '${m}' does not exist (group '${name}')`);
    }
    const rec: GroupRecord = { name, members: unique, updated: Date.now() };
    await this.#store.transact(() => {
      void this.#store.db.put(keys.group(name), rec);
    });
    this.#memberships = undefined;
    return rec;
  }

  async removeGroup(name: string): Promise<void> {
    validateGroupName(name);
    if (!this.#store.get(keys.group(name))) throw new NotFoundError(`group '${name}' does not exist`);
    await this.#store.transact(() => {
      void this.#store.db.remove(keys.group(name));
    });
    this.#memberships = undefined;
  }

  #groupsOf(user: string): Set<string> {
    if (!this.#memberships) {
      const m = new Map<string, Set<string>>();
      for (const g of this.groups()) {
        for (const u of g.members) {
          let s = m.get(u);
          if (!s) m.set(u, (s = new Set()));
          s.add(g.name);
        }
      }
      this.#memberships = m;
    }
    return this.#memberships.get(user) ?? new Set();
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
