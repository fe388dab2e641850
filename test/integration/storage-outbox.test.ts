import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import type { JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import { Outbox, RoleStore, keys } from "../../storage/index.ts";
import {
  EVENT_STREAM,
  NatsServerProcess,
  connectNats,
  ensureEventStream,
  decode,
  makeEvent,
  parseSubject,
  publishEvent,
  subjects,
  type EventBase,
} from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";
import { Child } from "../fixtures/transport/child.ts";

const log = pino({ level: "silent" });

interface TestEvent extends EventBase {
  n: number;
}

describe("storage/outbox", () => {
  let server: TestServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let dir: string;
  const stores: RoleStore[] = [];
  let project = 0;

  const openStore = (): RoleStore => {
    const s = RoleStore.open({ path: path.join(dir, "db"), log });
    stores.push(s);
    return s;
  };
  /** Event ids in the stream for one project, in stream order. */
  const streamIds = async (p: string): Promise<string[]> => {
    const info = await jsm.streams.info(EVENT_STREAM);
    const ids: string[] = [];
    if (info.state.messages === 0) return ids;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(EVENT_STREAM, { seq });
      const parsed = parseSubject(m.subject);
      if (parsed.kind === "event" && parsed.project === p) ids.push(decode<TestEvent>(m.data).id);
    }
    return ids;
  };
  const draft = (p: string, n: number): TestEvent => makeEvent<TestEvent>({ type: "test.stored", project: p, n });

  before(async () => {
    server = await startServer();
    nc = await connectNats({ servers: server.url, name: "outbox-test", log, reconnectForever: false });
    jsm = await nc.jetstreamManager();
    js = nc.jetstream();
    await ensureEventStream(jsm);
  });

  after(async () => {
    await nc?.close();
    await stopAll(server ? [server] : []);
  });

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-outbox-"));
    project++;
  });

  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("should publish events added in a transaction after commit, in order, and empty the outbox", async () => {
    const p = `home:o${project}`;
    const store = openStore();
    const outbox = new Outbox<TestEvent>(store, (e) => publishEvent(js, e), log);
    const events = [draft(p, 1), draft(p, 2), draft(p, 3)];
    await store.transact(() => {
      void store.db.put(keys.meta("state"), "changed");
      for (const e of events) outbox.add(e);
    });
    // Committed together with the state change, nothing sent yet.
    assert.equal(store.get(keys.meta("state")), "changed");
    assert.equal(outbox.pending(), 3);
    assert.deepEqual(await streamIds(p), []);
    await outbox.flush();
    assert.equal(outbox.pending(), 0);
    assert.deepEqual(
      await streamIds(p),
      events.map((e) => e.id)
    );
  });

  it("should record nothing when the transaction fails", async () => {
    const store = openStore();
    const outbox = new Outbox<TestEvent>(store, (e) => publishEvent(js, e), log);
    await assert.rejects(
      store.transact(() => {
        outbox.add(draft("home:x", 1));
        throw new Error("state change refused");
      }),
      /refused/
    );
    assert.equal(outbox.pending(), 0);
  });

  it("should keep events whose publication failed and send them on the next flush", async () => {
    const p = `home:o${project}`;
    const store = openStore();
    let failing = true;
    const sent: string[] = [];
    const outbox = new Outbox<TestEvent>(
      store,
      async (e) => {
        if (failing && e.n === 2) throw new Error("stream unavailable");
        await publishEvent(js, e);
        sent.push(e.id);
      },
      log
    );
    const events = [1, 2, 3].map((n) => draft(p, n));
    await store.transact(() => events.forEach((e) => outbox.add(e)));
    await outbox.flush();
    // The first went out; the second failed and the third waits behind it (order is kept).
    assert.deepEqual(sent, [events[0]!.id]);
    assert.equal(outbox.pending(), 2);
    failing = false;
    await outbox.flush();
    assert.equal(outbox.pending(), 0);
    assert.deepEqual(
      await streamIds(p),
      events.map((e) => e.id)
    );
  });

  it("should retry a failed publication on a timer until the stream takes it, without another flush", async () => {
    // A server of its own, stopped and started again on the same port and store: an outage of
    // JetStream after the last write, which nothing else would follow.
    const own = await startServer();
    const conn = await connectNats({ servers: own.url, name: "outbox-outage", log });
    let restarted: TestServer | undefined;
    try {
      await ensureEventStream(await conn.jetstreamManager());
      const ownJs = conn.jetstream({ timeout: 500 });
      const p = `home:o${project}`;
      const store = openStore();
      const attempts: number[] = [];
      const outbox = new Outbox<TestEvent>(
        store,
        async (e) => {
          attempts.push(Date.now());
          await publishEvent(ownJs, e);
        },
        log,
        { retryDelaysMs: [100, 200] }
      );
      const event = draft(p, 1);
      await store.transact(() => outbox.add(event));
      await own.stop();
      await outbox.flush();
      assert.equal(outbox.pending(), 1, "kept while the server is down");
      restarted = await NatsServerProcess.start({ ...own.conf, port: own.ports.nats }, { dir: own.dir });
      await check(() => outbox.pending() === 0, { name: "published after the outage", timeoutMs: 20_000 });
      assert.ok(attempts.length >= 2, `attempts ${attempts.length}`);
      const m = await (
        await conn.jetstreamManager()
      ).streams.getMessage(EVENT_STREAM, {
        last_by_subj: subjects.event(event.type, p),
      });
      assert.equal(decode<TestEvent>(m.data).id, event.id);
      await outbox.stop();
    } finally {
      await conn.close();
      await (restarted ?? own).stop();
      rmSync(own.dir, { recursive: true, force: true });
    }
  });

  it("should coalesce concurrent flushes and still send events added meanwhile", async () => {
    const p = `home:o${project}`;
    const store = openStore();
    const outbox = new Outbox<TestEvent>(store, (e) => publishEvent(js, e), log);
    const first = draft(p, 1);
    const second = draft(p, 2);
    await store.transact(() => outbox.add(first));
    const f1 = outbox.flush();
    await store.transact(() => outbox.add(second));
    const f2 = outbox.flush();
    await Promise.all([f1, f2]);
    assert.equal(outbox.pending(), 0);
    assert.deepEqual(await streamIds(p), [first.id, second.id]);
  });

  it("should re-send after a crash before publication, from a new Outbox over the same LMDB", async () => {
    const p = "home:outbox";
    const before = await streamIds(p);
    const writer = Child.start("outbox-writer.ts", ["--db", path.join(dir, "db"), "--count", "4", "--mode", "commit"]);
    const { ids } = (await writer.waitType("committed")) as unknown as { ids: string[] };
    await writer.kill("SIGKILL");

    const store = openStore();
    for (let n = 1; n <= 4; n++) assert.deepEqual(store.get(keys.meta(`state:${n}`)), { n });
    const outbox = new Outbox<TestEvent>(store, (e) => publishEvent(js, e), log);
    assert.equal(outbox.pending(), 4);
    await outbox.flush();
    assert.equal(outbox.pending(), 0);
    assert.deepEqual((await streamIds(p)).slice(before.length), ids);
  });

  it("should not duplicate in the stream an event re-sent after a crash between publication and removal", async () => {
    const p = "home:outbox";
    const before = await streamIds(p);
    const writer = Child.start("outbox-writer.ts", [
      "--db",
      path.join(dir, "db"),
      "--count",
      "3",
      "--mode",
      "publish-then-crash",
      "--url",
      server.url,
    ]);
    const { ids } = (await writer.waitType("committed")) as unknown as { ids: string[] };
    await writer.exited();
    assert.deepEqual((await streamIds(p)).slice(before.length), ids, "all three reached the stream before the crash");

    const store = openStore();
    const outbox = new Outbox<TestEvent>(store, (e) => publishEvent(js, e), log);
    // At least the last one was still in the outbox when the process died.
    assert.ok(outbox.pending() >= 1, `pending ${outbox.pending()}`);
    await outbox.flush();
    assert.equal(outbox.pending(), 0);
    assert.deepEqual((await streamIds(p)).slice(before.length), ids, "re-sent events are deduplicated by id");
  });
});
