import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mulberry32 as rng } from "../../helpers/rng.ts";
import { depMetaLines, genMeta } from "../../../actors/common/build-meta.ts";
import type { PoolBinary } from "../../../actors/common/model.ts";
import { parseBuildConfig, type BuildConfig } from "../../../actors/common/prjconf.ts";
import {
  IncrementalChecker,
  checkFromScratch,
  metaChanges,
  releaseOf,
  signatureDigests,
  sccs,
  type CheckOutput,
  type CheckerSetup,
  type JobRef,
  type LastBuild,
  type NeededBuild,
  type SignatureDigests,
} from "../../../actors/scheduler/checker.ts";
import type { BuildReason } from "../../../actors/scheduler/protocol.ts";
import type { PackageBuildInfo } from "../../../actors/source/protocol.ts";

const md5 = (s: string): string => createHash("md5").update(s).digest("hex");

function info(name: string, o: Partial<PackageBuildInfo> = {}): PackageBuildInfo {
  const srcmd5 = o.srcmd5 ?? md5(`src-${name}`);
  return {
    project: "p",
    package: name,
    repository: "r",
    arch: "x86_64",
    rev: 1,
    srcmd5,
    verifymd5: srcmd5,
    revTime: 0,
    files: [],
    specFile: `${name}.spec`,
    version: "1.0",
    buildRequires: [],
    subpacks: [name],
    constraints: [],
    flags: { build: true, lock: false, useforbuild: true, debuginfo: false, publish: true },
    ...o,
  };
}

function bin(name: string, pkg: string, o: Partial<PoolBinary> = {}): PoolBinary {
  return {
    name,
    version: "1.0",
    release: "1.1",
    arch: "x86_64",
    provides: [],
    requires: [],
    conflicts: [],
    obsoletes: [],
    hdrmd5: md5(`hdr-${name}`),
    package: pkg,
    filename: `${name}-1.0-1.1.x86_64.rpm`,
    sha256: createHash("sha256").update(name).digest("hex"),
    size: 1,
    ...o,
  };
}

const config = (text = ""): BuildConfig =>
  parseBuildConfig([{ project: "p", repository: "r", text }], { arch: "x86_64" });

/** Repository p/r on x86_64 with only its own pool (`binaries`), transitive, block=all; `o` overrides. */
function checkerSetup(o: Partial<CheckerSetup> & { binaries?: PoolBinary[] } = {}): CheckerSetup {
  const { binaries = [], ...rest } = o;
  return {
    project: "p",
    repository: "r",
    arch: "x86_64",
    rebuild: "transitive",
    block: "all",
    config: config(),
    layers: [{ project: "p", repository: "r", binaries }],
    metaOf: () => undefined,
    ...rest,
  };
}

const checker = (o: Parameters<typeof checkerSetup>[0] = {}): IncrementalChecker =>
  new IncrementalChecker(checkerSetup(o));

/** The digests of a build that had no dependencies. */
const noDigests = (): SignatureDigests =>
  signatureDigests(
    [],
    () => undefined,
    () => undefined,
    true
  );

