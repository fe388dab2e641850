/**
 * The dispatcher's listings and job operations honour the source role's access rules: jobs of a
 * hidden project are invisible to outsiders, aborting needs write access, job details need
 * source access.
 */
import assert from "node:assert/strict";
import { startDispatcherRole, type BuildJob, type DispatcherApi, type RunningRole } from "../../actors/index.ts";
import { Role, RoleClient, RpcClient, encode, okEnvelope, subjects, type Identity } from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { commitFiles, projectXml, startSourceHarness, type SourceHarness } from "../helpers/source-role.ts";
import { refused } from "../helpers/refused.ts";
import { simJob } from "../helpers/worker-sim.ts";

const job = (project: string, pkg: string, n: number): BuildJob =>
  simJob(project, pkg, { jobId: `${n}`.padStart(32, "0"), repository: "std", path: [{ project, repository: "std" }] });

describe("actors/dispatcher access (integration)", function () {
  this.timeout(60_000);
  let h: SourceHarness;
  let dispatcherRole: RunningRole;
  let member: Identity;
  let outsider: Identity;
  const client = (who?: Identity): RoleClient<DispatcherApi> =>
    new RoleClient<DispatcherApi>(new RpcClient(h.nc).withSigner(who), (t) => subjects.rpc(Role.Dispatcher, t));

  before(async () => {
    h = await startSourceHarness();
    member = await h.addUser("member");
    outsider = await h.addUser("outsider");
    const admin = h.client(h.admin);
    await admin.call("project.put-meta", {
      project: "secret",
      xml: projectXml("secret", {
        extra: `<person userid="member" role="reader"/><access><disable/></access>`,
        repos: [{ name: "std" }],
      }),
    });
    await commitFiles(admin, "secret", "s", { "s.spec": "Name: s\n" });
    await admin.call("project.put-meta", {
      project: "public",
      xml: projectXml("public", { repos: [{ name: "std" }] }),
    });
    await commitFiles(admin, "public", "p", { "p.spec": "Name: p\n" });
    dispatcherRole = await startDispatcherRole(h.ctx, { heartbeatMs: 500 });
    // A worker that takes whatever it is given (the test is about who sees what, not building).
    h.nc.subscribe(subjects.workerAll("fw"), {
      callback: (_e, m) =>
        m.respond(encode(okEnvelope(m.subject.endsWith("job.assign") ? { accepted: true } : { aborted: true }))),
    });
    const roles = client(h.service);
    await roles.call("job.submit", { job: job("secret", "s", 1) });
    await roles.call("worker.register", {
      workerId: "fw",
      hostArch: "x86_64",
      buildArchs: ["x86_64"],
      hostLabels: [],
      sandbox: "bwrap",
      linux: { version: "6.1" },
      cpuFlags: [],
      processors: 2,
      jobs: 1,
      memoryMb: 4096,
      swapMb: 0,
      diskMb: 10_000,
    });
    await check(async () => (await roles.call("job.list", { project: "secret" }))[0]?.code === "building", {
      name: "secret job building",
    });
    await roles.call("job.submit", { job: job("public", "p", 2) });
  });
  after(async () => {
    await dispatcherRole?.stop();
    await h?.stop();
  });

  it("should hide a hidden project's jobs and what workers build for it from outsiders", async () => {
    const names = async (who?: Identity): Promise<string[]> =>
      (await client(who).call("job.list", {})).map((j) => j.project).sort();
    assert.deepEqual(await names(h.admin), ["public", "secret"]);
    assert.deepEqual(await names(member), ["public", "secret"]);
    assert.deepEqual(await names(outsider), ["public"]);
    assert.deepEqual(await names(undefined), ["public"]);
    await refused(client(outsider).call("job.list", { project: "secret" }), "ERR_NOT_FOUND");
    const running = async (who?: Identity): Promise<string[]> =>
      (await client(who).call("worker.list", {})).flatMap((w) => w.running.map((r) => r.project));
    assert.deepEqual(await running(member), ["secret"]);
    assert.deepEqual(await running(outsider), []);
  });

  it("should give job details only to those who may read the sources", async () => {
    const jobId = job("secret", "s", 1).jobId;
    assert.equal((await client(h.service).call("job.get", { jobId }))?.job.project, "secret");
    await refused(client(outsider).call("job.get", { jobId }), "ERR_NOT_FOUND");
  });

  it("should let only those who may change a project abort its builds", async () => {
    await refused(client(outsider).call("job.abort", { project: "secret" }), "ERR_NOT_FOUND");
    await refused(client(member).call("job.abort", { project: "secret" }), "ERR_FORBIDDEN");
    await refused(client(outsider).call("job.abort", { project: "public" }), "ERR_FORBIDDEN");
    await refused(client(undefined).call("job.abort", { project: "public" }), "ERR_UNAUTHENTICATED");
    assert.equal((await client(h.admin).call("job.abort", { project: "public" })).aborted, 1);
  });
});
