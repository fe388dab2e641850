/**
 * The example NATS authorization (ops/nats/) on a real nats-server: kiln's source role runs as
 * its NATS user, and each kind of client gets only the subjects it needs.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { start as startActorSystem, stop as stopActorSystem } from "nact";
import type { NatsConnection } from "nats";
import { startSourceRole, type RunningRole, type SourceApi } from "../../actors/index.ts";
import {
  Identity,
  Role,
  RoleClient,
  RpcClient,
  backoff,
  encode,
  inboxPrefixOf,
  splitCredentials,
  subjects,
} from "../../transport/index.ts";
import { exampleConf, type NatsUser } from "../../ops/nats/authz.ts";
import { check } from "../helpers/check.ts";
import { connectAsUser, startAuthzServer } from "../helpers/nats-authz.ts";
import { stopAll, type TestServer } from "../helpers/nats-server.ts";
import { log, projectXml } from "../helpers/source-role.ts";

const USERS: NatsUser[] = [
  { user: "source", password: "s3", kind: "source" },
  { user: "ops", password: "o3", kind: "operator" },
  { user: "alice", password: "a3", kind: "user" },
  { user: "bob", password: "b3", kind: "user" },
  { user: "w1", password: "w3", kind: "worker", workerId: "host:1" },
];

/** Resolves with the server's permissions error for a subscription, or fails after `ms`. */
async function subscriptionRefused(nc: NatsConnection, subject: string, ms = 3000): Promise<string> {
  const sub = nc.subscribe(subject);
  const timer = setTimeout(() => sub.unsubscribe(), ms);
  try {
    for await (const _m of sub) {
      // Anything delivered means the subscription was allowed.
      return "delivered";
    }
  } catch (err) {
    return String((err as Error).message);
  } finally {
    clearTimeout(timer);
  }
  return "no error";
}

