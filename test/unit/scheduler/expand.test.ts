import assert from "node:assert/strict";
import {
  ExpansionCache,
  expand,
  expandBuild,
  getBuild,
  getDeps,
  getPreinstalls,
  ObsBuildCompat,
} from "../../../actors/scheduler/expand.ts";
import type { ExpandConfig, ExpandResult } from "../../../actors/scheduler/expand.ts";
import { ProviderIndex, SlotLists } from "../../../actors/scheduler/provider-index.ts";
import type { BinaryPackage } from "../../../actors/scheduler/provider-index.ts";
import { debVerscmp, rpmDepVerscmp, versionedProvideMatches, OP_BITS } from "../../../actors/scheduler/dep-match.ts";
import { parseRichDep } from "../../../actors/scheduler/rich-dep.ts";
import { generateRepo, randomRequest, Rng } from "../../helpers/gen-repo.ts";
import { InvalidInputError } from "../../../transport/index.ts";

interface PkgSpec {
  v?: string;
  e?: number;
  p?: string[];
  r?: string[];
  c?: string[];
  o?: string[];
  rec?: string[];
}

function pkg(name: string, s: PkgSpec = {}): BinaryPackage {
  return {
    name,
    ...(s.e !== undefined ? { epoch: s.e } : {}),
    version: s.v ?? "1.0",
    release: "1",
    arch: "x86_64",
    provides: s.p ?? [],
    requires: s.r ?? [],
    conflicts: s.c ?? [],
    obsoletes: s.o ?? [],
    recommends: s.rec ?? [],
  };
}

function repo(spec: Record<string, PkgSpec>): BinaryPackage[] {
  return Object.entries(spec).map(([n, s]) => pkg(n, s));
}

function cfg(over: Partial<ExpandConfig> = {}): ExpandConfig {
  return {
    preinstall: [],
    vminstall: [],
    required: [],
    support: [],
    keep: [],
    runscripts: [],
    prefer: [],
    ignore: [],
    conflict: [],
    ignoreRebuild: [],
    expandFlags: [],
    substitute: {},
    fileProvides: {},
    ...over,
  };
}

const ok = (...packages: string[]): ExpandResult => ({ ok: true, packages: [...packages].sort() });
const err = (...errors: string[]): ExpandResult => ({ ok: false, errors });

interface Case {
  title: string;
  pool: Record<string, PkgSpec>;
  config?: Partial<ExpandConfig>;
  deps: string[];
  want: ExpandResult;
  compat?: ObsBuildCompat;
}

const choice: Record<string, PkgSpec> = {
  X: { r: ["cap"] },
  a: { p: ["cap"] },
  b: { p: ["cap"] },
};

