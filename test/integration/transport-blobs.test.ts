import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { open, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import type { NatsConnection } from "nats";
import {
  CHUNK_BYTES,
  ErrorCode,
  Role,
  RoleClient,
  RpcClient,
  backoff,
  connectNats,
  downloadBlob,
  readBlobBytes,
  subjects,
  uploadFile,
  type BlobApi,
  type BlobInfo,
} from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";
import { Child, type ChildMessage } from "../fixtures/transport/child.ts";

const log = pino({ level: "silent" });
const MiB = 1024 * 1024;
const BIG_MB = 300;
const RSS_LIMIT = 100 * MiB;

type TestApi = BlobApi & {
  "test.state": { req: Record<string, never>; res: { records: number; objects: number; tmp: number } };
  "rss.reset": { req: Record<string, never>; res: null };
  "rss.report": { req: Record<string, never>; res: Rss };
};

interface Rss {
  baseline: number;
  peak: number;
  growth: number;
}

/** Writes `mb` MiB of incompressible data, one MiB at a time; returns its sha256 and md5. */
async function makeFile(file: string, mb: number): Promise<{ sha256: string; md5: string; size: number }> {
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  const block = randomBytes(MiB);
  const fh = await open(file, "w");
  try {
    for (let i = 0; i < mb; i++) {
      block.writeUInt32BE(i, 0);
      sha.update(block);
      md5.update(block);
      await fh.write(block, 0, MiB, i * MiB);
    }
  } finally {
    await fh.close();
  }
  return { sha256: sha.digest("hex"), md5: md5.digest("hex"), size: mb * MiB };
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: MiB })) h.update(chunk as Buffer);
  return h.digest("hex");
}

const mb = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

function assertBounded(what: string, rss: Rss): void {
  assert.ok(rss.peak >= rss.baseline, `${what}: no samples`);
  assert.ok(
    rss.growth < RSS_LIMIT,
    `${what}: RSS grew by ${mb(rss.growth)} (baseline ${mb(rss.baseline)}, peak ${mb(rss.peak)})`
  );
}

