import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { Outbox, RoleStore, keys } from "../../../storage/index.ts";
import { BuildResultCode, type PoolBinary as PoolRecord } from "../../../actors/common/model.ts";
import type { FlagEntry, Flags } from "../../../actors/common/flags.ts";
import { computePool, type PackageResult } from "../../../actors/repo/pool.ts";
import { exportTargets, importFilename } from "../../../actors/repo/export-filter.ts";
import { RepoState, type RepoBuildConfig, type ResultInput } from "../../../actors/repo/repo-state.ts";
import type { RepoEvent, StoredBinary } from "../../../actors/repo/protocol.ts";
import { mulberry32 as rng } from "../../helpers/rng.ts";

const log = pino({ level: "silent" });
const P = "home:t";
const R = "standard";

const hex = (s: string, n = 64): string => createHash("sha256").update(s).digest("hex").slice(0, n);

function bin(filename: string, salt = ""): StoredBinary {
  const m = /^(.+)-([^-]+)-([^-]+)\.([^.]+)\.rpm$/.exec(filename);
  assert.ok(m, filename);
  const [, name, version, release, arch] = m as unknown as [string, string, string, string, string];
  return {
    filename,
    name,
    version,
    release,
    arch,
    isSource: arch === "src",
    provides: [`${name} = ${version}-${release}`],
    requires: name.endsWith("-devel") ? [name.replace(/-devel$/, "")] : [],
    conflicts: [],
    obsoletes: [],
    hdrmd5: hex(filename + salt, 32),
    sha256: hex(filename + salt),
    md5: hex(filename + salt, 32),
    size: 1000,
  };
}

/** Flag and config sources the state asks, changeable by the test. */
class FakeSource {
  project: { flags: Flags; repositories: { name: string; archs: string[] }[] } = {
    flags: {},
    repositories: [{ name: R, archs: ["x86_64", "i586"] }],
  };
  packages = new Map<string, Flags>();
  exportFilter: RepoBuildConfig["exportFilter"] = [];
  calls = 0;
  lookups = {
    project: async () => {
      this.calls++;
      return structuredClone(this.project);
    },
    package: async (_p: string, k: string) => {
      this.calls++;
      const f = this.packages.get(k);
      return f ? { flags: structuredClone(f) } : undefined;
    },
    buildConfig: async () => ({ exportFilter: this.exportFilter, path: [{ project: P, repository: R }] }),
  };
}

interface Harness {
  state: RepoState;
  store: RoleStore;
  events: RepoEvent[];
  outbox: Outbox<RepoEvent>;
  src: FakeSource;
  reopen(): Promise<void>;
}

