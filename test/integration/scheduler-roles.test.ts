import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { RepoResult } from "../../actors/index.ts";
import { check } from "../helpers/check.ts";
import {
  packageResult,
  projectMeta as META,
  settledStates as settle,
  startRoleCluster,
  writeSpec,
  type RoleCluster,
} from "../helpers/roles.ts";

/** A package whose build runs until it is killed (five minutes at most). */
const slowSpec = (root: string, name: string): string => writeSpec(root, name, { build: "sleep 300" });

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
    const before = await packageResult(c, "cascade", "top");

    // A new version of base: mid is rebuilt for the meta change, then top transitively.
    await c.commitDir("cascade", "base", writeSpec(tmp, "base", { version: "2.0", provides: ["libbase = 2"] }));
    states = await settle(c, "cascade");
    assert.deepEqual(Object.fromEntries(states), { base: "succeeded", mid: "succeeded", top: "succeeded" });
    const mid = await c.sched().call("reason.get", { project: "cascade", repository: "r", package: "mid" });
    assert.equal(mid?.explain, "meta change");
    assert.deepEqual(mid?.packagechange, [{ change: "md5sum", key: "base" }]);
    const top = await c.sched().call("reason.get", { project: "cascade", repository: "r", package: "top" });
    assert.equal(top?.explain, "meta change");
    const after = await packageResult(c, "cascade", "top");
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
    const before = await packageResult(c, "local", "app");
    await c.commitDir("local", "lib", writeSpec(tmp, "lib", { version: "2.0" }));
    const states = await settle(c, "local");
    assert.deepEqual(Object.fromEntries(states), { app: "succeeded", lib: "succeeded" });
    const after = await packageResult(c, "local", "app");
    assert.equal(after!.jobId, before!.jobId);
  });

  it("should build a dependency cycle as OBS does: no more builds than OBS, then rest", async () => {
    const builds = async (pkg: string): Promise<number> =>
      (await c.repo.call("history.jobs", { project: "cycle", repository: "r", arch: "x86_64", package: pkg })).length;
    await c.source.call("project.put-meta", { project: "cycle", xml: META("cycle") });
    // Bootstrap: a first without its dependency, then both depend on each other.
    await c.commitDir("cycle", "ca", writeSpec(tmp, "ca"));
    await c.commitDir("cycle", "cb", writeSpec(tmp, "cb", { buildRequires: ["ca"] }));
    await settle(c, "cycle");
    assert.deepEqual([await builds("ca"), await builds("cb")], [1, 1]);
    await c.commitDir("cycle", "ca", writeSpec(tmp, "ca", { buildRequires: ["cb"], body: "now in a cycle" }));
    let states = await settle(c, "cycle");
    assert.deepEqual(Object.fromEntries(states), { ca: "succeeded", cb: "succeeded" });
    const deps = await c.sched().call("builddepinfo.get", { project: "cycle", repository: "r" });
    assert.deepEqual(deps.cycles, [["ca", "cb"]]);
    // ca for its sources, cb for the meta change; ca's regenerated meta leaves out cb's lines
    // through ca, so cb's new build changes nothing for it: two builds, not three or four.
    assert.deepEqual([await builds("ca"), await builds("cb")], [2, 2]);
    const cb = await c.sched().call("reason.get", { project: "cycle", repository: "r", package: "cb" });
    assert.equal(cb?.explain, "meta change");
    // A source change of a member: that member, then the other, and no more.
    await c.commitDir("cycle", "cb", writeSpec(tmp, "cb", { buildRequires: ["ca"], body: "changed" }));
    states = await settle(c, "cycle");
    assert.deepEqual(Object.fromEntries(states), { ca: "succeeded", cb: "succeeded" });
    assert.deepEqual([await builds("ca"), await builds("cb")], [3, 3]);
    // At rest: a further check creates no job.
    await c.sched().call("rebuild.request", { project: "cycle", code: "no-such-code" });
    const again = await settle(c, "cycle");
    assert.deepEqual(Object.fromEntries(again), { ca: "succeeded", cb: "succeeded" });
    assert.equal((await c.dispatcher.call("job.list", { project: "cycle" })).length, 0);
    assert.deepEqual([await builds("ca"), await builds("cb")], [3, 3]);
  });

  it("should cancel jobs their package no longer wants, as OBS's killunwantedjobs, without results", async () => {
    const P = "unwanted";
    const jobsOf = async (pkg: string): Promise<string[]> =>
      (await c.dispatcher.call("job.list", { project: P, package: pkg })).map((j) => j.code);
    const stateOf = async (pkg: string): Promise<string> => {
      const r = await c.sched().call("results.get", { project: P, package: pkg });
      const p = r[0]?.packages[0];
      return p ? `${p.code}${p.details ? `: ${p.details}` : ""}` : "none";
    };
    const resultOf = (pkg: string) => packageResult(c, P, pkg);
    await c.source.call("project.put-meta", { project: P, xml: META(P) });
    await c.commitDir(P, "dep", writeSpec(tmp, "dep"));
    await settle(c, P);
    // Both workers (one job each) get a build that runs until it is killed.
    await c.commitDir(P, "slow1", slowSpec(tmp, "slow1"));
    await c.commitDir(P, "slow2", slowSpec(tmp, "slow2"));
    await check(
      async () => (await stateOf("slow1")).startsWith("building") && (await stateOf("slow2")).startsWith("building"),
      {
        timeoutMs: 60_000,
        name: "both slow builds running",
      }
    );
    // Nothing is free: waiter's job and dep's new one stay queued.
    await c.commitDir(P, "waiter", writeSpec(tmp, "waiter"));
    await c.commitDir(P, "dep", writeSpec(tmp, "dep", { version: "2.0" }));
    await check(async () => (await jobsOf("waiter")).join() === "scheduled", {
      timeoutMs: 30_000,
      name: "waiter queued",
    });

    // New sources that wait for dep: the queued job of the old ones goes, no result is stored.
    await c.commitDir(P, "waiter", writeSpec(tmp, "waiter", { buildRequires: ["dep"] }));
    await check(async () => (await jobsOf("waiter")).length === 0, {
      timeoutMs: 30_000,
      name: "waiter's job cancelled",
    });
    assert.equal(await stateOf("waiter"), "blocked: dep");
    assert.equal(await resultOf("waiter"), null);

    // A running build whose package is now disabled is killed on its worker, without a result.
    await c.source.call("package.put-meta", {
      project: P,
      package: "slow1",
      xml: `<package name="slow1" project="${P}"><title/><description/><build><disable/></build></package>`,
    });
    await check(async () => (await jobsOf("slow1")).length === 0, { timeoutMs: 30_000, name: "slow1 killed" });
    assert.equal(await stateOf("slow1"), "disabled");
    // So is the running build of a deleted package.
    await c.source.call("package.delete", { project: P, package: "slow2" });
    await check(async () => (await jobsOf("slow2")).length === 0, { timeoutMs: 30_000, name: "slow2 killed" });

    // The freed workers build dep, then waiter from its new sources: waiter's only build.
    const states = await settle(c, P);
    assert.deepEqual(Object.fromEntries(states), { dep: "succeeded", slow1: "disabled", waiter: "succeeded" });
    for (const pkg of ["slow1", "slow2"]) assert.equal(await resultOf(pkg), null, `${pkg} has a result`);
    const hist = await c.repo.call("history.jobs", { project: P, repository: "r", arch: "x86_64", package: "waiter" });
    assert.equal(hist.length, 1, JSON.stringify(hist));
  });

  it("should cancel the jobs of a repository that goes away", async () => {
    const P = "dropped";
    await c.source.call("project.put-meta", { project: P, xml: META(P) });
    await c.commitDir(P, "long", slowSpec(tmp, "long"));
    await check(async () => (await c.dispatcher.call("job.list", { project: P })).some((j) => j.code === "building"), {
      timeoutMs: 60_000,
      name: "long building",
    });
    // The repository no longer builds for x86_64.
    await c.source.call("project.put-meta", {
      project: P,
      xml: `<project name="${P}"><title/><description/><repository name="r"><arch>aarch64</arch></repository></project>`,
    });
    await check(async () => (await c.dispatcher.call("job.list", { project: P })).length === 0, {
      timeoutMs: 30_000,
      name: "long killed",
    });
    assert.equal(await packageResult(c, P, "long"), null);
  });

  it("should call a repository broken, with OBS's details, while a path repository is gone or preinstalls are unresolvable", async () => {
    const repoOf = async (project: string): Promise<RepoResult> =>
      (await c.sched().call("results.get", { project }))[0]!;
    await c.source.call("project.put-meta", { project: "pbase", xml: META("pbase") });
    await c.source.call("project.put-meta", {
      project: "puser",
      xml: `<project name="puser"><title/><description/><repository name="r"><path project="pbase" repository="r"/><arch>x86_64</arch></repository></project>`,
    });
    await c.commitDir("puser", "tool", writeSpec(tmp, "tool"));
    await settle(c, "puser");
    assert.equal((await repoOf("puser")).code, "finished");
    // The path repository goes away (forced): puser cannot be read.
    await c.source.call("project.put-meta", {
      project: "pbase",
      xml: `<project name="pbase"><title/><description/></project>`,
      force: true,
    });
    await check(async () => (await repoOf("puser")).code === "broken", { timeoutMs: 30_000, name: "puser broken" });
    const broken = await repoOf("puser");
    assert.equal(broken.details, "repository 'pbase/r' is unavailable");
    assert.equal(broken.dirty, false);
    // Back: readable again, and finished.
    await c.source.call("project.put-meta", { project: "pbase", xml: META("pbase") });
    await check(async () => (await repoOf("puser")).code === "finished", { timeoutMs: 30_000, name: "puser again" });
    assert.equal((await repoOf("puser")).details, undefined);

    // Preinstalls expanded at the repository (ExpandFlags: preinstallexpand) that nothing provides.
    await c.source.call("project.put-config", {
      project: "puser",
      text: "Preinstall: no-such-shell\nExpandFlags: preinstallexpand\n",
    });
    await check(async () => (await repoOf("puser")).code === "broken", { timeoutMs: 30_000, name: "preinstalls" });
    assert.equal((await repoOf("puser")).details, "unresolvable preinstalls: nothing provides no-such-shell");
    await c.source.call("project.put-config", { project: "puser", text: "" });
    await check(async () => (await repoOf("puser")).code === "finished", { timeoutMs: 30_000, name: "config fixed" });
  });

  it("should rebuild on request with a new build counter", async () => {
    const before = await packageResult(c, "local", "lib");
    const r = await c.sched().call("rebuild.request", { project: "local", package: "lib" });
    assert.equal(r.packages, 1);
    await check(async () => (await packageResult(c, "local", "lib"))!.jobId !== before!.jobId, {
      timeoutMs: 120_000,
      name: "lib rebuilt",
    });
    await settle(c, "local");
    const after = await packageResult(c, "local", "lib");
    assert.equal(after!.versrel, before!.versrel);
    assert.equal(after!.bcnt, before!.bcnt + 1);
  });

  it("should sync build counters across archs as OBS's relsync: the arch that built less catches up", async () => {
    const P = "relsync";
    const result = (arch: string) => c.repo.call("result.get", { project: P, repository: "r", arch, package: "rs" });
    const settledOn = (arch: string) =>
      check(
        async () => {
          const rs = await c.sched(arch).call("results.get", { project: P });
          return rs.length > 0 && rs.every((r) => !r.dirty && r.packages.every((p) => p.code === "succeeded"));
        },
        { timeoutMs: 120_000, intervalMs: 100, name: `${P} settled on ${arch}` }
      );
    await c.startScheduler("i586");
    try {
      await c.source.call("project.put-meta", {
        project: P,
        xml: `<project name="${P}"><title/><description/><repository name="r"><arch>x86_64</arch><arch>i586</arch></repository></project>`,
      });
      // Without build-compare: a rebuild of the same sources must succeed, not stay `unchanged`
      // (an unchanged build keeps the old packages and uses up no counter).
      await c.source.call("project.put-config", { project: P, text: "BuildFlags: nohooks:build-compare\n" });
      await c.commitDir(P, "rs", writeSpec(tmp, "rs"));
      await settledOn("x86_64");
      await settledOn("i586");
      assert.deepEqual([(await result("x86_64"))!.bcnt, (await result("i586"))!.bcnt], [1, 1]);

      // A rebuild on x86_64 alone: i586 follows with the same counter, so both have release 1.2.
      await c.sched("x86_64").call("rebuild.request", { project: P, package: "rs" });
      await check(async () => (await result("x86_64"))!.bcnt === 2, { timeoutMs: 120_000, name: "x86_64 rebuilt" });
      await check(async () => (await result("i586"))!.bcnt === 2, { timeoutMs: 120_000, name: "i586 synced" });
      const reason = await c.sched("i586").call("reason.get", { project: P, repository: "r", package: "rs" });
      assert.equal(reason?.explain, "rebuild counter sync");
      assert.deepEqual([(await result("x86_64"))!.release, (await result("i586"))!.release], ["1.2", "1.2"]);
      await settledOn("x86_64");
      await settledOn("i586");
      // Synced, nothing more: no further build on either arch.
      assert.deepEqual([(await result("x86_64"))!.bcnt, (await result("i586"))!.bcnt], [2, 2]);
      assert.equal((await c.dispatcher.call("job.list", { project: P })).length, 0);
      // What a scheduler reads when it loads the repository: the highest counter of each versrel.
      assert.deepEqual(await c.repo.call("relsync.get", { project: P, repository: "r" }), [
        { package: "rs", versrel: "1.0-1", bcnt: 2 },
      ]);
    } finally {
      await c.stopRole("scheduler:i586");
    }
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
    const one = await packageResult(c, "restart", "one");
    assert.match(one!.versrel, /^3\.0-/);
  });
});