describe("transport/blobs across processes", function () {
  let server: TestServer;
  let dir: string;
  let blobServer: Child;
  let nc: NatsConnection;
  let repo: RoleClient<TestApi>;
  let big: { file: string; sha256: string; md5: string; size: number };
  const children: Child[] = [];

  const client = (args: string[]): Child => {
    const c = Child.start("blob-client.ts", ["--url", server.url, ...args]);
    children.push(c);
    return c;
  };
  const finished = (c: Child): Promise<ChildMessage> =>
    c.waitFor((m) => m.type === "done" || m.type === "failed", 120_000, "end of transfer");

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-blobs-"));
    server = await startServer({ jetstream: false });
    const file = path.join(dir, "big.bin");
    big = { file, ...(await makeFile(file, BIG_MB)) };
    blobServer = Child.start("blob-server.ts", [
      "--url",
      server.url,
      "--dir",
      path.join(dir, "server"),
      "--idle-ms",
      "2000",
    ]);
    await blobServer.waitType("ready");
    nc = await connectNats({ servers: server.url, name: "blob-test", log, reconnectForever: false });
    repo = new RoleClient<TestApi>(new RpcClient(nc, { backoff: backoff([]) }), (t) => subjects.rpc(Role.Repo, t));
  });

  after(async () => {
    for (const c of children) await c.kill();
    await nc?.close();
    await blobServer?.stop();
    await stopAll(server ? [server] : []);
    rmSync(dir, { recursive: true, force: true });
  });

  it(`should upload and download a ${BIG_MB} MB file between processes with bounded memory on every side`, async () => {
    await repo.call("rss.reset", {});
    const up = client(["--mode", "upload", "--file", big.file, "--size", String(big.size), "--md5", big.md5]);
    const upEnd = await finished(up);
    assert.equal(upEnd.type, "done", String(upEnd.message));
    assert.deepEqual(upEnd.info as BlobInfo, { sha256: big.sha256, md5: big.md5, size: big.size });
    assertBounded("uploading client", upEnd.rss as Rss);
    assertBounded("server during upload", await repo.call("rss.report", {}));
    assert.deepEqual(await repo.call("blob.stat", { sha256: big.sha256 }), {
      sha256: big.sha256,
      md5: big.md5,
      size: big.size,
    });

    // No new baseline for the server: its growth is measured over upload and download together.
    const dest = path.join(dir, "downloaded.bin");
    const down = client(["--mode", "download", "--sha256", big.sha256, "--file", dest]);
    const downEnd = await finished(down);
    assert.equal(downEnd.type, "done", String(downEnd.message));
    assert.deepEqual(downEnd.info as BlobInfo, { sha256: big.sha256, md5: big.md5, size: big.size });
    assertBounded("downloading client", downEnd.rss as Rss);
    assertBounded("server during upload and download", await repo.call("rss.report", {}));
    assert.equal(statSync(dest).size, big.size);
    assert.equal(await sha256Of(dest), big.sha256);
    rmSync(dest);
  });

  it("should refuse an upload whose announced md5 does not match, and keep nothing of it", async () => {
    const file = path.join(dir, "small.bin");
    const small = await makeFile(file, 3);
    const before = await repo.call("test.state", {});
    const wrongMd5 = small.md5.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    let caught: unknown;
    await uploadFile(repo, file, { md5: wrongMd5 }).catch((err: unknown) => (caught = err));
    assert.equal((caught as { code?: string }).code, ErrorCode.Integrity, String(caught));
    assert.match((caught as Error).message, /md5/);
    assert.deepEqual(await repo.call("test.state", {}), before);
    assert.equal(await repo.call("blob.stat", { sha256: small.sha256 }), null);
    // The same content with the right md5 is accepted.
    const ok = await uploadFile(repo, file, { md5: small.md5, size: small.size });
    assert.deepEqual(ok, small);
    const after = await repo.call("test.state", {});
    assert.equal(after.records, before.records + 1);
    assert.equal(after.objects, before.objects + 1);
  });

  it("should store a blob of one chunk in one request, and refuse what does not match or is too big", async () => {
    const data = randomBytes(CHUNK_BYTES);
    const sha256 = createHash("sha256").update(data).digest("hex");
    const md5 = createHash("md5").update(data).digest("hex");
    const file = path.join(dir, "one-chunk.bin");
    await writeFile(file, data);
    const before = await repo.call("test.state", {});
    // uploadFile takes the one-request path for a file announced at one chunk or less.
    const calls: string[] = [];
    const counting = new RoleClient<TestApi>(new RpcClient(nc, { backoff: backoff([]) }), (t) => {
      calls.push(t);
      return subjects.rpc(Role.Repo, t);
    });
    assert.deepEqual(await uploadFile(counting, file, { size: data.length, md5 }), { sha256, md5, size: data.length });
    assert.deepEqual(calls, ["upload.put"]);
    assert.deepEqual(await repo.call("blob.stat", { sha256 }), { sha256, md5, size: data.length });
    const after = await repo.call("test.state", {});
    assert.equal(after.objects, before.objects + 1);
    assert.equal(after.tmp, before.tmp);

    // What does not match what was announced, or does not fit in one chunk, leaves nothing.
    const other = randomBytes(100);
    await assert.rejects(repo.call("upload.put", { data: other, size: 99 }), { code: ErrorCode.TooLarge });
    await assert.rejects(repo.call("upload.put", { data: other, size: 101 }), { code: ErrorCode.Integrity });
    await assert.rejects(repo.call("upload.put", { data: other, md5 }), { code: ErrorCode.Integrity });
    await assert.rejects(repo.call("upload.put", { data: new Uint8Array(CHUNK_BYTES + 1) }), {
      code: ErrorCode.InvalidInput,
    });
    await assert.rejects(repo.call("upload.put", { data: "text" } as never), { code: ErrorCode.InvalidInput });
    assert.equal(await repo.call("blob.stat", { sha256: createHash("sha256").update(other).digest("hex") }), null);
    assert.deepEqual(await repo.call("test.state", {}), after);
    // A file that grew after its size was announced is refused too.
    await writeFile(file, Buffer.concat([data.subarray(0, 10), data]));
    await assert.rejects(uploadFile(repo, file, { size: 10 }), { code: ErrorCode.Integrity });
    assert.deepEqual(await repo.call("test.state", {}), after);
  });

  it("should download with the size known and no stat first, and refuse a wrong size", async () => {
    const data = randomBytes(CHUNK_BYTES + 1000);
    const file = path.join(dir, "sized.bin");
    await writeFile(file, data);
    const info = await uploadFile(repo, file, { size: data.length });
    const calls: string[] = [];
    const counting = new RoleClient<TestApi>(new RpcClient(nc, { backoff: backoff([]) }), (t) => {
      calls.push(t);
      return subjects.rpc(Role.Repo, t);
    });
    const dest = path.join(dir, "sized.out");
    assert.deepEqual(await downloadBlob(counting, info.sha256, dest, { size: data.length }), info);
    assert.deepEqual(calls, ["blob.read", "blob.read"]);
    assert.equal(Buffer.compare(readFileSync(dest), data), 0);
    for (const size of [data.length - 1, data.length + 1, 10]) {
      const wrong = path.join(dir, `sized-${size}.out`);
      await assert.rejects(downloadBlob(repo, info.sha256, wrong, { size }), { code: ErrorCode.Integrity });
      assert.equal(existsSync(wrong) || existsSync(`${wrong}.part`), false);
    }
    await assert.rejects(downloadBlob(repo, info.sha256, path.join(dir, "never"), { size: -1 }), {
      code: ErrorCode.InvalidInput,
    });
    await assert.rejects(downloadBlob(repo, "0".repeat(64), path.join(dir, "never"), { size: 10 }), {
      code: ErrorCode.NotFound,
    });
  });

  it("should keep nothing of an upload whose client was killed mid-way, and keep working", async () => {
    const before = await repo.call("test.state", {});
    const up = client(["--mode", "upload", "--file", big.file]);
    await up.waitFor((m) => m.type === "progress" && (m.done as number) >= 32 * MiB, 60_000, "32 MiB uploaded");
    await up.kill("SIGKILL");
    const during = await repo.call("test.state", {});
    assert.equal(during.tmp, before.tmp + 1, "the partial upload is in the temp area only");
    assert.equal(during.records, before.records);
    // The server discards the idle upload (its idle limit is 2 s here).
    await check(async () => (await repo.call("test.state", {})).tmp === before.tmp, {
      timeoutMs: 15_000,
      name: "partial upload discarded",
    });
    assert.deepEqual(await repo.call("test.state", {}), before);

    const file = path.join(dir, "after-kill.bin");
    const again = await makeFile(file, 2);
    assert.deepEqual(await uploadFile(repo, file, { size: again.size }), again);
    assert.equal((await readBlobBytes(repo, again.sha256, 4 * MiB)).length, again.size);
    const dest = path.join(dir, "after-kill.out");
    assert.deepEqual(await downloadBlob(repo, again.sha256, dest), again);
    assert.equal(await sha256Of(dest), again.sha256);
  });

  it("should fail a download cleanly when the serving process dies mid-way", async () => {
    let ownNc: NatsConnection | undefined;
    // Mocha swallows unhandled rejections; a kiln process would die of one.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const dying = Child.start("blob-server.ts", ["--url", server.url, "--dir", path.join(dir, "dying")], "dying");
    children.push(dying);
    await dying.waitType("ready");
    // The shared server answers on the same queue group: take it out of the way for this test.
    await blobServer.stop();
    try {
      const file = path.join(dir, "medium.bin");
      const medium = await makeFile(file, 64);
      const own = await connectNats({ servers: server.url, name: "blob-test-2", log, reconnectForever: false });
      ownNc = own;
      const quick = new RoleClient<TestApi>(new RpcClient(own, { backoff: backoff([]), timeoutMs: 1000 }), (t) =>
        subjects.rpc(Role.Repo, t)
      );
      await uploadFile(quick, file, { size: medium.size });
      const dest = path.join(dir, "medium.out");
      let killed = false;
      const download = downloadBlob(quick, medium.sha256, dest, {
        onProgress: (done) => {
          if (!killed && done >= 4 * MiB) {
            killed = true;
            process.kill(dying.pid, "SIGKILL");
          }
        },
      });
      const err = await download.then(
        () => assert.fail("download finished although its server was killed"),
        (e: unknown) => e
      );
      assert.ok(killed);
      assert.ok(
        [ErrorCode.Timeout, ErrorCode.NoResponders].includes((err as { code: "ERR_TIMEOUT" }).code),
        String(err)
      );
      assert.ok(!existsSync(dest) && !existsSync(`${dest}.part`), "nothing left behind");
      await dying.exited();
      // Closing the connection rejects the chunk requests still outstanding after the download
      // gave up; an unhandled one would surface (and fail this test) within the next turns.
      await own.close();
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled.map(String), []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await ownNc?.close();
      blobServer = Child.start("blob-server.ts", [
        "--url",
        server.url,
        "--dir",
        path.join(dir, "server"),
        "--idle-ms",
        "2000",
      ]);
      await blobServer.waitType("ready");
    }
  });

  it("should answer a read of more than one chunk within the NATS payload limit", async () => {
    for (const length of [CHUNK_BYTES * 2, CHUNK_BYTES * 4, CHUNK_BYTES * 64]) {
      const data = await repo.call("blob.read", { sha256: big.sha256, offset: 0, length }, { timeoutMs: 5000 });
      assert.ok(data.length > 0 && data.length <= length, `read of ${length} gave ${data.length} bytes`);
      const h = createHash("sha256");
      const fh = await open(big.file, "r");
      const expected = Buffer.alloc(data.length);
      await fh.read(expected, 0, data.length, 0);
      await fh.close();
      h.update(expected);
      assert.equal(Buffer.compare(Buffer.from(data), expected), 0);
    }
  });

  it("should refuse bad blob requests with typed errors", async () => {
    const missing = "0".repeat(64);
    assert.equal(await repo.call("blob.stat", { sha256: missing }), null);
    await assert.rejects(repo.call("blob.read", { sha256: missing, offset: 0, length: 10 }), {
      code: ErrorCode.NotFound,
    });
    await assert.rejects(repo.call("blob.stat", { sha256: "not-a-sha" }), { code: ErrorCode.InvalidInput });
    await assert.rejects(repo.call("blob.read", { sha256: big.sha256, offset: -1, length: 10 }), {
      code: ErrorCode.InvalidInput,
    });
    await assert.rejects(repo.call("upload.chunk", { uploadId: "nope", offset: 0, data: new Uint8Array(1) }), {
      code: ErrorCode.NotFound,
    });
    await assert.rejects(downloadBlob(repo, missing, path.join(dir, "never")), { code: ErrorCode.NotFound });
  });
});
