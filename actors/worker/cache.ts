/**
 * A worker's local cache of sources and binaries, content addressed by sha256, with a size limit.
 * Files are fetched once (concurrent requests for the same content share one download), verified
 * by the downloader, and evicted least-recently-used first when the cache grows past its limit.
 * Files in use by a running build are linked into its job directory, so eviction never breaks a
 * build.
 */
import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { link, rm, utimes } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";

export interface CacheEntryStat {
  size: number;
  lastUse: number;
}

export class ContentCache {
  readonly dir: string;
  readonly limitBytes: number;
  readonly #log: Logger;
  /** In order of last use, least recent first: eviction takes from the front. */
  readonly #entries = new Map<string, CacheEntryStat>();
  readonly #inflight = new Map<string, Promise<string>>();
  /** MD5s of entries, learned at download or computed once when asked. */
  readonly #md5 = new Map<string, string>();
  #total = 0;
  hits = 0;
  misses = 0;

  constructor(dir: string, limitBytes: number, log: Logger) {
    this.dir = dir;
    this.limitBytes = limitBytes;
    this.#log = log;
    mkdirSync(dir, { recursive: true });
    const found: [string, CacheEntryStat][] = [];
    for (const sub of readdirSync(dir)) {
      const subdir = path.join(dir, sub);
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      for (const f of readdirSync(subdir)) {
        const p = path.join(subdir, f);
        if (!/^[0-9a-f]{64}$/.test(f) || !f.startsWith(sub)) {
          // Partial downloads of a crashed worker: gone before anything could mistake them.
          rmSync(p, { force: true, recursive: true });
          continue;
        }
        const st = statSync(p);
        found.push([f, { size: st.size, lastUse: st.mtimeMs }]);
        this.#total += st.size;
      }
    }
    // A use touches the file, so its mtime orders what a previous run used.
    for (const e of found.sort((a, b) => a[1].lastUse - b[1].lastUse)) this.#entries.set(e[0], e[1]);
  }

  pathOf(sha256: string): string {
    return path.join(this.dir, sha256.slice(0, 2), sha256);
  }

  get totalBytes(): number {
    return this.#total;
  }

  /**
   * The path of the cached content, fetching it with `fetch(dest)` on a miss. `fetch` must write
   * `dest` atomically and verify the content's sha256.
   */
  async get(sha256: string, fetch: (dest: string) => Promise<unknown>): Promise<string> {
    const hit = this.#entries.get(sha256);
    const p = this.pathOf(sha256);
    if (hit) {
      this.hits++;
      this.#touch(sha256, hit);
      await utimes(p, new Date(), new Date()).catch(() => undefined);
      return p;
    }
    const running = this.#inflight.get(sha256);
    if (running) return running;
    const job = (async () => {
      this.misses++;
      mkdirSync(path.dirname(p), { recursive: true });
      await fetch(p);
      const size = statSync(p).size;
      this.#entries.set(sha256, { size, lastUse: Date.now() });
      this.#total += size;
      await this.#evict(sha256);
      return p;
    })().finally(() => this.#inflight.delete(sha256));
    this.#inflight.set(sha256, job);
    return job;
  }

  /** Records the MD5 of an entry (the downloader computed it on the way). */
  noteMd5(sha256: string, md5: string): void {
    this.#md5.set(sha256, md5);
  }

  /** The MD5 of a cached entry. */
  async md5Of(sha256: string): Promise<string> {
    const known = this.#md5.get(sha256);
    if (known) return known;
    const h = createHash("md5");
    for await (const chunk of createReadStream(this.pathOf(sha256))) h.update(chunk as Buffer);
    const md5 = h.digest("hex");
    this.#md5.set(sha256, md5);
    return md5;
  }

  /**
   * Adds a file the worker produced (and uploaded) under its sha256, by hard link: the next build
   * of the same package finds its predecessor's packages here (build-compare) without a download.
   */
  async adopt(sha256: string, file: string, md5?: string): Promise<void> {
    if (this.#entries.has(sha256) || this.#inflight.has(sha256)) return;
    const p = this.pathOf(sha256);
    mkdirSync(path.dirname(p), { recursive: true });
    try {
      await link(file, p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") return;
    }
    const size = statSync(p).size;
    this.#entries.set(sha256, { size, lastUse: Date.now() });
    this.#total += size;
    if (md5) this.#md5.set(sha256, md5);
    await this.#evict(sha256);
  }

  /** Marks an entry the most recently used (to the back of the map). */
  #touch(sha256: string, e: CacheEntryStat): void {
    e.lastUse = Date.now();
    this.#entries.delete(sha256);
    this.#entries.set(sha256, e);
  }

  async #evict(keep: string): Promise<void> {
    if (this.#total <= this.limitBytes) return;
    const byAge = [...this.#entries.entries()].filter(([k]) => k !== keep);
    for (const [sha, e] of byAge) {
      if (this.#total <= this.limitBytes) break;
      this.#entries.delete(sha);
      this.#md5.delete(sha);
      this.#total -= e.size;
      await rm(this.pathOf(sha), { force: true });
      this.#log.debug({ sha256: sha, size: e.size }, "cache entry evicted");
    }
  }
}
