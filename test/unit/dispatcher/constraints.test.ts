import assert from "node:assert/strict";
import {
  applyOverwrites,
  constraintsForJob,
  effectiveConstraints,
  explainNoWorker,
  extractPrjconfConstraintLines,
  extractRecipeConstraintLines,
  mergeConstraints,
  parseConstraintLines,
  parseConstraintsXml,
  sizeToMb,
  UNMERGEABLE_SANDBOX,
  workerSatisfies,
  type Constraints,
  type WorkerStatus,
} from "../../../actors/dispatcher/constraints.ts";
import { canBuildArch, cando, type WorkerCapabilities } from "../../../actors/dispatcher/worker-info.ts";
import { ErrorCode } from "../../../transport/index.ts";

const FULL = `<?xml version="1.0" encoding="UTF-8"?>
<constraints>
  <hostlabel exclude="false">HIGHMEM</hostlabel>
  <hostlabel exclude="true">SLOW</hostlabel>
  <sandbox>kvm</sandbox>
  <linux><version><min>3.0</min><max>6.99</max></version><flavor>default</flavor></linux>
  <hardware>
    <cpu><flag>sse4_2</flag><flag exclude="true">avx512f</flag></cpu>
    <processors>4</processors><jobs>4</jobs>
    <disk><size unit="G">16</size></disk>
    <memory><size unit="G">8</size></memory>
    <memoryperjob><size unit="M">1500</size></memoryperjob>
    <physicalmemory><size unit="G">4</size></physicalmemory>
  </hardware>
  <overwrite>
    <conditions><arch>x86_64</arch><package>gcc14</package></conditions>
    <hardware><memory><size unit="G">16</size></memory></hardware>
  </overwrite>
</constraints>`;

function worker(over: Partial<WorkerCapabilities> = {}): WorkerCapabilities {
  return {
    workerId: "w1",
    hostArch: "x86_64",
    buildArchs: ["x86_64", "i586", "i686"],
    hostLabels: [],
    sandbox: "bwrap",
    linux: { version: "6.8.0", flavor: "default" },
    cpuFlags: ["sse4_2", "avx2"],
    processors: 8,
    jobs: 2,
    memoryMb: 8192,
    swapMb: 2048,
    diskMb: 100_000,
    ...over,
  };
}