describe("ops/nats authorization (integration)", function () {
  this.timeout(60_000);
  let server: TestServer;
  let role: RunningRole;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kiln-authz-"));
  const system = startActorSystem();
  const conns: NatsConnection[] = [];
  const admin = Identity.create();

  const connectAs = async (user: string, password: string): Promise<NatsConnection> => {
    const nc = await connectAsUser(server, user, password, log);
    conns.push(nc);
    return nc;
  };
  const source = (nc: NatsConnection, signer?: Identity): RoleClient<SourceApi> =>
    new RoleClient<SourceApi>(
      new RpcClient(nc, { backoff: backoff([50, 100, 200]), ...(signer ? { signer } : {}) }),
      (t) => subjects.rpc(Role.Source, t)
    );

  before(async () => {
    server = await startAuthzServer(USERS);
    const nc = await connectAs("source", "s3");
    role = await startSourceRole({
      nc,
      rpc: new RpcClient(nc),
      system,
      log,
      dataDir,
      nodeId: "authz",
      replicas: 1,
    });
    const ops = await connectAs("ops", "o3");
    await source(ops, admin).call("user.add", { name: "admin", pubkey: admin.publicKey, admin: true });
    await source(ops, admin).call("project.put-meta", {
      project: "hidden",
      xml: projectXml("hidden", { extra: "<access><disable/></access>" }),
    });
  });
  after(async () => {
    await role?.stop();
    stopActorSystem(system);
    for (const nc of conns) await nc.close().catch(() => undefined);
    if (server) await stopAll([server]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("should take NATS credentials out of server URLs", () => {
    assert.deepEqual(splitCredentials(["nats://al%40ce:p%3Ass@h1:4222", "nats://h2:4222"]), {
      servers: ["nats://h1:4222", "nats://h2:4222"],
      user: "al@ce",
      pass: "p:ss",
    });
    assert.deepEqual(splitCredentials(["127.0.0.1:4222"]), { servers: ["127.0.0.1:4222"] });
    assert.equal(inboxPrefixOf("al@ce.x"), "_INBOX_al_ce_x");
  });

  it("should keep the committed example config in step with its generator", () => {
    const file = fileURLToPath(new URL("../../ops/nats/kiln-authz.conf", import.meta.url));
    assert.equal(readFileSync(file, "utf8"), exampleConf());
  });

  it("should let the source role run as its NATS user (requests, events, leases)", async () => {
    const alice = await connectAs("alice", "a3");
    const list = await source(alice).call("project.list", {});
    assert.deepEqual(list, [], "the hidden project is not listed for an anonymous user");
    const r = await source(await connectAs("ops", "o3"), admin).call("events.read", { after: 0, waitMs: 1000 });
    assert.deepEqual(
      r.events.map((e) => e.event.type),
      ["project.meta-changed"]
    );
  });

  it("should not let users read raw events, live logs or JetStream", async () => {
    const alice = await connectAs("alice", "a3");
    assert.match(await subscriptionRefused(alice, "kiln.evt.>"), /permissions violation/i);
    assert.match(await subscriptionRefused(alice, "kiln.log.>"), /permissions violation/i);
    await assert.rejects(
      alice.jetstreamManager().then((m) => m.streams.info("KILN_EVENTS")),
      /permission|timeout|503|no responders/i
    );
  });

  it("should not let a user read another user's replies", async () => {
    const alice = await connectAs("alice", "a3");
    assert.match(await subscriptionRefused(alice, "_INBOX.>"), /permissions violation/i);
    assert.match(await subscriptionRefused(alice, "_INBOX_bob.>"), /permissions violation/i);
  });

  it("should not let users forge events or results, nor call unchecked role verbs", async () => {
    const alice = await connectAs("alice", "a3");
    // The server answers each refused publish with a permissions violation naming the subject.
    const refusals: string[] = [];
    void (async () => {
      for await (const s of alice.status()) {
        if (s.type !== "error") continue;
        const ctx = (s as { permissionContext?: { operation: string; subject: string } }).permissionContext;
        refusals.push(`${String(s.data)} ${ctx?.operation ?? "?"} ${ctx?.subject ?? "?"}`);
      }
    })();
    const ops = await connectAs("spy", "x");
    const seen: string[] = [];
    const watch = ops.subscribe("kiln.>", { callback: (_err, m) => seen.push(m.subject) });
    await ops.flush();
    alice.publish("kiln.evt.project.deleted.hidden", encode({ type: "project.deleted", project: "hidden" }));
    alice.publish("kiln.rpc.repo.result.put", encode({ args: {} }));
    alice.publish("kiln.rpc.dispatcher.job.submit", encode({ args: {} }));
    // A scheduler's supersession drops jobs without a write check: kiln's roles alone send it.
    alice.publish("kiln.rpc.dispatcher.job.discard", encode({ args: { project: "public" } }));
    alice.publish("kiln.rpc.source.project.list", encode({ args: {} }));
    await alice.flush();
    await ops.flush();
    const forged = [
      "kiln.evt.project.deleted.hidden",
      "kiln.rpc.repo.result.put",
      "kiln.rpc.dispatcher.job.submit",
      "kiln.rpc.dispatcher.job.discard",
    ];
    await check(() => refusals.length >= forged.length, { name: "the server's refusals" });
    assert.deepEqual(
      refusals,
      forged.map((f) => `PERMISSIONS_VIOLATION publish ${f}`)
    );
    // Only the allowed one (a checked request) got through.
    assert.deepEqual(seen, ["kiln.rpc.source.project.list"]);
    watch.unsubscribe();
  });

  it("should let a worker fetch sources but not change them", async () => {
    const w = await connectAs("w1", "w3");
    const stat = await new RoleClient<SourceApi>(new RpcClient(w), (t) => subjects.rpc(Role.Source, t)).call(
      "blob.stat",
      { sha256: "0".repeat(64) }
    );
    assert.equal(stat, null);
    const ops = await connectAs("spy", "x");
    const seen: string[] = [];
    const watch = ops.subscribe("kiln.rpc.source.>", { callback: (_err, m) => seen.push(m.subject) });
    await ops.flush();
    w.publish("kiln.rpc.source.project.put-meta", encode({ args: {} }));
    w.publish("kiln.rpc.source.blob.read", encode({ args: {} }));
    await w.flush();
    await ops.flush();
    assert.deepEqual(seen, ["kiln.rpc.source.blob.read"]);
    watch.unsubscribe();
    assert.match(await subscriptionRefused(w, "kiln.rpc.worker.other~3A1.>"), /permissions violation/i);
  });
});
