import assert from "node:assert/strict";
import {
  IncrementalPool,
  applyPoolDiff,
  computePool,
  isEmptyPoolDiff,
  isPoolCandidate,
  orderPackages,
} from "../../../actors/repo/pool.ts";
import type { PackageResult, PoolBinary, PoolDiff, PoolEntry, PoolOptions } from "../../../actors/repo/pool.ts";
import { compileExportFilter, importFilename } from "../../../actors/repo/export-filter.ts";
import { mulberry32 as rng } from "../../helpers/rng.ts";

function bin(filename: string, over: Partial<PoolBinary> = {}): PoolBinary {
  // name-version-release.arch.rpm, the way rpmbuild names its output.
  const m = /^(?:::import::([^:]+)::)?(.+)-([^-]+)-([^-]+)\.([^.]+)\.rpm$/.exec(filename);
  assert.ok(m, `fixture file name ${filename}`);
  const b: PoolBinary = {
    filename,
    name: m[2]!,
    version: m[3]!,
    release: m[4]!,
    arch: m[5]!,
    isSource: m[5] === "src",
  };
  if (m[1]) b.imported = { fromArch: m[1] };
  return { ...b, ...over };
}

function result(...files: (string | PoolBinary)[]): PackageResult {
  return { binaries: files.map((f) => (typeof f === "string" ? bin(f) : f)) };
}

/** name → "package/filename", the readable form of a pool. */
function view(pool: ReadonlyMap<string, PoolEntry> | PoolEntry[]): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = Array.isArray(pool) ? pool : [...pool.values()];
  for (const e of entries) out[e.name] = `${e.package}/${e.filename}`;
  return out;
}

const all = () => true;

