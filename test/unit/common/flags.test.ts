import assert from "node:assert/strict";
import {
  FLAG_DEFAULTS,
  FLAG_NAMES,
  FlagName,
  evaluateFlag,
  flagEnabled,
  type FlagEntry,
  type Flags,
} from "../../../actors/common/flags.ts";

const en = (repository?: string, arch?: string): FlagEntry => entry("enable", repository, arch);
const dis = (repository?: string, arch?: string): FlagEntry => entry("disable", repository, arch);
function entry(state: "enable" | "disable", repository?: string, arch?: string): FlagEntry {
  const e: FlagEntry = { state };
  if (repository !== undefined) e.repository = repository;
  if (arch !== undefined) e.arch = arch;
  return e;
}

/**
 * A line-by-line transliteration of OBS's BSUtil::enabled (early returns, the score-7 shortcut
 * and all), used as an independent oracle for the random comparison below.
 */
function obsEnabled(
  repoid: string | undefined,
  disen: FlagEntry[] | undefined,
  dflt: boolean,
  arch: string | undefined
) {
  if (!disen) return dflt;
  const matches = (e: FlagEntry): boolean =>
    (e.arch === undefined || e.arch === (arch ?? "")) &&
    (e.repository === undefined || e.repository === (repoid ?? ""));
  const dis = disen.filter((e) => e.state === "disable").filter(matches);
  if (dis.length === 0 && dflt) return true;
  const ena = disen.filter((e) => e.state === "enable").filter(matches);
  if (ena.length === 0) return dis.length > 0 ? false : dflt;
  if (dis.length === 0) return ena.length > 0 ? true : dflt;
  let disscore = 0;
  for (const e of dis) {
    let score = 1;
    if (e.arch !== undefined) score += 2;
    if (e.repository !== undefined) score += 4;
    if (score > disscore) {
      if (score === 7) return false;
      disscore = score;
    }
  }
  let enascore = 0;
  for (const e of ena) {
    let score = 0;
    if (e.arch !== undefined) score += 2;
    if (e.repository !== undefined) score += 4;
    if (score > enascore) enascore = score;
  }
  return enascore > disscore;
}