describe("actors/repo/repo-state", () => {
  let dir: string;
  let h: Harness;
  let job = 0;

  const open = (src: FakeSource, events: RepoEvent[]): Omit<Harness, "reopen" | "src" | "events"> => {
    const store = RoleStore.open({ path: path.join(dir, "db"), log });
    const outbox = new Outbox<RepoEvent>(store, async (e) => void events.push(e), log);
    return { store, outbox, state: new RepoState({ store, outbox, lookups: src.lookups, log }) };
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kiln-repo-state-"));
    const src = new FakeSource();
    const events: RepoEvent[] = [];
    const base = open(src, events);
    h = {
      ...base,
      src,
      events,
      async reopen() {
        await h.store.close();
        Object.assign(h, open(src, events));
      },
    };
  });

  afterEach(async () => {
    await h.store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const put = async (
    pkg: string,
    files: string[],
    opts: { arch?: string; code?: BuildResultCode; salt?: string } = {}
  ): Promise<void> => {
    job++;
    const input: ResultInput = {
      project: P,
      repository: R,
      arch: opts.arch ?? "x86_64",
      package: pkg,
      jobId: `job${job}`,
      srcmd5: hex(`${pkg}${job}`, 32),
      verifymd5: hex(`${pkg}${job}`, 32),
      rev: job,
      versrel: `1.0-${job}`,
      bcnt: 1,
      release: `${job}.1`,
      reason: "new build",
      readyTime: job * 10,
      workerId: "w1",
      code: opts.code ?? BuildResultCode.Succeeded,
      startTime: job * 10 + 1,
      endTime: job * 10 + 5,
      binaries:
        (opts.code ?? BuildResultCode.Succeeded) === BuildResultCode.Succeeded
          ? files.map((f) => ({ ...bin(f, opts.salt ?? String(job)), metaSha256: hex(`meta${job}`) }))
          : [],
      metaSha256: hex(`meta${job}`),
      logSha256: hex(`log${job}`),
    };
    await h.state.storeResult(input);
    await h.outbox.flush();
  };

  /** name → package/filename of a stored pool. */
  const view = (records: PoolRecord[]): Record<string, string> =>
    Object.fromEntries(records.map((r) => [r.name, `${r.package}/${r.filename}`]));

  /** The pool as the rule says it must be, from the stored results, imports and flags alone. */
  const expected = (arch: string): Record<string, string> => {
    const results = new Map<string, PackageResult<StoredBinary>>();
    for (const r of h.state.results(P, R, arch)) results.set(r.package, { binaries: [...r.binaries] });
    for (const k of h.state.packagesIn(P, R, arch)) {
      const imports = h.state.imports(P, R, arch, k).flatMap((i) => i.binaries);
      const cur = results.get(k)?.binaries ?? [];
      results.set(k, { binaries: [...cur, ...imports] });
    }
    const pool = computePool(results, (k) => h.state.flag("useforbuild", P, k, R, arch), {
      keepLocal: (f) => exportTargets(f, arch, h.src.exportFilter).local,
    });
    return Object.fromEntries([...pool.values()].map((e) => [e.name, `${e.package}/${e.filename}`]));
  };

  /** A subscriber's view of one arch's pool, built from the pool-changed events alone. */
  const subscriberView = (arch: string): Record<string, string> => {
    const pool = new Map<string, PoolRecord>();
    for (const e of h.events) {
      if (e.type !== "repo.pool-changed" || e.arch !== arch) continue;
      for (const r of e.removed) pool.delete(r.name);
      for (const a of e.added) pool.set(a.name, a);
    }
    return view([...pool.values()]);
  };

  const assertConsistent = (what: string): void => {
    for (const arch of ["x86_64", "i586"]) {
      const stored = view(h.state.pool(P, R, arch));
      assert.deepEqual(stored, expected(arch), `${what}: stored pool of ${arch} differs from the rule`);
      const mem = h.state.memoryPool(P, R, arch);
      if (mem) assert.deepEqual(view(mem), stored, `${what}: in-memory pool of ${arch}`);
      assert.deepEqual(subscriberView(arch), stored, `${what}: events do not add up to the pool of ${arch}`);
    }
  };

  const setPackageUseforbuild = async (pkg: string, entries: FlagEntry[]): Promise<void> => {
    h.src.packages.set(pkg, { useforbuild: entries });
    await h.state.setPackageMeta(P, pkg, { flags: { useforbuild: entries } });
    await h.outbox.flush();
  };

  /** The kept pool of each arch must need no repair when reconstructed from the results. */
  const assertRebuildFindsNothing = async (what: string, deep = false): Promise<void> => {
    for (const arch of ["x86_64", "i586"]) {
      const counts = await h.state.rebuildPool(P, R, arch, { deep });
      await h.outbox.flush();
      assert.deepEqual(
        { added: counts.added, removed: counts.removed, changed: counts.changed },
        { added: 0, removed: 0, changed: 0 },
        `${what}: rebuild-pool${deep ? " --deep" : ""} of ${arch} found the kept pool wrong`
      );
    }
  };

  it("should keep the pool equal to the rule through random results, wipes and flag and ExportFilter changes", async function () {
    this.timeout(120_000);
    const packages = ["a", "b", "foo", "foo.12", "foo.7", "foo:flavor", "zlib", "_volatile"].slice(0, 7);
    const names = ["common", "foo", "foo-devel", "lib", "libz", "tool", "foo-debuginfo", "libz-32bit"];
    // OBS's defaults (none given), and filters that keep binaries from their arch or export them.
    const filters: RepoBuildConfig["exportFilter"][] = [
      [],
      [{ regex: "^tool-", archs: [] }],
      [{ regex: "\\.noarch\\.rpm$", archs: [".", "x86_64", "i586"] }],
      [
        { regex: "^lib", archs: ["x86_64"] },
        { regex: "-32bit-", archs: ["."] },
      ],
    ];
    // What the random steps reached, so that a change of the generator cannot quietly skip a case.
    const reached = { imports: 0, filterChanges: 0, poolChangesByFilter: 0, repositoryWipes: 0 };
    for (const seed of [1, 2, 3]) {
      const r = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
      for (let step = 0; step < 120; step++) {
        const what = `seed ${seed} step ${step}`;
        const op = r();
        if (op < 0.5) {
          const arch = r() < 0.75 ? "x86_64" : "i586";
          const files = new Set<string>();
          const n = 1 + Math.floor(r() * 4);
          for (let i = 0; i < n; i++) {
            const name = pick(names);
            const v = 1 + Math.floor(r() * 3);
            const a = r() < 0.3 ? "noarch" : r() < 0.2 && arch === "i586" ? "x86_64" : arch;
            files.add(`${name}-${v}-1.${a}.rpm`);
          }
          files.add(`src-1-1.src.rpm`);
          const code = r() < 0.15 ? BuildResultCode.Failed : BuildResultCode.Succeeded;
          await put(pick(packages), [...files], { arch, code });
        } else if (op < 0.62) {
          const pkg = r() < 0.8 ? pick(packages) : undefined;
          const repository = r() < 0.3 ? pick([R, "other"]) : undefined;
          const wiped = await h.state.wipe(P, {
            ...(pkg ? { package: pkg } : {}),
            ...(r() < 0.5 ? { arch: pick(["x86_64", "i586"]) } : {}),
            ...(repository ? { repository } : {}),
          });
          if (repository === "other") assert.deepEqual(wiped, [], `${what}: a wipe of another repository`);
          if (repository === R && wiped.length > 0) reached.repositoryWipes++;
          await h.outbox.flush();
        } else if (op < 0.78) {
          const state = r() < 0.5 ? "disable" : "enable";
          const entry: FlagEntry = { state, ...(r() < 0.5 ? { arch: pick(["x86_64", "i586"]) } : {}) };
          await setPackageUseforbuild(pick(packages), r() < 0.2 ? [] : [entry]);
        } else if (op < 0.85) {
          h.src.project.flags =
            r() < 0.5 ? {} : { useforbuild: [{ state: "disable", arch: pick(["x86_64", "i586"]) }] };
          await h.state.setProjectMeta(P, structuredClone(h.src.project));
          await h.outbox.flush();
        } else if (op < 0.93) {
          // Mostly with the pools loaded, so that the change is applied to them; else a pool loaded
          // later is built with the new filter and its stored copy repaired.
          if (r() < 0.7) for (const arch of ["x86_64", "i586"]) await h.state.ensurePrpa(P, R, arch);
          h.src.exportFilter = structuredClone(pick(filters));
          const counts = await h.state.configChanged(P);
          reached.filterChanges++;
          if (counts.added + counts.removed + counts.changed > 0) reached.poolChangesByFilter++;
          await h.outbox.flush();
        } else if (op < 0.97) {
          await assertRebuildFindsNothing(what, true);
        } else {
          await h.reopen();
        }
        assertConsistent(what);
        // A rebuild drops the kept in-memory pools (they restart from the results), so not after
        // every step: the incremental path must run long stretches too.
        if (r() < 0.25) await assertRebuildFindsNothing(what);
        if (packages.some((k) => h.state.imports(P, R, "x86_64", k).length > 0)) reached.imports++;
      }
      await h.state.deleteProject(P);
      await h.outbox.flush();
      h.src.packages.clear();
      h.src.project.flags = {};
      h.src.exportFilter = [];
      assertConsistent(`seed ${seed} after deleting the project`);
    }
    for (const [k, n] of Object.entries(reached)) assert.ok(n > 0, `no step reached ${k}`);
  });

  it("should let the first package in OBS order win a binary name, and the higher version within one", async () => {
    await put("zz", ["shared-9-1.x86_64.rpm"]);
    await put("b", [
      "shared-1-1.x86_64.rpm",
      "own-1-1.x86_64.rpm",
      "own-2-1.x86_64.rpm",
      "own-debuginfo-2-1.x86_64.rpm",
    ]);
    await put("foo.10", ["inc-1-1.noarch.rpm"]);
    await put("foo.9", ["inc-2-1.noarch.rpm"]);
    await put("foo", ["inc-3-1.noarch.rpm", "foo-1-1.src.rpm"]);
    assert.deepEqual(view(h.state.pool(P, R, "x86_64")), {
      shared: "b/shared-1-1.x86_64.rpm",
      own: "b/own-2-1.x86_64.rpm",
      inc: "foo/inc-3-1.noarch.rpm",
    });
    await h.state.wipe(P, { package: "foo" });
    assert.equal(view(h.state.pool(P, R, "x86_64")).inc, "foo.10/inc-1-1.noarch.rpm");
  });

  it("should apply a useforbuild change to the pool at once, and leave the pool alone when wiping such a package", async () => {
    await put("a", ["lib-1-1.x86_64.rpm"]);
    await put("b", ["lib-2-1.x86_64.rpm", "tool-1-1.x86_64.rpm"]);
    assert.equal(view(h.state.pool(P, R, "x86_64")).lib, "a/lib-1-1.x86_64.rpm");
    const before = h.events.length;
    await setPackageUseforbuild("a", [{ state: "disable" }]);
    assert.deepEqual(view(h.state.pool(P, R, "x86_64")), {
      lib: "b/lib-2-1.x86_64.rpm",
      tool: "b/tool-1-1.x86_64.rpm",
    });
    const changed = h.events.slice(before).filter((e) => e.type === "repo.pool-changed");
    assert.equal(changed.length, 1);
    assert.deepEqual(
      changed[0]!.type === "repo.pool-changed" && changed[0].added.map((b) => [b.name, b.package, b.requires]),
      [["lib", "b", []]]
    );
    const pool = h.state.pool(P, R, "x86_64");
    await h.state.wipe(P, { package: "a" });
    assert.deepEqual(h.state.pool(P, R, "x86_64"), pool);
    assert.equal(h.state.result(P, R, "x86_64", "a"), undefined);
    // Package over project: the project disables, the package enables again.
    h.src.project.flags = { useforbuild: [{ state: "disable", repository: R, arch: "x86_64" }] };
    await h.state.setProjectMeta(P, structuredClone(h.src.project));
    assert.deepEqual(view(h.state.pool(P, R, "x86_64")), {});
    await setPackageUseforbuild("b", [{ state: "enable" }]);
    assert.deepEqual(Object.keys(view(h.state.pool(P, R, "x86_64"))), ["lib", "tool"]);
  });

  it("should store exported binaries as imports of the target arch, after its local ones", async () => {
    // OBS's default i586 filter: x86_64 files go to x86_64, debuginfo nowhere.
    await put(
      "foo",
      ["foo-1-1.i586.rpm", "foo-32bit-1-1.x86_64.rpm", "bar-9-1.x86_64.rpm", "foo-debuginfo-1-1.i586.rpm"],
      {
        arch: "i586",
      }
    );
    await put("foo", ["foo-1-1.x86_64.rpm", "bar-2-1.x86_64.rpm"], { arch: "x86_64" });
    assert.deepEqual(view(h.state.pool(P, R, "i586")), { foo: "foo/foo-1-1.i586.rpm" });
    assert.deepEqual(view(h.state.pool(P, R, "x86_64")), {
      foo: "foo/foo-1-1.x86_64.rpm",
      // Local beats imported within the package, even at a lower version.
      bar: "foo/bar-2-1.x86_64.rpm",
      "foo-32bit": `foo/${importFilename("i586", "foo-32bit-1-1.x86_64.rpm")}`,
    });
    const imports = h.state.imports(P, R, "x86_64", "foo");
    assert.deepEqual(
      imports.map((i) => [i.fromArch, i.binaries.map((b) => b.filename)]),
      [["i586", ["::import::i586::foo-32bit-1-1.x86_64.rpm", "::import::i586::bar-9-1.x86_64.rpm"]]]
    );
    // A rebuild of x86_64 keeps the imports; a rebuild of i586 without the file drops them.
    await put("foo", ["foo-1-2.x86_64.rpm"], { arch: "x86_64" });
    assert.equal(view(h.state.pool(P, R, "x86_64"))["foo-32bit"], `foo/::import::i586::foo-32bit-1-1.x86_64.rpm`);
    assert.equal(view(h.state.pool(P, R, "x86_64")).bar, `foo/::import::i586::bar-9-1.x86_64.rpm`);
    await put("foo", ["foo-1-2.i586.rpm"], { arch: "i586" });
    assert.deepEqual(h.state.imports(P, R, "x86_64", "foo"), []);
    assert.deepEqual(view(h.state.pool(P, R, "x86_64")), { foo: "foo/foo-1-2.x86_64.rpm" });
  });

  it("should export only to archs the repository has, by the project's ExportFilter when it has one", async () => {
    h.src.project.repositories = [{ name: R, archs: ["i586"] }];
    await put("foo", ["foo-32bit-1-1.x86_64.rpm"], { arch: "i586" });
    assert.deepEqual(h.state.packagesIn(P, R, "x86_64"), new Set());
    await h.reopen();
    h.src.project.repositories = [{ name: R, archs: ["x86_64", "i586", "aarch64"] }];
    await h.state.setProjectMeta(P, structuredClone(h.src.project));
    h.src.exportFilter = [{ regex: "^tool-", archs: [".", "aarch64"] }];
    h.state.unload();
    await put("t", ["tool-1-1.x86_64.rpm", "other-1-1.x86_64.rpm"], { arch: "x86_64" });
    assert.deepEqual(
      h.state.imports(P, R, "aarch64", "t").flatMap((i) => i.binaries.map((b) => b.filename)),
      ["::import::x86_64::tool-1-1.x86_64.rpm"]
    );
    assert.deepEqual(Object.keys(view(h.state.pool(P, R, "x86_64"))).sort(), ["other", "tool"]);
    // A filter that no longer keeps `other` here takes it out of the pool at once.
    h.src.exportFilter = [{ regex: "^other-", archs: ["aarch64"] }];
    // Counted over the project's archs: `other` leaves x86_64, and on i586 the project's filter
    // (which replaces OBS's defaults) keeps foo-32bit there now.
    assert.deepEqual(await h.state.configChanged(P), { added: 1, removed: 1, changed: 0 });
    assert.deepEqual(Object.keys(view(h.state.pool(P, R, "x86_64"))), ["tool"]);
    assert.deepEqual(Object.keys(view(h.state.pool(P, R, "i586"))), ["foo-32bit"]);
    // The same when the pool is not loaded: loading it with the new filter is the change.
    h.state.unload();
    h.src.exportFilter = [{ regex: "^tool-", archs: ["aarch64"] }];
    assert.deepEqual(await h.state.configChanged(P), { added: 1, removed: 1, changed: 0 });
    assert.deepEqual(Object.keys(view(h.state.pool(P, R, "x86_64"))), ["other"]);
  });

  it("should keep the previous binaries after a failed build and refuse to wipe a locked package", async () => {
    await put("a", ["lib-1-1.x86_64.rpm"]);
    const pool = h.state.pool(P, R, "x86_64");
    await put("a", [], { code: BuildResultCode.Failed });
    const r = h.state.result(P, R, "x86_64", "a")!;
    assert.equal(r.code, "failed");
    assert.deepEqual(
      r.binaries.map((b) => b.filename),
      ["lib-1-1.x86_64.rpm"]
    );
    assert.deepEqual(h.state.pool(P, R, "x86_64"), pool);
    h.src.packages.set("a", { lock: [{ state: "enable" }] });
    await h.state.setPackageMeta(P, "a", { flags: { lock: [{ state: "enable" }] } });
    await assert.rejects(h.state.wipe(P, { package: "a" }), { code: "ERR_CONFLICT" });
    assert.ok(h.state.result(P, R, "x86_64", "a"));
  });

  it("should keep build history of successful builds and job history of all, newest job first", async () => {
    await put("a", ["lib-1-1.x86_64.rpm"]);
    await put("b", ["x-1-1.x86_64.rpm"]);
    await put("a", [], { code: BuildResultCode.Failed });
    await put("a", ["lib-1-2.x86_64.rpm"]);
    const bh = h.state.buildHistory(P, R, "x86_64", "a");
    assert.deepEqual(
      bh.map((e) => [e.jobId, e.code]),
      [
        [`job${job - 3}`, "succeeded"],
        [`job${job}`, "succeeded"],
      ]
    );
    assert.deepEqual(
      h.state.jobHistory(P, R, "x86_64", "a").map((e) => e.code),
      ["succeeded", "failed", "succeeded"]
    );
    assert.deepEqual(
      h.state.jobHistory(P, R, "x86_64", undefined, 2).map((e) => e.package),
      ["a", "a"]
    );
    assert.deepEqual(
      h.state.buildHistory(P, R, "x86_64", "a", 1).map((e) => e.jobId),
      [`job${job}`]
    );
  });

  it("should page publishable binaries with their flags and a generation that changes with the results", async () => {
    await put("a", ["a-1-1.x86_64.rpm", "a-1-1.src.rpm"]);
    await put("b", ["b-1-1.x86_64.rpm", "b-1-1.src.rpm"]);
    await put("c", ["c-1-1.x86_64.rpm"]);
    h.src.packages.set("b", { publish: [{ state: "disable" }], sourceaccess: [{ state: "disable" }] });
    await h.state.setPackageMeta(P, "b", { flags: h.src.packages.get("b")! });
    const p1 = h.state.publishPage(P, R, "x86_64", undefined, 4);
    assert.deepEqual(
      p1.packages.map((p) => [p.package, p.publish, p.sourceaccess, p.binaries.length]),
      [
        ["a", true, true, 2],
        ["b", false, false, 2],
      ]
    );
    assert.equal(p1.next, "b");
    const p2 = h.state.publishPage(P, R, "x86_64", p1.next, 4);
    assert.deepEqual(
      p2.packages.map((p) => p.package),
      ["c"]
    );
    assert.equal(p2.next, undefined);
    assert.equal(p2.generation, p1.generation);
    await put("c", ["c-1-2.x86_64.rpm"]);
    assert.notEqual(h.state.publishPage(P, R, "x86_64").generation, p1.generation);
  });

  it("should split a large pool change into events that each stay small and each leave a complete view", async () => {
    await h.store.close();
    const store = RoleStore.open({ path: path.join(dir, "db"), log });
    const outbox = new Outbox<RepoEvent>(store, async (e) => void h.events.push(e), log);
    const state = new RepoState({ store, outbox, lookups: h.src.lookups, log, maxEventBytes: 4000 });
    Object.assign(h, { store, outbox, state });
    const files = Array.from({ length: 200 }, (_, i) => `n${String(i).padStart(3, "0")}-1-1.x86_64.rpm`);
    await put("big", files);
    const first = h.events.filter((e) => e.type === "repo.pool-changed");
    assert.ok(first.length > 3, `${first.length} events`);
    for (const e of first) assert.ok(JSON.stringify(e).length < 4000 + 2000, "event too large");
    await put("big", files, { salt: "again" });
    assertConsistent("after rebuilding all 200 binaries");
  });

  it("should page the stored pool by binary name", async () => {
    await put("a", ["x1-1-1.x86_64.rpm", "x2-1-1.x86_64.rpm", "x3-1-1.x86_64.rpm"]);
    const p1 = h.state.poolPage(P, R, "x86_64", undefined, 2);
    assert.deepEqual(
      p1.binaries.map((b) => b.name),
      ["x1", "x2"]
    );
    const p2 = h.state.poolPage(P, R, "x86_64", p1.next, 2);
    assert.deepEqual(
      p2.binaries.map((b) => b.name),
      ["x3"]
    );
    assert.equal(p2.next, undefined);
    assert.deepEqual(p2.binaries[0]!.provides, ["x3 = 1-1"]);
  });

  it("should repair a stored pool that disagrees with the results when loading", async () => {
    await put("a", ["lib-1-1.x86_64.rpm"]);
    await h.store.transact(() => void h.store.db.remove(keys.poolEntry(P, R, "x86_64", "lib")));
    await h.reopen();
    await h.state.ensurePrpa(P, R, "x86_64");
    await h.outbox.flush();
    assert.deepEqual(view(h.state.pool(P, R, "x86_64")), { lib: "a/lib-1-1.x86_64.rpm" });
  });

  it("should repair a wrong bininfo from the full results in a deep rebuild", async () => {
    await put("a", ["lib-1-1.x86_64.rpm"]);
    await put("b", ["lib-2-1.x86_64.rpm", "tool-1-1.x86_64.rpm"]);
    await h.store.transact(() => void h.store.db.put(keys.binInfo(P, R, "x86_64", "a"), []));
    h.state.unload();
    const shallow = await h.state.rebuildPool(P, R, "x86_64");
    assert.equal(view(h.state.pool(P, R, "x86_64")).lib, "b/lib-2-1.x86_64.rpm");
    assert.equal(shallow.changed, 1);
    const deep = await h.state.rebuildPool(P, R, "x86_64", { deep: true });
    await h.outbox.flush();
    assert.equal(deep.bininfoRepaired, 1);
    assertConsistent("after a deep rebuild");
  });

  it("should fetch flags it has no copy of once, and follow meta changes after that", async () => {
    h.src.packages.set("a", { useforbuild: [{ state: "disable" }] });
    await put("a", ["lib-1-1.x86_64.rpm"]);
    assert.deepEqual(h.state.pool(P, R, "x86_64"), []);
    const calls = h.src.calls;
    await put("a", ["lib-1-2.x86_64.rpm"]);
    assert.equal(h.src.calls, calls);
  });
});