describe("actors/repo/pool", () => {
  describe("orderPackages", () => {
    it("should sort plain names lexicographically by code unit", () => {
      assert.deepEqual(orderPackages(["b", "a", "C", "a-b", "a_b"]), ["C", "a", "a-b", "a_b", "b"]);
    });

    it("should put the higher maintenance incident first within the same base name", () => {
      assert.deepEqual(orderPackages(["foo.99", "foo.100", "bar", "foo", "foo.1000"]), [
        "bar",
        "foo",
        "foo.1000",
        "foo.100",
        "foo.99",
      ]);
    });

    it("should keep a base name and its incidents ahead of longer names that extend it", () => {
      // Plain sorting would put foo-bar ('-') before foo.12 ('.').
      assert.deepEqual(orderPackages(["foo-bar", "foo.12", "foo"]), ["foo", "foo.12", "foo-bar"]);
    });

    it("should put multibuild flavors right after their package", () => {
      // Plain sorting would put pkg-foo before pkg:a (':' sorts after '-').
      assert.deepEqual(orderPackages(["pkg-foo", "pkg:flavor", "pkg", "pkg:a"]), [
        "pkg",
        "pkg:a",
        "pkg:flavor",
        "pkg-foo",
      ]);
    });

    it("should sort an incident's flavors by flavor with the package's, after all its unflavored incidents", () => {
      // The sort key is base name, then flavor, then incident: pkg.5 shares pkg's key.
      assert.deepEqual(orderPackages(["pkg.5:x", "pkg:x", "pkg.5", "pkg:flavor", "pkg", "pkg.6:x"]), [
        "pkg",
        "pkg.5",
        "pkg:flavor",
        "pkg:x",
        "pkg.6:x",
        "pkg.5:x",
      ]);
    });

    it("should not treat _product: and _patchinfo: containers as multibuild flavors", () => {
      assert.deepEqual(orderPackages(["_product:x", "_product-a", "_product"]), [
        "_product",
        "_product-a",
        "_product:x",
      ]);
      assert.deepEqual(orderPackages(["_patchinfo:p", "_patchinfo-q", "_patchinfo"]), [
        "_patchinfo",
        "_patchinfo-q",
        "_patchinfo:p",
      ]);
    });

    it("should put code 11 imports after every incident of their base", () => {
      assert.deepEqual(orderPackages(["foo.imported_sp1_7", "foo.3", "foo"]), ["foo", "foo.3", "foo.imported_sp1_7"]);
    });

    it("should put _volatile last whatever its name sorts like", () => {
      assert.deepEqual(orderPackages(["_volatile", "zzz", "_aaa"]), ["_aaa", "zzz", "_volatile"]);
    });

    it("should order by incident number first in maintenance_release projects", () => {
      assert.deepEqual(orderPackages(["a.5", "b.7", "c", "a.9"], { maintenanceRelease: true }), [
        "c",
        "a.9",
        "b.7",
        "a.5",
      ]);
    });
  });

  describe("isPoolCandidate", () => {
    it("should keep source, debug and delta packages and files without a binary suffix out", () => {
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm")), true);
      assert.equal(isPoolCandidate(bin("foo-1-1.src.rpm")), false);
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm", { isSource: true })), false);
      assert.equal(isPoolCandidate(bin("foo-debuginfo-1-1.x86_64.rpm")), false);
      assert.equal(isPoolCandidate(bin("foo-debugsource-1-1.x86_64.rpm")), false);
      assert.equal(isPoolCandidate(bin("foo-debuginfo-32bit-1-1.x86_64.rpm")), false);
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm", { isDebug: true })), false);
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm", { filename: "foo-1-1_2.x86_64.delta.rpm" })), false);
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm", { filename: "foo.tar.gz" })), false);
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm", { filename: "foo_1-1_amd64.deb" })), true);
      assert.equal(isPoolCandidate(bin("foo-1-1.x86_64.rpm", { name: "" })), false);
    });
  });

  describe("computePool", () => {
    it("should let the first package in order win a binary name", () => {
      const results = new Map([
        ["b", result("foo-2-1.x86_64.rpm", "b-1-1.x86_64.rpm")],
        ["a", result("foo-1-1.x86_64.rpm")],
      ]);
      assert.deepEqual(view(computePool(results, all)), {
        foo: "a/foo-1-1.x86_64.rpm",
        b: "b/b-1-1.x86_64.rpm",
      });
    });

    it("should order packages as orderPackages does: a flavor beats a longer name, an incident beats both", () => {
      const results = new Map([
        ["pkg-extra", result("foo-1-1.x86_64.rpm")],
        ["pkg:big", result("foo-2-1.x86_64.rpm")],
      ]);
      assert.equal(computePool(results, all).get("foo")!.package, "pkg:big");
      results.set("pkg.7", result("foo-3-1.x86_64.rpm"));
      assert.equal(computePool(results, all).get("foo")!.package, "pkg.7");
    });

    it("should let a higher version replace a lower one within one package, in any file order", () => {
      const results = new Map([
        ["p", result("foo-2.0-1.x86_64.rpm", "foo-10.0-1.x86_64.rpm", "foo-9.0-1.x86_64.rpm")],
        ["q", result("bar-1-2.x86_64.rpm", "bar-1-10.x86_64.rpm")],
        ["r", result("baz-9-1.x86_64.rpm", bin("baz-1-1.x86_64.rpm", { filename: "baz-z.x86_64.rpm", epoch: 1 }))],
      ]);
      assert.deepEqual(view(computePool(results, all)), {
        foo: "p/foo-10.0-1.x86_64.rpm",
        bar: "q/bar-1-10.x86_64.rpm",
        baz: "r/baz-z.x86_64.rpm",
      });
    });

    it("should prefer a real arch over noarch within a package, whatever the versions", () => {
      const results = new Map([["p", result("foo-9-1.noarch.rpm", "foo-1-1.x86_64.rpm")]]);
      assert.equal(computePool(results, all).get("foo")!.filename, "foo-1-1.x86_64.rpm");
    });

    it("should sort imports after local files so a local binary wins even against a newer import", () => {
      const results = new Map([
        [
          "p",
          result(
            importFilename("i586", "foo-9-1.x86_64.rpm"),
            "foo-1-1.x86_64.rpm",
            importFilename("i586", "foo-32bit-1-1.x86_64.rpm")
          ),
        ],
      ]);
      assert.deepEqual(view(computePool(results, all)), {
        foo: "p/foo-1-1.x86_64.rpm",
        "foo-32bit": "p/::import::i586::foo-32bit-1-1.x86_64.rpm",
      });
    });

    it("should never take src rpms, debug packages or delta rpms", () => {
      const results = new Map([
        [
          "p",
          result(
            "p-1-1.src.rpm",
            "p-debuginfo-1-1.x86_64.rpm",
            "p-debugsource-1-1.x86_64.rpm",
            bin("p-1-1.x86_64.rpm", { filename: "p-1-0_1-1.x86_64.delta.rpm" }),
            "p-1-1.x86_64.rpm"
          ),
        ],
      ]);
      assert.deepEqual(view(computePool(results, all)), { p: "p/p-1-1.x86_64.rpm" });
    });

    it("should leave useforbuild-disabled packages out, letting the next provider win", () => {
      const results = new Map([
        ["a", result("foo-1-1.x86_64.rpm", "a-1-1.x86_64.rpm")],
        ["b", result("foo-2-1.x86_64.rpm")],
      ]);
      assert.deepEqual(view(computePool(results, (p) => p !== "a")), { foo: "b/foo-2-1.x86_64.rpm" });
    });

    it("should always use _volatile, after every package", () => {
      const results = new Map([
        ["_volatile", result("foo-9-1.x86_64.rpm", "old-1-1.x86_64.rpm")],
        ["zzz", result("foo-1-1.x86_64.rpm")],
      ]);
      const asked: string[] = [];
      const pool = computePool(results, (p) => (asked.push(p), false));
      assert.deepEqual(view(pool), { old: "_volatile/old-1-1.x86_64.rpm", foo: "_volatile/foo-9-1.x86_64.rpm" });
      assert.deepEqual(asked, ["zzz"]);
      assert.equal(computePool(results, all).get("foo")!.package, "zzz");
    });

    it("should drop local binaries the export filter sends elsewhere but keep imports", () => {
      const keep = compileExportFilter("i586");
      const options: PoolOptions = { keepLocal: (f) => keep.targets(f).local };
      const results = new Map([
        [
          "p",
          result(
            "foo-1-1.i586.rpm",
            "foo-32bit-1-1.x86_64.rpm",
            importFilename("x86_64", "bar-1-1.x86_64.rpm"),
            "foo-debuginfo-1-1.i586.rpm"
          ),
        ],
      ]);
      assert.deepEqual(view(computePool(results, all, options)), {
        foo: "p/foo-1-1.i586.rpm",
        bar: "p/::import::x86_64::bar-1-1.x86_64.rpm",
      });
    });
  });

  describe("IncrementalPool", () => {
    it("should report added, changed and removed names as packages come and go", () => {
      const p = new IncrementalPool();
      let d = p.setResult("b", result("foo-2-1.x86_64.rpm", "b-1-1.x86_64.rpm"));
      assert.deepEqual(view(d.added), { b: "b/b-1-1.x86_64.rpm", foo: "b/foo-2-1.x86_64.rpm" });
      assert.deepEqual([d.removed, d.changed], [[], []]);

      // An earlier package takes foo over.
      d = p.setResult("a", result("foo-1-1.x86_64.rpm"));
      assert.deepEqual([d.added, d.removed], [[], []]);
      assert.deepEqual(
        d.changed.map((c) => [c.before.package, c.after.package]),
        [["b", "a"]]
      );

      // A later package providing foo changes nothing.
      assert.ok(isEmptyPoolDiff(p.setResult("c", result("foo-3-1.x86_64.rpm"))));

      // Wiping the winner hands foo to the next package in order, not the latest build.
      d = p.setResult("a", undefined);
      assert.deepEqual(
        d.changed.map((c) => `${c.before.package}->${c.after.package}/${c.after.filename}`),
        ["a->b/foo-2-1.x86_64.rpm"]
      );

      d = p.setResult("b", undefined);
      assert.deepEqual(view(d.removed), { b: "b/b-1-1.x86_64.rpm" });
      assert.deepEqual(
        d.changed.map((c) => c.after.package),
        ["c"]
      );
      assert.deepEqual(view(p.entries()), { foo: "c/foo-3-1.x86_64.rpm" });
    });

    it("should apply useforbuild changes at once, both ways", () => {
      const p = new IncrementalPool();
      p.setResult("a", result("foo-1-1.x86_64.rpm", "a-1-1.x86_64.rpm"));
      p.setResult("b", result("foo-2-1.x86_64.rpm"));
      let d = p.setUseForBuild("a", false);
      assert.deepEqual(view(d.removed), { a: "a/a-1-1.x86_64.rpm" });
      assert.deepEqual(
        d.changed.map((c) => c.after.package),
        ["b"]
      );
      assert.ok(isEmptyPoolDiff(p.setUseForBuild("a", false)));
      d = p.setUseForBuild("a", true);
      assert.deepEqual(view(d.added), { a: "a/a-1-1.x86_64.rpm" });
      assert.deepEqual(
        d.changed.map((c) => c.after.package),
        ["a"]
      );
    });

    it("should store results of disabled packages without touching the pool until enabled", () => {
      const p = new IncrementalPool({ defaultUseForBuild: false });
      assert.ok(isEmptyPoolDiff(p.setResult("a", result("a-1-1.x86_64.rpm"))));
      assert.equal(p.size, 0);
      assert.deepEqual(view(p.setUseForBuild("a", true).added), { a: "a/a-1-1.x86_64.rpm" });
    });

    it("should ignore useforbuild for _volatile", () => {
      const p = new IncrementalPool();
      p.setResult("_volatile", result("v-1-1.x86_64.rpm"));
      assert.ok(isEmptyPoolDiff(p.setUseForBuild("_volatile", false)));
      assert.equal(p.get("v")!.package, "_volatile");
    });

    it("should report a rebuilt binary under the same file name, and nothing for an identical result", () => {
      const p = new IncrementalPool();
      p.setResult("a", result(bin("a-1-1.x86_64.rpm", { hdrmd5: "1" })));
      assert.ok(isEmptyPoolDiff(p.setResult("a", result(bin("a-1-1.x86_64.rpm", { hdrmd5: "1" })))));
      const d = p.setResult("a", result(bin("a-1-1.x86_64.rpm", { hdrmd5: "2" })));
      assert.equal(d.changed.length, 1);
      assert.equal(d.changed[0]!.after.binary.hdrmd5, "2");
    });

    it("should build the same pool from existing results as computePool", () => {
      const results = new Map([
        ["b", result("foo-2-1.x86_64.rpm")],
        ["a", result("foo-1-1.x86_64.rpm", "a-1-1.noarch.rpm")],
        ["c", result("c-1-1.x86_64.rpm")],
      ]);
      const enabled = (pkg: string) => pkg !== "c";
      const p = IncrementalPool.from(results, enabled);
      assert.deepEqual(p.toMap(), computePool(results, enabled));
      assert.equal(p.useForBuild("c"), false);
    });
  });

  describe("reconstruction property", () => {
    // Names that exercise the ordering rules, binary names that collide across packages.
    const packages = [
      "a",
      "b",
      "foo",
      "foo.12",
      "foo.9",
      "foo:flav",
      "foo-bar",
      "_volatile",
      "_product:x",
      "z.imported_x3",
    ];
    const names = ["foo", "bar", "baz", "qux", "foo-32bit", "lib", "x-debuginfo"];
    const archs = ["x86_64", "noarch", "i586"];

    function randomResult(r: () => number): PackageResult {
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
      const n = Math.floor(r() * 5);
      const binaries: PoolBinary[] = [];
      for (let i = 0; i < n; i++) {
        const name = pick(names);
        const arch = r() < 0.1 ? "src" : pick(archs);
        const version = pick(["1", "1.0", "2", "10", "1~rc1"]);
        const release = pick(["1", "2", "1.1"]);
        const local = `${name}-${version}-${release}.${arch}.rpm`;
        const imported = r() < 0.2 ? pick(["i586", "ppc"]) : undefined;
        const b: PoolBinary = {
          filename: imported ? importFilename(imported, local) : local,
          name,
          version,
          release,
          arch,
          isSource: arch === "src",
        };
        if (r() < 0.3) b.epoch = Math.floor(r() * 3);
        if (imported) b.imported = { fromArch: imported };
        // The build's identity: equal fields, equal hash, so "unchanged" means unchanged.
        b.hdrmd5 = JSON.stringify([b.filename, b.epoch ?? null, r() < 0.8 ? 0 : Math.floor(r() * 3)]);
        binaries.push(b);
      }
      return { binaries };
    }

    function checkDiff(prev: Map<string, PoolEntry>, diff: PoolDiff, next: Map<string, PoolEntry>, at: string) {
      for (const e of diff.added) assert.ok(!prev.has(e.name), `${at}: added ${e.name} was there`);
      for (const e of diff.removed) assert.equal(prev.get(e.name), e, `${at}: removed ${e.name} differs`);
      for (const c of diff.changed) {
        assert.equal(prev.get(c.before.name), c.before, `${at}: changed ${c.before.name} before`);
        assert.notDeepEqual(c.before, c.after, `${at}: changed ${c.before.name} is no change`);
      }
      const applied = new Map(prev);
      applyPoolDiff(applied, diff);
      assert.deepEqual(applied, next, `${at}: previous pool + diff is not the new pool`);
    }

    function runSeed(seed: number, steps: number, options: PoolOptions) {
      const r = rng(seed);
      const results = new Map<string, PackageResult>();
      const flags = new Map<string, boolean>();
      const enabled = (pkg: string) => flags.get(pkg) ?? true;
      const pool = new IncrementalPool(options);
      let prev = new Map<string, PoolEntry>();
      for (let step = 0; step < steps; step++) {
        const pkg = packages[Math.floor(r() * packages.length)]!;
        const op = r();
        let diff: PoolDiff;
        let what: string;
        if (op < 0.55) {
          const res = randomResult(r);
          results.set(pkg, res);
          diff = pool.setResult(pkg, res);
          what = `store ${pkg}`;
        } else if (op < 0.75) {
          results.delete(pkg);
          diff = pool.setResult(pkg, undefined);
          what = `wipe ${pkg}`;
        } else {
          const on = r() < 0.5;
          flags.set(pkg, on);
          diff = pool.setUseForBuild(pkg, on);
          what = `useforbuild ${pkg}=${on}`;
        }
        const at = `seed ${seed} step ${step} (${what})`;
        const expected = computePool(results, enabled, options);
        const got = pool.toMap();
        assert.deepEqual(got, expected, `${at}: incremental pool differs from computePool`);
        checkDiff(prev, diff, got, at);
        prev = got;
      }
      return prev.size;
    }

    it("should keep the incremental pool equal to computePool and its diffs exact, over random histories", () => {
      let nonEmpty = 0;
      for (let seed = 1; seed <= 60; seed++) if (runSeed(seed, 150, {}) > 0) nonEmpty++;
      // The generator must produce real pools, or the property proves nothing.
      assert.ok(nonEmpty > 40, `only ${nonEmpty} histories ended with a non-empty pool`);
    });

    it("should hold with an export filter and maintenance_release ordering too", () => {
      const filter = compileExportFilter("i586");
      const options: PoolOptions = { keepLocal: (f) => filter.targets(f).local, maintenanceRelease: true };
      for (let seed = 1000; seed < 1030; seed++) runSeed(seed, 150, options);
    });
  });
});
