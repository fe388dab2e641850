/**
 * One LMDB environment per role and host, values in msgpack, keys from keys.ts.
 *
 * Writes go through lmdb-js's asynchronous batched transactions (`transaction()`/`put()`), which
 * group all writes of one event-loop turn into one commit; nothing on a hot path opens a
 * synchronous transaction per small write.
 */
import { mkdirSync } from "node:fs";
import { open, type Database, type RootDatabase } from "lmdb";
import type { Logger } from "pino";
import { UnavailableError } from "../transport/index.ts";
import { prefixRange, keys, type Key } from "./keys.ts";

export interface StoreOptions {
  /** Directory of the LMDB environment; created if missing. */
  path: string;
  log: Logger;
  /** Upper bound of the map; LMDB grows the file lazily. @default 64 GiB */
  mapSizeBytes?: number;
}

/** A role's database. `db` is the raw lmdb-js handle for the role's own modules. */
export class RoleStore {
  readonly db: RootDatabase<unknown, Key>;
  readonly path: string;
  readonly #log: Logger;
  #closed = false;

  private constructor(db: RootDatabase<unknown, Key>, path: string, log: Logger) {
    this.db = db;
    this.path = path;
    this.#log = log;
  }

  static open(opts: StoreOptions): RoleStore {
    mkdirSync(opts.path, { recursive: true });
    const db = open<unknown, Key>({
      path: opts.path,
      encoding: "msgpack",
      compression: false,
      mapSize: opts.mapSizeBytes ?? 64 * 1024 ** 3,
      // Named sub-databases are not needed: every key starts with its space tag.
      maxDbs: 4,
    });
    opts.log.debug({ path: opts.path }, "store opened");
    return new RoleStore(db, opts.path, opts.log);
  }

  get<T>(key: Key): T | undefined {
    this.#open();
    return this.db.get(key) as T | undefined;
  }

  /** Values of every key under a prefix, in key order. */
  *scan<T>(prefix: Key, opts: { reverse?: boolean; limit?: number } = {}): Generator<{ key: Key; value: T }> {
    this.#open();
    const r = prefixRange(prefix);
    const range = opts.reverse
      ? { start: r.end, end: r.start, reverse: true, ...(opts.limit ? { limit: opts.limit } : {}) }
      : { ...r, ...(opts.limit ? { limit: opts.limit } : {}) };
    for (const { key, value } of this.db.getRange(range as never)) {
      yield { key: key as Key, value: value as T };
    }
  }

  /** Keys only, under a prefix. */
  *scanKeys(prefix: Key): Generator<Key> {
    this.#open();
    for (const key of this.db.getKeys(prefixRange(prefix) as never)) yield key as Key;
  }

  /**
   * Runs `fn` in one write transaction: all its puts/removes commit together or not at all.
   * `fn` must be synchronous (LMDB transactions cannot span awaits). When `fn` throws, its writes
   * are rolled back and the promise rejects with the error.
   */
  async transact<T>(fn: () => T): Promise<T> {
    // A child transaction of lmdb-js's batched write transaction: `transaction()` would still
    // commit the writes made before a throw, along with the rest of the batch.
    return this.db.childTransaction(fn);
  }

  /** A key's value, from the store or by `fallback`. */
  getOr<T>(key: Key, fallback: () => T): T {
    this.#open();
    const v = this.db.get(key);
    return v === undefined ? fallback() : (v as T);
  }

  /** Next integer for a counter kept under ["meta", name]; call inside transact. */
  nextSeq(name: string): number {
    const k = keys.meta(`seq:${name}`);
    const n = ((this.db.get(k) as number | undefined) ?? 0) + 1;
    void this.db.put(k, n);
    return n;
  }

  sub(name: string): Database<unknown, Key> {
    return this.db.openDB<unknown, Key>({ name, encoding: "msgpack" });
  }

  /**
   * A read after close must not reach lmdb-js: it would arm a timer that throws, uncaught, in a
   * later turn ("Attempt to reset an invalid read txn"). The reader gets this error instead.
   */
  #open(): void {
    if (this.#closed) throw new UnavailableError(`the store at ${this.path} is closed`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.db.close();
    this.#log.debug({ path: this.path }, "store closed");
  }
}

