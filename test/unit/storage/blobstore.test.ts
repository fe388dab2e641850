import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import pino from "pino";
import { BlobStore, RoleStore } from "../../../storage/index.ts";
import { MD5_COLLISION } from "../../helpers/md5-collision.ts";

const log = pino({ level: "silent" });
const hash = (alg: string, b: Uint8Array): string => createHash(alg).update(b).digest("hex");

describe("storage/blobstore: the md5 index", () => {
  let dir: string;
  let store: RoleStore;
  let blobs: BlobStore;
  const [a, b] = MD5_COLLISION;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-blobs-"));
    store = RoleStore.open({ path: path.join(dir, "db"), log });
    blobs = new BlobStore({ dir: path.join(dir, "blobs"), store, log });
  });
  afterEach(async () => {
    await blobs.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const objects = (): string[] =>
    readdirSync(path.join(dir, "blobs", "objects"), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name)
      .sort();

  it("should use a real collision: same md5 and size, different content", () => {
    assert.equal(hash("md5", a), hash("md5", b));
    assert.equal(a.length, b.length);
    assert.notEqual(hash("sha256", a), hash("sha256", b));
  });

  for (const [how, put] of [
    ["in one piece (put)", (s: BlobStore, d: Buffer) => s.put(d, { size: d.length })],
    [
      "streamed in chunks (begin/write/commit)",
      (s: BlobStore, d: Buffer) => s.putStream(Readable.from([d.subarray(0, 50), d.subarray(50)])),
    ],
  ] as const) {
    it(`should keep the first content of an md5 and refuse colliding content stored ${how}`, async () => {
      const first = await put(blobs, a);
      assert.equal(blobs.byMd5(hash("md5", a)), first.sha256);
      const before = objects();
      await assert.rejects(put(blobs, b), (err: Error & { code?: string }) => {
        assert.equal(err.code, "ERR_CONFLICT");
        assert.match(
          err.message,
          new RegExp(
            `content with md5 ${first.md5} is already stored and differs from this upload \\(an md5 collision\\)`
          )
        );
        assert.doesNotMatch(err.message, new RegExp(first.sha256), "the stored content's sha256 is not told");
        return true;
      });
      assert.equal(blobs.byMd5(first.md5), first.sha256, "the md5 still names the first content");
      assert.equal(blobs.has(hash("sha256", b)), false);
      assert.deepEqual(objects(), before, "nothing of the refused content stays on disk");
      assert.deepEqual(readdirSync(path.join(dir, "blobs", "tmp")), []);
      // The first content itself may be stored again.
      assert.deepEqual(await put(blobs, a), first);
    });
  }
});