const cases: Case[] = [
  // versions
  {
    title: "should pick the provider whose versioned provide meets the requirement",
    pool: { A: { r: ["lib >= 2"] }, l1: { p: ["lib = 1"] }, l2: { p: ["lib = 2.1"] } },
    deps: ["A"],
    want: ok("A", "l2"),
  },
  {
    title: "should match the implicit name = version-release provide",
    pool: { A: { r: ["foo > 1.0"] }, foo: { v: "1.1" } },
    deps: ["A"],
    want: ok("A", "foo"),
  },
  {
    title: "should compare epochs before versions",
    pool: { A: { r: ["foo >= 1:0.1"] }, foo: { v: "9.9" } },
    deps: ["A"],
    want: err("nothing provides foo >= 1:0.1 needed by A"),
  },
  {
    title: "should accept a higher epoch with a lower version",
    pool: { A: { r: ["foo >= 1:2.0"] }, foo: { v: "0.5", e: 2 } },
    deps: ["A"],
    want: ok("A", "foo"),
  },
  {
    title: "should ignore the release when the requirement has none",
    pool: { A: { r: ["foo = 1.0"] }, foo: { v: "1.0" } },
    deps: ["A"],
    want: ok("A", "foo"),
  },
  {
    title: "should let an unversioned provide meet a versioned requirement (rpm)",
    pool: { A: { r: ["cap >= 5"] }, c: { p: ["cap"] } },
    deps: ["A"],
    want: ok("A", "c"),
  },
  {
    title: "should sort ~ versions before releases",
    pool: { A: { r: ["foo >= 2.0"] }, foo: { v: "2.0~rc1" } },
    deps: ["A"],
    want: err("nothing provides foo >= 2.0 needed by A"),
  },
  // choices and Prefer
  {
    title: "should report a choice with the sorted candidates",
    pool: choice,
    deps: ["X"],
    want: err("have choice for cap needed by X: a b"),
  },
  {
    title: "should report a top-level choice without 'needed by'",
    pool: choice,
    deps: ["cap"],
    want: err("have choice for cap: a b"),
  },
  { title: "should follow Prefer", pool: choice, config: { prefer: ["b"] }, deps: ["X"], want: ok("X", "b") },
  {
    title: "should follow a negative Prefer",
    pool: choice,
    config: { prefer: ["-a"] },
    deps: ["X"],
    want: ok("X", "b"),
  },
  {
    title: "should follow an origin Prefer for that origin",
    pool: { ...choice, Y: { r: ["cap"] } },
    config: { prefer: ["X:b"] },
    deps: ["X", "Y"],
    want: ok("X", "Y", "b"),
  },
  {
    title: "should not follow an origin Prefer for another origin",
    pool: { ...choice, Y: { r: ["cap"] } },
    config: { prefer: ["X:b"] },
    deps: ["Y"],
    want: err("have choice for cap needed by Y: a b"),
  },
  {
    title: "should take the first of several preferred providers in Prefer order",
    pool: { ...choice, c: { p: ["cap"] } },
    config: { prefer: ["c", "b"] },
    deps: ["X"],
    want: ok("X", "c"),
  },
  {
    title: "should install a direct dependency by exact name despite other providers",
    pool: { a: { p: ["b"] }, b: {} },
    deps: ["b"],
    want: ok("b"),
  },
  {
    title: "should prefer the first alternative of 'a | b'",
    pool: { X: { r: ["cap | b"] }, a: { p: ["cap"] }, b: {} },
    deps: ["X"],
    want: ok("X", "a"),
  },
  {
    title: "should settle a choice by Recommends of installed packages",
    pool: { ...choice, Y: { rec: ["b"] } },
    deps: ["X", "Y"],
    want: ok("X", "Y", "b"),
  },
  // Ignore
  { title: "should honour Ignore: dep", pool: choice, config: { ignore: ["cap"] }, deps: ["X"], want: ok("X") },
  { title: "should honour Ignore: pkg:dep", pool: choice, config: { ignore: ["X:cap"] }, deps: ["X"], want: ok("X") },
  {
    title: "should not apply Ignore: pkg:dep to other packages",
    pool: choice,
    config: { ignore: ["Y:cap"] },
    deps: ["X"],
    want: err("have choice for cap needed by X: a b"),
  },
  {
    title: "should skip a requirement when a provider is ignored by name",
    pool: { X: { r: ["cap"] }, a: { p: ["cap"], r: ["missing"] } },
    config: { ignore: ["a"] },
    deps: ["X"],
    want: ok("X"),
  },
  {
    title: "should honour -name negatives in the input",
    pool: { X: { r: ["a"] }, a: { r: ["missing"] } },
    deps: ["X", "-a"],
    want: ok("X"),
  },
  {
    title: "should skip ignores with --ignoreignore-- but keep negatives",
    pool: { X: { r: ["a", "b"] }, a: {}, b: {} },
    config: { ignore: ["a"] },
    deps: ["X", "-b", "--ignoreignore--"],
    want: ok("X", "a"),
  },
  // conflicts
  {
    title: "should report Conflict: pairs between installed packages",
    pool: { x: {}, y: {} },
    config: { conflict: ["x:y"] },
    deps: ["x", "y"],
    want: err("x conflicts with y", "y conflicts with x"),
  },
  {
    title: "should report package Conflicts hitting an installed package",
    pool: { A: { c: ["B"] }, B: {} },
    deps: ["A", "B"],
    want: err("A conflicts with B"),
  },
  {
    title: "should report package Obsoletes hitting an installed package",
    pool: { A: { o: ["B < 2"] }, B: {} },
    deps: ["A", "B"],
    want: err("A obsoletes B"),
  },
  {
    title: "should prune a provider that conflicts with an installed package",
    pool: { X: { r: ["cap"] }, Z: {}, a: { p: ["cap"], c: ["Z"] }, b: { p: ["cap"] } },
    deps: ["X", "Z"],
    want: ok("X", "Z", "b"),
  },
  {
    title: "should report a conflict for the only provider",
    pool: { X: { r: ["cap"] }, Z: {}, a: { p: ["cap"], c: ["Z"] } },
    deps: ["X", "Z"],
    want: err("conflict for providers of cap needed by X", "(provider a conflicts with Z)"),
  },
  {
    title: "should treat !name as a conflict",
    pool: { X: { r: ["cap"] }, a: { p: ["cap"] }, b: { p: ["cap"] } },
    deps: ["X", "!a"],
    want: ok("X", "b"),
  },
  {
    title: "should apply a global Conflict: entry",
    pool: { X: { r: ["cap"] }, a: { p: ["cap"] }, b: { p: ["cap"] } },
    config: { conflict: ["a"] },
    deps: ["X"],
    want: ok("X", "b"),
  },
  {
    title: "should ignore a global Conflict: entry in 20210120 compatibility",
    pool: { X: { r: ["cap"] }, a: { p: ["cap"] }, b: { p: ["cap"] } },
    config: { conflict: ["a"] },
    deps: ["X"],
    compat: ObsBuildCompat.V20210120,
    want: err("have choice for cap needed by X: a b"),
  },
  {
    title: "should ignore package conflicts with ExpandFlags: ignoreconflicts",
    pool: { A: { c: ["B"] }, B: {} },
    config: { expandFlags: ["ignoreconflicts"] },
    deps: ["A", "B"],
    want: ok("A", "B"),
  },
  // nothing provides
  {
    title: "should report a missing top-level dependency",
    pool: {},
    deps: ["nosuch"],
    want: err("nothing provides nosuch"),
  },
  {
    title: "should report missing requirements in todo order",
    pool: { X: { r: ["m1", "Y"] }, Y: { r: ["m2"] } },
    deps: ["X"],
    want: err("nothing provides m1 needed by X"),
  },
  // rich dependencies
  {
    title: "should report a choice for an 'or' rich dependency",
    pool: { X: { r: ["(a or b)"] }, a: {}, b: {} },
    deps: ["X"],
    want: err("have choice for (a or b) needed by X: a b"),
  },
  {
    title: "should install both sides of an 'and' rich dependency",
    pool: { X: { r: ["(a and b)"] }, a: {}, b: {} },
    deps: ["X"],
    want: ok("X", "a", "b"),
  },
  {
    title: "should apply an 'if' rich dependency only when its condition is installed",
    pool: { X: { r: ["(a if c)"] }, a: {}, c: {} },
    deps: ["X"],
    want: ok("X"),
  },
  {
    title: "should apply an 'if' rich dependency once its condition is installed",
    pool: { X: { r: ["(a if c)"] }, a: {}, c: {} },
    deps: ["X", "c"],
    want: ok("X", "a", "c"),
  },
  {
    title: "should resolve a rich dependency given directly",
    pool: { a: {}, b: {} },
    config: { prefer: ["b"] },
    deps: ["(a or b)"],
    want: ok("b"),
  },
  {
    title: "should report an unparsable rich dependency",
    pool: { a: {} },
    deps: ["(a or)"],
    want: err("cannot parse dependency (a or)"),
  },
  // file dependencies
  {
    title: "should drop file requirements without FileProvides (rpm)",
    pool: { X: { r: ["/usr/bin/tool"] }, t: { p: ["/usr/bin/tool"] } },
    deps: ["X"],
    want: ok("X"),
  },
  {
    title: "should resolve file requirements through FileProvides",
    pool: { X: { r: ["/usr/bin/tool"] }, t: {} },
    config: { fileProvides: { "/usr/bin/tool": ["t"] } },
    deps: ["X"],
    want: ok("X", "t"),
  },
  {
    title: "should skip unprovided file requirements unless keepfilerequires",
    pool: { X: { r: ["/usr/bin/none"] }, t: {} },
    config: { fileProvides: { "/usr/bin/tool": ["t"] }, expandFlags: ["keepfilerequires"] },
    deps: ["X"],
    want: err("nothing provides /usr/bin/none needed by X"),
  },
  // Debian rules
  {
    title: "should not let unversioned provides meet versioned requirements (deb)",
    pool: { X: { r: ["cap (>= 1)".replace(/[()]/g, "")] }, c: { p: ["cap"] } },
    config: { binaryType: "deb" },
    deps: ["X"],
    want: err("nothing provides cap >= 1 needed by X"),
  },
  // --directdepsend--
  {
    title: "should not treat dependencies after --directdepsend-- as direct",
    pool: { a: { p: ["b"] }, b: {} },
    deps: ["--directdepsend--", "b"],
    want: err("have choice for b: a b"),
  },
];