describe("actors/scheduler/checker", () => {
  it("should order packages by dependencies and find cycles", () => {
    const edges = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["b"]],
      ["d", []],
    ]);
    const comps = sccs(["a", "b", "c", "d"], (n) => edges.get(n) ?? []);
    assert.deepEqual(comps, [["b", "c"], ["a"], ["d"]]);
  });

  it("should decide codes in OBS's order: locked, package lists, package errors, build flag, recipe errors", () => {
    const metas = new Map<string, string[]>();
    const off = { build: false, lock: false, useforbuild: true, debuginfo: false, publish: true };
    const { output } = checkFromScratch({
      ...checkerSetup({ config: config("BuildFlags: excludebuild:listed\n"), metaOf: (s) => metas.get(s) }),
      packages: [
        // Locked comes first, even before an ExclusiveArch that excludes it (OBS checkpkgs).
        info("ex", { errorCode: "excluded", error: "excluded", flags: { ...off, lock: true } }),
        info("lk", { flags: { ...off, lock: true } }),
        info("listed", { flags: off }),
        // A package without sources is broken even where its build flag is off...
        info("nosrc", { errorCode: "broken", error: "no source uploaded", flags: off }),
        // ...but the recipe's own verdicts come after the build flag.
        info("exoff", { errorCode: "excluded", error: "excluded", flags: off }),
        info("badoff", { errorCode: "broken", error: "no recipe file", flags: off }),
        info("off", { flags: off }),
        info("xa", { errorCode: "excluded", error: "excluded" }),
        info("bad", { errorCode: "broken", error: "no recipe file" }),
        info("miss", { buildRequires: ["nope >= 2"] }),
        info("ok"),
      ],
      results: new Map(),
      jobs: new Map(),
    });
    const codes = Object.fromEntries(
      [...output.states].map(([k, v]) => [k, `${v.code}${v.details ? `: ${v.details}` : ""}`])
    );
    assert.deepEqual(codes, {
      ex: "locked",
      lk: "locked",
      listed: "excluded: package blacklist",
      nosrc: "broken: no source uploaded",
      exoff: "disabled",
      badoff: "disabled",
      off: "disabled",
      xa: "excluded",
      bad: "broken: no recipe file",
      miss: "unresolvable: nothing provides nope >= 2",
      ok: "scheduled",
    });
    assert.deepEqual(
      output.builds.map((b) => [b.package, b.reason.explain]),
      [["ok", "new build"]]
    );
  });

  it("should show a package scheduled while a job for its sources exists, before unresolvable and blocked", () => {
    const c = checker({ binaries: [bin("lib", "lib")] });
    c.upsertPackage(info("lib"));
    c.upsertPackage(info("app", { buildRequires: ["lib"] }));
    c.upsertPackage(info("gone", { buildRequires: ["nope"] }));
    c.setJob("app", { jobId: "j-app", srcmd5: md5("src-app"), details: "waiting for 1 compliant worker" });
    c.setJob("gone", { jobId: "j-gone", srcmd5: md5("src-gone") });
    const out = c.check();
    assert.equal(out.states.get("lib")!.code, "scheduled");
    // lib builds, yet app's job exists: scheduled (with the dispatcher's hint), not blocked.
    assert.deepEqual(out.states.get("app"), { code: "scheduled", details: "waiting for 1 compliant worker" });
    assert.equal(out.states.get("gone")!.code, "scheduled");
    assert.deepEqual(
      out.builds.map((b) => b.package),
      ["lib"]
    );
    // A job of older sources does not count: app now waits for lib.
    c.upsertPackage(info("app", { buildRequires: ["lib"], srcmd5: md5("src-app-2") }));
    c.upsertPackage(info("gone", { buildRequires: ["nope"], srcmd5: md5("src-gone-2") }));
    const out2 = c.check();
    assert.deepEqual(out2.states.get("app"), { code: "blocked", details: "lib" });
    assert.deepEqual(out2.states.get("gone"), { code: "unresolvable", details: "nothing provides nope" });
  });

  it("should name the binaries a blocked package waits for, ten at most, as OBS does", () => {
    const libs = Array.from({ length: 12 }, (_, i) => `lib${String(i).padStart(2, "0")}`);
    const c = checker({
      // "core" builds two of them: both are named (OBS lists binaries, not packages).
      binaries: [bin("core", "core"), bin("core-devel", "core", { requires: ["core"] }), ...libs.map((l) => bin(l, l))],
    });
    c.upsertPackage(info("core", { subpacks: ["core", "core-devel"] }));
    for (const l of libs) c.upsertPackage(info(l));
    c.upsertPackage(info("few", { buildRequires: ["core-devel", "lib00"] }));
    c.upsertPackage(info("many", { buildRequires: libs }));
    const out = c.check();
    assert.deepEqual(out.states.get("few"), { code: "blocked", details: "core, core-devel, lib00" });
    assert.deepEqual(out.states.get("many"), {
      code: "blocked",
      details: `${libs.slice(0, 10).join(", ")}, ...`,
    });
  });

  it("should let rebuild=local ignore blockers while the last build has the current sources", () => {
    const c = checker({ rebuild: "local", binaries: [bin("lib", "lib"), bin("app", "app")] });
    const digests = noDigests();
    c.upsertPackage(info("lib", { srcmd5: md5("src-lib-2") }));
    c.upsertPackage(info("app", { buildRequires: ["lib"] }));
    c.upsertPackage(info("new", { buildRequires: ["lib"] }));
    c.upsertPackage(info("changed", { buildRequires: ["lib"], srcmd5: md5("src-changed-2") }));
    c.setResult("lib", { code: "succeeded", srcmd5: md5("src-lib"), versrel: "1.0-1", bcnt: 1, digests });
    c.setResult("app", { code: "failed", srcmd5: md5("src-app"), versrel: "1.0-1", bcnt: 1, digests });
    c.setResult("changed", { code: "succeeded", srcmd5: md5("src-changed"), versrel: "1.0-1", bcnt: 1, digests });
    const out = c.check();
    assert.equal(out.states.get("lib")!.code, "scheduled");
    // Built from its current sources: done, though lib builds; failed stays failed.
    assert.equal(out.states.get("app")!.code, "failed");
    // Never built, or built from other sources: it waits.
    assert.deepEqual(out.states.get("new"), { code: "blocked", details: "lib" });
    assert.deepEqual(out.states.get("changed"), { code: "blocked", details: "lib" });
    // The same with rebuild=transitive: app waits too.
    c.setModes("transitive", "all");
    assert.deepEqual(c.check().states.get("app"), { code: "blocked", details: "lib" });
  });

  it("should ask to cancel the jobs OBS's killunwantedjobs and wipeobsolete kill", () => {
    const c = checker({ binaries: [bin("lib", "lib")] });
    const names = ["lib", "off", "lk", "xa", "blk", "unres", "bad", "same", "gone", "done"];
    for (const n of names) c.upsertPackage(info(n));
    const digests = noDigests();
    c.setResult("done", { code: "succeeded", srcmd5: md5("src-done"), versrel: "1.0-1", bcnt: 1, digests });
    // Every package has a job of older sources, but "same" (current sources) and "lib" (none).
    for (const n of names.slice(1)) {
      c.setJob(n, { jobId: `j-${n}`, srcmd5: n === "same" ? md5(`src-${n}`) : md5("old") });
    }
    assert.deepEqual(c.check().unwanted, []);
    const flags = { build: true, lock: false, useforbuild: true, debuginfo: false, publish: true };
    c.upsertPackage(info("off", { flags: { ...flags, build: false } }));
    c.upsertPackage(info("lk", { flags: { ...flags, lock: true } }));
    c.upsertPackage(info("xa", { errorCode: "excluded", error: "excluded" }));
    c.upsertPackage(info("blk", { buildRequires: ["lib"] }));
    c.upsertPackage(info("unres", { buildRequires: ["nope"] }));
    c.upsertPackage(info("bad", { errorCode: "broken", error: "no recipe file" }));
    c.removePackage("gone");
    const out = c.check();
    assert.equal(out.states.get("blk")!.code, "blocked");
    assert.deepEqual(
      [...out.unwanted].sort((a, b) => (a.package < b.package ? -1 : 1)),
      [
        // Running builds stay for these: they may become valid again.
        { package: "bad", jobId: "j-bad", evenRunning: false },
        { package: "blk", jobId: "j-blk", evenRunning: false },
        { package: "gone", jobId: "j-gone", evenRunning: true },
        { package: "lk", jobId: "j-lk", evenRunning: true },
        { package: "off", jobId: "j-off", evenRunning: true },
        { package: "unres", jobId: "j-unres", evenRunning: false },
        { package: "xa", jobId: "j-xa", evenRunning: true },
      ]
    );
    // Once cancelled, they are no longer asked for.
    for (const u of out.unwanted) c.setJob(u.package, undefined);
    assert.deepEqual(c.check().unwanted, []);
  });

  it("should block on packages not ready in a repository of the path, except with block=local or never", () => {
    for (const block of ["all", "local", "never"] as const) {
      const c = checker({
        block,
        layers: [
          { project: "p", repository: "r", binaries: [bin("lib", "lib")] },
          { project: "base", repository: "std", binaries: [bin("glibc", "glibc-src"), bin("zlib", "zlib")] },
        ],
      });
      c.upsertPackage(info("lib"));
      c.upsertPackage(info("app", { buildRequires: ["glibc", "zlib"] }));
      c.upsertPackage(info("tool", { buildRequires: ["lib", "zlib"] }));
      // The base repository's glibc-src (which builds binary glibc) is being rebuilt.
      c.setNotReadyElsewhere("base/std", new Set(["glibc-src"]));
      const out = c.check();
      const states = Object.fromEntries(
        [...out.states].map(([k, v]) => [k, `${v.code}${v.details ? `: ${v.details}` : ""}`])
      );
      const expected = {
        // OBS names the binary it waits for, not its source package.
        all: { lib: "scheduled", app: "blocked: glibc", tool: "blocked: lib" },
        local: { lib: "scheduled", app: "scheduled", tool: "blocked: lib" },
        never: { lib: "scheduled", app: "scheduled", tool: "scheduled" },
      }[block];
      assert.deepEqual(states, expected, block);
      assert.deepEqual(
        out.builds.map((b) => b.package).sort(),
        Object.entries(expected)
          .filter(([, v]) => v === "scheduled")
          .map(([k]) => k)
          .sort(),
        block
      );
      // Ready again over there: nothing waits for it any more.
      c.setNotReadyElsewhere("base/std", new Set());
      assert.equal(c.check().states.get("app")!.code, "scheduled", block);
    }
  });

  it("should follow changes of the block and rebuild modes", () => {
    const digests = noDigests();
    const c = checker({ binaries: [bin("lib", "lib"), bin("app", "app")] });
    c.upsertPackage(info("lib", { srcmd5: md5("lib-2") }));
    c.upsertPackage(info("app", { buildRequires: ["lib"] }));
    c.setResult("lib", { code: "succeeded", srcmd5: md5("lib-1"), versrel: "1.0-1", bcnt: 1, digests });
    c.setResult("app", { code: "succeeded", srcmd5: md5("src-app"), versrel: "1.0-1", bcnt: 1, digests });
    assert.deepEqual(c.check().states.get("app"), { code: "blocked", details: "lib" });
    c.setModes("transitive", "never");
    // Not blocked; and its recorded dependencies (none) differ from lib's: a meta change.
    let out = c.check();
    assert.equal(out.states.get("app")!.code, "scheduled");
    assert.deepEqual(
      out.builds.map((b) => [b.package, b.reason.explain]),
      [
        ["lib", "source change"],
        ["app", "meta change"],
      ]
    );
    c.setModes("local", "never");
    out = c.check();
    assert.equal(out.states.get("app")!.code, "succeeded");
    c.setModes("local", "all");
    assert.equal(c.check().states.get("app")!.code, "succeeded");
  });

  it("should call the repository broken while its preinstalls are unresolvable (ExpandFlags: preinstallexpand)", () => {
    const c = checker({ config: config("Preinstall: bash\nExpandFlags: preinstallexpand\n") });
    c.upsertPackage(info("app"));
    let out = c.check();
    assert.equal(out.repoCode, "broken");
    assert.equal(out.repoDetails, "unresolvable preinstalls: nothing provides bash");
    // Nothing was looked at, nothing is built.
    assert.deepEqual(out.builds, []);
    assert.equal(out.states.size, 0);
    c.applyPoolDiff(0, [bin("bash", "bash")], []);
    out = c.check();
    assert.equal(out.repoCode, "building");
    assert.equal(out.repoDetails, undefined);
    assert.deepEqual(
      out.builds.map((b) => b.package),
      ["app"]
    );
    // Without the flag, a missing preinstall is each package's problem (unresolvable), as in OBS.
    c.setConfig(config("Preinstall: zsh\n"));
    out = c.check();
    assert.equal(out.repoCode, "finished");
    assert.equal(out.states.get("app")!.code, "unresolvable");
  });

  it("should not count a package that waits for its own sources as not ready", () => {
    const { output } = checkFromScratch({
      ...checkerSetup({ binaries: [bin("svc", "svc")] }),
      packages: [
        info("svc", { errorCode: "blocked", error: "service in progress" }),
        info("user", { buildRequires: ["svc"] }),
      ],
      results: new Map(),
      jobs: new Map(),
    });
    assert.deepEqual(output.states.get("svc"), { code: "blocked", details: "service in progress" });
    assert.equal(output.states.get("user")!.code, "scheduled");
    assert.deepEqual([...output.notReady], ["user"]);
    assert.equal(output.repoCode, "building");
  });

  it("should block a package on a dependency that is being rebuilt, and unblock it after", () => {
    const metas = new Map<string, string[]>();
    const c = checker({ metaOf: (s) => metas.get(s), binaries: [bin("lib", "lib")] });
    c.upsertPackage(info("lib"));
    c.upsertPackage(info("app", { buildRequires: ["lib"] }));
    const out = c.check();
    // lib has no result: new build; app depends on lib's binary, which is being rebuilt.
    assert.equal(out.states.get("lib")!.code, "scheduled");
    assert.equal(out.states.get("app")!.code, "blocked");
    assert.equal(out.states.get("app")!.details, "lib");
    c.setJob("lib", { jobId: "j1", srcmd5: md5("src-lib") });
    const meta = genMeta(`${md5("src-lib")}  lib`, ["lib"], []);
    metas.set("m-lib", meta);
    c.setResult("lib", {
      code: "succeeded",
      srcmd5: md5("src-lib"),
      versrel: "1.0-1",
      bcnt: 1,
      metaSha256: "m-lib",
      meta,
    });
    c.setJob("lib", undefined);
    const out2 = c.check();
    assert.equal(out2.states.get("lib")!.code, "succeeded");
    assert.equal(out2.states.get("app")!.code, "scheduled");
  });

  it("should rebuild on meta change, naming the changed dependency, and not with rebuild=local", () => {
    for (const mode of ["transitive", "direct", "local"] as const) {
      const metas = new Map<string, string[]>();
      const c = checker({ rebuild: mode, metaOf: (s) => metas.get(s), binaries: [bin("lib", "lib")] });
      c.upsertPackage(info("app", { buildRequires: ["lib"] }));
      const appMeta = genMeta(`${md5("src-app")}  app`, ["app"], depMetaLines("lib", md5("hdr-lib"), undefined, "app"));
      c.setResult("app", {
        code: "succeeded",
        srcmd5: md5("src-app"),
        versrel: "1.0-1",
        bcnt: 1,
        metaSha256: "m-app",
        meta: appMeta,
      });
      assert.equal(c.check().states.get("app")!.code, "succeeded", mode);
      c.applyPoolDiff(0, [bin("lib", "lib", { hdrmd5: md5("new") })], ["lib"]);
      const out = c.check();
      if (mode === "local") {
        assert.equal(out.states.get("app")!.code, "succeeded");
      } else {
        assert.equal(out.states.get("app")!.code, "scheduled", mode);
        assert.equal(out.builds[0]!.reason.explain, "meta change");
        assert.deepEqual(
          out.builds.map((b) => b.package),
          ["app"]
        );
        assert.deepEqual(out.builds[0]!.reason.packagechange, [{ change: "md5sum", key: "lib" }]);
      }
    }
  });

  it("should sync build counters across archs as OBS's relsync: rebuild what counted less, unless failed or norelsync", () => {
    for (const mode of ["transitive", "local"] as const) {
      for (const cfg of ["", "BuildFlags: norelsync\n"]) {
        const c = checker({ rebuild: mode, config: config(cfg) });
        for (const n of ["a", "b", "f"]) c.upsertPackage(info(n));
        const last = (n: string, code: "succeeded" | "failed", bcnt: number): LastBuild => ({
          code,
          srcmd5: md5(`src-${n}`),
          versrel: "1.0-1",
          bcnt,
          digests: noDigests(),
        });
        c.setResult("a", last("a", "succeeded", 1));
        c.setResult("b", last("b", "succeeded", 3));
        c.setResult("f", last("f", "failed", 1));
        assert.deepEqual(c.check().builds, []);
        // Another arch built each of them once more; b's own counter is already higher, f failed.
        for (const n of ["a", "b", "f"]) c.raiseRelsync(n, "1.0-1", 2);
        // An older versrel's counter says nothing about this one.
        c.raiseRelsync("b", "0.9-1", 7);
        assert.equal(c.relsyncMax("a", "1.0-1"), 2);
        assert.equal(c.relsyncMax("b", "0.9-1"), 7);
        // Counters only rise.
        c.raiseRelsync("a", "1.0-1", 1);
        assert.equal(c.relsyncMax("a", "1.0-1"), 2);
        const out = c.check();
        const label = `${mode} ${cfg.trim() || "relsync"}`;
        if (cfg) {
          assert.deepEqual(out.builds, [], label);
          assert.equal(out.states.get("a")!.code, "succeeded", label);
        } else {
          assert.deepEqual(
            out.builds.map((b) => [b.package, b.reason.explain]),
            [["a", "rebuild counter sync"]],
            label
          );
          assert.equal(out.states.get("b")!.code, "succeeded", label);
          assert.equal(out.states.get("f")!.code, "failed", label);
        }
        // The synced build arrives: nothing more to do.
        c.setJob("a", undefined);
        c.setResult("a", last("a", "succeeded", 2));
        assert.deepEqual(c.check().builds, [], label);
      }
    }
  });

  it("should decide rebuilds by the dependency signature the job recorded, honouring rebuild=direct", () => {
    for (const mode of ["transitive", "direct"] as const) {
      const signatures = new Map<string, string[]>();
      const c = checker({
        signatureOf: (p) => signatures.get(p),
        rebuild: mode,
        block: "never",
        binaries: [bin("lib", "lib", { metaSha256: "meta-1" })],
      });
      c.upsertPackage(info("lib"));
      c.upsertPackage(info("app", { buildRequires: ["lib"] }));
      const empty = noDigests();
      c.setResult("lib", { code: "succeeded", srcmd5: md5("src-lib"), versrel: "1.0-1", bcnt: 1, digests: empty });
      const first = c.check();
      assert.equal(first.states.get("app")!.code, "scheduled");
      const job = first.builds.find((b) => b.package === "app")!;
      signatures.set("app", job.depsig);
      c.setResult("app", {
        code: "succeeded",
        srcmd5: md5("src-app"),
        versrel: "1.0-1",
        bcnt: 1,
        digests: job.digests,
      });
      assert.equal(c.check().states.get("app")!.code, "succeeded", mode);
      // lib rebuilt without a source change (its own dependencies changed): a new meta.
      c.applyPoolDiff(0, [bin("lib", "lib", { metaSha256: "meta-2", hdrmd5: md5("x") })], ["lib"]);
      const out = c.check();
      if (mode === "direct") assert.equal(out.states.get("app")!.code, "succeeded");
      else {
        assert.equal(out.states.get("app")!.code, "scheduled");
        assert.deepEqual(
          out.builds.map((b) => b.package),
          ["app"]
        );
        assert.deepEqual(out.builds[0]!.reason.packagechange, [{ change: "md5sum", key: "lib" }]);
      }
      // lib's sources change: a direct change for both modes.
      c.setResult("lib", { code: "succeeded", srcmd5: md5("src-lib-2"), versrel: "1.0-2", bcnt: 1, digests: empty });
      c.upsertPackage(info("lib", { srcmd5: md5("src-lib-2") }));
      c.applyPoolDiff(0, [bin("lib", "lib", { metaSha256: "meta-3", hdrmd5: md5("y") })], ["lib"]);
      assert.equal(c.check().states.get("app")!.code, "scheduled", mode);
    }
  });

  it("should compute releases and meta changes", () => {
    assert.equal(releaseOf(config(), 3, 2), "3.2");
    assert.equal(releaseOf(config("Release: <CI_CNT>.<B_CNT>.kiln"), 3, 2), "3.2.kiln");
    assert.deepEqual(metaChanges(["s  a", "1  x", "2  y", "3  y/z"], ["s  a", "1  x", "4  y", "5  w"]), [
      { change: "added", key: "w" },
      { change: "md5sum", key: "y" },
      { change: "removed", key: "y/z" },
    ]);
  });

  describe("cycles", () => {
    /**
     * A repository driven as the scheduler and workers would: every build a check asks for gets
     * a job; jobs finish one at a time, in order, each with the meta the worker writes (from the
     * metas of the builds that made its dependencies) and new binaries; a check follows each.
     */
    function drive(packages: PackageBuildInfo[], o: { rebuild?: "transitive" | "direct" } = {}) {
      const metas = new Map<string, string[]>();
      const signatures = new Map<string, string[]>();
      const pool = new Map<string, PoolBinary>();
      let serial = 0;
      const c = checker({
        rebuild: o.rebuild ?? "transitive",
        metaOf: (s) => metas.get(s),
        signatureOf: (pkg) => signatures.get(pkg),
      });
      for (const i of packages) c.upsertPackage(i);
      const queue: NeededBuild[] = [];
      const finish = (b: NeededBuild): void => {
        const i = c.packageInfo(b.package)!;
        const lines = b.bdeps
          .filter((d) => !d.notmeta)
          .flatMap((d) =>
            depMetaLines(d.name, d.hdrmd5, d.metaSha256 ? metas.get(d.metaSha256) : undefined, b.package)
          );
        const meta = genMeta(`${i.verifymd5}  ${b.package}`, i.subpacks, lines);
        const metaSha256 = createHash("sha256").update(meta.join("\n")).digest("hex");
        metas.set(metaSha256, meta);
        signatures.set(b.package, b.depsig);
        const bins = i.subpacks.map((n) => bin(n, b.package, { hdrmd5: md5(`${n}-${++serial}`), metaSha256 }));
        for (const x of bins) pool.set(x.name, x);
        c.setResult(b.package, {
          code: "succeeded",
          srcmd5: i.verifymd5,
          versrel: "1.0-1",
          bcnt: 1,
          metaSha256,
          digests: b.digests,
        });
        c.applyPoolDiff(0, bins, []);
        c.setJob(b.package, undefined);
      };
      /** One check; its builds become jobs. */
      const step = (): CheckOutput => {
        const out = c.check();
        assert.deepEqual(out.missingMetas, []);
        const names = out.builds.map((b) => b.package);
        assert.equal(new Set(names).size, names.length, `one check asked twice: ${names.join(", ")}`);
        for (const b of out.builds) {
          c.setJob(b.package, { jobId: `j${++serial}`, srcmd5: c.packageInfo(b.package)!.verifymd5 });
          queue.push(b);
        }
        return out;
      };
      /** The oldest job finishes; false when there is none. */
      const finishNext = (): boolean => {
        const next = queue.shift();
        if (next) finish(next);
        return next !== undefined;
      };
      /** Runs until nothing is left to build; the builds each check asked for, in order. */
      const run = (limit = 30): string[][] => {
        const asked: string[][] = [];
        for (let n = 0; n < limit; n++) {
          asked.push(step().builds.map((b) => b.package));
          if (!finishNext()) return asked;
        }
        assert.fail(`no rest after ${limit} checks: ${JSON.stringify(asked)}`);
      };
      return { c, run, step, finishNext };
    }

    it("should build a cycle that forms as OBS does: the changed package, then the other, and rest", () => {
      const d = drive([info("ca"), info("cb", { buildRequires: ["ca"] })]);
      assert.deepEqual(d.run(), [["ca"], ["cb"], []]);
      // ca now needs cb: a cycle. Pass 1 builds ca's source change while cb waits for it; cb's
      // meta change follows; after it, ca's regenerated meta (cb's lines through ca left out) is
      // unchanged: two builds, not four.
      d.c.upsertPackage(info("ca", { buildRequires: ["cb"], srcmd5: md5("ca-2") }));
      const first = d.c.check();
      assert.deepEqual(first.states.get("cb"), { code: "blocked", details: "ca" });
      d.c.recheckAll();
      assert.deepEqual(d.run(), [["ca"], ["cb"], []]);
      assert.deepEqual(d.c.cycles(), [["ca", "cb"]]);
      assert.equal(d.c.states().get("ca")!.code, "succeeded");
      assert.equal(d.c.states().get("cb")!.code, "succeeded");
    });

    it("should rebuild a cycle after a source change of one member twice, not three times", () => {
      const d = drive([info("a", { buildRequires: ["b"] }), info("b", { buildRequires: ["a"] })]);
      // Neither has binaries: nothing provides the other. Bootstrap through a first version of a.
      d.c.upsertPackage(info("a"));
      d.run();
      d.c.upsertPackage(info("a", { buildRequires: ["b"], srcmd5: md5("a-2") }));
      d.run();
      // The steady state of a cycle. Now a source change of a: a, then b, then rest.
      d.c.upsertPackage(info("a", { buildRequires: ["b"], srcmd5: md5("a-3") }));
      assert.deepEqual(d.run(), [["a"], ["b"], []]);
    });

    it("should put off meta changes deeper than the sources to pass 2, and build them there together", () => {
      const d = drive([
        info("base"),
        info("a", { buildRequires: ["b", "base"] }),
        info("b", { buildRequires: ["a", "base"] }),
      ]);
      d.c.upsertPackage(info("a", { buildRequires: ["base"] }));
      d.run();
      d.c.upsertPackage(info("a", { buildRequires: ["b", "base"] }));
      d.run();
      // A new base: a direct dependency of both members (depth 2), so neither waits for the
      // other and both build at once, each against the other's old build. Each meta then has
      // the old base below the other member (genmetaalgo 0): pass 2 builds both once more (depth
      // 3), as OBS does, and then they rest.
      d.c.upsertPackage(info("base", { srcmd5: md5("base-2") }));
      assert.deepEqual(d.run(), [["base"], ["a", "b"], [], ["a", "b"], [], []]);
    });

    it("should make a whole cycle not ready when a member is, once OBS meets the first of pass 2 again", () => {
      // x needs z, z needs y, y needs x: in cycle order (depsort of these one-way edges) x, y, z.
      const d = drive([info("x"), info("y", { buildRequires: ["x"] }), info("z", { buildRequires: ["y"] })]);
      d.c.upsertPackage(info("user", { buildRequires: ["y"] }));
      d.run();
      d.c.upsertPackage(info("x", { buildRequires: ["z"] }));
      d.run();
      d.c.upsertPackage(info("z", { buildRequires: ["y"], srcmd5: md5("z-2") }));
      // Pass 1 builds z's source change; x, which needs z, waits for it in pass 2, y for x.
      let out = d.step();
      assert.deepEqual(
        out.builds.map((b) => b.package),
        ["z"]
      );
      assert.deepEqual(out.states.get("x"), { code: "blocked", details: "z" });
      assert.deepEqual(out.states.get("y"), { code: "blocked", details: "x" });
      assert.deepEqual(out.states.get("user"), { code: "blocked", details: "y" });
      d.finishNext();
      // Now x's meta changed (z, depth 2): put off in pass 1, pass 2 goes y, z, x and builds x.
      // Meeting y (the first of pass 2, not the first member) again makes all members not ready:
      // z, checked once more, now waits for y, and so does user outside the cycle.
      out = d.step();
      assert.deepEqual(
        out.builds.map((b) => b.package),
        ["x"]
      );
      assert.equal(out.states.get("y")!.code, "succeeded");
      assert.deepEqual(out.states.get("z"), { code: "blocked", details: "y" });
      assert.deepEqual(out.states.get("user"), { code: "blocked", details: "y" });
      assert.deepEqual([...out.notReady].sort(), ["user", "x", "y", "z"]);
      d.finishNext();
      // And it comes to rest, each check asking for each package once at most.
      const rest = d.run();
      assert.deepEqual(rest[rest.length - 1], []);
    });
  });

  describe("incremental checking", () => {
    /** The cycles the histories form: each member's dependency on the next. */
    const RING: Record<string, string> = {
      pkg20: "pkg21",
      pkg21: "pkg20",
      pkg30: "pkg31",
      pkg31: "pkg32",
      pkg32: "pkg30",
    };
    /** Codes the random histories went through, all seeds together. */
    const seenAll = new Set<string>();
    /** What else they went through: cycles, modes, blockers elsewhere, excluded packages. */
    const sawAll = new Set<string>();

    after(() => {
      // Together the histories must have gone through every kind of state, or they tested little.
      for (const code of [
        "scheduled",
        "succeeded",
        "failed",
        "blocked",
        "unresolvable",
        "locked",
        "disabled",
        "excluded",
      ]) {
        assert.ok(seenAll.has(code), `no history ever had a ${code} package (seen: ${[...seenAll].join(",")})`);
      }
      for (const what of [
        "cycle",
        "cycle build",
        "blocked elsewhere",
        "rebuild=direct",
        "rebuild=local",
        "block=local",
        "block=never",
        "meta change",
      ]) {
        assert.ok(sawAll.has(what), `no history had a ${what} (saw: ${[...sawAll].join(",")})`);
      }
    });

    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      it(`should equal a full recomputation after every step of a random history (seed ${seed})`, () => {
        const r = rng(seed);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
        const N = 40;
        const names = Array.from({ length: N }, (_, i) => `pkg${i}`);
        const metas = new Map<string, string[]>();
        const configs = [
          "Prefer: pkg3\n",
          "Prefer: pkg5\n",
          "Prefer: pkg3\nBuildFlags: excludebuild:pkg7\n",
          "Prefer: pkg3\nIgnore: pkg1\n",
        ];
        const setup: Omit<CheckerSetup, "layers"> = checkerSetup({
          config: config(configs[0]),
          metaOf: (s: string) => metas.get(s),
        });
        // A repository of the path: binaries ext0..ext4 of packages e0..e4 there.
        const base = new Map<string, PoolBinary>();
        for (let i = 0; i < 5; i++) base.set(`ext${i}`, bin(`ext${i}`, `e${i}`));
        let elsewhere = new Set<string>();
        // The model: everything the checker is told, to rebuild a fresh one from.
        const pkgs = new Map<string, PackageBuildInfo>();
        const pool = new Map<string, PoolBinary>();
        const results = new Map<string, LastBuild>();
        const jobs = new Map<string, JobRef>();
        const force = new Set<string>();
        const inc = new IncrementalChecker({
          ...setup,
          layers: [
            { project: "p", repository: "r", binaries: [] },
            { project: "b", repository: "r", binaries: [...base.values()] },
          ],
        });
        const newInfo = (name: string, salt: string): PackageBuildInfo => {
          // Mostly on lower-numbered packages (a distribution is mostly a DAG), rarely backwards.
          const me = names.indexOf(name);
          // Members of the cycles depend on few others, or they would rarely all build.
          const deps = names
            .filter((n, i) => n !== name && (!RING[name] || i < 4) && r() < (i < me ? 0.08 : 0.012))
            .map((n) => (r() < 0.2 ? `${n} >= 1` : n));
          if (r() < 0.15) deps.push(`ext${Math.floor(r() * 5)}`);
          if (RING[name] && r() < 0.5) deps.push(RING[name]);
          if (r() < 0.05) deps.push("virtual-thing");
          if (r() < 0.02) deps.push("does-not-exist");
          const flags = {
            build: r() > 0.05,
            lock: r() < 0.03,
            useforbuild: r() > 0.1,
            debuginfo: false,
            publish: true,
          };
          return info(name, { srcmd5: md5(`${name}-${salt}`), buildRequires: deps, flags });
        };
        /** Simulates a worker finishing a build as the scheduler's job asked. */
        const build = (
          name: string,
          bdeps: { name: string; hdrmd5: string; metaSha256?: string; notmeta?: boolean }[],
          failed: boolean,
          digests?: SignatureDigests
        ): void => {
          const p = pkgs.get(name)!;
          const lines = bdeps
            .filter((d) => !d.notmeta)
            .flatMap((d) => depMetaLines(d.name, d.hdrmd5, d.metaSha256 ? metas.get(d.metaSha256) : undefined, name));
          const meta = genMeta(`${p.verifymd5}  ${name}`, p.subpacks, lines);
          const metaSha256 = createHash("sha256").update(meta.join("\n")).digest("hex");
          metas.set(metaSha256, meta);
          results.set(name, {
            code: failed ? "failed" : "succeeded",
            srcmd5: p.verifymd5,
            versrel: "1.0-1",
            bcnt: 1,
            metaSha256,
            meta,
            ...(digests ? { digests } : {}),
          });
          force.delete(name);
          inc.setResult(name, results.get(name));
          if (!failed) {
            const provides = r() < 0.3 ? ["virtual-thing"] : [];
            const b = bin(name, name, { hdrmd5: md5(`${name}-${r()}`), metaSha256, provides });
            pool.set(name, b);
            inc.applyPoolDiff(0, [b], [name]);
          }
          if (jobs.has(name)) {
            jobs.delete(name);
            inc.setJob(name, undefined);
          }
        };
        for (const n of names) {
          const i = newInfo(n, "0");
          pkgs.set(n, i);
          inc.upsertPackage(i);
        }
        const seen = new Set<string>();
        const compare = (step: number): void => {
          const out = inc.check();
          for (const st of out.states.values()) seen.add(st.code);
          if (inc.cycles().length) sawAll.add("cycle");
          if (setup.rebuild !== "transitive") sawAll.add(`rebuild=${setup.rebuild}`);
          if (setup.block !== "all") sawAll.add(`block=${setup.block}`);
          for (const st of out.states.values()) if (/ext\d/.test(st.details)) sawAll.add("blocked elsewhere");
          for (const b of out.builds) {
            if (b.reason.explain === "meta change") sawAll.add("meta change");
            if (inc.cycles().some((cy) => cy.includes(b.package))) sawAll.add("cycle build");
          }
          const fresh = checkFromScratch({
            ...setup,
            layers: [
              { project: "p", repository: "r", binaries: [...pool.values()] },
              { project: "b", repository: "r", binaries: [...base.values()] },
            ],
            packages: [...pkgs.values()],
            results,
            jobs,
            forceRebuild: force,
            notReadyElsewhere: new Map([["b/r", elsewhere]]),
          });
          const full = fresh.output;
          for (const [k, v] of out.states) {
            if (full.states.get(k)?.code !== v.code) {
              // Say what each side expanded, which is where a stale incremental state comes from.
              assert.fail(
                `step ${step}: ${k} is ${v.code} incrementally but ${full.states.get(k)?.code} from scratch; ` +
                  `expansions ${JSON.stringify(inc.expansionOf(k))} vs ${JSON.stringify(fresh.checker.expansionOf(k))}`
              );
            }
          }
          const a = Object.fromEntries([...out.states].sort());
          const b = Object.fromEntries([...full.states].sort());
          assert.deepEqual(a, b, `states differ at step ${step}`);
          assert.deepEqual([...out.notReady].sort(), [...full.notReady].sort(), `notReady differs at step ${step}`);
          assert.equal(out.repoCode, full.repoCode, `repository code differs at step ${step}`);
          // The same builds asked for, for the same reasons.
          const asked = (o: CheckOutput): [string, BuildReason][] =>
            o.builds.map((b): [string, BuildReason] => [b.package, b.reason]).sort((x, y) => (x[0] < y[0] ? -1 : 1));
          assert.deepEqual(asked(out), asked(full), `builds differ at step ${step}`);
          const once = new Set(out.builds.map((b) => b.package));
          assert.equal(once.size, out.builds.length, `a package asked for twice at step ${step}`);
          assert.deepEqual(out.missingMetas, []);
          // Act on the builds as the scheduler and workers would.
          for (const b of full.builds) {
            const roll = r();
            if (roll < 0.5) {
              jobs.set(b.package, { jobId: `j-${b.package}-${step}`, srcmd5: pkgs.get(b.package)!.verifymd5 });
              inc.setJob(b.package, jobs.get(b.package));
              force.delete(b.package);
            } else if (roll < 0.9) {
              force.delete(b.package);
              build(
                b.package,
                b.bdeps.map((d) => ({
                  name: d.name,
                  hdrmd5: d.hdrmd5,
                  ...(d.metaSha256 ? { metaSha256: d.metaSha256 } : {}),
                  ...(d.notmeta ? { notmeta: true } : {}),
                })),
                r() < 0.1,
                // Most builds carry the signature their job recorded; some (older ones) only a meta.
                r() < 0.8 ? b.digests : undefined
              );
            }
          }
        };
        let step = 0;
        compare(step++);
        for (; step < 200; step++) {
          const op = r();
          const name = pick(names);
          if (op < 0.25 && pkgs.has(name)) {
            // A commit: new sources; now and then new dependencies and flags too.
            const old = pkgs.get(name)!;
            const i =
              r() < 0.3
                ? newInfo(name, String(step))
                : { ...old, srcmd5: md5(`${name}-${step}`), verifymd5: md5(`${name}-${step}`) };
            pkgs.set(name, i);
            inc.upsertPackage(i);
          } else if (op < 0.35 && jobs.has(name)) {
            const job = jobs.get(name)!;
            const p = pkgs.get(name)!;
            if (job.srcmd5 === p.verifymd5) build(name, [], r() < 0.2);
          } else if (op < 0.45 && pkgs.has(name)) {
            // A flag change (package meta).
            const p = pkgs.get(name)!;
            const i = { ...p, flags: { ...p.flags, lock: r() < 0.1, build: r() > 0.1 } };
            pkgs.set(name, i);
            inc.upsertPackage(i);
          } else if (op < 0.5 && pkgs.has(name)) {
            force.add(name);
            jobs.delete(name);
            inc.forceRebuild(name);
          } else if (op < 0.53 && pool.has(name)) {
            // A binary disappears from the pool (wipe).
            pool.delete(name);
            inc.applyPoolDiff(0, [], [name]);
          } else if (op < 0.55 && pkgs.size > 30) {
            pkgs.delete(name);
            results.delete(name);
            jobs.delete(name);
            force.delete(name);
            inc.removePackage(name);
          } else if (op < 0.6 && !pkgs.has(name)) {
            const i = newInfo(name, `re${step}`);
            pkgs.set(name, i);
            inc.upsertPackage(i);
          } else if (op < 0.63) {
            const rebuild = pick(["transitive", "transitive", "direct", "local"] as const);
            const block = pick(["all", "all", "local", "never"] as const);
            setup.rebuild = rebuild;
            setup.block = block;
            inc.setModes(rebuild, block);
          } else if (op < 0.65) {
            setup.config = config(pick(configs));
            inc.setConfig(setup.config);
          } else if (op < 0.69) {
            // The repository of the path: some of its packages are being rebuilt, or are done.
            elsewhere = new Set(["e0", "e1", "e2", "e3", "e4"].filter(() => r() < 0.3));
            inc.setNotReadyElsewhere("b/r", elsewhere);
          } else if (op < 0.76) {
            // A commit that adds or drops a member's part of a cycle (pkg20-pkg21, pkg30-31-32):
            // built first without it, the members then form the cycle.
            const m = pick(Object.keys(RING));
            const p = pkgs.get(m);
            if (p) {
              const has = p.buildRequires.includes(RING[m]!);
              const i = {
                ...p,
                buildRequires: has ? p.buildRequires.filter((d) => d !== RING[m]) : [...p.buildRequires, RING[m]!],
                srcmd5: md5(`${m}-ring-${step}`),
                verifymd5: md5(`${m}-ring-${step}`),
              };
              pkgs.set(m, i);
              inc.upsertPackage(i);
            }
          } else if (op < 0.78) {
            // One of its binaries changes (a meta change for its users here).
            const n = `ext${Math.floor(r() * 5)}`;
            const b = bin(n, base.get(n)!.package, { hdrmd5: md5(`${n}-${step}`) });
            base.set(n, b);
            inc.applyPoolDiff(1, [b], [n]);
          }
          compare(step);
        }
        for (const code of seen) seenAll.add(code);
        assert.ok(
          seen.has("succeeded") && seen.has("scheduled"),
          `history built nothing (seen: ${[...seen].join(",")})`
        );
      });
    }
  });
});