function rejects(fn: () => unknown, pattern: RegExp, code: string = ErrorCode.InvalidInput): void {
  assert.throws(fn, (err: Error & { code?: string }) => {
    assert.equal(err.code, code, `error code of: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe("actors/dispatcher/constraints", () => {
  describe("parseConstraintsXml", () => {
    it("should parse every element of a full _constraints file", () => {
      const c = parseConstraintsXml(FULL);
      assert.deepEqual(c, {
        hostlabels: [
          { value: "HIGHMEM", exclude: false },
          { value: "SLOW", exclude: true },
        ],
        sandbox: { value: "kvm", exclude: false },
        linux: { flavor: "default", version: { min: "3.0", max: "6.99" } },
        hardware: {
          cpuFlags: [
            { value: "sse4_2", exclude: false },
            { value: "avx512f", exclude: true },
          ],
          processors: 4,
          jobs: 4,
          disk: { amount: 16, unit: "G" },
          memory: { amount: 8, unit: "G" },
          memoryperjob: { amount: 1500, unit: "M" },
          physicalmemory: { amount: 4, unit: "G" },
        },
        overwrites: [
          {
            conditions: { arch: ["x86_64"], package: ["gcc14"] },
            set: { hardware: { memory: { amount: 16, unit: "G" } } },
          },
        ],
      });
    });

    it("should read a size without unit as bytes, as OBS does", () => {
      const c = parseConstraintsXml(
        "<constraints><hardware><disk><size>1073741824</size></disk></hardware></constraints>"
      );
      assert.equal(sizeToMb(c.hardware!.disk!), 1024);
    });

    it("should convert every size unit to MiB", () => {
      assert.equal(sizeToMb({ amount: 2048, unit: "K" }), 2);
      assert.equal(sizeToMb({ amount: 3, unit: "M" }), 3);
      assert.equal(sizeToMb({ amount: 1.5, unit: "G" }), 1536);
      assert.equal(sizeToMb({ amount: 1, unit: "T" }), 1024 * 1024);
      assert.equal(sizeToMb({ amount: 1, unit: "P" }), 1024 ** 3);
    });

    it("should refuse unknown elements, naming them", () => {
      rejects(() => parseConstraintsXml("<constraints><hardware><gpu>1</gpu></hardware></constraints>"), /<gpu>/);
      rejects(() => parseConstraintsXml("<constraints><frobnicate/></constraints>"), /<frobnicate>/);
    });

    it("should refuse unknown attributes", () => {
      rejects(() => parseConstraintsXml('<constraints><hostlabel weight="2">X</hostlabel></constraints>'), /weight/);
      rejects(() => parseConstraintsXml('<constraints><hardware><jobs x="1">2</jobs></hardware></constraints>'), /'x'/);
    });

    it("should refuse a DOCTYPE (no entity expansion)", () => {
      const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
        <constraints><hostlabel>&lol2;</hostlabel></constraints>`;
      rejects(() => parseConstraintsXml(bomb), /DOCTYPE/);
    });

    it("should refuse entity references in values", () => {
      rejects(() => parseConstraintsXml("<constraints><hostlabel>A&amp;B</hostlabel></constraints>"), /entity/);
    });

    it("should refuse a file over the size limit", () => {
      const big = `<constraints>${"<hostlabel>X</hostlabel>".repeat(100)}</constraints>`;
      rejects(() => parseConstraintsXml(big, { maxBytes: 1000 }), /limit of 1000/, ErrorCode.TooLarge);
      assert.equal(parseConstraintsXml(big, { maxBytes: 10_000 }).hostlabels!.length, 100);
    });

    it("should refuse malformed XML and a wrong root", () => {
      rejects(() => parseConstraintsXml("<constraints><hardware></constraints>"), /well-formed/);
      rejects(() => parseConstraintsXml("<worker/>"), /<constraints>/);
      rejects(() => parseConstraintsXml("<constraints/><constraints/>"), /one root/);
    });

    it("should validate sizes, units and counts", () => {
      const hw = (inner: string) => `<constraints><hardware>${inner}</hardware></constraints>`;
      rejects(() => parseConstraintsXml(hw('<disk><size unit="X">1</size></disk>')), /unknown size unit 'X'/);
      rejects(() => parseConstraintsXml(hw('<disk><size unit="g">1</size></disk>')), /unknown size unit 'g'/);
      rejects(() => parseConstraintsXml(hw('<memory><size unit="G">lots</size></memory>')), /must be a number/);
      rejects(() => parseConstraintsXml(hw('<memory><size unit="G">-1</size></memory>')), /must be a number/);
      rejects(() => parseConstraintsXml(hw("<disk/>")), /needs a <size>/);
      rejects(() => parseConstraintsXml(hw("<processors>four</processors>")), /whole number/);
      rejects(() => parseConstraintsXml(hw("<jobs>1.5</jobs>")), /whole number/);
    });

    it("should refuse repeated single elements, empty values, bad exclude and stray text", () => {
      rejects(
        () => parseConstraintsXml("<constraints><sandbox>kvm</sandbox><sandbox>xen</sandbox></constraints>"),
        /only once/
      );
      rejects(() => parseConstraintsXml("<constraints><hostlabel/></constraints>"), /<hostlabel> is empty/);
      rejects(() => parseConstraintsXml('<constraints><hostlabel exclude="yes">A</hostlabel></constraints>'), /'yes'/);
      rejects(
        () => parseConstraintsXml("<constraints><hardware>lots</hardware></constraints>"),
        /must not contain text/
      );
    });
  });

  describe("constraint lines", () => {
    it("should parse OBS's line format into the same structure as XML", () => {
      const c = parseConstraintLines([
        "hardware:disk:size unit=G 16",
        "hardware:memoryperjob:size unit=M 1500",
        "hostlabel HIGHMEM",
        "sandbox kvm",
        "linux:version:min 3.0",
        "linux:flavor default",
        "hardware:cpu:flag sse4_2",
        "hardware:cpu:flag exclude=true avx512f",
        "hardware:processors 4",
      ]);
      assert.deepEqual(c, {
        hostlabels: [{ value: "HIGHMEM", exclude: false }],
        sandbox: { value: "kvm", exclude: false },
        linux: { flavor: "default", version: { min: "3.0" } },
        hardware: {
          cpuFlags: [
            { value: "sse4_2", exclude: false },
            { value: "avx512f", exclude: true },
          ],
          processors: 4,
          disk: { amount: 16, unit: "G" },
          memoryperjob: { amount: 1500, unit: "M" },
        },
      });
    });

    it("should make one list entry per word and let later single values override", () => {
      const c = parseConstraintLines([
        "hostlabel exclude=true A B",
        "hostlabel C",
        "hardware:processors 4",
        "hardware:processors 8",
        "hardware:disk:size unit=G 16",
        "hardware:disk:size 1024",
      ]);
      assert.deepEqual(c.hostlabels, [
        { value: "A", exclude: true },
        { value: "B", exclude: true },
        { value: "C", exclude: false },
      ]);
      assert.equal(c.hardware!.processors, 8);
      // A line restates the attributes of its element, so the unit falls back to bytes.
      assert.deepEqual(c.hardware!.disk, { amount: 1024, unit: "B" });
    });

    it("should delete with 'name=' and refuse adding a second single value with 'name+'", () => {
      const c = parseConstraintLines(["hostlabel A", "hardware:jobs 2", "hostlabel=", "hostlabel B"]);
      assert.deepEqual(c.hostlabels, [{ value: "B", exclude: false }]);
      rejects(() => parseConstraintLines(["hardware:jobs 2", "hardware:jobs+ 3"]), /only once/);
    });

    it("should build overwrite blocks from lines", () => {
      const c = parseConstraintLines(["overwrite:conditions:arch x86_64 aarch64", "overwrite:hardware:jobs 4"]);
      assert.deepEqual(c.overwrites, [
        { conditions: { arch: ["x86_64", "aarch64"], package: [] }, set: { hardware: { jobs: 4 } } },
      ]);
    });

    it("should refuse bad lines, naming the line and the problem", () => {
      rejects(() => parseConstraintLines(["hardware:gpu 1"]), /line 'hardware:gpu 1': unknown element 'gpu'/);
      rejects(() => parseConstraintLines(["hardware:disk 16"]), /'disk' takes no value/);
      rejects(() => parseConstraintLines(["hardware:processors:x 1"]), /no sub-elements/);
      rejects(() => parseConstraintLines(["hardware:disk:size foo=G 1"]), /no attribute 'foo'/);
      rejects(() => parseConstraintLines(["hardware:disk:size unit=Q 1"]), /unknown size unit 'Q'/);
    });

    it("should accept and drop the recipe and prjconf prefixes", () => {
      const spec =
        "Name: x\n#!BuildConstraint: hardware:disk:size unit=G 16\n#!BuildIgnore: foo\n#!buildconstraint: hostlabel BIG\n";
      const lines = extractRecipeConstraintLines(spec);
      assert.deepEqual(lines, ["hardware:disk:size unit=G 16", "hostlabel BIG"]);
      const prjconf = "Prefer: a\nConstraint: hardware:jobs 4\n  constraint:   sandbox kvm  \n";
      assert.deepEqual(extractPrjconfConstraintLines(prjconf), ["hardware:jobs 4", "sandbox kvm"]);
      assert.deepEqual(parseConstraintLines(["Constraint: hardware:jobs 4"]), { hardware: { jobs: 4 } });
      assert.deepEqual(parseConstraintLines(["#!BuildConstraint: hardware:jobs 4"]), { hardware: { jobs: 4 } });
    });
  });

  describe("mergeConstraints", () => {
    it("should let the recipe override _constraints and _constraints override the prjconf", () => {
      const prjconf = parseConstraintLines([
        "hardware:jobs 1",
        "hardware:processors 2",
        "hardware:disk:size unit=G 10",
        "hostlabel P",
      ]);
      const file = parseConstraintsXml(
        "<constraints><hostlabel>F</hostlabel><hardware><processors>4</processors><disk><size unit='G'>20</size></disk></hardware></constraints>"
      );
      const recipe = parseConstraintLines(["hardware:disk:size unit=G 30", "hostlabel R"]);
      const m = mergeConstraints(prjconf, file, recipe);
      assert.equal(m.hardware!.jobs, 1);
      assert.equal(m.hardware!.processors, 4);
      assert.deepEqual(m.hardware!.disk, { amount: 30, unit: "G" });
      assert.deepEqual(
        m.hostlabels!.map((l) => l.value),
        ["P", "F", "R"]
      );
    });

    it("should append cpu flags, override linux bounds one by one, and override memoryperjob", () => {
      const a = parseConstraintLines(["hardware:cpu:flag sse2", "linux:version:min 4.0", "linux:version:max 6.0"]);
      const b = parseConstraintLines([
        "hardware:cpu:flag avx",
        "linux:version:max 7.0",
        "hardware:memoryperjob:size unit=G 2",
      ]);
      const c = parseConstraintLines(["hardware:memoryperjob:size unit=G 3"]);
      const m = mergeConstraints(a, undefined, b, c);
      assert.deepEqual(
        m.hardware!.cpuFlags!.map((f) => f.value),
        ["sse2", "avx"]
      );
      assert.deepEqual(m.linux, { version: { min: "4.0", max: "7.0" } });
      assert.deepEqual(m.hardware!.memoryperjob, { amount: 3, unit: "G" });
    });

    it("should combine include and exclude sandboxes as OBS does", () => {
      const sb = (value: string, exclude = false): Constraints => ({ sandbox: { value, exclude } });
      assert.deepEqual(mergeConstraints(sb("kvm"), sb("xen")).sandbox, { value: "xen", exclude: false });
      assert.deepEqual(mergeConstraints(sb("chroot", true), sb("lxc", true)).sandbox, { value: "lxc", exclude: true });
      assert.deepEqual(mergeConstraints(sb("kvm"), sb("chroot", true)).sandbox, { value: "kvm", exclude: false });
      assert.deepEqual(mergeConstraints(sb("chroot", true), sb("secure")).sandbox, { value: "secure", exclude: false });
      assert.deepEqual(mergeConstraints(sb("secure"), sb("kvm", true)).sandbox, {
        value: UNMERGEABLE_SANDBOX,
        exclude: false,
      });
      assert.deepEqual(mergeConstraints(sb("kvm", true), sb("kvm")).sandbox, {
        value: UNMERGEABLE_SANDBOX,
        exclude: false,
      });
      assert.deepEqual(
        workerSatisfies(worker({ sandbox: "kvm" }), mergeConstraints(sb("secure"), sb("kvm", true)), "x86_64"),
        {
          ok: false,
          blocking: "sandbox",
        }
      );
    });

    it("should return the empty constraints for no sources", () => {
      assert.deepEqual(mergeConstraints(), {});
      assert.deepEqual(mergeConstraints(undefined, undefined), {});
    });
  });

  describe("overwrite blocks", () => {
    const file = parseConstraintsXml(FULL);

    it("should apply for the listed arch and package, also by the name up to the first dot", () => {
      assert.deepEqual(applyOverwrites(file, { arch: "x86_64", package: "gcc14" }).hardware!.memory, {
        amount: 16,
        unit: "G",
      });
      assert.deepEqual(applyOverwrites(file, { arch: "x86_64", package: "gcc14.SUSE_2024_12" }).hardware!.memory, {
        amount: 16,
        unit: "G",
      });
      assert.deepEqual(applyOverwrites(file, { arch: "aarch64", package: "gcc14" }).hardware!.memory, {
        amount: 8,
        unit: "G",
      });
      assert.deepEqual(applyOverwrites(file, { arch: "x86_64", package: "gcc14-x" }).hardware!.memory, {
        amount: 8,
        unit: "G",
      });
      assert.equal(applyOverwrites(file, { arch: "x86_64", package: "gcc14" }).overwrites, undefined);
      // The rest of the base survives the overwrite.
      assert.equal(applyOverwrites(file, { arch: "x86_64", package: "gcc14" }).hardware!.processors, 4);
    });

    it("should never apply a block without conditions and always one with empty conditions", () => {
      const c = parseConstraintsXml(
        "<constraints><hardware><jobs>1</jobs></hardware><overwrite><hardware><jobs>2</jobs></hardware></overwrite>" +
          "<overwrite><conditions/><hostlabel>X</hostlabel></overwrite></constraints>"
      );
      const r = applyOverwrites(c, { arch: "x86_64", package: "p" });
      assert.equal(r.hardware!.jobs, 1);
      assert.deepEqual(r.hostlabels, [{ value: "X", exclude: false }]);
    });

    it("should replace lists rather than append, and apply matching blocks in order", () => {
      const c = parseConstraintsXml(
        "<constraints><hostlabel>A</hostlabel><hostlabel>B</hostlabel>" +
          "<overwrite><conditions><arch>x86_64</arch></conditions><hostlabel>C</hostlabel><linux><flavor>rt</flavor></linux></overwrite>" +
          "<overwrite><conditions><package>p</package></conditions><linux><flavor>default</flavor></linux></overwrite></constraints>"
      );
      const r = applyOverwrites(c, { arch: "x86_64", package: "p" });
      assert.deepEqual(r.hostlabels, [{ value: "C", exclude: false }]);
      assert.deepEqual(r.linux, { flavor: "default" });
    });

    it("should apply the _constraints overwrites before merging, so the recipe still wins", () => {
      const recipe = parseConstraintLines(["hardware:memory:size unit=G 12"]);
      const prjconf = parseConstraintLines(["hardware:memory:size unit=G 2", "hardware:jobs 1"]);
      const target = { arch: "x86_64", package: "gcc14" };
      assert.deepEqual(effectiveConstraints({ prjconf, file }, target).hardware!.memory, { amount: 16, unit: "G" });
      assert.deepEqual(effectiveConstraints({ prjconf, file, recipe }, target).hardware!.memory, {
        amount: 12,
        unit: "G",
      });
      assert.equal(effectiveConstraints({ prjconf }, target).hardware!.jobs, 1);
    });

    it("should resolve a job's raw sources in one call", () => {
      const c = constraintsForJob(
        { prjconf: ["hardware:disk:size unit=G 5"], file: FULL, recipe: ["hostlabel EXTRA"] },
        { arch: "x86_64", package: "gcc14" }
      );
      assert.deepEqual(c.hardware!.memory, { amount: 16, unit: "G" });
      assert.deepEqual(c.hardware!.disk, { amount: 16, unit: "G" });
      assert.deepEqual(
        c.hostlabels!.map((l) => l.value),
        ["HIGHMEM", "SLOW", "EXTRA"]
      );
      assert.deepEqual(constraintsForJob({ prjconf: [], recipe: [] }, { arch: "x86_64", package: "x" }), {});
      rejects(
        () => constraintsForJob({ file: "<constraints><bad/></constraints>" }, { arch: "x86_64", package: "x" }),
        /<bad>/
      );
    });
  });

  describe("workerSatisfies", () => {
    const c = (lines: string[]) => parseConstraintLines(lines);
    const fails = (w: WorkerCapabilities, lines: string[], blocking: string, arch = "x86_64") =>
      assert.deepEqual(workerSatisfies(w, c(lines), arch), { ok: false, blocking });
    const passes = (w: WorkerCapabilities, lines: string[], arch = "x86_64") =>
      assert.deepEqual(workerSatisfies(w, c(lines), arch), { ok: true });

    it("should accept any worker of the arch for no constraints", () => {
      assert.deepEqual(workerSatisfies(worker(), undefined, "x86_64"), { ok: true });
      assert.deepEqual(workerSatisfies(worker(), {}, "i586"), { ok: true });
      assert.deepEqual(workerSatisfies(worker(), {}, "aarch64"), { ok: false, blocking: "arch" });
    });

    it("should check host labels, present and excluded", () => {
      passes(worker({ hostLabels: ["HIGHMEM", "FAST"] }), ["hostlabel HIGHMEM"]);
      fails(worker({ hostLabels: ["FAST"] }), ["hostlabel HIGHMEM"], "hostlabel");
      fails(worker({ hostLabels: ["SLOW"] }), ["hostlabel exclude=true SLOW"], "hostlabel");
      passes(worker({ hostLabels: [] }), ["hostlabel exclude=true SLOW"]);
    });

    it("should check the sandbox: equal, secure, excluded", () => {
      passes(worker({ sandbox: "bwrap" }), ["sandbox bwrap"]);
      fails(worker({ sandbox: "bwrap" }), ["sandbox kvm"], "sandbox");
      passes(worker({ sandbox: "kvm" }), ["sandbox secure"]);
      fails(worker({ sandbox: "bwrap" }), ["sandbox secure"], "sandbox");
      fails(worker({ sandbox: "chroot" }), ["sandbox exclude=true chroot"], "sandbox");
      passes(worker({ sandbox: "bwrap" }), ["sandbox exclude=true chroot"]);
      const bwrapSecure = { secureSandboxes: new Set(["bwrap"]) };
      assert.deepEqual(workerSatisfies(worker(), c(["sandbox secure"]), "x86_64", bwrapSecure), { ok: true });
    });

    it("should compare linux versions with rpm's version comparison", () => {
      passes(worker({ linux: { version: "5.14.21-150500.55" } }), [
        "linux:version:min 5.3",
        "linux:version:max 5.14.22",
      ]);
      // version-release split as Build::Rpm::verscmp: no release sorts before a release …
      fails(worker({ linux: { version: "5.14.21-150500.55" } }), ["linux:version:max 5.14.21"], "linux:version:max");
      // … and the version decides before the release does.
      fails(worker({ linux: { version: "6.4.0-150600.23" } }), ["linux:version:min 6.4.0.1"], "linux:version:min");
      fails(worker({ linux: { version: "5.9.1" } }), ["linux:version:min 5.10"], "linux:version:min");
      fails(worker({ linux: { version: "6.10" } }), ["linux:version:max 6.9"], "linux:version:max");
      passes(worker({ linux: { version: "6.9" } }), ["linux:version:min 6.9", "linux:version:max 6.9"]);
      fails(worker({ linux: { version: "6.9", flavor: "rt" } }), ["linux:flavor default"], "linux:flavor");
      fails(worker({ linux: { version: "6.9" } }), ["linux:flavor default"], "linux:flavor");
    });

    it("should check processors, jobs and disk as minimums, and ignore zero counts", () => {
      fails(worker({ processors: 2 }), ["hardware:processors 4"], "hardware:processors");
      passes(worker({ processors: 4 }), ["hardware:processors 4"]);
      fails(worker({ jobs: 1 }), ["hardware:jobs 2"], "hardware:jobs");
      passes(worker({ processors: 1, jobs: 1 }), ["hardware:processors 0", "hardware:jobs 0"]);
      fails(worker({ diskMb: 16383 }), ["hardware:disk:size unit=G 16"], "hardware:disk");
      passes(worker({ diskMb: 16384 }), ["hardware:disk:size unit=G 16"]);
    });

    it("should check memory against memory+swap, memoryperjob × slots, physicalmemory against RAM", () => {
      const w = worker({ memoryMb: 4096, swapMb: 4096, jobs: 4 });
      passes(w, ["hardware:memory:size unit=G 8"]);
      fails(w, ["hardware:memory:size unit=M 8193"], "hardware:memory");
      passes(w, ["hardware:memoryperjob:size unit=M 2048"]);
      fails(w, ["hardware:memoryperjob:size unit=M 2049"], "hardware:memoryperjob");
      passes(worker({ memoryMb: 1024, swapMb: 0, jobs: 0 }), ["hardware:memoryperjob:size unit=M 1024"]);
      passes(w, ["hardware:physicalmemory:size unit=G 4"]);
      fails(w, ["hardware:physicalmemory:size unit=G 5"], "hardware:physicalmemory");
    });

    it("should check cpu flags, present and excluded", () => {
      passes(worker({ cpuFlags: ["sse4_2", "avx2"] }), ["hardware:cpu:flag sse4_2 avx2"]);
      fails(worker({ cpuFlags: ["sse4_2"] }), ["hardware:cpu:flag sse4_2 avx2"], "hardware:cpu");
      fails(worker({ cpuFlags: ["avx512f"] }), ["hardware:cpu:flag exclude=true avx512f"], "hardware:cpu");
    });

    it("should name the first failing requirement in OBS's oracle order", () => {
      const w = worker({ hostLabels: [], memoryMb: 1, swapMb: 0, diskMb: 1 });
      fails(w, ["hardware:disk:size unit=G 1", "hardware:memory:size unit=G 1"], "hardware:disk");
      fails(w, ["hardware:memory:size unit=G 1", "hostlabel X", "sandbox kvm"], "hostlabel");
      fails(w, ["hardware:memory:size unit=G 1", "sandbox kvm"], "sandbox");
    });

    it("should ignore overwrite blocks not yet applied", () => {
      const file = parseConstraintsXml(FULL);
      const w = worker({
        hostLabels: ["HIGHMEM"],
        sandbox: "kvm",
        jobs: 4,
        memoryMb: 8192,
        swapMb: 0,
        linux: { version: "6.1", flavor: "default" },
      });
      assert.deepEqual(workerSatisfies(w, file, "x86_64"), { ok: true });
      assert.deepEqual(workerSatisfies(w, applyOverwrites(file, { arch: "x86_64", package: "gcc14" }), "x86_64"), {
        ok: false,
        blocking: "hardware:memory",
      });
    });
  });

  describe("worker architectures", () => {
    it("should map host archs as OBS's BSCando does", () => {
      assert.deepEqual(cando("x86_64"), [
        { arch: "x86_64" },
        { arch: "i586", helper: "linux32" },
        { arch: "i686", helper: "linux32" },
      ]);
      assert.deepEqual(
        cando("i686").map((e) => e.arch),
        ["i586", "i686"]
      );
      assert.deepEqual(cando("riscv64"), [{ arch: "riscv64" }]);
      assert.deepEqual(cando("unknownarch"), [{ arch: "unknownarch" }]);
    });

    it("should keep native-only hosts from archs that need a personality helper", () => {
      assert.equal(canBuildArch(worker({ nativeOnly: true }), "x86_64"), true);
      assert.equal(canBuildArch(worker({ nativeOnly: true }), "i586"), false);
      assert.equal(canBuildArch(worker({ buildArchs: [] }), "i686"), true);
      assert.equal(canBuildArch(worker({ buildArchs: [] }), "aarch64"), false);
      assert.equal(canBuildArch(worker({ buildArchs: ["x86_64"] }), "i586"), false);
    });
  });

  describe("explainNoWorker", () => {
    const st = (caps: WorkerCapabilities, state: WorkerStatus["state"] = "idle"): WorkerStatus => ({ caps, state });

    it("should fail with OBS's wording and hint when no worker fits", () => {
      const workers = [st(worker({ workerId: "a", jobs: 4 })), st(worker({ workerId: "b", jobs: 8 }), "building")];
      const c = parseConstraintLines(["hardware:memoryperjob:size unit=G 4"]);
      assert.deepEqual(explainNoWorker(workers, c, "x86_64"), {
        type: "constraints.none",
        detail: "no compliant workers (constraints mismatch hint: hardware:memoryperjob)",
        hints: ["hardware:memoryperjob"],
      });
    });

    it("should count compliant workers and those of them down", () => {
      const workers = [
        st(worker({ workerId: "a", hostLabels: ["BIG"] })),
        st(worker({ workerId: "b", hostLabels: ["BIG"] }), "building"),
        st(worker({ workerId: "c", hostLabels: ["BIG"] }), "down"),
        st(worker({ workerId: "d" })),
      ];
      const r = explainNoWorker(workers, parseConstraintLines(["hostlabel BIG"]), "x86_64");
      assert.equal(r.type, "constraints.waiting");
      assert.equal(r.detail, "waiting for 3 compliant workers (1 of them down)");
    });

    it("should list every requirement nobody meets, in OBS's sorted order", () => {
      const c = parseConstraintLines([
        "sandbox kvm",
        "hostlabel NONE",
        "hardware:disk:size unit=T 9",
        "hardware:jobs 1",
      ]);
      const r = explainNoWorker([st(worker())], c, "x86_64");
      assert.deepEqual(r.type === "constraints.none" && r.hints, ["hardware:disk", "hostlabel", "sandbox"]);
      const v = explainNoWorker(
        [st(worker({ linux: { version: "4.0" } }))],
        parseConstraintLines(["linux:version:min 5"]),
        "x86_64"
      );
      assert.equal(v.detail, "no compliant workers (constraints mismatch hint: linux:version)");
    });

    it("should hint the whole part when only a combination of its requirements fails", () => {
      const workers = [
        st(worker({ workerId: "bigdisk", diskMb: 50_000, memoryMb: 1000, swapMb: 0 })),
        st(worker({ workerId: "bigmem", diskMb: 1000, memoryMb: 50_000, swapMb: 0 })),
      ];
      const c = parseConstraintLines(["hardware:disk:size unit=G 40", "hardware:memory:size unit=G 40"]);
      assert.equal(
        explainNoWorker(workers, c, "x86_64").detail,
        "no compliant workers (constraints mismatch hint: hardware)"
      );
    });

    it("should only consider workers that can build the arch, each once", () => {
      const arm = worker({ workerId: "arm", hostArch: "aarch64", buildArchs: ["aarch64"], hostLabels: ["BIG"] });
      const c = parseConstraintLines(["hostlabel BIG"]);
      assert.equal(explainNoWorker([st(arm)], c, "x86_64").type, "constraints.none");
      const x = worker({ workerId: "x", hostLabels: ["BIG"] });
      const r = explainNoWorker([st(x, "building"), st(x, "idle"), st(x, "down")], c, "x86_64");
      assert.equal(r.detail, "waiting for 1 compliant workers");
      assert.equal(
        explainNoWorker([], c, "x86_64").detail,
        "no compliant workers (constraints mismatch hint: hostlabel)"
      );
      assert.equal(explainNoWorker([], undefined, "x86_64").detail, "no compliant workers");
    });

    it("should report bad hosts and whether plenty of workers qualify", () => {
      const many = Array.from({ length: 8 }, (_, i) => st(worker({ workerId: `w${i}` })));
      const r = explainNoWorker(many, parseConstraintLines(["hardware:jobs 1"]), "x86_64");
      assert.equal(r.type === "constraints.waiting" && r.plenty, true);
      const bad = [...many.slice(0, 3), { ...many[3]!, badhost: true }];
      const b = explainNoWorker(bad, parseConstraintLines(["hardware:jobs 1"]), "x86_64");
      assert.equal(b.detail, "waiting for 4 compliant workers (1 of them bad)");
      assert.equal(b.type === "constraints.waiting" && b.plenty, false);
    });
  });
});