describe("actors/scheduler/expand", () => {
  describe("expand rules", () => {
    for (const c of cases) {
      it(c.title, () => {
        const index = new ProviderIndex([repo(c.pool)]);
        const r = expand(cfg(c.config), index, c.deps, c.compat ? { compat: c.compat } : {});
        assert.deepEqual(r, c.want);
      });
    }
  });

  describe("layered repository path", () => {
    const layers = [repo({ foo: { v: "2.0", r: ["bar"] } }), repo({ foo: { v: "1.0" }, bar: {}, baz: {} })];

    it("should let the first layer that has a name win", () => {
      const index = new ProviderIndex(layers);
      assert.equal(index.lookup("foo")?.version, "2.0");
      assert.equal(index.layerOf("foo"), 0);
      assert.equal(index.layerOf("baz"), 1);
      assert.deepEqual(expand(cfg(), index, ["foo"]), ok("bar", "foo"));
      assert.deepEqual(expand(cfg(), index, ["foo < 2"]), err("nothing provides foo < 2"));
    });

    it("should reveal the hidden package when the first layer drops it", () => {
      const index = new ProviderIndex(layers);
      index.removePackages(0, ["foo"]);
      assert.equal(index.lookup("foo")?.version, "1.0");
      assert.deepEqual(expand(cfg(), index, ["foo"]), ok("foo"));
      assert.deepEqual(expand(cfg(), index, ["foo < 2"]), ok("foo"));
    });

    it("should update providers on add, replace and replaceLayer", () => {
      const index = new ProviderIndex(layers);
      assert.deepEqual(index.whatProvides("cap"), []);
      index.setPackages(1, [pkg("capper", { p: ["cap = 3"] })]);
      assert.deepEqual(index.whatProvides("cap >= 2"), ["capper"]);
      index.setPackages(1, [pkg("capper", { p: ["cap = 1"] })]);
      assert.deepEqual(index.whatProvides("cap >= 2"), []);
      index.replaceLayer(0, [pkg("other", { p: ["cap = 5"] })]);
      assert.deepEqual(index.whatProvides("cap >= 2"), ["other"]);
      assert.equal(index.lookup("foo")?.version, "1.0");
      assert.deepEqual(index.names(), ["bar", "baz", "capper", "foo", "other"]);
    });

    it("should keep results sorted by name across updates", () => {
      const index = new ProviderIndex([repo({ m: { r: ["z"] }, z: {} })]);
      assert.deepEqual(expand(cfg(), index, ["m"]), ok("m", "z"));
      index.setPackages(0, [pkg("m", { r: ["z", "a", "q"] }), pkg("a"), pkg("q")]);
      assert.deepEqual(expand(cfg(), index, ["m"]), { ok: true, packages: ["a", "m", "q", "z"] });
      index.removePackages(0, ["q"]);
      index.setPackages(0, [pkg("m", { r: ["z", "a", "b"] }), pkg("b")]);
      assert.deepEqual(expand(cfg(), index, ["m"]), { ok: true, packages: ["a", "b", "m", "z"] });
    });

    it("should reject duplicate names in a layer and unknown layers", () => {
      assert.throws(() => new ProviderIndex([[pkg("a"), pkg("a")]]), InvalidInputError);
      const index = new ProviderIndex([[pkg("a")]]);
      assert.throws(() => index.setPackages(3, [pkg("b")]), InvalidInputError);
    });

    it("should report changed names since a version", () => {
      const index = new ProviderIndex(layers);
      const v = index.version;
      index.setPackages(1, [pkg("baz", { p: ["zap"] })]);
      assert.deepEqual([...(index.changedSince(v) ?? [])].sort(), ["baz", "zap"]);
      // foo of layer 1 is hidden: changing it changes nothing visible.
      const v2 = index.version;
      index.setPackages(1, [pkg("foo", { v: "1.5" })]);
      assert.deepEqual([...(index.changedSince(v2) ?? [])], []);
    });
  });

  describe("ProviderIndex.sortByName", () => {
    it("should give any set of visible packages in name order", () => {
      // Enough names for many bitmap words, in an order unlike their names' (and interned late).
      const names = Array.from({ length: 700 }, (_, i) => `p${((i * 7919) % 700).toString(36)}-${i % 3}`);
      const index = new ProviderIndex([names.map((n) => pkg(n))]);
      const slots = new Map(names.map((n) => [n, index.slotOf(n)!] as const));
      const rng = new Rng(7);
      for (let round = 0; round < 50; round++) {
        const pick = names.filter(() => rng.next() < 0.2 + (round % 5) * 0.2);
        const want = [...pick].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        assert.deepEqual(index.sortByName(pick.map((n) => slots.get(n)!)), want);
      }
      // The same set twice in a row: nothing of the previous call is left over.
      const all = names.map((n) => slots.get(n)!);
      assert.equal(index.sortByName(all).length, names.length);
      assert.deepEqual(index.sortByName([slots.get(names[5]!)!]), [names[5]]);
    });
  });

  describe("getDeps / expandBuild / getBuild", () => {
    const pool = repo({
      tool: { r: ["mylib"] },
      mylib: {},
      gcc: {},
      rpm: {},
      sup: {},
      newname: {},
      X: { r: ["oldname"] },
      dep: { r: ["rebuildonly"] },
      rebuildonly: {},
    });

    it("should apply Substitute to direct dependencies only", () => {
      const index = new ProviderIndex([pool]);
      const c = cfg({ substitute: { oldname: ["newname"] } });
      assert.deepEqual(getDeps(c, [], ["oldname"], index), ok("newname"));
      assert.deepEqual(getDeps(c, [], ["X"], index), err("nothing provides oldname needed by X"));
    });

    it("should ignore the package's own subpackages only in Keep mode", () => {
      const index = new ProviderIndex([pool]);
      assert.deepEqual(getDeps(cfg(), ["mylib"], ["tool"], index), ok("mylib", "tool"));
      assert.deepEqual(getDeps(cfg({ keep: ["gcc"] }), ["mylib"], ["tool"], index), ok("tool"));
      assert.deepEqual(getDeps(cfg({ keep: ["mylib"] }), ["mylib"], ["tool"], index), ok("mylib", "tool"));
    });

    it("should drop own subpackages from Required in empty-keep mode", () => {
      const index = new ProviderIndex([pool]);
      assert.deepEqual(getDeps(cfg({ required: ["mylib", "gcc"] }), ["mylib"], [], index), ok("gcc"));
    });

    it("should leave pure Preinstall and Support packages out of getDeps", () => {
      const index = new ProviderIndex([pool]);
      const c = cfg({ preinstall: ["rpm"], support: ["sup"], required: ["gcc"] });
      assert.deepEqual(getDeps(c, [], ["tool"], index), ok("gcc", "mylib", "tool"));
      assert.deepEqual(getDeps(c, [], ["tool", "sup"], index), ok("gcc", "mylib", "sup", "tool"));
      assert.deepEqual(expandBuild(c, [], ["tool"], index), ok("gcc", "mylib", "rpm", "sup", "tool"));
    });

    it("should cut IgnoreRebuild packages from getDeps", () => {
      const index = new ProviderIndex([pool]);
      assert.deepEqual(getDeps(cfg({ ignoreRebuild: ["rebuildonly"] }), [], ["dep"], index), ok("dep"));
      assert.deepEqual(getDeps(cfg(), [], ["dep"], index), ok("dep", "rebuildonly"));
    });

    it("should flag the job's packages like the scheduler", () => {
      const index = new ProviderIndex([pool]);
      const c = cfg({ preinstall: ["rpm"], support: ["sup"], required: ["gcc"], runscripts: ["rpm"] });
      const r = getBuild(c, [], ["tool"], index);
      assert.ok(r.ok);
      const flags = Object.fromEntries(r.packages.map((p) => [p.name, p]));
      assert.deepEqual(
        r.packages.map((p) => p.name),
        ["rpm", "gcc", "mylib", "tool", "sup"]
      );
      assert.deepEqual(flags.rpm, { name: "rpm", preinstall: true, vminstall: false, runscripts: true, notmeta: true });
      assert.equal(flags.sup?.notmeta, true);
      assert.equal(flags.tool?.notmeta, false);
      assert.equal(flags.gcc?.preinstall, false);
    });

    it("should fail on missing preinstalls", () => {
      const index = new ProviderIndex([pool]);
      const r = getBuild(cfg({ preinstall: ["rpm", "zz", "aa"], expandFlags: [] }), [], ["tool"], index);
      assert.deepEqual(r, err("nothing provides zz", "nothing provides aa"));
      const c = cfg({ vminstall: ["kernel"] });
      assert.deepEqual(getBuild(c, [], ["tool"], index), err("missing pre/vminstalls: kernel"));
    });

    it("should expand preinstalls with ExpandFlags: preinstallexpand", () => {
      const index = new ProviderIndex([pool]);
      const c = cfg({ preinstall: ["tool"], expandFlags: ["preinstallexpand"] });
      assert.deepEqual(getPreinstalls(c, index), ok("mylib", "tool"));
      const bad = cfg({ preinstall: ["nosuch"], expandFlags: ["preinstallexpand"] });
      assert.deepEqual(getDeps(bad, [], ["tool"], index), err("preinstalls: nothing provides nosuch"));
    });

    it("should expand prereqs after --directdepsend--", () => {
      const index = new ProviderIndex([pool]);
      const r = getBuild(cfg(), [], ["tool"], index, { prereqs: ["gcc", "/bin/sh"] });
      assert.ok(r.ok);
      assert.deepEqual(r.packages.map((p) => p.name).sort(), ["gcc", "mylib", "tool"]);
      assert.equal(r.packages.find((p) => p.name === "gcc")?.notmeta, true);
    });
  });

  describe("ExpansionCache", () => {
    it("should reuse results while nothing relevant changed and recompute otherwise", () => {
      const index = new ProviderIndex([repo({ X: { r: ["cap"] }, a: { p: ["cap"] }, u: {} })]);
      const cache = new ExpansionCache();
      const c = cfg();
      assert.deepEqual(expand(c, index, ["X"], { cache }), ok("X", "a"));
      assert.deepEqual(expand(c, index, ["X"], { cache }), ok("X", "a"));
      assert.equal(cache.hits, 1);
      index.setPackages(0, [pkg("u", { v: "2" })]);
      assert.deepEqual(expand(c, index, ["X"], { cache }), ok("X", "a"));
      assert.equal(cache.hits, 2);
      index.setPackages(0, [pkg("b", { p: ["cap"] })]);
      assert.deepEqual(expand(c, index, ["X"], { cache }), err("have choice for cap needed by X: a b"));
      assert.equal(cache.misses, 2);
    });

    it("should notice changes of what installed packages depend on, levels down, and of reused slots", () => {
      const index = new ProviderIndex([
        repo({ X: { r: ["a"] }, a: { r: ["libb"] }, b: { p: ["libb"] }, c: {}, u: {} }),
      ]);
      const cache = new ExpansionCache();
      const c = cfg();
      const both = (): ExpandResult => {
        const cached = expand(c, index, ["X"], { cache });
        assert.deepEqual(cached, expand(c, index, ["X"]));
        return cached;
      };
      assert.deepEqual(both(), ok("X", "a", "b"));
      // b, two levels down, now needs c.
      index.setPackages(0, [pkg("b", { p: ["libb"], r: ["c"] })]);
      assert.deepEqual(both(), ok("X", "a", "b", "c"));
      // A package nothing here looks at: the cached result stands.
      const misses = cache.misses;
      index.setPackages(0, [pkg("u", { v: "2" })]);
      assert.deepEqual(both(), ok("X", "a", "b", "c"));
      assert.equal(cache.misses, misses);
      // c goes; then comes back needing d, in a slot another package may have had.
      index.removePackages(0, ["c"]);
      assert.deepEqual(both(), err("nothing provides c needed by b"));
      index.setPackages(0, [pkg("d"), pkg("c", { r: ["d"] })]);
      assert.deepEqual(both(), ok("X", "a", "b", "c", "d"));
      index.setPackages(0, [pkg("d", { r: ["libe"] }), pkg("e", { p: ["libe"] })]);
      assert.deepEqual(both(), ok("X", "a", "b", "c", "d", "e"));
      // Many replacements: what the index remembers of replaced packages is dropped on the way.
      const libs = Array.from({ length: 8 }, (_, i) => pkg(`l${i}`, { p: [`libl${i}`] }));
      index.setPackages(0, [...libs, pkg("extra")]);
      for (let round = 0; round < 400; round++) {
        const needs = libs.filter((_, i) => (round >> i) & 1).map((l) => l.provides[0]!);
        index.setPackages(0, [pkg("e", { p: ["libe"], r: needs, v: `${round}` })]);
        both();
        // A library below e changes what it needs.
        const i = round % 8;
        index.setPackages(0, [pkg(`l${i}`, { p: [`libl${i}`], r: round % 3 ? ["extra"] : [], v: `${round}` })]);
        both();
      }
    });

    it("should give the same results as uncached expansion under random updates", () => {
      const gen = generateRepo({ seed: 7, names: 120, layers: 2 });
      const index = new ProviderIndex(gen.layers);
      const cache = new ExpansionCache();
      const rng = new Rng(99);
      const requests = Array.from({ length: 30 }, () => randomRequest(gen, rng));
      for (let round = 0; round < 12; round++) {
        for (const req of requests) {
          assert.deepEqual(expand(gen.config, index, req, { cache }), expand(gen.config, index, req));
          assert.deepEqual(
            getDeps(gen.config, [req[0]!], req, index, { cache }),
            getDeps(gen.config, [req[0]!], req, index)
          );
        }
        const victim = rng.pick(gen.layers[1]!);
        const op = round % 3;
        if (op === 0) index.setPackages(1, [{ ...victim, requires: rng.chance(0.5) ? [] : [rng.pick(gen.names)] }]);
        else if (op === 1) index.setPackages(0, [{ ...victim, provides: [rng.pick(gen.capabilities)] }]);
        else index.removePackages(0, [rng.pick(gen.names)]);
      }
      assert.ok(cache.hits > 0 && cache.misses > requests.length * 2);
    });

    it("should notice changes made before an entry's filter is made (several between lookups)", () => {
      // A filter is made when first asked for, from the index as it is then: up to three changes
      // (replacements, removals, new packages in reused slots) land before each lookup.
      const gen = generateRepo({ seed: 21, names: 120, layers: 2 });
      const index = new ProviderIndex(gen.layers);
      const cache = new ExpansionCache();
      const rng = new Rng(5);
      const requests = Array.from({ length: 30 }, () => randomRequest(gen, rng));
      let changed = 0;
      for (let round = 0; round < 15; round++) {
        for (const req of requests) {
          assert.deepEqual(
            getDeps(gen.config, [req[0]!], req, index, { cache }),
            getDeps(gen.config, [req[0]!], req, index),
            `round ${round}`
          );
        }
        for (let k = rng.int(3) + 1; k > 0; k--) {
          const victim = rng.pick(gen.layers[1]!);
          switch (rng.int(4)) {
            case 0:
              index.setPackages(1, [{ ...victim, requires: rng.chance(0.5) ? [] : [rng.pick(gen.names)] }]);
              break;
            case 1:
              index.setPackages(0, [{ ...victim, provides: [rng.pick(gen.capabilities)] }]);
              break;
            case 2:
              index.removePackages(rng.int(2), [rng.pick(gen.names)]);
              break;
            default:
              index.setPackages(0, [{ ...victim, name: `new${round}-${k}`, requires: [rng.pick(gen.names)] }]);
          }
          changed++;
        }
      }
      assert.ok(changed > 20 && cache.hits > 0 && cache.misses > requests.length * 2);
    });
  });

  describe("SlotLists", () => {
    it("should keep every slot's list through replacements, drops and compactions", () => {
      const lists = new SlotLists();
      const model = new Map<number, number[]>();
      const rng = new Rng(11);
      const dataArrays = new Set<Int32Array>();
      for (let step = 0; step < 20_000; step++) {
        const s = rng.int(300);
        if (rng.chance(0.2)) {
          lists.drop(s);
          model.delete(s);
        } else {
          const values = Array.from({ length: rng.int(40) }, () => rng.int(1_000_000));
          lists.set(s, values);
          model.set(s, values);
        }
        dataArrays.add(lists.data);
        if (step % 997 === 0 || step === 19_999) {
          for (let t = 0; t < 300; t++) {
            const want = model.get(t);
            assert.equal(lists.has(t), want !== undefined, `slot ${t} at step ${step}`);
            if (!want) continue;
            const at = lists.start[t]!;
            assert.deepEqual([...lists.data.subarray(at, at + lists.count[t]!)], want, `slot ${t} at step ${step}`);
          }
        }
      }
      // Replacements leave garbage; the array was compacted rather than grown without bound.
      assert.ok(dataArrays.size > 1);
      assert.ok(lists.data.length <= 4 * 300 * 40);
    });
  });

  describe("determinism", () => {
    it("should not depend on the order of packages in a layer", () => {
      const gen = generateRepo({ seed: 3, names: 150 });
      const shuffled = gen.layers.map((l) => [...l].reverse());
      const a = new ProviderIndex(gen.layers);
      const b = new ProviderIndex(shuffled);
      const rng = new Rng(5);
      for (let i = 0; i < 40; i++) {
        const req = randomRequest(gen, rng);
        assert.deepEqual(expand(gen.config, a, req), expand(gen.config, b, req));
      }
    });
  });
});

