import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { ContentCache } from "../../../actors/worker/cache.ts";
import { Latch } from "../../helpers/latch.ts";

// The worker's content cache on real files in a temporary directory; a "download" writes the
// content the test chose.

const log = pino({ level: "silent" });
const sha = (data: string): string => createHash("sha256").update(data).digest("hex");
const md5 = (data: string): string => createHash("md5").update(data).digest("hex");

describe("worker/cache", () => {
  let dir: string;
  let downloads: string[];

  /** A fetch that writes `data` (and counts itself). */
  const fetcher =
    (data: string) =>
    async (dest: string): Promise<void> => {
      downloads.push(sha(data));
      writeFileSync(dest, data);
    };
  const put = (cache: ContentCache, data: string): Promise<string> => cache.get(sha(data), fetcher(data));

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-cache-test-"));
    downloads = [];
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("should download on a miss and serve later requests from disk", async () => {
    const cache = new ContentCache(path.join(dir, "c"), 1 << 20, log);
    const data = "hello cache";
    const p = await put(cache, data);
    assert.equal(p, path.join(dir, "c", sha(data).slice(0, 2), sha(data)));
    assert.equal(readFileSync(p, "utf8"), data);
    assert.equal(await put(cache, data), p);
    assert.deepEqual(downloads, [sha(data)]);
    assert.equal(cache.misses, 1);
    assert.equal(cache.hits, 1);
    assert.equal(cache.totalBytes, data.length);
  });

  it("should share one download between concurrent requests for the same content", async () => {
    const cache = new ContentCache(dir, 1 << 20, log);
    const data = "wanted by three builds at once";
    const started = new Latch();
    const release = new Latch();
    let calls = 0;
    const slow = async (dest: string): Promise<void> => {
      calls++;
      started.countDown();
      await release.wait(5000, "download released");
      writeFileSync(dest, data);
    };
    const first = cache.get(sha(data), slow);
    await started.wait(5000, "download started");
    const others = [cache.get(sha(data), slow), cache.get(sha(data), slow)];
    release.countDown();
    const paths = await Promise.all([first, ...others]);
    assert.equal(calls, 1);
    assert.equal(new Set(paths).size, 1);
    assert.equal(cache.misses, 1);
    assert.equal(cache.totalBytes, data.length);
  });

  it("should forget a failed download, so that the next request tries again", async () => {
    const cache = new ContentCache(dir, 1 << 20, log);
    const data = "flaky";
    await assert.rejects(
      cache.get(sha(data), async () => {
        throw new Error("connection reset");
      }),
      /connection reset/
    );
    assert.equal(cache.totalBytes, 0);
    assert.equal(readFileSync(await put(cache, data), "utf8"), data);
    assert.deepEqual(downloads, [sha(data)]);
  });

  it("should stay within its size limit, evicting the least recently used first", async () => {
    const cache = new ContentCache(dir, 1000, log);
    const [a, b, c, d] = ["a", "b", "c", "d"].map((x) => x.repeat(400));
    const pa = await put(cache, a!);
    const pb = await put(cache, b!);
    assert.equal(cache.totalBytes, 800);
    // a is used again: b is now the least recently used.
    await put(cache, a!);
    const pc = await put(cache, c!);
    assert.equal(cache.totalBytes, 800);
    assert.ok(!existsSync(pb), "b evicted");
    assert.ok(existsSync(pa) && existsSync(pc));
    // b comes back by a new download; a is the oldest now.
    await put(cache, b!);
    assert.ok(!existsSync(pa), "a evicted");
    await put(cache, d!);
    assert.ok(!existsSync(pc), "c evicted");
    assert.equal(cache.totalBytes, 800);
    assert.deepEqual(
      downloads,
      [a, b, c, b, d].map((x) => sha(x!))
    );
  });

  it("should keep the entry just fetched even when it alone is over the limit", async () => {
    const cache = new ContentCache(dir, 100, log);
    await put(cache, "small");
    const big = await put(cache, "x".repeat(500));
    assert.ok(existsSync(big));
    assert.equal(cache.totalBytes, 500);
  });

  it("should remove partial downloads at start and know the complete entries, in their order of use", async () => {
    const first = new ContentCache(dir, 1000, log);
    const [old, recent] = ["o".repeat(400), "r".repeat(400)];
    const pOld = await put(first, old!);
    const pRecent = await put(first, recent!);
    // Last used long ago and just now, as a previous run left them.
    utimesSync(pOld, new Date(1_000_000), new Date(1_000_000));
    utimesSync(pRecent, new Date(), new Date());
    const sub = path.dirname(pOld);
    const partial = path.join(sub, `${sha(old!)}.part`);
    writeFileSync(partial, "half");
    const misplaced = path.join(dir, "00", sha(recent!));
    mkdirSync(path.dirname(misplaced), { recursive: true });
    writeFileSync(misplaced, "not where its name says");
    writeFileSync(path.join(dir, "README"), "not a cache directory: left alone");

    const cache = new ContentCache(dir, 1000, log);
    assert.ok(!existsSync(partial), "partial download removed");
    assert.ok(!existsSync(misplaced), "misplaced file removed");
    assert.ok(existsSync(path.join(dir, "README")));
    assert.equal(cache.totalBytes, 800);
    assert.equal(await put(cache, old!), pOld);
    assert.equal(downloads.length, 2, "served from disk after the restart");
    // The restart ordered them by their times of use (old, then recent); using `old` again
    // makes `recent` the least recently used.
    await put(cache, "n".repeat(400));
    assert.ok(!existsSync(pRecent));
    assert.ok(existsSync(pOld));
  });

  it("should adopt a file the worker made by hard link, and count it", async () => {
    const cache = new ContentCache(path.join(dir, "c"), 1000, log);
    const built = path.join(dir, "built.rpm");
    const data = "a package this worker built";
    writeFileSync(built, data);
    await cache.adopt(sha(data), built, md5(data));
    const p = cache.pathOf(sha(data));
    assert.equal(statSync(p).ino, statSync(built).ino);
    assert.equal(cache.totalBytes, data.length);
    assert.equal(await cache.md5Of(sha(data)), md5(data));
    assert.equal(await put(cache, data), p);
    assert.deepEqual(downloads, []);
    // Adopting what is there already changes nothing.
    await cache.adopt(sha(data), built);
    assert.equal(cache.totalBytes, data.length);
  });

  it("should compute an entry's md5 once when nobody told it", async () => {
    const cache = new ContentCache(dir, 1 << 20, log);
    const data = "md5 me";
    const p = await put(cache, data);
    assert.equal(await cache.md5Of(sha(data)), md5(data));
    writeFileSync(p, "changed behind its back");
    assert.equal(await cache.md5Of(sha(data)), md5(data), "remembered, not read again");
    cache.noteMd5(sha("other"), "0".repeat(32));
    assert.equal(await cache.md5Of(sha("other")), "0".repeat(32));
  });
});
