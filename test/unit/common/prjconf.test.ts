import assert from "node:assert/strict";
import { InvalidInputError } from "../../../transport/index.ts";
import {
  buildFlag,
  concatBuildConfig,
  configHelpers,
  expandFlag,
  parseBuildConfig,
  publishFlag,
  readBuildConfig,
} from "../../../actors/common/prjconf.ts";
import type { BuildConfig, ConfigLayer } from "../../../actors/common/prjconf.ts";
import { parseSpec } from "../../../actors/common/spec.ts";

/** One project's config on its own. */
function one(text: string, arch = "x86_64", repository = "standard"): BuildConfig {
  return parseBuildConfig([{ project: "home:me", repository, text }], { arch });
}

/** A path of configs, base first. */
function path(texts: string[], arch = "x86_64"): BuildConfig {
  const layers: ConfigLayer[] = texts.map((text, i) => ({
    project: ["Base:Distro", "Base:Distro:Update", "home:me"].slice(-texts.length)[i]!,
    repository: "standard",
    text,
  }));
  return parseBuildConfig(layers, { arch });
}

describe("actors/common/prjconf", () => {
  describe("list keywords", () => {
    const cases: [string, keyof BuildConfig, string, string[]][] = [
      ["accumulate over lines", "preinstall", "Preinstall: a b\nPreinstall: c", ["a", "b", "c"]],
      ["drop duplicates of unified lists", "preinstall", "Preinstall: a b a\nPreinstall: b c", ["a", "b", "c"]],
      ["remove with !x", "support", "Support: a b c\nSupport: !b", ["a", "c"]],
      ["remove every copy with !x", "prefer", "Prefer: a b a\nPrefer: !a", ["b"]],
      ["clear with !*", "required", "Required: a b\nRequired: !* c", ["c"]],
      ["ignore !x of an absent entry", "keep", "Keep: a\nKeep: !zzz", ["a"]],
      [
        "keep Prefer's -name and origin:name",
        "prefer",
        "Prefer: -foo repo:bar -repo:baz",
        ["-foo", "repo:bar", "-repo:baz"],
      ],
      ["remove a -name Prefer with !-name", "prefer", "Prefer: -foo bar\nPrefer: !-foo", ["bar"]],
      ["keep Ignore's pkg:dep,dep2", "ignore", "Ignore: a:b,c d", ["a:b,c", "d"]],
      ["keep Prefer duplicates (not unified)", "prefer", "Prefer: a\nPrefer: a", ["a", "a"]],
      ["read keywords case-insensitively", "vminstall", "VMINSTALL: a\nvminstall: b", ["a", "b"]],
      ["read Conflict", "conflict", "Conflict: a:b c:d,e", ["a:b", "c:d,e"]],
      ["read Runscripts", "runscripts", "Runscripts: aaa_base", ["aaa_base"]],
      [
        "read ExpandFlags",
        "expandFlags",
        "ExpandFlags: module:x-1 preinstallexpand",
        ["module:x-1", "preinstallexpand"],
      ],
      ["read IgnoreRebuild (kiln)", "ignoreRebuild", "IgnoreRebuild: a b\nIgnoreRebuild: !a", ["b"]],
      ["replace Repotype", "repotype", "Repotype: rpm-md suse\nRepotype: debian", ["debian"]],
      [
        "read Constraint lines whole",
        "constraint",
        "Constraint: hardware:jobs 4\nConstraint: x y",
        ["hardware:jobs 4", "x y"],
      ],
      ["clear Constraint with !*", "constraint", "Constraint: a\nConstraint: !*\nConstraint: b", ["b"]],
    ];
    for (const [title, key, text, want] of cases) {
      it(`should ${title}`, () => {
        assert.deepEqual(one(text)[key], want);
      });
    }
  });

  describe("maps and scalars", () => {
    it("should read Substitute, with !name and !*", () => {
      const c = one("Substitute: a b c\nSubstitute: x y\nSubstitute: !x\nSubstitute: d d e= e\nSubstitute: a b");
      // Duplicates are removed before the trailing "=" is, as obs-build does.
      assert.deepEqual(c.substitute, { a: ["b"], d: ["d", "e", "e"] });
      assert.deepEqual(one("Type: spec\nSubstitute: a b\nSubstitute: !*").substitute, {
        "system-packages:repo-creation": ["createrepo"],
      });
    });

    it("should read FileProvides, with !path", () => {
      const c = one("FileProvides: /bin/sh bash\nFileProvides: /usr/bin/x a b\nFileProvides: !/bin/sh");
      assert.deepEqual(c.fileProvides, { "/usr/bin/x": ["a", "b"] });
    });

    it("should keep names like __proto__ as data", () => {
      const c = one("Substitute: __proto__ evil\nFileProvides: constructor x\nOptFlags: __proto__ -O0");
      assert.deepEqual(Object.getPrototypeOf(c.substitute), Object.prototype);
      assert.ok(Object.hasOwn(c.substitute, "__proto__"));
      assert.deepEqual(c.substitute["__proto__"], ["evil"]);
      assert.deepEqual(c.fileProvides["constructor"], ["x"]);
      assert.equal(c.optFlags["__proto__"], "-O0");
    });

    it("should read OptFlags per arch", () => {
      const c = one("OptFlags: x86_64 -O2  -g\nOptFlags: i586 -O1\nOptFlags: x86_64 -O3");
      assert.deepEqual(c.optFlags, { x86_64: "-O3", i586: "-O1" });
    });

    it("should read ExportFilter in the order OBS applies it", () => {
      const c = one(
        "ExportFilter: \\.x86_64\\.rpm$ . i586\nExportFilter: ^glibc-32bit . \nExportFilter: \\.x86_64\\.rpm$ i686"
      );
      assert.deepEqual(c.exportFilter, [
        { regex: "^glibc-32bit", archs: ["."] },
        { regex: "\\.x86_64\\.rpm$", archs: ["i686"] },
      ]);
    });

    it("should read the scalar keywords, the last one winning", () => {
      const c = one(
        "Release: <CI_CNT>.<B_CNT>\nRelease: lp1.<B_CNT>\nType: dsc\nBinaryType: deb\nHostArch: x86_64\nBuildEngine: mock"
      );
      assert.deepEqual(
        [c.release, c.type, c.binaryType, c.hostArch, c.buildEngine],
        ["lp1.<B_CNT>", "dsc", "deb", "x86_64", "mock"]
      );
    });

    it("should default Release, Type, BinaryType and Repotype as OBS does", () => {
      const c = one("");
      assert.deepEqual(
        [c.release, c.type, c.binaryType, c.repotype],
        ["<CI_CNT>.<B_CNT>", "UNDEFINED", "UNDEFINED", ["rpm-md"]]
      );
      assert.deepEqual([one("Preinstall: rpm").type, one("Preinstall: rpm").binaryType], ["spec", "rpm"]);
      assert.deepEqual(
        [one("Preinstall: debianutils").type, one("Preinstall: debianutils").binaryType],
        ["dsc", "deb"]
      );
      assert.deepEqual([one("Type: kiwi\nPreinstall: rpm").binaryType], ["rpm"]);
    });

    it("should ignore unknown keywords, comments and stray text", () => {
      const c = one("Frobnicate: yes\n# Preinstall: nope\nPreinstall: a\njust text\n");
      assert.deepEqual(c.preinstall, ["a"]);
    });

    it("should look up BuildFlags, ExpandFlags and PublishFlags", () => {
      const c = one(
        "BuildFlags: logidlelimit:3600 nouseforbuild onlybuild:a onlybuild:b\nExpandFlags: module:x:y\nPublishFlags: ympdist:15"
      );
      assert.equal(buildFlag(c, "logidlelimit"), "3600");
      assert.equal(buildFlag(c, "nouseforbuild"), "1");
      assert.equal(buildFlag(c, "onlybuild"), "b");
      assert.equal(buildFlag(c, "missing"), undefined);
      assert.equal(expandFlag(c, "module"), "x:y");
      assert.equal(publishFlag(c, "ympdist"), "15");
    });

    it("should build the helper tables of Prefer, Ignore and Conflict", () => {
      const h = configHelpers(one("Prefer: a -b c:d\nIgnore: x a:b,c\nConflict: p:q,r s"));
      assert.deepEqual([...h.prefer], ["a", "-b", "c:d"]);
      assert.deepEqual([...h.ignore].sort(), ["a:b", "a:c", "x"]);
      assert.deepEqual(Object.fromEntries(h.conflict), { p: ["q", "r"], q: ["p"], r: ["p"], s: [] });
    });
  });

  describe("macros and conditionals", () => {
    it("should apply %if/%else/%endif with %define in the config", () => {
      const c = one("%define use_new 1\n%if %use_new\nPrefer: new\n%else\nPrefer: old\n%endif");
      assert.deepEqual(c.prefer, ["new"]);
    });

    it("should test the arch in the config", () => {
      const text =
        '%ifarch %ix86\nSupport: x86-only\n%endif\n%if "%_target_cpu" == "aarch64"\nSupport: arm-only\n%endif';
      assert.deepEqual(one(text, "i586").support, ["x86-only"]);
      assert.deepEqual(one(text, "aarch64").support, ["arm-only"]);
    });

    it("should let a config test its repository name", () => {
      const text = '%if "%_repository" == "images"\nType: kiwi\n%endif';
      assert.equal(one(text, "x86_64", "images").type, "kiwi");
      assert.equal(one(text, "x86_64", "standard").type, "UNDEFINED");
    });

    it("should keep Macros: blocks verbatim as the rpm macros of the config", () => {
      const c = one("Macros:\n%foo 1\n%bar %{foo}2\n:Macros\nPrefer: x");
      assert.match(c.macros, /^%_project home:me\n/);
      assert.match(c.macros, /\n%foo 1\n%bar %\{foo\}2\n/);
      assert.deepEqual(c.prefer, ["x"]);
    });

    it("should drop a Macros: block inside a false %if", () => {
      const text = "%ifarch s390x\nMacros:\n%on_s390 1\n:Macros\n%endif\nMacros:\n%always 1\n:Macros\n";
      assert.doesNotMatch(one(text, "x86_64").macros, /on_s390/);
      assert.match(one(text, "s390x").macros, /%on_s390 1/);
      assert.match(one(text, "x86_64").macros, /%always 1/);
    });

    it("should replace all macros before a block that starts with !", () => {
      const c = path(["Macros:\n%base 1\n:Macros\n", "Macros:\n!\n%own 1\n:Macros\n"]);
      assert.doesNotMatch(c.macros, /%base/);
      assert.match(c.macros, /%own 1/);
    });

    it("should not pass %define lines of the config to spec parsing, but Macros: lines", () => {
      const c = one("%define from_define 1\nMacros:\n%from_macros 1\n:Macros\n");
      const s = parseSpec("Name: p\nBuildRequires: %{?from_define:a} %{?from_macros:b}\n", {
        arch: "x86_64",
        config: c,
      });
      assert.deepEqual(s.buildRequires, ["b"]);
    });

    it("should give specs %_project, %_repository and %distribution", () => {
      const c = parseBuildConfig(
        [
          { project: "Base:Distro", repository: "standard", text: "Prefer: a" },
          { project: "home:me", repository: "Distro_1", text: "Prefer: b" },
        ],
        { arch: "x86_64", obsName: "kiln.example" }
      );
      const s = parseSpec(
        "Name: %{_project}\nVersion: %{_repository}\nRelease: %{vendor}\nBuildRequires: %{distribution}\n",
        {
          arch: "x86_64",
          config: c,
        }
      );
      assert.deepEqual([s.name, s.version, s.release], ["home:me", "Distro_1", "obs://kiln.example/home:me"]);
      assert.deepEqual(s.buildRequires, ["home:me", "/", "Distro_1"]);
    });
  });

  describe("layering", () => {
    it("should apply layers base first, the project last", () => {
      const c = path([
        "Preinstall: a b\nRelease: base.<B_CNT>\nPrefer: x",
        "Preinstall: !b c\nRelease: proj.<B_CNT>\nPrefer: !x y",
      ]);
      assert.deepEqual(c.preinstall, ["a", "c"]);
      assert.equal(c.release, "proj.<B_CNT>");
      assert.deepEqual(c.prefer, ["y"]);
    });

    it("should mark which layer is the project itself and which contain it", () => {
      const text = "%if %_is_this_project\nSupport: this\n%endif\n%if %_is_in_project\nSupport: in\n%endif\n";
      const c = parseBuildConfig(
        [
          { project: "Other", repository: "standard", text },
          { project: "home", repository: "standard", text },
          { project: "home:me", repository: "standard", text },
        ],
        { arch: "x86_64" }
      );
      // "Other" adds nothing, "home" contains home:me, home:me is the project itself.
      assert.deepEqual(c.support, ["in", "this"]);
    });

    it("should skip layers without a config", () => {
      const text = concatBuildConfig([
        { project: "A", repository: "r", text: "" },
        { project: "B", repository: "r", text: "Prefer: b\n" },
      ]);
      assert.doesNotMatch(text, /### from A/);
      assert.match(text, /### from B\n%define _repository r\n/);
    });

    it("should concatenate the layers as the OBS source server does", () => {
      const text = concatBuildConfig([
        { project: "Base", repository: "std", text: "Prefer: a\nMacros:\n%m1 1\n" },
        { project: "Base:Sub", repository: "std", text: "Macros:\n%m2 2\n:Macros\nPrefer: b\n" },
        { project: "Base:Sub:Proj", repository: "repo", text: "Prefer: c\n" },
      ]);
      assert.equal(
        text,
        [
          "%define _project Base:Sub:Proj",
          "",
          "### from Base",
          "%define _repository std",
          "%define _is_this_project 0",
          "%define _is_in_project 1",
          "Prefer: a",
          "",
          "### from Base:Sub",
          "%define _repository std",
          "",
          "Macros:",
          "%_project Base:Sub:Proj",
          "",
          "### from Base",
          "%_repository std",
          "%m1 1",
          "",
          "### from Base:Sub",
          "",
          "%_repository std",
          ":Macros",
          "",
          "Macros:",
          "%m2 2",
          ":Macros",
          "Prefer: b",
          "",
          "### from Base:Sub:Proj",
          "%define _repository repo",
          "%define _is_this_project 1",
          "Prefer: c",
          "",
          "Macros:",
          "",
          "%distribution Base:Sub:Proj / repo",
          "%_project Base:Sub:Proj",
          "",
          "### from Base:Sub:Proj",
          "%_repository repo",
          "",
        ].join("\n")
      );
    });

    it("should discard the layers before one with FromScratch: (kiln)", () => {
      const c = path([
        "Preinstall: a\nMacros:\n%base 1\n:Macros\n",
        "FromScratch:\nPreinstall: b\n",
        "Preinstall: c\n",
      ]);
      assert.deepEqual(c.preinstall, ["b", "c"]);
      assert.doesNotMatch(c.macros, /%base/);
      assert.match(c.macros, /%_repository standard/);
    });

    it("should keep every layer when no layer says FromScratch:", () => {
      const c = path(["Preinstall: a\n", "# from scratch is not the keyword\nPreinstall: b\n", "Preinstall: c\n"]);
      assert.deepEqual(c.preinstall, ["a", "b", "c"]);
    });

    it("should refuse an empty path", () => {
      assert.throws(() => parseBuildConfig([], { arch: "x86_64" }), InvalidInputError);
    });
  });

  describe("readBuildConfig", () => {
    it("should read a single text without OBS's layering", () => {
      const c = readBuildConfig(["Prefer: a", "Macros:", "%x 1", ":Macros"], "i586");
      assert.deepEqual([c.arch, c.prefer, c.macros, c.repotype], ["i586", ["a"], "%x 1\n", []]);
    });

    it("should take a Macros: block without :Macros to the end of the text", () => {
      const c = readBuildConfig(["Prefer: a", "Macros:", "%x 1", "Prefer: b"], "x86_64");
      assert.deepEqual([c.prefer, c.macros], [["a"], "%x 1\nPrefer: b\n"]);
    });

    it("should reject a config above the size limit", () => {
      assert.throws(() => readBuildConfig(["#".repeat(9 * 1024 * 1024)], "x86_64"), InvalidInputError);
    });
  });
});
