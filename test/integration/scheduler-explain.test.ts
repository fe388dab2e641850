/**
 * The scheduler's explaining commands against real roles and real builds: `kiln reason`,
 * `kiln buildinfo`, `kiln builddepinfo` and `kiln rebuild`, through the RPC API and through the
 * real `kiln` command line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { check } from "../helpers/check.ts";
import { kiln, kilnOk, type KilnEnv } from "../helpers/kiln.ts";
import {
  packageResult,
  projectMeta as META,
  settledResults,
  startRoleCluster,
  writeSpec,
  type RoleCluster,
} from "../helpers/roles.ts";

/** Waits until the scheduler has nothing left to do for the project, and returns the codes. */
async function settle(c: RoleCluster, project: string): Promise<Record<string, string>> {
  const last = await settledResults(c, project, 180_000);
  return Object.fromEntries(last.flatMap((r) => r.packages.map((p) => [p.package, p.code])));
}

describe("actors/scheduler: reason, buildinfo, builddepinfo, rebuild (real roles, real builds)", function () {
  this.timeout(600_000);
  let c: RoleCluster;
  let tmp: string;
  /** For the real `kiln` command: the cluster's NATS and its admin identity. */
  let cli: KilnEnv;

  const result = (project: string, pkg: string) => packageResult(c, project, pkg);

  before(async () => {
    c = await startRoleCluster({ workers: 2, logLevel: process.env.TEST_LOG_LEVEL ?? "warn" });
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-explain-"));
    const cliDir = path.join(tmp, "cli");
    mkdirSync(cliDir);
    writeFileSync(path.join(cliDir, "admin.identity"), c.admin.seed() + "\n", { mode: 0o600 });
    cli = { dataDir: cliDir, natsUrl: c.server.url };
  });
  after(async () => {
    await c?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("should keep why a package was rebuilt, with the changed dependencies, across a scheduler restart", async () => {
    await c.source.call("project.put-meta", { project: "why", xml: META("why") });
    await c.commitDir("why", "base", writeSpec(tmp, "base", { provides: ["libbase = 1"] }));
    await c.commitDir("why", "mid", writeSpec(tmp, "mid", { buildRequires: ["libbase"], embeds: ["base"] }));
    assert.deepEqual(await settle(c, "why"), { base: "succeeded", mid: "succeeded" });
    assert.equal(
      (await c.sched().call("reason.get", { project: "why", repository: "r", package: "mid" }))?.explain,
      "new build"
    );
    const base1 = (await result("why", "base"))!;

    await c.commitDir("why", "base", writeSpec(tmp, "base", { version: "2.0", provides: ["libbase = 2"] }));
    assert.deepEqual(await settle(c, "why"), { base: "succeeded", mid: "succeeded" });
    const mid2 = (await result("why", "mid"))!;

    await c.stopRole("scheduler:x86_64");
    await c.startScheduler();
    // Asked before the restarted scheduler has read the repository: the reason is stored.
    const base = await c.sched().call("reason.get", { project: "why", repository: "r", package: "base" });
    assert.equal(base?.explain, "source change");
    assert.equal(base?.oldsource, base1.verifymd5);
    const mid = await c.sched().call("reason.get", { project: "why", repository: "r", package: "mid" });
    assert.equal(mid?.explain, "meta change");
    assert.deepEqual(mid?.packagechange, [{ change: "md5sum", key: "base" }]);
    assert.ok(mid!.time >= mid2.readyTime - 1000 && mid!.time <= mid2.readyTime + 1000, "the time of mid's job");

    // The restart decided nothing new: the stored reasons are still those of the last jobs.
    assert.deepEqual(await settle(c, "why"), { base: "succeeded", mid: "succeeded" });
    assert.equal((await result("why", "mid"))!.jobId, mid2.jobId);
    const text = await kilnOk(cli, ["reason", "why", "r", "x86_64", "mid"]);
    assert.match(text, /^meta change \(\d{4}-\d\d-\d\dT/);
    assert.match(text, /\n {2}md5sum +base$/);
    const baseText = await kilnOk(cli, ["reason", "why", "r", "x86_64", "base"]);
    assert.match(baseText, new RegExp(`^source change .*\\n {2}previous sources: ${base1.verifymd5}$`));
  });

  it("should rebuild only the failed packages with --code failed", async () => {
    await c.source.call("project.put-meta", { project: "redo", xml: META("redo") });
    await c.commitDir("redo", "ok", writeSpec(tmp, "ok"));
    await c.commitDir("redo", "bad", writeSpec(tmp, "bad", { build: "echo this build fails; exit 1" }));
    assert.deepEqual(await settle(c, "redo"), { bad: "failed", ok: "succeeded" });
    const ok1 = (await result("redo", "ok"))!;
    const bad1 = (await result("redo", "bad"))!;

    const out = await kilnOk(cli, ["rebuild", "redo", "--code", "failed"]);
    assert.equal(out, "rebuild triggered for 1 package build");
    await check(async () => (await result("redo", "bad"))!.jobId !== bad1.jobId, {
      timeoutMs: 120_000,
      name: "bad built again",
    });
    assert.deepEqual(await settle(c, "redo"), { bad: "failed", ok: "succeeded" });
    const bad2 = (await result("redo", "bad"))!;
    assert.equal(bad2.code, "failed");
    assert.equal(bad2.reason, "new build");
    // No successful build of this versrel: the counter stays 1 (OBS's nextbcnt reads the history).
    assert.deepEqual([bad1.bcnt, bad2.bcnt, bad2.release], [1, 1, "1.1"]);
    assert.equal((await result("redo", "ok"))!.jobId, ok1.jobId, "ok was rebuilt");

    // A code that does not exist is refused, not silently matched by nothing.
    const bad = await kiln(cli, ["rebuild", "redo", "--code", "faild"]);
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /unknown package code 'faild'/);
  });

  it("should keep a running build of the current sources on rebuild, as OBS does", async () => {
    await c.source.call("project.put-meta", { project: "busy", xml: META("busy") });
    await c.commitDir("busy", "slow", writeSpec(tmp, "slow", { build: "sleep 8" }));
    const job = await check(
      async () => (await c.dispatcher.call("job.list", { project: "busy" })).find((j) => j.code === "building"),
      { timeoutMs: 120_000, name: "slow building" }
    );
    const r = await c.sched().call("rebuild.request", { project: "busy", package: "slow" });
    assert.deepEqual(r, { packages: 1, kept: 1 });
    // Once the scheduler has checked again, the running job is still the one.
    await check(async () => !(await c.sched().call("results.get", { project: "busy" }))[0]!.dirty, {
      name: "busy checked",
    });
    assert.deepEqual(
      (await c.dispatcher.call("job.list", { project: "busy" })).map((j) => [j.jobId, j.code]),
      [[job.jobId, "building"]]
    );
    assert.deepEqual(await settle(c, "busy"), { slow: "succeeded" });
    const done = (await result("busy", "slow"))!;
    assert.equal(done.jobId, job.jobId);
    assert.equal(done.bcnt, 1);
  });

  it("should show the job a build would get: counter, release, debuginfo, constraints and each dependency's role", async () => {
    await c.source.call("project.put-meta", {
      project: "info",
      xml: `<project name="info"><title/><description/><debuginfo><enable/></debuginfo><repository name="r"><arch>x86_64</arch></repository></project>`,
    });
    for (const n of ["pre", "vm", "sup", "lib"]) await c.commitDir("info", n, writeSpec(tmp, n));
    await settle(c, "info");
    await c.source.call("project.put-config", {
      project: "info",
      text: [
        "Preinstall: pre",
        "VMinstall: vm",
        "Runscripts: pre",
        "Support: sup",
        "Constraint: hardware:processors 1",
        "Release: <CI_CNT>.<B_CNT>.k",
        "",
      ].join("\n"),
    });
    const app = writeSpec(tmp, "app", { buildRequires: ["lib"] });
    const spec = path.join(app, "app.spec");
    writeFileSync(spec, "#!BuildConstraint: hardware:disk:size unit=M 1\n" + readFileSync(spec, "utf8"));
    const file = `<constraints><hardware><memory><size unit="M">1</size></memory></hardware></constraints>\n`;
    writeFileSync(path.join(app, "_constraints"), file);
    await c.commitDir("info", "app", app);
    assert.deepEqual(await settle(c, "info"), {
      app: "succeeded",
      lib: "succeeded",
      pre: "succeeded",
      sup: "succeeded",
      vm: "succeeded",
    });
    const built = (await result("info", "app"))!;
    assert.equal(built.release, "1.1.k");

    const b = await c.sched().call("buildinfo.get", { project: "info", repository: "r", package: "app" });
    assert.equal(b.code, "succeeded");
    // The next job of the same sources: the counter after the last successful build's.
    assert.equal(b.versrel, "1.0-1");
    assert.equal(b.bcnt, 2);
    assert.equal(b.release, "1.2.k");
    assert.equal(b.debuginfo, true);
    assert.deepEqual(b.subpacks, ["app"]);
    assert.deepEqual(b.constraints, {
      prjconf: ["hardware:processors 1"],
      recipe: ["hardware:disk:size unit=M 1"],
      file,
    });
    const flags = Object.fromEntries(
      b.bdeps.map((d) => [
        d.name,
        (["preinstall", "vminstall", "runscripts", "notmeta"] as const).filter((f) => d[f]).join(","),
      ])
    );
    assert.deepEqual(flags, { lib: "", pre: "preinstall,runscripts,notmeta", sup: "notmeta", vm: "vminstall,notmeta" });
    for (const d of b.bdeps) {
      assert.equal(`${d.project}/${d.repository}/${d.package}`, `info/r/${d.name}`);
      assert.match(d.filename, new RegExp(`^${d.name}-1\\.0-1\\.1\\.noarch\\.rpm$`));
    }

    const text = await kilnOk(cli, ["buildinfo", "info", "r", "x86_64", "app"]);
    assert.match(text, /^app: succeeded\n/);
    assert.match(text, /\n {2}versrel +1\.0-1, build counter 2, release 1\.2\.k\n/);
    assert.match(text, /\n {2}debuginfo +yes\n/);
    assert.match(text, /\n {2}constraint +hardware:processors 1 \(project config\)\n/);
    assert.match(text, /\n {2}constraint +hardware:disk:size unit=M 1 \(recipe\)\n/);
    assert.match(text, /\n {2}constraint +_constraints:\n {4}<constraints><hardware><memory>/);
    assert.match(text, /\npre +1\.0-1\.1\.noarch +info\/r +preinstall,runscripts,notmeta\n/);
    assert.match(text, /\nvm +1\.0-1\.1\.noarch +info\/r +vminstall,notmeta\n/);
    assert.match(text, /\nlib +1\.0-1\.1\.noarch +info\/r(\n|$)/);
  });

  it("should list each package's dependencies, reverse dependencies and subpackages", async () => {
    await c.source.call("project.put-meta", { project: "deps", xml: META("deps") });
    const core = writeSpec(tmp, "core");
    const spec = path.join(core, "core.spec");
    // A subpackage: users that need core-devel depend on the source package core.
    writeFileSync(
      spec,
      readFileSync(spec, "utf8") +
        ["%package devel", "Summary: core-devel", "%description devel", "devel", "%files devel", ""].join("\n")
    );
    await c.commitDir("deps", "core", core);
    await c.commitDir("deps", "user", writeSpec(tmp, "user", { buildRequires: ["core-devel"] }));
    await c.commitDir("deps", "tool", writeSpec(tmp, "tool", { buildRequires: ["user", "core"] }));
    await c.commitDir("deps", "lone", writeSpec(tmp, "lone"));
    assert.deepEqual(await settle(c, "deps"), {
      core: "succeeded",
      lone: "succeeded",
      tool: "succeeded",
      user: "succeeded",
    });
    const d = await c.sched().call("builddepinfo.get", { project: "deps", repository: "r" });
    assert.deepEqual(d.packages, [
      { package: "core", source: "core", pkgdeps: [], subpkgs: ["core", "core-devel"], revdeps: ["tool", "user"] },
      { package: "lone", source: "lone", pkgdeps: [], subpkgs: ["lone"], revdeps: [] },
      { package: "tool", source: "tool", pkgdeps: ["core", "user"], subpkgs: ["tool"], revdeps: [] },
      { package: "user", source: "user", pkgdeps: ["core"], subpkgs: ["user"], revdeps: ["tool"] },
    ]);
    assert.deepEqual(d.cycles, []);
    const text = await kilnOk(cli, ["builddepinfo", "deps", "r", "x86_64"]);
    const [head, ...rows] = text.split("\n");
    const at = [0, head!.indexOf("DEPENDS ON"), head!.indexOf("NEEDED BY")];
    assert.deepEqual(
      rows.map((l) => at.map((x, k) => l.slice(x, at[k + 1]).trim())),
      [
        ["core", "", "tool user"],
        ["lone", "", ""],
        ["tool", "core user", ""],
        ["user", "core", "tool"],
      ]
    );
  });

  it("should count builds from the successful ones only: failed and unchanged builds do not raise the next release", async () => {
    await c.source.call("project.put-meta", { project: "cnt", xml: META("cnt") });
    /** `flag` installs a state file; `flaky` builds only while it says good, and ships it. */
    const flag = (state: string): string => {
      const dir = writeSpec(tmp, "flag", { body: state });
      const spec = path.join(dir, "flag.spec");
      writeFileSync(
        spec,
        readFileSync(spec, "utf8").replace("%files", `echo ${state} > %{buildroot}/usr/share/flag/state\n%files`)
      );
      return dir;
    };
    const flaky = writeSpec(tmp, "flaky", { build: "grep -q good /usr/share/flag/state" });
    const spec = path.join(flaky, "flaky.spec");
    writeFileSync(
      spec,
      readFileSync(spec, "utf8")
        .replace("BuildArch:", "BuildRequires: flag\nBuildArch:")
        .replace("%files", "cp /usr/share/flag/state %{buildroot}/usr/share/flaky/\n%files")
    );
    await c.commitDir("cnt", "flag", flag("good"));
    await c.commitDir("cnt", "flaky", flaky);
    assert.deepEqual(await settle(c, "cnt"), { flag: "succeeded", flaky: "succeeded" });
    const r1 = (await result("cnt", "flaky"))!;
    assert.deepEqual([r1.code, r1.bcnt, r1.release], ["succeeded", 1, "1.1"]);

    // The dependency changes: flaky is rebuilt with the next counter, and fails.
    await c.commitDir("cnt", "flag", flag("bad"));
    assert.deepEqual(await settle(c, "cnt"), { flag: "succeeded", flaky: "failed" });
    const r2 = (await result("cnt", "flaky"))!;
    assert.deepEqual([r2.versrel, r2.code, r2.bcnt], [r1.versrel, "failed", 2]);
    const next = await c.sched().call("buildinfo.get", { project: "cnt", repository: "r", package: "flaky" });
    assert.deepEqual([next.bcnt, next.release], [2, "1.2"]);

    // It changes back: the build gets the counter after the last success, not after the failure.
    await c.commitDir("cnt", "flag", flag("good-again"));
    assert.deepEqual(await settle(c, "cnt"), { flag: "succeeded", flaky: "succeeded" });
    const r3 = (await result("cnt", "flaky"))!;
    assert.deepEqual([r3.versrel, r3.code, r3.bcnt, r3.release], [r1.versrel, "succeeded", 2, "1.2"]);

    // A rebuild that makes the same packages ends unchanged; as in OBS it is no successful build
    // of the history, so the next job gets its counter again.
    await c.sched().call("rebuild.request", { project: "cnt", package: "flaky" });
    await check(async () => (await result("cnt", "flaky"))!.jobId !== r3.jobId, {
      timeoutMs: 120_000,
      name: "rebuilt",
    });
    await settle(c, "cnt");
    const r4 = (await result("cnt", "flaky"))!;
    assert.deepEqual([r4.code, r4.bcnt], ["unchanged", 3]);
    const after = await c.sched().call("buildinfo.get", { project: "cnt", repository: "r", package: "flaky" });
    assert.deepEqual([after.bcnt, after.release], [3, "1.3"]);
  });
});
