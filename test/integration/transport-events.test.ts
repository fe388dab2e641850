import assert from "node:assert/strict";
import pino from "pino";
import type { JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import {
  EVENT_STREAM,
  connectNats,
  consumeEvents,
  ensureEventStream,
  makeEvent,
  publishEvent,
  subjects,
  type EventBase,
  type EventConsumer,
} from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { Latch } from "../helpers/latch.ts";
import { startJetStreamCluster, startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";
import { Child } from "../fixtures/transport/child.ts";

const log = pino({ level: "silent" });

interface TestEvent extends EventBase {
  n: number;
}

interface Setup {
  servers: TestServer[];
  publisherUrl: string;
  consumerUrl: string;
  replicas: number;
}

function eventsScenario(setup: () => Promise<Setup>): void {
  let s: Setup;
  let pub: NatsConnection;
  let sub: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  const children: Child[] = [];
  const consumers: EventConsumer[] = [];
  let counter = 0;

  const event = (n: number, project = "home:test"): TestEvent =>
    makeEvent<TestEvent>({ type: "test.happened", project, package: "pkg.a", n });
  const publishN = async (count: number): Promise<TestEvent[]> => {
    const out: TestEvent[] = [];
    for (let i = 0; i < count; i++) {
      const e = event(++counter);
      await publishEvent(js, e);
      out.push(e);
    }
    return out;
  };
  /** Waits until the durable consumer has every delivered event acknowledged up to `seq`. */
  const ackedUpTo = (durable: string, seq: number): Promise<unknown> =>
    check(
      async () => {
        const info = await jsm.consumers.info(EVENT_STREAM, durable);
        return info.ack_floor.stream_seq >= seq && info.num_ack_pending === 0;
      },
      { name: `${durable} acknowledged up to ${seq}` }
    );
  const lastSeq = async (): Promise<number> => (await jsm.streams.info(EVENT_STREAM)).state.last_seq;
  const startChild = async (durable: string): Promise<Child> => {
    const c = Child.start("event-consumer.ts", ["--url", s.consumerUrl, "--durable", durable]);
    children.push(c);
    await c.waitType("ready");
    return c;
  };
  const received = (c: Child): number[] => c.messages.filter((m) => m.type === "event").map((m) => m.n as number);

  before(async () => {
    s = await setup();
    pub = await connectNats({ servers: s.publisherUrl, name: "events-publisher", log, reconnectForever: false });
    sub = await connectNats({ servers: s.consumerUrl, name: "events-consumer", log, reconnectForever: false });
    jsm = await pub.jetstreamManager();
    js = pub.jetstream();
    await ensureEventStream(jsm, { replicas: s.replicas });
    // A second call leaves the existing stream alone.
    await ensureEventStream(await sub.jetstreamManager(), { replicas: s.replicas });
  });

  after(async () => {
    for (const c of consumers) await c.stop();
    for (const c of children) await c.stop();
    await pub?.close();
    await sub?.close();
    await stopAll(s?.servers ?? []);
  });

  it("should hold the publisher and the consumer on the intended servers", async () => {
    const names = async (url: string): Promise<string[]> => {
      const server = s.servers.find((x) => x.url === url)!;
      const connz = await server.monitor<{ connections?: { name?: string }[] }>("connz");
      return (connz.connections ?? []).map((c) => c.name ?? "");
    };
    assert.ok((await names(s.publisherUrl)).includes("events-publisher"));
    assert.ok((await names(s.consumerUrl)).includes("events-consumer"));
    if (s.publisherUrl !== s.consumerUrl) assert.ok(!(await names(s.publisherUrl)).includes("events-consumer"));
  });

  it("should create the stream with the requested replicas over kiln.evt.>", async () => {
    const info = await jsm.streams.info(EVENT_STREAM);
    assert.deepEqual(info.config.subjects, [subjects.eventsAll()]);
    assert.equal(info.config.num_replicas, s.replicas);
  });

  it("should give a consumer process that was down every event published meanwhile, in order, once", async () => {
    const durable = "proc-consumer";
    const first = await startChild(durable);
    const batch1 = await publishN(5);
    await check(() => received(first).length === 5, { name: "first batch handled" });
    assert.deepEqual(
      received(first),
      batch1.map((e) => e.n)
    );
    await ackedUpTo(durable, await lastSeq());
    await first.kill("SIGKILL");
    // The consumer's leader may sit on another node than the dead client's. Until the route
    // tells it that the client's inbox is gone, it would deliver new events into the dead pull
    // request, and they would come back only after ack_wait (60 s).
    await check(async () => (await jsm.consumers.info(EVENT_STREAM, durable)).num_waiting === 0, {
      name: "dead pull request dropped",
    });

    const batch2 = await publishN(10);
    const second = await startChild(durable);
    await check(() => received(second).length >= 10, { name: "second batch handled" });
    // Exactly the events published while it was down, in publish order: no acknowledged one again.
    assert.deepEqual(
      received(second),
      batch2.map((e) => e.n)
    );
    assert.deepEqual(
      second.messages.filter((m) => m.type === "event").map((m) => m.id),
      batch2.map((e) => e.id)
    );
    await ackedUpTo(durable, await lastSeq());
    const info = await jsm.consumers.info(EVENT_STREAM, durable);
    assert.equal(info.num_pending, 0);
    assert.equal(info.num_redelivered, 0);
    await second.stop();
  });

  it("should resume a stopped consumer after the last handled event, even when stopped mid-batch", async () => {
    const durable = "stopped-consumer";
    const handled: number[] = [];
    const stopAt = new Latch();
    const events = await publishN(30);
    const from = events[0]!.n;
    // The first instance stops itself after handling 10 events; the rest of its batch was
    // already delivered to it but never handled.
    const one = await consumeEvents<TestEvent>(sub, {
      durable,
      filterSubject: subjects.eventFilter({ type: "test.happened" }),
      log,
      handler: async (e) => {
        if (e.n < from) return;
        handled.push(e.n);
        if (handled.length === 10) stopAt.countDown();
      },
    });
    await stopAt.wait();
    await one.stop();
    const afterStop = handled.length;
    assert.equal(afterStop, 10, "no event handled after stop");
    const more = await publishN(5);

    const two = await consumeEvents<TestEvent>(sub, {
      durable,
      log,
      handler: async (e) => {
        if (e.n >= from) handled.push(e.n);
      },
    });
    consumers.push(two);
    // Before ack_wait (60 s) runs out: the unhandled rest of the batch must not wait for it.
    await check(() => handled.length >= 35, { name: "rest of the events after restart" });
    assert.deepEqual(
      handled,
      [...events, ...more].map((e) => e.n)
    );
  });

  it("should deduplicate an event published twice with the same id", async () => {
    const durable = "dedup-consumer";
    const before = await jsm.streams.info(EVENT_STREAM);
    const e = event(++counter, "home:dedup");
    await publishEvent(js, e);
    await publishEvent(js, e);
    const ack = await js.publish(subjects.event(e.type, e.project, e.package), new Uint8Array([0xc0]), { msgID: e.id });
    assert.equal(ack.duplicate, true);
    const after = await jsm.streams.info(EVENT_STREAM);
    assert.equal(after.state.messages, before.state.messages + 1);

    const seen: string[] = [];
    const c = await consumeEvents<TestEvent>(sub, {
      durable,
      filterSubject: subjects.eventFilter({ project: "home:dedup" }),
      log,
      handler: async (ev) => void seen.push(ev.id),
    });
    consumers.push(c);
    await ackedUpTo(durable, after.state.last_seq);
    assert.deepEqual(seen, [e.id]);
  });

  it("should redeliver an event whose handler failed", async () => {
    const durable = "failing-consumer";
    const e = event(++counter, "home:retry");
    await publishEvent(js, e);
    let attempts = 0;
    const done = new Latch();
    const c = await consumeEvents<TestEvent>(sub, {
      durable,
      filterSubject: subjects.eventFilter({ project: "home:retry" }),
      log,
      handler: async (ev) => {
        assert.equal(ev.id, e.id);
        if (++attempts === 1) throw new Error("first attempt fails");
        done.countDown();
      },
    });
    consumers.push(c);
    await done.wait(15_000, "redelivery");
    await ackedUpTo(durable, await lastSeq());
    assert.equal(attempts, 2);
  });
}

describe("transport/events", () => {
  describe("on a single JetStream server", () => {
    eventsScenario(async () => {
      const server = await startServer();
      return { servers: [server], publisherUrl: server.url, consumerUrl: server.url, replicas: 1 };
    });
  });

  describe("on a 3-node JetStream cluster, replicas 3 (publisher on A, consumer on C)", () => {
    eventsScenario(async () => {
      const servers = await startJetStreamCluster(3);
      return { servers, publisherUrl: servers[0]!.url, consumerUrl: servers[2]!.url, replicas: 3 };
    });
  });
});
