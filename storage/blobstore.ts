/**
 * Content-addressed file store. A file lives once under `objects/<sha256[0..2]>/<sha256>`,
 * immutable; LMDB indexes it by sha256 (with md5 and size) and by md5. Files enter by streaming
 * into `tmp/` while both hashes are computed, then an atomic rename: a reader never sees a
 * partial file, and no file is ever held whole in memory (but one of at most a transfer chunk,
 * which arrives in one request).
 */
import { createHash, randomUUID, type Hash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync, type ReadStream } from "node:fs";
import { open as openFile, rm, link, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { ConflictError, IntegrityError, InvalidInputError, NotFoundError, TooLargeError } from "../transport/index.ts";
import type { BlobExpectation, BlobInfo, BlobReader, BlobWriter } from "../transport/index.ts";
import type { RoleStore } from "./db.ts";
import { keys } from "./keys.ts";

export interface BlobRecord {
  md5: string;
  size: number;
  /** When the content was stored, or last uploaded again (garbage collection's grace runs from it). */
  time: number;
}

export interface BlobStoreOptions {
  /** Directory holding `objects/` and `tmp/`. */
  dir: string;
  store: RoleStore;
  log: Logger;
  /** Largest accepted file. @default 4 GiB */
  maxBlobBytes?: number;
  /** An upload with no chunk for this long is discarded. @default 10 minutes */
  uploadIdleMs?: number;
}

interface UploadSession {
  handle: FileHandle;
  tmpPath: string;
  sha256: Hash;
  md5: Hash;
  size: number;
  expect: BlobExpectation;
  lastActivity: number;
  /** Serialises the chunks of one upload so that hashing sees them in order. */
  chain: Promise<unknown>;
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Throws when stored content differs from what its sender announced. */
function checkExpected(info: BlobInfo, e: BlobExpectation): void {
  const mismatch =
    (e.size !== undefined && e.size !== info.size && `size ${info.size}, expected ${e.size}`) ||
    (e.sha256 !== undefined && e.sha256 !== info.sha256 && `sha256 ${info.sha256}, expected ${e.sha256}`) ||
    (e.md5 !== undefined && e.md5 !== info.md5 && `md5 ${info.md5}, expected ${e.md5}`);
  if (mismatch) throw new IntegrityError(`uploaded content does not match: ${mismatch}`, { data: { ...info } });
}

export class BlobStore implements BlobReader, BlobWriter {
  readonly dir: string;
  readonly maxBlobBytes: number;
  readonly #store: RoleStore;
  readonly #log: Logger;
  readonly #uploads = new Map<string, UploadSession>();
  readonly #uploadIdleMs: number;
  readonly #sweeper: NodeJS.Timeout;
  /** Placing and collecting one blob exclude each other (by sha256). */
  readonly #busy = new Map<string, Promise<unknown>>();

  constructor(opts: BlobStoreOptions) {
    this.dir = opts.dir;
    this.#store = opts.store;
    this.#log = opts.log;
    this.maxBlobBytes = opts.maxBlobBytes ?? 4 * 1024 ** 3;
    this.#uploadIdleMs = opts.uploadIdleMs ?? 10 * 60_000;
    mkdirSync(path.join(this.dir, "objects"), { recursive: true });
    // Leftovers of a crash mid-upload are never referenced: clear them.
    rmSync(path.join(this.dir, "tmp"), { recursive: true, force: true });
    mkdirSync(path.join(this.dir, "tmp"), { recursive: true });
    this.#sweeper = setInterval(() => void this.#sweep(), Math.min(60_000, this.#uploadIdleMs)).unref();
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new InvalidInputError(`not a sha256: ${sha256}`);
    return path.join(this.dir, "objects", sha256.slice(0, 2), sha256);
  }

  async stat(sha256: string): Promise<BlobInfo | undefined> {
    if (!SHA256.test(sha256)) throw new InvalidInputError(`not a sha256: ${sha256}`);
    const rec = this.#store.get<BlobRecord>(keys.blob(sha256));
    return rec ? { sha256, md5: rec.md5, size: rec.size } : undefined;
  }

  has(sha256: string): boolean {
    return SHA256.test(sha256) && this.#store.get(keys.blob(sha256)) !== undefined;
  }

  /** sha256 of the file with this md5, if stored. */
  byMd5(md5: string): string | undefined {
    return this.#store.get<string>(keys.md5(md5));
  }

  async read(sha256: string, offset: number, length: number): Promise<Uint8Array> {
    const info = await this.stat(sha256);
    if (!info) throw new NotFoundError(`no blob ${sha256}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidInputError("bad blob range");
    }
    const len = Math.max(0, Math.min(length, info.size - offset));
    if (len === 0) return new Uint8Array(0);
    const fh = await openFile(this.pathOf(sha256), "r");
    try {
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  createReadStream(sha256: string): ReadStream {
    if (!this.has(sha256)) throw new NotFoundError(`no blob ${sha256}`);
    return createReadStream(this.pathOf(sha256));
  }

  // ---- writing ---------------------------------------------------------------------------

  async begin(expect: BlobExpectation = {}): Promise<string> {
    if (expect.size !== undefined && (!Number.isSafeInteger(expect.size) || expect.size < 0)) {
      throw new InvalidInputError("bad expected size");
    }
    if (expect.size !== undefined && expect.size > this.maxBlobBytes) {
      throw new TooLargeError(`file of ${expect.size} bytes exceeds the limit of ${this.maxBlobBytes} bytes`, {
        data: { limit: this.maxBlobBytes, size: expect.size },
      });
    }
    const id = randomUUID();
    const tmpPath = path.join(this.dir, "tmp", id);
    const handle = await openFile(tmpPath, "wx");
    this.#uploads.set(id, {
      handle,
      tmpPath,
      sha256: createHash("sha256"),
      md5: createHash("md5"),
      size: 0,
      expect,
      lastActivity: Date.now(),
      chain: Promise.resolve(),
    });
    return id;
  }

  write(uploadId: string, offset: number, data: Uint8Array): Promise<void> {
    const s = this.#session(uploadId);
    const next = s.chain.then(async () => {
      if (offset !== s.size) throw new InvalidInputError(`upload chunk at ${offset}, expected ${s.size}`);
      if (
        s.size + data.length > this.maxBlobBytes ||
        (s.expect.size !== undefined && s.size + data.length > s.expect.size)
      ) {
        const limit = Math.min(this.maxBlobBytes, s.expect.size ?? Infinity);
        await this.abort(uploadId);
        throw new TooLargeError(`upload exceeds ${limit} bytes`, { data: { limit } });
      }
      await s.handle.write(data, 0, data.length, offset);
      s.sha256.update(data);
      s.md5.update(data);
      s.size += data.length;
      s.lastActivity = Date.now();
    });
    s.chain = next.catch(() => undefined);
    return next;
  }

  async commit(uploadId: string): Promise<BlobInfo> {
    const s = this.#session(uploadId);
    await s.chain;
    this.#uploads.delete(uploadId);
    await s.handle.close();
    const info: BlobInfo = { sha256: s.sha256.digest("hex"), md5: s.md5.digest("hex"), size: s.size };
    try {
      checkExpected(info, s.expect);
    } catch (err) {
      await rm(s.tmpPath, { force: true });
      throw err;
    }
    await this.#place(s.tmpPath, info);
    return info;
  }

  async abort(uploadId: string): Promise<void> {
    const s = this.#uploads.get(uploadId);
    if (!s) return;
    this.#uploads.delete(uploadId);
    await s.handle.close().catch(() => undefined);
    await rm(s.tmpPath, { force: true });
  }

  /** Streams a readable into the store. */
  async putStream(input: Readable, expect: BlobExpectation = {}): Promise<BlobInfo> {
    const id = await this.begin(expect);
    try {
      let offset = 0;
      for await (const chunk of input) {
        const buf = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
        await this.write(id, offset, buf);
        offset += buf.length;
      }
    } catch (err) {
      await this.abort(id);
      throw err;
    }
    return this.commit(id);
  }

  /** Stores a file from disk (streamed), leaving the original in place. */
  async putFile(file: string, expect: BlobExpectation = {}): Promise<BlobInfo> {
    return this.putStream(createReadStream(file), expect);
  }

  /** Stores a small in-memory value. */
  async putBytes(data: Uint8Array): Promise<BlobInfo> {
    return this.put(data, { size: data.length });
  }

  /**
   * Stores a small blob held in memory (one `upload.put`, at most a chunk), checked against what
   * the sender announced. Its file is written with synchronous calls: a few small file-system
   * calls, each cheaper than the thread-pool round trip of an asynchronous one.
   */
  async put(data: Uint8Array, expect: BlobExpectation = {}): Promise<BlobInfo> {
    const limit = Math.min(this.maxBlobBytes, expect.size ?? Infinity);
    if (data.length > limit) throw new TooLargeError(`upload exceeds ${limit} bytes`, { data: { limit } });
    const info: BlobInfo = {
      sha256: createHash("sha256").update(data).digest("hex"),
      md5: createHash("md5").update(data).digest("hex"),
      size: data.length,
    };
    checkExpected(info, expect);
    const tmpPath = path.join(this.dir, "tmp", randomUUID());
    writeFileSync(tmpPath, data, { flag: "wx" });
    await this.#place(tmpPath, info);
    return info;
  }

  /** Hard-links (or copies) a stored blob to `dest`. */
  async linkTo(sha256: string, dest: string): Promise<void> {
    const src = this.pathOf(sha256);
    try {
      await link(src, dest);
    } catch {
      const { copyFile } = await import("node:fs/promises");
      await copyFile(src, dest);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    for (const id of [...this.#uploads.keys()]) await this.abort(id);
  }

  #session(uploadId: string): UploadSession {
    const s = this.#uploads.get(uploadId);
    if (!s) throw new NotFoundError(`no upload ${uploadId} (finished, aborted or expired)`);
    return s;
  }

  /**
   * Moves an uploaded file into place and indexes it. Commits name files by md5, so the md5 index
   * must never change what an md5 stands for: the first content stored under an md5 keeps it, and
   * different content with the same md5 (a collision) is refused and not stored. The refusal does
   * not name the stored content's sha256, which would let the uploader read it.
   */
  #place(tmpPath: string, info: BlobInfo): Promise<void> {
    return this.#exclusive(info.sha256, () => this.#placeNow(tmpPath, info));
  }

  /** Runs `fn` once no other placing or collecting of this blob runs. */
  async #exclusive<T>(sha256: string, fn: () => Promise<T>): Promise<T> {
    for (let p = this.#busy.get(sha256); p; p = this.#busy.get(sha256)) await p.catch(() => undefined);
    const run = fn();
    this.#busy.set(sha256, run);
    try {
      return await run;
    } finally {
      if (this.#busy.get(sha256) === run) this.#busy.delete(sha256);
    }
  }

  async #placeNow(tmpPath: string, info: BlobInfo): Promise<void> {
    const collides = (): boolean => {
      const known = this.#store.get<string>(keys.md5(info.md5));
      return known !== undefined && known !== info.sha256;
    };
    const refuse = (): never => {
      throw new ConflictError(
        `content with md5 ${info.md5} is already stored and differs from this upload (an md5 collision); kiln names files by md5 and keeps the first content`,
        { data: { md5: info.md5, sha256: info.sha256, size: info.size } }
      );
    };
    if (collides()) {
      rmSync(tmpPath, { force: true });
      refuse();
    }
    const dest = this.pathOf(info.sha256);
    // Synchronous: three metadata calls, each cheaper than a thread-pool round trip.
    mkdirSync(path.dirname(dest), { recursive: true });
    if (existsSync(dest)) rmSync(tmpPath, { force: true });
    else renameSync(tmpPath, dest);
    const known = this.#store.get(keys.blob(info.sha256)) !== undefined;
    try {
      // Content uploaded again gets a fresh time: its uploader is about to refer to it, so
      // garbage collection must give it the grace period again.
      await this.#store.transact(() => {
        // Again inside the write transaction: another upload may have indexed the md5 meanwhile.
        if (collides()) refuse();
        void this.#store.db.put(keys.blob(info.sha256), { md5: info.md5, size: info.size, time: Date.now() });
        void this.#store.db.put(keys.md5(info.md5), info.sha256);
      });
    } catch (err) {
      if (!known && !this.#store.get(keys.blob(info.sha256))) rmSync(dest, { force: true });
      throw err;
    }
  }

  /**
   * Garbage collection: removes every stored blob that `referenced` says nothing uses and that
   * was stored (or last uploaded) more than `graceMs` ago. `referenced` is asked again in the
   * write transaction that removes the record, so a change that refers to the blob at the same
   * time (in its own write transaction) either keeps it or finds it gone.
   */
  async collect(opts: {
    graceMs: number;
    referenced: (info: BlobInfo) => boolean;
  }): Promise<{ removed: number; bytes: number }> {
    const cutoff = Date.now() - opts.graceMs;
    const stale = (sha256: string): BlobRecord | undefined => {
      const rec = this.#store.get<BlobRecord>(keys.blob(sha256));
      if (!rec || rec.time > cutoff || opts.referenced({ sha256, md5: rec.md5, size: rec.size })) return undefined;
      return rec;
    };
    const candidates: string[] = [];
    for (const { key } of this.#store.scan<BlobRecord>(keys.blobsAll())) {
      const sha256 = String(key[1]);
      if (stale(sha256)) candidates.push(sha256);
    }
    let removed = 0;
    let bytes = 0;
    for (const sha256 of candidates) {
      const gone = await this.#exclusive(sha256, async () => {
        const rec = await this.#store.transact(() => {
          const r = stale(sha256);
          if (!r) return undefined;
          void this.#store.db.remove(keys.blob(sha256));
          if (this.#store.get(keys.md5(r.md5)) === sha256) void this.#store.db.remove(keys.md5(r.md5));
          return r;
        });
        if (rec) rmSync(this.pathOf(sha256), { force: true });
        return rec;
      });
      if (gone) {
        removed++;
        bytes += gone.size;
      }
    }
    return { removed, bytes };
  }

  async #sweep(): Promise<void> {
    const now = Date.now();
    for (const [id, s] of this.#uploads) {
      if (now - s.lastActivity > this.#uploadIdleMs) {
        this.#log.info({ uploadId: id, size: s.size }, "idle upload discarded");
        await this.abort(id);
      }
    }
  }
}