describe("actors/scheduler/dep-match", () => {
  it("should compare rpm EVRs in dependency-test mode", () => {
    const table: [string, string, number][] = [
      ["1.0", "1.0-1", 0],
      ["1.0-2", "1.0-1", 1],
      ["1:0.1", "2.0", 1],
      ["2.0~rc1", "2.0", -1],
      ["1.0^post", "1.0", 1],
      ["1.10", "1.9", 1],
      ["", "5", 0],
    ];
    for (const [a, b, want] of table) assert.equal(rpmDepVerscmp(a, b), want, `${a} vs ${b}`);
  });

  it("should compare Debian versions", () => {
    const table: [string, string, number][] = [
      ["1.0~rc1", "1.0", -1],
      ["1.0", "1.0+b1", -1],
      ["1:1.0", "2.0", 1],
      ["1.0-1", "1.0-2", -1],
      ["1.0a", "1.0", 1],
    ];
    for (const [a, b, want] of table) assert.equal(debVerscmp(a, b), want, `${a} vs ${b}`);
  });

  it("should match operator ranges like obs-build", () => {
    const m = (p: string, pv: string, r: string, rv: string): boolean =>
      versionedProvideMatches(OP_BITS[p]!, pv, OP_BITS[r]!, rv, false);
    assert.equal(m("=", "2", ">=", "1"), true);
    assert.equal(m("=", "1", ">", "1"), false);
    assert.equal(m("<", "3", ">", "1"), true);
    assert.equal(m("<", "1", ">", "1"), false);
    assert.equal(m(">", "5", ">", "1"), true);
    assert.equal(m("<=", "1", ">=", "1"), true);
  });
});

describe("actors/scheduler/rich-dep", () => {
  it("should parse chained, nested and else forms", () => {
    assert.deepEqual(parseRichDep("(a and b and c)"), {
      op: 1,
      a: { op: 0, dep: "a" },
      b: { op: 1, a: { op: 0, dep: "b" }, b: { op: 0, dep: "c" } },
    });
    assert.deepEqual(parseRichDep("(a >= 1 if (b or c) else d)"), {
      op: 3,
      a: { op: 0, dep: "a >= 1" },
      b: { op: 2, a: { op: 0, dep: "b" }, b: { op: 0, dep: "c" } },
      c: { op: 0, dep: "d" },
    });
    assert.deepEqual(parseRichDep("(perl(Foo::Bar) or b)")?.op, 2);
  });

  it("should reject mixed chains and stray else", () => {
    assert.equal(parseRichDep("(a and b or c)"), undefined);
    assert.equal(parseRichDep("(a or b else c)"), undefined);
    assert.equal(parseRichDep("(a or b) x"), undefined);
  });
});
