import assert from "node:assert/strict";
import pino from "pino";
import type { NatsConnection } from "nats";
import { connectNats, encode, publishLogChunk, subjects, subscribeLog, type LogChunk } from "../../transport/index.ts";
import { Latch } from "../helpers/latch.ts";
import { startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";

const log = pino({ level: "silent" });

/** Splits `text` into chunks of varying size with their byte offsets, the last one marked eof. */
function chunksOf(text: string): LogChunk[] {
  const bytes = Buffer.from(text, "utf8");
  const out: LogChunk[] = [];
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const len = 1 + ((i * 7919) % 4096);
    const data = bytes.subarray(offset, Math.min(bytes.length, offset + len));
    out.push({ offset, data });
    offset += data.length;
  }
  out.push({ offset, data: new Uint8Array(0), eof: true });
  return out;
}

describe("transport/logs", () => {
  let server: TestServer;
  let worker: NatsConnection;
  let reader: NatsConnection;

  before(async () => {
    server = await startServer({ jetstream: false });
    worker = await connectNats({ servers: server.url, name: "log-worker", log, reconnectForever: false });
    reader = await connectNats({ servers: server.url, name: "log-reader", log, reconnectForever: false });
  });

  after(async () => {
    await worker?.close();
    await reader?.close();
    await stopAll(server ? [server] : []);
  });

  it("should deliver a job's log chunks in order with contiguous offsets", async () => {
    const jobId = "home:alice:hello.world/x86_64 #7";
    const lines = Array.from({ length: 3000 }, (_, i) => `[${i}] compiling file ${i}.c — ok ✓\n`).join("");
    const chunks = chunksOf(lines);
    const got: LogChunk[] = [];
    const eof = new Latch();
    const sub = subscribeLog(reader, jobId, (c) => {
      got.push(c);
      if (c.eof) eof.countDown();
    });
    await reader.flush();
    for (const c of chunks) publishLogChunk(worker, jobId, c);
    await worker.flush();
    await eof.wait(10_000, "eof chunk");
    sub.unsubscribe();

    assert.equal(got.length, chunks.length);
    let expected = 0;
    for (const [i, c] of got.entries()) {
      assert.equal(c.offset, expected, `chunk ${i} offset`);
      assert.ok(c.data instanceof Uint8Array);
      expected += c.data.length;
      assert.equal(c.eof === true, i === got.length - 1);
    }
    assert.equal(Buffer.concat(got.map((c) => c.data)).toString("utf8"), lines);
  });

  it("should keep jobs apart and ignore foreign messages on a log subject", async () => {
    const a: LogChunk[] = [];
    const b: LogChunk[] = [];
    const done = new Latch(2);
    const subA = subscribeLog(reader, "job.a", (c) => (a.push(c), c.eof && done.countDown()));
    const subB = subscribeLog(reader, "job:a", (c) => (b.push(c), c.eof && done.countDown()));
    await reader.flush();
    assert.notEqual(subjects.log("job.a"), subjects.log("job:a"));
    worker.publish(subjects.log("job.a"), new Uint8Array([0xc1])); // not MessagePack
    worker.publish(subjects.log("job.a"), Buffer.from("plain text"));
    worker.publish(subjects.log("job.a"), encode({ hello: "world" })); // MessagePack, not a chunk
    worker.publish(subjects.log("job.a"), encode({ offset: "0", data: "text" }));
    worker.publish(subjects.log("job.a"), encode(42));
    publishLogChunk(worker, "job.a", { offset: 0, data: Buffer.from("A") });
    publishLogChunk(worker, "job:a", { offset: 0, data: Buffer.from("B") });
    publishLogChunk(worker, "job.a", { offset: 1, data: new Uint8Array(0), eof: true });
    publishLogChunk(worker, "job:a", { offset: 1, data: new Uint8Array(0), eof: true });
    await worker.flush();
    await done.wait(10_000, "both eof chunks");
    subA.unsubscribe();
    subB.unsubscribe();
    assert.deepEqual(
      a.map((c) => Buffer.from(c.data).toString()),
      ["A", ""]
    );
    assert.deepEqual(
      b.map((c) => Buffer.from(c.data).toString()),
      ["B", ""]
    );
  });
});
