/**
 * Who can obtain a built binary: the source and repo roles run as their NATS users under the
 * example authorization (ops/nats/), a worker and users connect as theirs. A package with
 * `binarydownload` disabled keeps its binaries from outsiders on every path: result and pool
 * answers leave them out, the checked file reads refuse, and raw blob reads are not open to users
 * at all; members, and kiln's workers, still get them.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { start as startActorSystem, stop as stopActorSystem } from "nact";
import type { NatsConnection, Subscription } from "nats";
import {
  repoFileClient,
  startRepoRole,
  startSourceRole,
  type BuildJob,
  type RepoApi,
  type RoleContext,
  type RunningRole,
  type SourceApi,
} from "../../actors/index.ts";
import {
  Identity,
  Role,
  RoleClient,
  RpcClient,
  backoff,
  downloadBlob,
  encode,
  readBlobBytes,
  serve,
  subjects,
} from "../../transport/index.ts";
import type { NatsUser } from "../../ops/nats/authz.ts";
import { check } from "../helpers/check.ts";
import { jobFields, uploadAs } from "../helpers/jobs.ts";
import { connectAsUser, startAuthzServer } from "../helpers/nats-authz.ts";
import { stopAll, type TestServer } from "../helpers/nats-server.ts";
import { refused } from "../helpers/refused.ts";
import { buildTestRpms, type BuiltRpms } from "../helpers/repo-rpms.ts";
import { testLog as log } from "../helpers/repo-harness.ts";

const USERS: NatsUser[] = [
  { user: "source", password: "s1", kind: "source" },
  { user: "repo", password: "r1", kind: "repo" },
  { user: "dispatcher", password: "d1", kind: "dispatcher" },
  { user: "w1", password: "w1", kind: "worker", workerId: "host:1" },
  { user: "ops", password: "o1", kind: "operator" },
  { user: "alice", password: "a1", kind: "user" },
  { user: "eve", password: "e1", kind: "user" },
];
const P = "sec";
const H = "sec:hidden";
const R = "standard";
const A = "x86_64";
const sha256Of = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");

describe("integration/repo access to binaries under NATS authorization", function () {
  this.timeout(60_000);
  let server: TestServer;
  let dir: string;
  let rpms: BuiltRpms;
  let hiddenRpms: BuiltRpms;
  const system = startActorSystem();
  const conns: NatsConnection[] = [];
  const subs: Subscription[] = [];
  const roles: RunningRole[] = [];
  const jobs = new Map<string, BuildJob>();
  const ids = { admin: Identity.create(), alice: Identity.create(), eve: Identity.create(), role: Identity.create() };

  const connectAs = async (user: string): Promise<NatsConnection> => {
    const password = USERS.find((x) => x.user === user)?.password ?? "x";
    const nc = await connectAsUser(server, user, password, log);
    conns.push(nc);
    return nc;
  };
  const rpc = (nc: NatsConnection, signer?: Identity): RpcClient =>
    new RpcClient(nc, { backoff: backoff([50, 100]), ...(signer ? { signer } : {}) });
  const repoOf = (nc: NatsConnection, signer?: Identity): RoleClient<RepoApi> =>
    new RoleClient<RepoApi>(rpc(nc, signer), (t) => subjects.rpc(Role.Repo, t));
  // The roles sign with a service identity, as `kiln serve` does: they read hidden projects.
  const roleContext = (nc: NatsConnection, nodeId: string): RoleContext => ({
    nc,
    rpc: new RpcClient(nc, { signer: ids.role }),
    system,
    log,
    dataDir: dir,
    nodeId,
    replicas: 1,
  });

  let alice: RoleClient<RepoApi>;
  let eve: RoleClient<RepoApi>;
  let anonymous: RoleClient<RepoApi>;
  let worker: RoleClient<RepoApi>;

  /** Uploads the files as worker w1 and stores them as the result of a job the dispatcher knows. */
  const storeBuild = async (project: string, pkg: string, files: string[]): Promise<void> => {
    const jobId = createHash("md5").update(`${project}/${pkg}`).digest("hex");
    jobs.set(jobId, {
      ...jobFields({ project, repository: R, arch: A, package: pkg, srcmd5: jobId }),
      jobId,
      disturl: "",
      subpacks: [],
      path: [],
    });
    const logFile = path.join(dir, `${pkg}.log`);
    const { writeFileSync } = await import("node:fs");
    writeFileSync(logFile, `log of ${pkg}\n`);
    const uploaded = await uploadAs(worker, [
      ...files.map((f): [string, string] => [path.basename(f), f]),
      ["_log", logFile],
    ]);
    await worker.call("result.put", {
      project,
      repository: R,
      arch: A,
      package: pkg,
      jobId,
      workerId: "host:1",
      code: "succeeded",
      files: uploaded,
      startTime: Date.now() - 1000,
      endTime: Date.now(),
    });
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-repo-access-"));
    rpms = await buildTestRpms(dir, A, [{ name: "secret" }, { name: "open" }]);
    hiddenRpms = await buildTestRpms(dir, A, [{ name: "inner" }]);
    server = await startAuthzServer(USERS);
    roles.push(await startSourceRole(roleContext(await connectAs("source"), "src")));
    const dispatcher = await connectAs("dispatcher");
    subs.push(
      serve(dispatcher, {
        subject: subjects.rpc(Role.Dispatcher, "job.get"),
        prefixTokens: 3,
        log,
        handler: async (args) => {
          const job = jobs.get((args as { jobId: string }).jobId);
          return job ? { ...job, code: "building", workerId: "host:1", job } : null;
        },
      })
    );
    roles.push(await startRepoRole(roleContext(await connectAs("repo"), "repo")));

    const ops = await connectAs("ops");
    const admin = new RoleClient<SourceApi>(rpc(ops, ids.admin), (t) => subjects.rpc(Role.Source, t));
    await admin.call("user.add", { name: "admin", pubkey: ids.admin.publicKey, admin: true });
    await admin.call("user.add", { name: "alice", pubkey: ids.alice.publicKey });
    await admin.call("user.add", { name: "eve", pubkey: ids.eve.publicKey });
    await admin.call("user.add", { name: "kiln-roles-test", pubkey: ids.role.publicKey, service: true });
    const repoXml = `<repository name="${R}"><arch>${A}</arch></repository>`;
    for (const [name, extra] of [
      [P, ""],
      [H, "<access><disable/></access>"],
    ]) {
      await admin.call("project.put-meta", {
        project: name!,
        xml: `<project name="${name}"><title/><description/><person userid="alice" role="maintainer"/>${extra}${repoXml}</project>`,
      });
    }
    for (const [project, pkg, extra] of [
      [P, "secret", "<binarydownload><disable/></binarydownload>"],
      [P, "open", ""],
      [H, "inner", ""],
    ]) {
      await admin.call("package.put-meta", {
        project: project!,
        package: pkg!,
        xml: `<package name="${pkg}" project="${project}"><title/><description/>${extra}</package>`,
      });
    }

    worker = repoOf(await connectAs("w1"));
    alice = repoOf(await connectAs("alice"), ids.alice);
    const eveNc = await connectAs("eve");
    eve = repoOf(eveNc, ids.eve);
    anonymous = repoOf(eveNc);
    // A source package is a binary of the result too: it is not in the pool.
    await storeBuild(P, "secret", [rpms.rpms.get("secret")!, rpms.rpms.get("open")!, rpms.srpm]);
    await storeBuild(P, "open", [rpms.rpms.get("open")!]);
    await storeBuild(H, "inner", [hiddenRpms.rpms.get("inner")!]);
  });

  after(async () => {
    for (const r of roles.reverse()) await r.stop().catch(() => undefined);
    for (const s of subs) s.unsubscribe();
    stopActorSystem(system);
    for (const nc of conns) await nc.close().catch(() => undefined);
    if (server) await stopAll([server]);
    rmSync(dir, { recursive: true, force: true });
  });

  const where = { project: P, repository: R, arch: A };
  const secretFile = (): string => rpms.rpms.get("secret")!;

  it("should leave a package's binaries out of result answers to callers who may not download them", async () => {
    for (const outsider of [eve, anonymous]) {
      const r = await outsider.call("result.get", { ...where, package: "secret" });
      assert.ok(r, "the result itself is visible");
      assert.deepEqual(r.binaries, []);
      assert.equal(r.binariesWithheld, true);
      assert.ok(r.logSha256, "the log stays readable to whoever sees the project");
      assert.ok(!JSON.stringify(r).includes(sha256Of(secretFile())));
      // Packages whose binaries are open are answered in full.
      const open = await outsider.call("result.get", { ...where, package: "open" });
      assert.deepEqual(
        open?.binaries.map((b) => b.sha256),
        [sha256Of(rpms.rpms.get("open")!)]
      );
    }
    const mine = await alice.call("result.get", { ...where, package: "secret" });
    assert.equal(mine?.binariesWithheld, undefined);
    assert.ok(mine?.binaries.some((b) => b.sha256 === sha256Of(secretFile())));
    assert.equal(mine?.binaries.length, 3);
  });

  it("should leave the pool entries of such a package out of pool answers to them", async () => {
    const secretSha = sha256Of(secretFile());
    for (const outsider of [eve, anonymous]) {
      const pool = await outsider.call("pool.get", where);
      assert.deepEqual(
        pool.map((b) => `${b.name}:${b.package}`),
        ["open:open"]
      );
      const page = await outsider.call("pool.page", { ...where, limit: 1 });
      assert.ok(!JSON.stringify(page).includes(secretSha));
      // The pages still cover the whole pool: the cursor moves over what was left out.
      let after: string | undefined;
      const seen: string[] = [];
      let withheld = 0;
      do {
        const p = await outsider.call("pool.page", { ...where, limit: 1, ...(after !== undefined ? { after } : {}) });
        seen.push(...p.binaries.map((b) => b.name));
        withheld += p.withheld ?? 0;
        after = p.next;
      } while (after !== undefined);
      assert.deepEqual(seen, ["open"]);
      assert.equal(withheld, 1);
    }
    const pool = await alice.call("pool.get", where);
    assert.deepEqual(
      pool.map((b) => `${b.name}:${b.package}:${b.sha256}`),
      [`open:open:${sha256Of(rpms.rpms.get("open")!)}`, `secret:secret:${secretSha}`]
    );
  });

  it("should refuse outsiders the checked file reads of such a binary, and serve members and logs", async () => {
    const sha = sha256Of(secretFile());
    const target = { ...where, package: "secret" };
    await refused(eve.call("file.stat", { ...target, sha256: sha }), "ERR_FORBIDDEN", /binarydownload/);
    await refused(
      eve.call("file.read", { ...target, sha256: sha, offset: 0, length: 1024 }),
      "ERR_FORBIDDEN",
      /binarydownload/
    );
    await refused(anonymous.call("file.read", { ...target, sha256: sha, offset: 0, length: 1024 }), "ERR_FORBIDDEN");
    // A hash that is no file of this result is not read, whoever asks.
    await refused(
      alice.call("file.stat", { ...where, package: "open", sha256: sha }),
      "ERR_NOT_FOUND",
      /no file with sha256/
    );

    const dest = path.join(dir, "downloaded.rpm");
    const info = await downloadBlob(repoFileClient(alice, target), sha, dest);
    assert.equal(info.sha256, sha);
    assert.equal(sha256Of(dest), sha);

    const r = await eve.call("result.get", target);
    const logText = await readBlobBytes(repoFileClient(eve, target), r!.logSha256!, 1024 * 1024);
    assert.equal(logText.toString(), "log of secret\n");
  });

  it("should not let users read repo blobs by hash, while a worker can", async () => {
    const sha = sha256Of(secretFile());
    const spy = await connectAs("spy");
    const seen: string[] = [];
    const watch = spy.subscribe("kiln.rpc.repo.>", { callback: (_err, m) => seen.push(m.subject) });
    await spy.flush();
    const eveNc = eve.rpc.nc;
    eveNc.publish("kiln.rpc.repo.blob.read", encode({ args: { sha256: sha, offset: 0, length: 1024 } }));
    eveNc.publish("kiln.rpc.repo.blob.stat", encode({ args: { sha256: sha } }));
    eveNc.publish("kiln.rpc.repo.file.stat", encode({ args: { ...where, package: "secret", sha256: sha } }));
    await eveNc.flush();
    await spy.flush();
    await check(() => seen.length > 0, { name: "checked request delivered" });
    // Only the checked request got through.
    assert.deepEqual(seen, ["kiln.rpc.repo.file.stat"]);
    watch.unsubscribe();
    await assert.rejects(
      eve.call("blob.read", { sha256: sha, offset: 0, length: 1024 }, { timeoutMs: 1000 }),
      /no reply|permission/i
    );

    const dest = path.join(dir, "worker.rpm");
    await downloadBlob(worker, sha, dest);
    assert.equal(sha256Of(dest), sha);
  });

  it("should let users reach the dispatcher's checked verbs and a worker's log, not the roles' verbs", async () => {
    const spy = await connectAs("spy");
    const seen: string[] = [];
    const watch = spy.subscribe("kiln.rpc.>", { callback: (_err, m) => seen.push(m.subject) });
    await spy.flush();
    const eveNc = eve.rpc.nc;
    const allowed = [
      "kiln.rpc.dispatcher.job.list",
      "kiln.rpc.dispatcher.job.get",
      "kiln.rpc.dispatcher.worker.list",
      "kiln.rpc.dispatcher.job.abort",
      "kiln.rpc.worker.host~3A1.log.read",
    ];
    const refused = [
      "kiln.rpc.dispatcher.job.submit",
      "kiln.rpc.dispatcher.job.discard",
      "kiln.rpc.dispatcher.job.done",
      "kiln.rpc.worker.host~3A1.job.assign",
    ];
    for (const subject of [...refused, ...allowed]) eveNc.publish(subject, encode({ args: {} }));
    await eveNc.flush();
    await spy.flush();
    await check(() => seen.length >= allowed.length, { name: "allowed requests delivered" });
    assert.deepEqual(seen, allowed);
    watch.unsubscribe();
  });

  it("should answer a hidden project's results and pool in full to members only", async () => {
    const target = { project: H, repository: R, arch: A };
    await refused(eve.call("pool.get", target), "ERR_NOT_FOUND");
    await refused(eve.call("result.get", { ...target, package: "inner" }), "ERR_NOT_FOUND");
    const pool = await alice.call("pool.get", target);
    assert.deepEqual(
      pool.map((b) => `${b.name}:${b.sha256}`),
      [`inner:${sha256Of(hiddenRpms.rpms.get("inner")!)}`]
    );
    const r = await alice.call("result.get", { ...target, package: "inner" });
    assert.equal(r?.binaries.length, 1);
  });
});