describe("actors/common/flags", () => {
  describe("flagEnabled", () => {
    // [label, entries, repository, arch, default, expected]
    const cases: [string, FlagEntry[] | undefined, string | undefined, string | undefined, boolean, boolean][] = [
      // No entries, or none matching: the default.
      ["undefined entries, default on", undefined, "r", "x86_64", true, true],
      ["undefined entries, default off", undefined, "r", "x86_64", false, false],
      ["empty entries, default on", [], "r", "x86_64", true, true],
      ["empty entries, default off", [], "r", "x86_64", false, false],
      ["only a disable for another repository", [dis("other")], "r", "x86_64", true, true],
      ["only an enable for another arch", [en(undefined, "i586")], "r", "x86_64", false, false],
      ["entries for another repository+arch", [dis("r", "i586"), en("other", "x86_64")], "r", "x86_64", true, true],
      // Only disables, or only enables, match.
      ["a general disable", [dis()], "r", "x86_64", true, false],
      ["a general enable", [en()], "r", "x86_64", false, true],
      ["a repository-only disable", [dis("r")], "r", "x86_64", true, false],
      ["a repository-only enable", [en("r")], "r", "x86_64", false, true],
      ["an arch-only disable", [dis(undefined, "x86_64")], "r", "x86_64", true, false],
      ["an arch-only enable", [en(undefined, "x86_64")], "r", "i586", false, false],
      ["an arch-only enable matching", [en(undefined, "x86_64")], "r", "x86_64", false, true],
      ["a repository+arch disable", [dis("r", "x86_64")], "r", "x86_64", true, false],
      ["several disables only", [dis(), dis("r"), dis("r", "x86_64")], "r", "x86_64", true, false],
      ["several enables only", [en(), en("r")], "r", "x86_64", false, true],
      // Ties: at equal specificity the disable wins, whatever the default and order.
      ["tie general (disable first)", [dis(), en()], "r", "x86_64", true, false],
      ["tie general (enable first)", [en(), dis()], "r", "x86_64", true, false],
      ["tie general, default off", [en(), dis()], "r", "x86_64", false, false],
      ["tie arch", [en(undefined, "x86_64"), dis(undefined, "x86_64")], "r", "x86_64", true, false],
      ["tie arch, default off", [dis(undefined, "x86_64"), en(undefined, "x86_64")], "r", "x86_64", false, false],
      ["tie repository", [en("r"), dis("r")], "r", "x86_64", true, false],
      ["tie repository, default off", [dis("r"), en("r")], "r", "x86_64", false, false],
      ["tie repository+arch", [en("r", "x86_64"), dis("r", "x86_64")], "r", "x86_64", true, false],
      ["tie repository+arch, default off", [dis("r", "x86_64"), en("r", "x86_64")], "r", "x86_64", false, false],
      // More specific beats less specific: +2 arch, +4 repository, +1 disable.
      ["enable arch (2) beats disable (1)", [dis(), en(undefined, "x86_64")], "r", "x86_64", false, true],
      ["enable repository (4) beats disable arch (3)", [dis(undefined, "x86_64"), en("r")], "r", "x86_64", false, true],
      ["disable repository (5) beats enable arch (2)", [en(undefined, "x86_64"), dis("r")], "r", "x86_64", true, false],
      [
        "enable repository+arch (6) beats disable repository (5)",
        [dis("r"), en("r", "x86_64")],
        "r",
        "x86_64",
        false,
        true,
      ],
      [
        "disable repository+arch (7) beats enable repository (4)",
        [en("r"), dis("r", "x86_64")],
        "r",
        "x86_64",
        true,
        false,
      ],
      [
        "disable repository+arch (7) beats everything",
        [en(), en("r"), en(undefined, "x86_64"), en("r", "x86_64"), dis("r", "x86_64")],
        "r",
        "x86_64",
        true,
        false,
      ],
      ["disable arch (3) beats enable (0)", [en(), dis(undefined, "x86_64")], "r", "x86_64", true, false],
      [
        "enable arch (2) beats disable (1), other arch untouched",
        [dis(), en(undefined, "x86_64")],
        "r",
        "i586",
        true,
        false,
      ],
      ["enable repository beats a general disable", [dis(), en("r")], "r", "x86_64", false, true],
      ["the best entry of each kind counts", [dis(), dis("r"), en("r", "x86_64"), en()], "r", "x86_64", false, true],
      // The reference/obs-backend.md §5 example.
      [
        "doc example: Tumbleweed x86_64",
        [dis(), en("TW"), dis(undefined, "i586"), dis("SLE", "x86_64")],
        "TW",
        "x86_64",
        true,
        true,
      ],
      [
        "doc example: Tumbleweed i586",
        [dis(), en("TW"), dis(undefined, "i586"), dis("SLE", "x86_64")],
        "TW",
        "i586",
        true,
        true,
      ],
      [
        "doc example: SLE x86_64",
        [dis(), en("TW"), dis(undefined, "i586"), dis("SLE", "x86_64")],
        "SLE",
        "x86_64",
        true,
        false,
      ],
      [
        "doc example: SLE aarch64",
        [dis(), en("TW"), dis(undefined, "i586"), dis("SLE", "x86_64")],
        "SLE",
        "aarch64",
        true,
        false,
      ],
      [
        "doc example: other repo i586",
        [dis(), en("TW"), dis(undefined, "i586"), dis("SLE", "x86_64")],
        "X",
        "i586",
        true,
        false,
      ],
      // A query without repository or arch matches only entries without that attribute.
      ["no repository in the query skips repository entries", [dis("r")], undefined, "x86_64", true, true],
      ["no arch in the query skips arch entries", [en(undefined, "x86_64")], "r", undefined, false, false],
      [
        "no repository or arch: only general entries count",
        [dis(), en("r", "x86_64")],
        undefined,
        undefined,
        true,
        false,
      ],
      ["no repository or arch, general enable", [en(), dis("r")], undefined, undefined, false, true],
    ];
    for (const [label, entries, repo, arch, dflt, want] of cases) {
      it(`should give ${want} for ${label}`, () => {
        assert.equal(flagEnabled(entries, repo, arch, dflt), want);
      });
    }

    it("should agree with a transliteration of BSUtil::enabled on random flags", () => {
      // Deterministic pseudo-random generator, so a failure can be reproduced.
      let seed = 12345;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      const repos = [undefined, "a", "b"];
      const archs = [undefined, "x86_64", "i586"];
      for (let i = 0; i < 5000; i++) {
        const entries: FlagEntry[] = [];
        const count = rnd(6);
        for (let j = 0; j < count; j++)
          entries.push(entry(rnd(2) ? "enable" : "disable", repos[rnd(3)], archs[rnd(3)]));
        const repo = repos[rnd(3)];
        const arch = archs[rnd(3)];
        const dflt = rnd(2) === 1;
        assert.equal(
          flagEnabled(entries, repo, arch, dflt),
          obsEnabled(repo, entries, dflt, arch),
          JSON.stringify({ entries, repo, arch, dflt })
        );
      }
    });
  });

  describe("FLAG_DEFAULTS", () => {
    const expected: Record<FlagName, boolean> = {
      lock: false,
      build: true,
      publish: true,
      debuginfo: false,
      useforbuild: true,
      binarydownload: true,
      sourceaccess: true,
      access: true,
    };
    for (const name of FLAG_NAMES) {
      it(`should default ${name} to ${expected[name]} with no entries anywhere`, () => {
        assert.equal(FLAG_DEFAULTS[name], expected[name]);
        assert.equal(evaluateFlag(name, {}, undefined, "r", "x86_64"), expected[name]);
        assert.equal(evaluateFlag(name, { flags: {} }, { flags: {} }, "r", "x86_64"), expected[name]);
      });
    }
    it("should list the flags in OBS's _meta order", () => {
      assert.deepEqual(FLAG_NAMES, [
        "lock",
        "build",
        "publish",
        "debuginfo",
        "useforbuild",
        "binarydownload",
        "sourceaccess",
        "access",
      ]);
    });
    it("should not let callers change the defaults", () => {
      assert.throws(() => {
        (FLAG_DEFAULTS as Record<string, boolean>).build = false;
      }, TypeError);
    });
  });

  describe("evaluateFlag", () => {
    const project = (flags: Flags) => ({ flags });
    // [label, flag, project flags, package flags (undefined: no package), repository, arch, expected]
    const cases: [string, FlagName, Flags, Flags | undefined, string, string, boolean][] = [
      ["project disable applies to the project", FlagName.Build, { build: [dis()] }, undefined, "r", "x86_64", false],
      [
        "project disable applies to a package without entries",
        FlagName.Build,
        { build: [dis()] },
        {},
        "r",
        "x86_64",
        false,
      ],
      [
        "package enable overrides a project disable",
        FlagName.Build,
        { build: [dis()] },
        { build: [en()] },
        "r",
        "x86_64",
        true,
      ],
      [
        "a general package enable overrides the most specific project disable",
        FlagName.Build,
        { build: [dis("r", "x86_64")] },
        { build: [en()] },
        "r",
        "x86_64",
        true,
      ],
      [
        "a package disable overrides a project enable",
        FlagName.Publish,
        { publish: [en("r", "x86_64")] },
        { publish: [dis()] },
        "r",
        "x86_64",
        false,
      ],
      [
        "a non-matching package entry leaves the project value",
        FlagName.Build,
        { build: [dis("r")] },
        { build: [en("other")] },
        "r",
        "x86_64",
        false,
      ],
      [
        "a package arch-only entry only affects that arch (matching)",
        FlagName.Build,
        { build: [dis()] },
        { build: [en(undefined, "x86_64")] },
        "r",
        "x86_64",
        true,
      ],
      [
        "a package arch-only entry only affects that arch (other arch)",
        FlagName.Build,
        { build: [dis()] },
        { build: [en(undefined, "x86_64")] },
        "r",
        "i586",
        false,
      ],
      ["debuginfo enabled by the project", FlagName.Debuginfo, { debuginfo: [en()] }, {}, "r", "x86_64", true],
      ["debuginfo enabled by the package only", FlagName.Debuginfo, {}, { debuginfo: [en("r")] }, "r", "x86_64", true],
      ["lock enabled by the project", FlagName.Lock, { lock: [en()] }, undefined, "r", "x86_64", true],
      ["lock of another flag does not leak", FlagName.Build, { lock: [en()] }, undefined, "r", "x86_64", true],
      [
        "useforbuild disabled for one repository",
        FlagName.Useforbuild,
        { useforbuild: [dis("r")] },
        {},
        "r",
        "x86_64",
        false,
      ],
      ["useforbuild elsewhere stays on", FlagName.Useforbuild, { useforbuild: [dis("r")] }, {}, "s", "x86_64", true],
      [
        "package tie: disable wins over the project",
        FlagName.Build,
        { build: [en()] },
        { build: [en(), dis()] },
        "r",
        "x86_64",
        false,
      ],
    ];
    for (const [label, name, projectFlags, packageFlags, repo, arch, want] of cases) {
      it(`should give ${want} when ${label}`, () => {
        const pkg = packageFlags === undefined ? undefined : { flags: packageFlags };
        assert.equal(evaluateFlag(name, project(projectFlags), pkg, repo, arch), want);
      });
    }
  });
});