export interface OutboxOptions {
  /**
   * Waits before each retry of a failed publication, the last repeated until the stream takes
   * the events again; each varies by ±20 %. @default 250 ms doubling up to 30 s
   */
  retryDelaysMs?: readonly number[];
}

const OUTBOX_RETRY_MS: readonly number[] = [250, 500, 1000, 2000, 4000, 8000, 15_000, 30_000];
/** Events read from the outbox at once; published (and removed) before the next are read. */
const OUTBOX_PAGE = 256;

/**
 * Transactional outbox: events are written in the same transaction as the state change they
 * report, published after commit, and removed when the stream acknowledged them. After a crash
 * {@link Outbox.flush} re-sends what is left, so an event is never lost; consumers see at most a
 * duplicate, which the stream's deduplication by event id absorbs. A publication that fails (the
 * stream is briefly unavailable) is retried on a timer with growing waits until it succeeds: the
 * last write before a quiet period must not leave its events waiting for the next one.
 */
export class Outbox<E> {
  readonly #store: RoleStore;
  readonly #publish: (event: E) => Promise<void>;
  readonly #log: Logger;
  readonly #retryDelays: readonly number[];
  #flushing: Promise<void> | undefined;
  #again = false;
  #retry: NodeJS.Timeout | undefined;
  /** Failed publications in a row; decides the next wait. */
  #failures = 0;
  #stopped = false;

  constructor(store: RoleStore, publish: (event: E) => Promise<void>, log: Logger, opts: OutboxOptions = {}) {
    this.#store = store;
    this.#publish = publish;
    this.#log = log;
    this.#retryDelays = opts.retryDelaysMs?.length ? opts.retryDelaysMs : OUTBOX_RETRY_MS;
  }

  /** Records an event; call inside `store.transact`. */
  add(event: E): void {
    const seq = this.#store.nextSeq("outbox");
    void this.#store.db.put(keys.outbox(seq), event);
  }

  /**
   * Publishes everything recorded, in order; concurrent calls coalesce. What fails stays, and a
   * retry is scheduled: the promise resolves either way.
   */
  flush(): Promise<void> {
    if (this.#flushing) {
      this.#again = true;
      return this.#flushing;
    }
    this.#flushing = (async () => {
      do {
        this.#again = false;
        // Read a page before publishing it: a range left open across awaits has its cursor closed
        // later by lmdb-js against a read transaction that may have ended, which crashes the
        // process (seen when a publication failed while other writes went on).
        for (;;) {
          const page = [...this.#store.scan<E>(keys.outboxAll(), { limit: OUTBOX_PAGE })];
          if (!page.length) break;
          for (const { key, value } of page) {
            try {
              await this.#publish(value);
            } catch (err) {
              this.#scheduleRetry(err);
              return;
            }
            await this.#store.db.remove(key);
          }
        }
      } while (this.#again);
      this.#failures = 0;
    })().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  #scheduleRetry(err: unknown): void {
    const base = this.#retryDelays[Math.min(this.#failures, this.#retryDelays.length - 1)]!;
    this.#failures++;
    if (this.#stopped || this.#retry) return;
    const waitMs = Math.round(base * (0.8 + Math.random() * 0.4));
    this.#log.warn({ err, failures: this.#failures, retryInMs: waitMs }, "event publish failed, kept in outbox");
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      // A store closed meanwhile (the role stopped without stop()) ends the retries.
      this.flush().catch((e: unknown) => this.#log.debug({ err: e }, "outbox retry ended"));
    }, waitMs);
    // Pending events must not keep a stopping process alive: they go out at the next start.
    this.#retry.unref();
  }

  /** Ends retries and waits for a flush under way; call before closing the store. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#flushing?.catch(() => undefined);
  }

  pending(): number {
    let n = 0;
    for (const _ of this.#store.scanKeys(keys.outboxAll())) n++;
    return n;
  }
}
