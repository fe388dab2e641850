import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import type { PoolBinary } from "../../actors/index.ts";
import type { RepoBuiltEvent, RepoPoolChangedEvent, RepoWipedEvent } from "../../actors/repo/protocol.ts";
import { check } from "../helpers/check.ts";
import { RepoHarness } from "../helpers/repo-harness.ts";
import { buildTestRpms, type BuiltRpms } from "../helpers/repo-rpms.ts";

const P = "repo:int";
const R = "standard";

async function rpmq(file: string, format: string): Promise<string> {
  return (await execa("rpm", ["-qp", "--nosignature", "--nodigest", "--queryformat", format, file])).stdout;
}

describe("integration/repo role", function () {
  this.timeout(60_000);
  let h: RepoHarness;
  let dir: string;
  let lib: BuiltRpms;
  let app: BuiltRpms;
  let i586: BuiltRpms;
  let bit32: BuiltRpms;

  const pool = async (arch = "x86_64"): Promise<Record<string, string>> =>
    Object.fromEntries(
      (await h.repo.call("pool.get", { project: P, repository: R, arch })).map((b: PoolBinary) => [
        b.name,
        `${b.package}/${b.filename}`,
      ])
    );

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-repo-rpms-"));
    lib = await buildTestRpms(dir, "x86_64", [
      { name: "libfoo", version: "2.1", release: "3", epoch: 1, provides: ["foo-api = 2"] },
      { name: "libfoo-devel", version: "2.1", release: "3", epoch: 1, requires: ["libfoo = 1:2.1-3"] },
    ]);
    app = await buildTestRpms(dir, "x86_64", [{ name: "app", requires: ["libfoo >= 2"] }, { name: "libfoo" }]);
    i586 = await buildTestRpms(dir, "i586", [{ name: "libfoo" }]);
    bit32 = await buildTestRpms(dir, "x86_64", [{ name: "libfoo-32bit" }]);
    h = await RepoHarness.start();
    await h.putProject(P, `<repository name="${R}"><arch>x86_64</arch><arch>i586</arch></repository>`);
  });

  after(async () => {
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("should store a real build's binaries with the header data rpm reports", async () => {
    const jobId = await h.storeBuild({
      project: P,
      repository: R,
      arch: "x86_64",
      package: "libfoo",
      files: [lib.rpms.get("libfoo")!, lib.rpms.get("libfoo-devel")!, lib.srpm],
    });
    const r = await h.repo.call("result.get", { project: P, repository: R, arch: "x86_64", package: "libfoo" });
    assert.ok(r);
    assert.equal(r.jobId, jobId);
    assert.ok(r.logSha256 && r.metaSha256);
    const file = lib.rpms.get("libfoo-devel")!;
    const b = r.binaries.find((x) => x.filename === path.basename(file))!;
    const [name, epoch, version, release, arch, sourcerpm] = (
      await rpmq(file, "%{NAME}\\n%{EPOCH}\\n%{VERSION}\\n%{RELEASE}\\n%{ARCH}\\n%{SOURCERPM}")
    ).split("\n");
    assert.deepEqual(
      [b.name, String(b.epoch), b.version, b.release, b.arch, b.sourceRpm],
      [name, epoch, version, release, arch, sourcerpm]
    );
    assert.equal(b.hdrmd5, (await rpmq(file, "%{SIGMD5}")).trim());
    assert.equal(b.source, "libfoo");
    assert.ok(b.requires.includes("libfoo = 1:2.1-3"), JSON.stringify(b.requires));
    assert.ok(b.provides.includes("libfoo-devel = 1:2.1-3"), JSON.stringify(b.provides));
    const src = r.binaries.find((x) => x.isSource)!;
    assert.equal(src.arch, "src");
    assert.deepEqual(await pool(), {
      libfoo: `libfoo/${path.basename(lib.rpms.get("libfoo")!)}`,
      "libfoo-devel": `libfoo/${path.basename(file)}`,
    });
  });

  it("should publish repo.built and repo.pool-changed with dependency data after the result is stored", async () => {
    const jobId = await h.storeBuild({
      project: P,
      repository: R,
      arch: "x86_64",
      package: "app",
      files: [app.rpms.get("app")!, app.rpms.get("libfoo")!, app.srpm],
    });
    const built = await check(() => h.seen<RepoBuiltEvent>("repo.built", P).find((e) => e.jobId === jobId), {
      name: "repo.built",
    });
    assert.equal(built.package, "app");
    assert.equal(built.code, "succeeded");
    const changed = await check(
      () =>
        h
          .seen<RepoPoolChangedEvent>("repo.pool-changed", P)
          .find((e) => e.arch === "x86_64" && e.added.some((b) => b.name === "app")),
      { name: "repo.pool-changed" }
    );
    // app comes first in package order, so its libfoo wins the name, though libfoo's is newer.
    assert.deepEqual(changed.added.map((b) => [b.name, b.package, b.requires]).sort(), [
      ["app", "app", ["libfoo >= 2"]],
      ["libfoo", "app", []],
    ]);
    assert.deepEqual(
      changed.removed.map((b) => [b.name, b.package]),
      [["libfoo", "libfoo"]]
    );
    const jobs = await h.repo.call("history.jobs", { project: P, repository: R, arch: "x86_64" });
    assert.deepEqual(
      jobs.map((j) => j.package),
      ["app", "libfoo"]
    );
  });

  it("should import -32bit binaries built on i586 into x86_64 by OBS's default ExportFilter", async () => {
    await h.storeBuild({
      project: P,
      repository: R,
      arch: "i586",
      package: "libfoo",
      files: [i586.rpms.get("libfoo")!, bit32.rpms.get("libfoo-32bit")!],
    });
    const list = await h.repo.call("binaries.list", { project: P, repository: R, arch: "x86_64", package: "libfoo" });
    const imported = `::import::i586::${path.basename(bit32.rpms.get("libfoo-32bit")!)}`;
    assert.ok(
      list.some((b) => b.filename === imported),
      JSON.stringify(list.map((b) => b.filename))
    );
    assert.equal((await pool())["libfoo-32bit"], `libfoo/${imported}`);
    // i586 keeps its own binary but not the x86_64 one in its pool.
    assert.deepEqual(Object.keys(await pool("i586")), ["libfoo"]);
  });

  it("should apply a useforbuild change made in the source role to the pool at once, without a build", async () => {
    const before = h.seen("repo.built", P).length;
    await h.putPackage(P, "libfoo", `<useforbuild><disable arch="x86_64"/></useforbuild>`);
    // libfoo-devel and the import go with the package.
    await check(async () => !(await pool())["libfoo-devel"], { name: "pool follows useforbuild" });
    assert.deepEqual(Object.keys(await pool()).sort(), ["app", "libfoo"]);
    assert.deepEqual(Object.keys(await pool("i586")), ["libfoo"]);
    assert.equal(h.seen("repo.built", P).length, before);
    // Wiping a package that does not take part leaves the pool alone.
    const poolBefore = await pool();
    const r = await h.adminRepo.call("result.wipe", { project: P, package: "libfoo", arch: "x86_64" });
    assert.deepEqual(r.wiped, [{ repository: R, arch: "x86_64", package: "libfoo" }]);
    assert.deepEqual(await pool(), poolBefore);
    await check(() => h.seen<RepoWipedEvent>("repo.wiped", P).some((e) => e.packages.includes("libfoo")), {
      name: "repo.wiped",
    });
    await h.putPackage(P, "libfoo", "");
  });

  it("should refuse binaries where binarydownload is disabled, and serve them again when enabled", async () => {
    await h.putPackage(P, "app", `<binarydownload><disable/></binarydownload>`);
    await check(
      async () => {
        try {
          await h.repo.call("binaries.list", { project: P, repository: R, arch: "x86_64", package: "app" });
          return false;
        } catch (err) {
          return (err as { code?: string }).code === "ERR_FORBIDDEN";
        }
      },
      { name: "binarydownload refused" }
    );
    await h.putPackage(P, "app", "");
    await check(
      async () =>
        (await h.repo.call("binaries.list", { project: P, repository: R, arch: "x86_64", package: "app" })).length > 0,
      { name: "binarydownload allowed again" }
    );
  });

  it("should wipe only the repository (and arch) that kiln wipe -r (-a) names", async () => {
    const Q = "repo:two";
    await h.putProject(
      Q,
      `<repository name="${R}"><arch>x86_64</arch></repository><repository name="other"><arch>x86_64</arch></repository>`
    );
    for (const repository of [R, "other"]) {
      await h.storeBuild({
        project: Q,
        repository,
        arch: "x86_64",
        package: "libfoo",
        files: [lib.rpms.get("libfoo")!],
      });
    }
    const poolOf = async (repository: string): Promise<string[]> =>
      (await h.repo.call("pool.get", { project: Q, repository, arch: "x86_64" })).map((b) => b.name);
    assert.deepEqual(await poolOf(R), ["libfoo"]);
    assert.deepEqual(await poolOf("other"), ["libfoo"]);

    const none = await h.adminRepo.call("result.wipe", { project: Q, repository: R, arch: "i586" });
    assert.deepEqual(none.wiped, []);
    const r = await h.adminRepo.call("result.wipe", { project: Q, repository: "other" });
    assert.deepEqual(r.wiped, [{ repository: "other", arch: "x86_64", package: "libfoo" }]);
    assert.equal(
      await h.repo.call("result.get", { project: Q, repository: "other", arch: "x86_64", package: "libfoo" }),
      null
    );
    assert.ok(await h.repo.call("result.get", { project: Q, repository: R, arch: "x86_64", package: "libfoo" }));
    assert.deepEqual(await poolOf("other"), []);
    assert.deepEqual(await poolOf(R), ["libfoo"]);
  });

  it("should find nothing to repair when rebuilding the pool from the results", async () => {
    const want = await pool();
    const r = await h.adminRepo.call("pool.rebuild", { project: P, repository: R, arch: "x86_64" });
    assert.deepEqual({ added: r.added, removed: r.removed, changed: r.changed }, { added: 0, removed: 0, changed: 0 });
    assert.equal(r.binaries, Object.keys(want).length);
    assert.deepEqual(await pool(), want);
  });

  it("should drop a deleted package's results and pool binaries", async () => {
    await h.admin.call("package.delete", { project: P, package: "app" });
    await check(async () => !(await pool()).app, { name: "app gone from pool" });
    assert.equal(await h.repo.call("result.get", { project: P, repository: R, arch: "x86_64", package: "app" }), null);
  });

  it("should keep OBS's relsync over all archs: the highest successful counter of each recent versrel", async () => {
    const store = (arch: string, versrel: string, bcnt: number, code: "succeeded" | "failed" = "succeeded") =>
      h.storeBuild({ project: P, repository: R, arch, package: "rsync", files: [], versrel, bcnt, code });
    const relsync = async () =>
      (await h.repo.call("relsync.get", { project: P, repository: R })).filter((e) => e.package === "rsync");
    await store("x86_64", "1.0-1", 1);
    await store("i586", "1.0-1", 3);
    // Lower counters and failed builds change nothing.
    await store("x86_64", "1.0-1", 2);
    await store("x86_64", "1.0-1", 9, "failed");
    assert.deepEqual(await relsync(), [{ package: "rsync", versrel: "1.0-1", bcnt: 3 }]);
    // Only the most recent versrels are kept.
    for (let i = 2; i <= 10; i++) await store("x86_64", `1.0-${i}`, 1);
    assert.deepEqual(
      (await relsync()).map((e) => e.versrel),
      ["1.0-3", "1.0-4", "1.0-5", "1.0-6", "1.0-7", "1.0-8", "1.0-9", "1.0-10"]
    );
  });

  it("should refuse a result for a job the dispatcher does not know", async () => {
    const jobId = await h.storeBuild({ project: P, repository: R, arch: "x86_64", package: "x", files: [] });
    h.jobs.delete(jobId);
    await assert.rejects(
      h.repo.call("result.put", {
        project: P,
        repository: R,
        arch: "x86_64",
        package: "x",
        jobId,
        workerId: "test-worker",
        code: "succeeded",
        files: [],
        startTime: 0,
        endTime: 1,
      }),
      { code: "ERR_CONFLICT" }
    );
  });
});
