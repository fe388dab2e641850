import assert from "node:assert/strict";
import {
  DEFAULT_EXPORT_FILTERS,
  compileExportFilter,
  exportTargets,
  importFilename,
  parseImportFilename,
} from "../../../actors/repo/export-filter.ts";
import type { ExportFilterRule } from "../../../actors/repo/export-filter.ts";

const local = { local: true, exportTo: [] };
const discard = { local: false, exportTo: [] };

describe("actors/repo/export-filter", () => {
  describe("with OBS's default filters", () => {
    it("should export 64-bit binaries built on i586 to x86_64 and keep the i586 ones", () => {
      assert.deepEqual(exportTargets("foo-32bit-1.0-1.x86_64.rpm", "i586"), { local: false, exportTo: ["x86_64"] });
      assert.deepEqual(exportTargets("foo-1.0-1.ia64.rpm", "i586"), { local: false, exportTo: ["ia64"] });
      assert.deepEqual(exportTargets("foo-1.0-1.i586.rpm", "i586"), local);
      assert.deepEqual(exportTargets("foo-1.0-1.noarch.rpm", "i586"), local);
    });

    it("should discard debug packages", () => {
      assert.deepEqual(exportTargets("foo-debuginfo-1.0-1.i586.rpm", "i586"), discard);
      assert.deepEqual(exportTargets("foo-debugsource-1.0-1.x86_64.rpm", "x86_64"), discard);
      assert.deepEqual(exportTargets("foo-debuginfo-1.0-1.ppc64.rpm", "ppc64"), discard);
    });

    it("should try the filters in reverse order of their regex, as OBS does", () => {
      // '\.x86_64…' sorts after '-debuginfo-…', so on i586 it is tried first and an x86_64
      // debuginfo package is exported rather than discarded.
      assert.deepEqual(exportTargets("foo-debuginfo-1.0-1.x86_64.rpm", "i586"), { local: false, exportTo: ["x86_64"] });
    });

    it("should pair ppc with ppc64 and discard sparc64 binaries on sparc", () => {
      assert.deepEqual(exportTargets("foo-64bit-1-1.ppc64.rpm", "ppc"), { local: false, exportTo: ["ppc64"] });
      assert.deepEqual(exportTargets("foo-32bit-1-1.ppc.rpm", "ppc64"), { local: false, exportTo: ["ppc"] });
      assert.deepEqual(exportTargets("foo-1-1.sparc64.rpm", "sparc"), discard);
      assert.deepEqual(exportTargets("foo-1-1.sparc64.rpm", "sparcv9"), { local: false, exportTo: ["sparc64"] });
    });

    it("should keep everything on an arch without defaults", () => {
      assert.equal(DEFAULT_EXPORT_FILTERS.aarch64, undefined);
      assert.deepEqual(exportTargets("foo-debuginfo-1.0-1.aarch64.rpm", "aarch64"), local);
    });

    it("should judge the base name of a path and never re-export an import", () => {
      assert.deepEqual(exportTargets("some/dir/foo-32bit-1-1.x86_64.rpm", "i586"), {
        local: false,
        exportTo: ["x86_64"],
      });
      assert.deepEqual(exportTargets(importFilename("x86_64", "foo-1-1.x86_64.rpm"), "i586"), local);
    });
  });

  describe("with project filters", () => {
    it("should replace the defaults entirely", () => {
      const filters: ExportFilterRule[] = [{ regex: "-32bit-.*\\.x86_64\\.rpm$", archs: [".", "x86_64"] }];
      assert.deepEqual(exportTargets("foo-32bit-1-1.x86_64.rpm", "i586", filters), {
        local: true,
        exportTo: ["x86_64"],
      });
      // No project rule for other x86_64 or debug binaries: they stay.
      assert.deepEqual(exportTargets("foo-1-1.x86_64.rpm", "i586", filters), local);
      assert.deepEqual(exportTargets("foo-debuginfo-1-1.i586.rpm", "i586", filters), local);
    });

    it("should fall back to the defaults when the project's list is empty", () => {
      assert.deepEqual(exportTargets("foo-debuginfo-1-1.x86_64.rpm", "x86_64", []), discard);
    });

    it("should treat the building arch like '.', and report every other arch once and sorted", () => {
      const filters: ExportFilterRule[] = [{ regex: "\\.rpm$", archs: ["s390x", "x86_64", "aarch64", "s390x"] }];
      assert.deepEqual(exportTargets("a-1-1.x86_64.rpm", "x86_64", filters), {
        local: true,
        exportTo: ["aarch64", "s390x"],
      });
    });

    it("should decide by reverse regex order, not by declaration order", () => {
      const one: ExportFilterRule[] = [
        { regex: "a", archs: [] },
        { regex: "b", archs: ["ppc"] },
      ];
      const other = [...one].reverse();
      for (const filters of [one, other]) {
        assert.deepEqual(exportTargets("ab-1-1.x86_64.rpm", "x86_64", filters), { local: false, exportTo: ["ppc"] });
      }
    });

    it("should let a later definition of the same regex replace an earlier one", () => {
      const filters: ExportFilterRule[] = [
        { regex: "\\.rpm$", archs: [] },
        { regex: "\\.rpm$", archs: ["."] },
      ];
      assert.deepEqual(exportTargets("a-1-1.x86_64.rpm", "x86_64", filters), local);
    });

    it("should ignore filters with an invalid regex or arch and say why", () => {
      const compiled = compileExportFilter("x86_64", [
        { regex: "([", archs: [] },
        { regex: "\\.rpm$", archs: ["bad/arch"] },
        { regex: "-doc-", archs: [] },
      ]);
      assert.deepEqual(
        compiled.ignored.map((i) => i.regex),
        ["\\.rpm$", "(["]
      );
      assert.match(compiled.ignored[0]!.reason, /invalid arch/);
      assert.deepEqual(compiled.targets("a-1-1.x86_64.rpm"), local);
      assert.deepEqual(compiled.targets("a-doc-1-1.x86_64.rpm"), discard);
    });

    it("should compile a project's filters once per array and arch", () => {
      const filters: ExportFilterRule[] = [{ regex: "\\.i686\\.rpm$", archs: ["i586"] }];
      assert.deepEqual(exportTargets("a-1-1.i686.rpm", "x86_64", filters), { local: false, exportTo: ["i586"] });
      // Same array, other arch: the arch is part of the decision, not of a stale cache entry.
      assert.deepEqual(exportTargets("a-1-1.i686.rpm", "i586", filters), { local: true, exportTo: [] });
    });
  });

  describe("import file names", () => {
    it("should round-trip ::import::<arch>::<file>", () => {
      const f = importFilename("i586", "foo-32bit-1-1.x86_64.rpm");
      assert.equal(f, "::import::i586::foo-32bit-1-1.x86_64.rpm");
      assert.deepEqual(parseImportFilename(f), { fromArch: "i586", file: "foo-32bit-1-1.x86_64.rpm" });
      assert.equal(parseImportFilename("foo-1-1.x86_64.rpm"), undefined);
      assert.equal(parseImportFilename("::import::::x.rpm"), undefined);
    });
  });
});
