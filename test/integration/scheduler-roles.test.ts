import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RepoResult } from "../../actors/index.ts";
import { check } from "../helpers/check.ts";
import { startRoleCluster, writeSpec, type RoleCluster } from "../helpers/roles.ts";

/** Waits until the scheduler has nothing left to do for the project, and returns the states. */
async function settle(c: RoleCluster, project: string, timeoutMs = 120_000): Promise<Map<string, string>> {
  const wait = new Set(["blocked", "scheduled", "dispatching", "building", "finished"]);
  let last: RepoResult[] = [];
  await check(
    async () => {
      last = await c.sched().call("results.get", { project });
      return last.length > 0 && last.every((r) => !r.dirty && r.packages.every((p) => !wait.has(p.code)));
    },
    { timeoutMs, intervalMs: 100, name: `settle ${project}` }
  );
  return new Map(last.flatMap((r) => r.packages.map((p) => [p.package, p.code + (p.details ? `: ${p.details}` : "")])));
}

const META = (name: string, extra = ""): string =>
  `<project name="${name}"><title/><description/><repository name="r"${extra}><arch>x86_64</arch></repository></project>`;

describe("actors/scheduler (real roles, real builds)", function () {
  this.timeout(300_000);
  let c: RoleCluster;
  let tmp: string;

  before(async () => {
    c = await startRoleCluster({ workers: 2, logLevel: process.env.TEST_LOG_LEVEL ?? "warn" });
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-sched-"));
  });
  after(async () => {
    await c?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("should rebuild dependents of a changed package (transitive), name the change, and then rest", async () => {
    await c.source.call("project.put-meta", { project: "cascade", xml: META("cascade") });
    await c.commitDir("cascade", "base", writeSpec(tmp, "base", { provides: ["libbase = 1"] }));
    // mid's files depend on base's: a new base makes a different mid (build-compare sees a change).
    await c.commitDir("cascade", "mid", writeSpec(tmp, "mid", { buildRequires: ["libbase"], embeds: ["base"] }));
    await c.commitDir("cascade", "top", writeSpec(tmp, "top", { buildRequires: ["mid"] }));
    // mid and top cannot expand until base and mid have built once; the scheduler gets there.
    let states = await settle(c, "cascade");
    assert.deepEqual(Object.fromEntries(states), { base: "succeeded", mid: "succeeded", top: "succeeded" });
    const before = await c.repo.call("result.get", {
      project: "cascade",
      repository: "r",
      arch: "x86_64",
      package: "top",
    });

    // A new version of base: mid is rebuilt for the meta change, then top transitively.
    await c.commitDir("cascade", "base", writeSpec(tmp, "base", { version: "2.0", provides: ["libbase = 2"] }));
    states = await settle(c, "cascade");
    assert.deepEqual(Object.fromEntries(states), { base: "succeeded", mid: "succeeded", top: "succeeded" });
    const mid = await c.sched().call("reason.get", { project: "cascade", repository: "r", package: "mid" });
    assert.equal(mid?.explain, "meta change");
    assert.deepEqual(mid?.packagechange, [{ change: "md5sum", key: "base" }]);
    const top = await c.sched().call("reason.get", { project: "cascade", repository: "r", package: "top" });
    assert.equal(top?.explain, "meta change");
    const after = await c.repo.call("result.get", {
      project: "cascade",
      repository: "r",
      arch: "x86_64",
      package: "top",
    });
    assert.notEqual(after!.jobId, before!.jobId, "top was not rebuilt");
    // The rebuild without a source change got a new build counter: release <CI_CNT>.<B_CNT>.
    assert.equal(after!.release, "1.2");
    assert.equal((await c.dispatcher.call("job.list", { project: "cascade" })).length, 0);
  });

  it("should not rebuild dependents with rebuild=local", async () => {
    await c.source.call("project.put-meta", { project: "local", xml: META("local", ` rebuild="local"`) });
    await c.commitDir("local", "lib", writeSpec(tmp, "lib"));
    await c.commitDir("local", "app", writeSpec(tmp, "app", { buildRequires: ["lib"] }));
    await settle(c, "local");
    const before = await c.repo.call("result.get", {
      project: "local",
      repository: "r",
      arch: "x86_64",
      package: "app",
    });
    await c.commitDir("local", "lib", writeSpec(tmp, "lib", { version: "2.0" }));
    const states = await settle(c, "local");
    assert.deepEqual(Object.fromEntries(states), { app: "succeeded", lib: "succeeded" });
    const after = await c.repo.call("result.get", {
      project: "local",
      repository: "r",
      arch: "x86_64",
      package: "app",
    });
    assert.equal(after!.jobId, before!.jobId);
  });

  it("should build a dependency cycle and come to rest instead of rebuilding forever", async () => {
    await c.source.call("project.put-meta", { project: "cycle", xml: META("cycle") });
    // Bootstrap: a first without its dependency, then both depend on each other.
    await c.commitDir("cycle", "ca", writeSpec(tmp, "ca"));
    await c.commitDir("cycle", "cb", writeSpec(tmp, "cb", { buildRequires: ["ca"] }));
    await settle(c, "cycle");
    await c.commitDir("cycle", "ca", writeSpec(tmp, "ca", { buildRequires: ["cb"], body: "now in a cycle" }));
    const states = await settle(c, "cycle");
    assert.deepEqual(Object.fromEntries(states), { ca: "succeeded", cb: "succeeded" });
    const deps = await c.sched().call("builddepinfo.get", { project: "cycle", repository: "r" });
    assert.deepEqual(deps.cycles, [["ca", "cb"]]);
    // At rest: a further check creates no job.
    await c.sched().call("rebuild.request", { project: "cycle", code: "no-such-code" });
    const again = await settle(c, "cycle");
    assert.deepEqual(Object.fromEntries(again), { ca: "succeeded", cb: "succeeded" });
    assert.equal((await c.dispatcher.call("job.list", { project: "cycle" })).length, 0);
  });

  it("should rebuild on request with a new build counter", async () => {
    const before = await c.repo.call("result.get", {
      project: "local",
      repository: "r",
      arch: "x86_64",
      package: "lib",
    });
    const r = await c.sched().call("rebuild.request", { project: "local", package: "lib" });
    assert.equal(r.packages, 1);
    await check(
      async () =>
        (await c.repo.call("result.get", { project: "local", repository: "r", arch: "x86_64", package: "lib" }))!
          .jobId !== before!.jobId,
      { timeoutMs: 120_000, name: "lib rebuilt" }
    );
    await settle(c, "local");
    const after = await c.repo.call("result.get", {
      project: "local",
      repository: "r",
      arch: "x86_64",
      package: "lib",
    });
    assert.equal(after!.versrel, before!.versrel);
    assert.equal(after!.bcnt, before!.bcnt + 1);
  });

  it("should miss no package committed while it reads a new repository", async () => {
    // The commits race the scheduler's first read of the repository (started by the meta).
    await c.source.call("project.put-meta", { project: "race", xml: META("race") });
    const names = ["r1", "r2", "r3", "r4", "r5", "r6"];
    await Promise.all(names.map((n) => c.commitDir("race", n, writeSpec(tmp, n))));
    const states = await settle(c, "race");
    assert.deepEqual(Object.fromEntries(states), Object.fromEntries(names.map((n) => [n, "succeeded"])));
  });

  it("should miss nothing while the scheduler is down, and resume from its durable consumer", async () => {
    await c.source.call("project.put-meta", { project: "restart", xml: META("restart") });
    await c.commitDir("restart", "one", writeSpec(tmp, "one"));
    await settle(c, "restart");
    await c.stopRole("scheduler:x86_64");
    // Changes while no scheduler runs: a new package and a new version.
    await c.commitDir("restart", "two", writeSpec(tmp, "two", { buildRequires: ["one"] }));
    await c.commitDir("restart", "one", writeSpec(tmp, "one", { version: "3.0" }));
    await c.startScheduler();
    const states = await settle(c, "restart");
    assert.deepEqual(Object.fromEntries(states), { one: "succeeded", two: "succeeded" });
    const one = await c.repo.call("result.get", {
      project: "restart",
      repository: "r",
      arch: "x86_64",
      package: "one",
    });
    assert.match(one!.versrel, /^3\.0-/);
  });
});
