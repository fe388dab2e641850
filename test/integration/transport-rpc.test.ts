import assert from "node:assert/strict";
import pino from "pino";
import type { NatsConnection } from "nats";
import {
  ErrorCode,
  Identity,
  KilnError,
  NoRespondersError,
  Role,
  RoleClient,
  RpcClient,
  TimeoutError,
  backoff,
  connectNats,
  errors,
  subjects,
} from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { startCluster, startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";
import { Child } from "../fixtures/transport/child.ts";
import { QUOTA_CODE, QuotaExceededError } from "../fixtures/transport/test-errors.ts";

const log = pino({ level: "silent" });

type TestApi = {
  "echo.say": {
    req: { text: string; bytes?: Uint8Array };
    res: { echo: unknown; host: string; pid: number; signer: string | null };
  };
  "fail.conflict": { req: { name: string }; res: never };
  "fail.unavailable": { req: Record<string, never>; res: never };
  "fail.quota": { req: Record<string, never>; res: never };
  "fail.unknown": { req: Record<string, never>; res: never };
  "fail.plain": { req: Record<string, never>; res: never };
  "slow.never": { req: Record<string, never>; res: never };
  "stats.get": { req: Record<string, never>; res: Record<string, number> };
  "big.reply": { req: Record<string, never>; res: Uint8Array };
};

/** Asserts that `p` rejects with a KilnError of `code` and `retryable`, returning it. */
async function rejectsWith(p: Promise<unknown>, code: string, retryable: boolean): Promise<KilnError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof KilnError, `not a KilnError: ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.retryable, retryable);
  return caught;
}

/** The shared scenario; `callerUrl` and `actorUrl` may be different nodes of a cluster. */
interface Setup {
  servers: TestServer[];
  callerUrl: string;
  actorUrl: string;
}

/** Names of the client connections a server holds. */
async function connectionNames(server: TestServer): Promise<string[]> {
  const connz = await server.monitor<{ connections?: { name?: string }[] }>("connz");
  return (connz.connections ?? []).map((c) => c.name ?? "");
}

function rpcAcrossProcesses(setup: () => Promise<Setup>): void {
  let servers: TestServer[] = [];
  let urls: Setup | undefined;
  let host: Child | undefined;
  let nc: NatsConnection | undefined;
  let client: RoleClient<TestApi>;
  let noRetry: RoleClient<TestApi>;

  before(async () => {
    const s = await setup();
    urls = s;
    servers = s.servers;
    host = Child.start("actor-host.ts", ["--url", s.actorUrl]);
    await host.waitType("ready");
    nc = await connectNats({ servers: s.callerUrl, name: "rpc-test", log, reconnectForever: false });
    const subjectFor = (t: string): string => subjects.rpc(Role.Publisher, t);
    client = new RoleClient<TestApi>(new RpcClient(nc, { backoff: backoff([0, 50, 100]) }), subjectFor);
    noRetry = new RoleClient<TestApi>(new RpcClient(nc, { backoff: backoff([]) }), subjectFor);
    // Interest travels between cluster nodes asynchronously: wait until the caller's node has it.
    await check(() => noRetry.call("echo.say", { text: "warm-up" }, { timeoutMs: 2000 }), { name: "actor reachable" });
  });

  after(async () => {
    await nc?.close();
    await host?.stop();
    await stopAll(servers);
  });

  it("should hold the caller and the actor process on the intended servers", async () => {
    const byUrl = (url: string): TestServer => servers.find((x) => x.url === url)!;
    assert.ok((await connectionNames(byUrl(urls!.callerUrl))).includes("rpc-test"));
    assert.ok((await connectionNames(byUrl(urls!.actorUrl))).includes("actor-host"));
    if (urls!.callerUrl !== urls!.actorUrl) {
      assert.ok(!(await connectionNames(byUrl(urls!.callerUrl))).includes("actor-host"));
    }
  });

  it("should reach the actor in the other process and get its reply", async () => {
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const r = await client.call("echo.say", { text: "home:foo:bar", bytes });
    assert.equal(r.host, "actor-host");
    assert.equal(r.pid, host!.pid);
    assert.notEqual(r.pid, process.pid);
    assert.equal(r.signer, null);
    const echo = r.echo as { text: string; bytes: Uint8Array };
    assert.equal(echo.text, "home:foo:bar");
    assert.deepEqual([...echo.bytes], [0, 1, 2, 255]);
  });

  it("should carry a signature that the actor verifies", async () => {
    const alice = Identity.create();
    const signed = new RoleClient<TestApi>(new RpcClient(nc!).withSigner(alice), (t) =>
      subjects.rpc(Role.Publisher, t)
    );
    const r = await signed.call("echo.say", { text: "signed" });
    assert.equal(r.signer, alice.publicKey);
  });

  it("should answer many concurrent calls", async () => {
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => client.call("echo.say", { text: `n${i}` }))
    );
    assert.deepEqual(
      replies.map((r) => (r.echo as { text: string }).text),
      Array.from({ length: 200 }, (_, i) => `n${i}`)
    );
  });

  it("should deliver a typed error with its code, retryable flag and data", async () => {
    const err = await rejectsWith(client.call("fail.conflict", { name: "hello" }), ErrorCode.Conflict, false);
    assert.ok(err instanceof errors.ConflictError);
    assert.equal(err.message, "package already exists");
    assert.deepEqual(err.data, { args: { name: "hello" } });
    const quota = await rejectsWith(noRetry.call("fail.quota", {}), QUOTA_CODE, true);
    assert.ok(quota instanceof QuotaExceededError);
    assert.deepEqual(quota.data, { quota: 5 });
    const unknown = await rejectsWith(client.call("fail.unknown", {}), "ERR_TEST_ONLY_THE_ACTOR_KNOWS", false);
    assert.equal(unknown.constructor, KilnError);
    const plain = await rejectsWith(client.call("fail.plain", {}), ErrorCode.Internal, false);
    assert.ok(plain instanceof errors.InternalError);
    assert.equal(plain.message, "boom");
  });

  it("should answer a reply too large for NATS with ERR_TOO_LARGE instead of silence", async () => {
    const err = await rejectsWith(noRetry.call("big.reply", {}, { timeoutMs: 5000 }), ErrorCode.TooLarge, false);
    assert.match(err.message, /max_payload/);
    assert.equal(typeof err.data?.limit, "number");
  });

  it("should retry a retryable error by the backoff policy, and not a final one", async () => {
    const before = await client.call("stats.get", {});
    await rejectsWith(client.call("fail.unavailable", {}), ErrorCode.Unavailable, true);
    await rejectsWith(client.call("fail.conflict", { name: "x" }), ErrorCode.Conflict, false);
    const after = await client.call("stats.get", {});
    // One attempt plus one retry per policy entry (3); a conflict is tried once.
    assert.equal((after["fail.unavailable"] ?? 0) - (before["fail.unavailable"] ?? 0), 4);
    assert.equal((after["fail.conflict"] ?? 0) - (before["fail.conflict"] ?? 0), 1);
  });

  it("should turn 'no responders' into a retryable NoRespondersError", async () => {
    const nobody = new RoleClient<TestApi>(new RpcClient(nc!, { backoff: backoff([]) }), (t) =>
      subjects.rpc(Role.Repo, t)
    );
    const err = await rejectsWith(nobody.call("echo.say", { text: "x" }), ErrorCode.NoResponders, true);
    assert.ok(err instanceof NoRespondersError);
    assert.match(err.message, /kiln\.rpc\.repo\.echo\.say/);
    // With a policy, the same failure is retried and still ends as NoRespondersError.
    const retrying = new RpcClient(nc!, { backoff: backoff([0, 10]) });
    await rejectsWith(retrying.call(subjects.rpc(Role.Repo, "echo.say"), {}), ErrorCode.NoResponders, true);
  });

  it("should turn a missing reply into a retryable TimeoutError, retried only when idempotent", async () => {
    const before = await client.call("stats.get", {});
    const err = await rejectsWith(client.call("slow.never", {}, { timeoutMs: 300 }), ErrorCode.Timeout, true);
    assert.ok(err instanceof TimeoutError);
    const once = await client.call("stats.get", {});
    assert.equal((once["slow.never"] ?? 0) - (before["slow.never"] ?? 0), 1, "a non-idempotent call is not retried");
    await rejectsWith(client.call("slow.never", {}, { timeoutMs: 300, idempotent: true }), ErrorCode.Timeout, true);
    const after = await client.call("stats.get", {});
    assert.equal((after["slow.never"] ?? 0) - (once["slow.never"] ?? 0), 4, "an idempotent call is retried");
  });
}

describe("transport/rpc across processes", function () {
  describe("over one nats-server", () => {
    rpcAcrossProcesses(async () => {
      const s = await startServer({ jetstream: false });
      return { servers: [s], callerUrl: s.url, actorUrl: s.url };
    });
  });

  describe("over a 3-node nats-server cluster (caller on A, actor on C)", () => {
    rpcAcrossProcesses(async () => {
      const servers = await startCluster(3);
      return { servers, callerUrl: servers[0]!.url, actorUrl: servers[2]!.url };
    });
  });
});
