import assert from "node:assert/strict";
import { InvalidInputError } from "../../../transport/index.ts";
import { parseBuildConfig } from "../../../actors/common/prjconf.ts";
import type { BuildConfig } from "../../../actors/common/prjconf.ts";
import { parseSpec, splitDeps } from "../../../actors/common/spec.ts";
import type { ParsedSpec } from "../../../actors/common/spec.ts";
import {
  MacroContext,
  defineFromLines,
  evalExpr,
  exprBoolify,
  exprToString,
  expandMacros,
  perlNumberToString,
  STD_MACRO_LINES,
} from "../../../actors/common/rpm-macros.ts";

/** A config for `arch` from one prjconf text (the usual case in these tests: macros only). */
function config(text = "", arch = "x86_64"): BuildConfig {
  return parseBuildConfig([{ project: "test", repository: "standard", text }], { arch });
}

/** Parses a spec given as lines. */
function spec(lines: string[], opts: { arch?: string; prjconf?: string } = {}): ParsedSpec {
  const arch = opts.arch ?? "x86_64";
  return parseSpec(lines.join("\n") + "\n", { arch, config: config(opts.prjconf ?? "", arch) });
}

/** A macro context with obs-build's built-ins and `defs` (`%define` lines). */
function context(defs: string[] = []): MacroContext {
  const ctx = new MacroContext();
  defineFromLines(ctx, [...STD_MACRO_LINES, "%define _target_cpu x86_64", "%define _target_os linux", ...defs]);
  return ctx;
}

describe("actors/common/rpm-macros", () => {
  describe("expandMacros", () => {
    // [definitions, line, expansion] — expansions as obs-build 20210120 produces them.
    const cases: [string[], string, string][] = [
      [["%define foo bar"], "x %foo y", "x bar y"],
      [["%define foo bar"], "x%{foo}y", "xbary"],
      [[], "%{?foo}", ""],
      [["%define foo bar"], "%{?foo}", "bar"],
      [[], "%{?foo:yes}", ""],
      [["%define foo bar"], "%{?foo:yes}", "yes"],
      [[], "%{!?foo:no}", "no"],
      [["%define foo bar"], "%{!?foo:no}", ""],
      [[], "%{!?foo}", ""],
      [[], "%undefinedmacro stays", "%undefinedmacro stays"],
      [[], "100%% sure", "100% sure"],
      [[], "%%{foo}", "%{foo}"],
      [["%define a %b", "%define b %c", "%define c deep"], "%a", "deep"],
      [["%define name pkg", "%define version 1.0"], "%{name}-%{version}.tar.gz", "pkg-1.0.tar.gz"],
      [[], "%{ix86}", "i386 i486 i586 i686 pentium3 pentium4 athlon geode"],
      [[], "%{arm64} %{power64}", "aarch64 ppc64 ppc64p7 ppc64le"],
      [[], "%{mips}", "mips mipsel mipsr6 mipsr6el mips64 mips64el mips64r6 mips64r6el"],
      [[], "%_target_cpu-%{_target_os}", "x86_64-linux"],
      // obs-build defines no %_arch; it stays as text.
      [[], "%{_arch}", "%{_arch}"],
      [[], "x%{nil}y", "xy"],
      // Shell expansion cannot be done: the rest of the line becomes MACRO.
      [[], "BuildRequires: %(rpm -q foo) bar", "BuildRequires: MACRO"],
      [[], "%{lua: print(1)}", "%{lua: print(1)}"],
      [[], "%{expand:%%{nil}x}", "x"],
      [["%define v 3"], "%{expr:%v * 2 + 1}", "7"],
      [[], "%[10/4]", "2.5"],
      [[], "%[10/3]", "3.33333333333333"],
      // %[ never finds its closing bracket in obs-build: it takes the rest of the line.
      [[], "%[1+2] ignored", "3"],
      [[], '%["a" + "b"]', "ab"],
      [[], "%{defined nil}%{undefined nil}%{defined nope}", "100"],
      // Word characters continue the name: %1D is a macro called "1D".
      [["%define m() <%1>%1D"], "%m a", "<a>%1D"],
      [["%define m(a:b) [%{-a*}|%{-b}|%*|%#]"], "%m -a x -b p q", "[x|-b|p q|2]"],
      [["%define m(a:b) [%{-a*}|%{-b}|%*|%#]"], "%{m -ay r} tail", "[y||r|1] tail"],
      [["%define m() %{?1:one}%{!?1:none}"], "%m", "none"],
      [["%define py() python3-%{**}"], "%{py foo >= 1}", "python3-foo >= 1"],
      // A self-referencing macro stops after 1000 expansions and yields MACRO.
      [["%define r %r"], "%r", "MACRO"],
      [[], "%{foo", "%{foo"],
      [[], "%{}", "%{}"],
      [[], "trailing %", "trailing %"],
    ];
    for (const [defs, line, want] of cases) {
      it(`should expand ${JSON.stringify(line)} to ${JSON.stringify(want)}`, () => {
        assert.equal(expandMacros(context(defs), line), want);
      });
    }

    it("should define with %define (body kept) and %global (body expanded now)", () => {
      const ctx = context(["%define x 1"]);
      assert.equal(expandMacros(ctx, "%define d %x"), "");
      assert.equal(expandMacros(ctx, "%global g %x"), "");
      expandMacros(ctx, "%define x 2");
      assert.equal(expandMacros(ctx, "%d/%g"), "2/1");
    });

    it("should keep the text before a %define and drop the rest of the line", () => {
      const ctx = context();
      assert.equal(expandMacros(ctx, "keep %define a 1"), "keep ");
      assert.equal(ctx.macros.get("a"), "1");
    });

    it("should set with_X from %bcond_with/%bcond_without as obs-build does", () => {
      const ctx = context(["%define _with_lz4 1", "%define _without_tests 1"]);
      for (const l of ["%bcond_with lz4", "%bcond_with zstd", "%bcond_without tests", "%bcond_without docs"]) {
        expandMacros(ctx, l);
      }
      assert.equal(expandMacros(ctx, "%{with lz4}%{with zstd}%{with tests}%{with docs}"), "1001");
      assert.equal(expandMacros(ctx, "%{without lz4}%{without zstd}"), "01");
      assert.equal(expandMacros(ctx, "%{?with_docs:docs}%{!?with_tests:notests}"), "docsnotests");
    });

    it("should leave %undefine in the text and the macro defined, as obs-build (it has no %undefine)", () => {
      const ctx = context(["%define gone 1"]);
      assert.equal(expandMacros(ctx, "%undefine gone"), "%undefine gone");
      assert.equal(expandMacros(ctx, "%{?gone:still}%{!?gone:removed}"), "still");
      assert.equal(expandMacros(ctx, "x%{undefine gone}y%{?gone}"), "x%{undefine gone}y1");
    });

    it("should raise InvalidInputError when an expansion grows beyond the line limit", () => {
      const ctx = new MacroContext({ maxLineLength: 10_000 });
      expandMacros(ctx, "%global a xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
      for (let i = 0; i < 7; i++) expandMacros(ctx, "%global a %a%a");
      assert.equal(ctx.macros.get("a")!.length, 48 * 128);
      assert.throws(() => expandMacros(ctx, "%global a %a%a%a%a"), InvalidInputError);
    });

    it("should raise InvalidInputError instead of recursing without bound", () => {
      const ctx = new MacroContext({ maxDepth: 50 });
      assert.throws(() => evalExpr("(".repeat(100) + "1" + ")".repeat(100), ctx), InvalidInputError);
      assert.throws(() => expandMacros(ctx, "%{expr:" + "(".repeat(100) + "1}"), InvalidInputError);
      assert.deepEqual(evalExpr("(".repeat(20) + "1" + ")".repeat(20), ctx), [1, ""]);
    });

    it("should raise InvalidInputError when a parse expands too many macros", () => {
      const ctx = new MacroContext({ maxExpansions: 5000 });
      defineFromLines(ctx, ["%define a %b%b", "%define b %c%c", "%define c x"]);
      assert.equal(expandMacros(ctx, "%a"), "xxxx");
      assert.throws(() => {
        for (let i = 0; i < 1000; i++) expandMacros(ctx, "%a");
      }, InvalidInputError);
    });

    it("should raise InvalidInputError when a parse exceeds its work budget", () => {
      const ctx = new MacroContext({ maxWork: 100_000 });
      const line = "x".repeat(1000) + "%{nil}";
      assert.throws(() => {
        for (let i = 0; i < 1000; i++) expandMacros(ctx, line);
      }, InvalidInputError);
    });
  });

  describe("evalExpr", () => {
    // [expression (already macro-expanded), truth, %[...] text]
    const cases: [string, boolean, string][] = [
      ["1", true, "1"],
      ["0", false, "0"],
      ["00", false, "0"],
      ["1500 >= 1500", true, "1"],
      ["1315 > 1500", false, "0"],
      ["0 || 1", true, "1"],
      ["1 && 0", false, "0"],
      ["1 && 7", true, "7"],
      ["0 || 0", false, "0"],
      ["!0", true, "1"],
      ["!1 || !0 && 0", false, "0"],
      ["(1 || 0) && (2 > 1)", true, "1"],
      ["2 + 3 * 4", true, "14"],
      ["(2 + 3) * 4", true, "20"],
      ["10 - 4 - 3", true, "3"],
      ["-3 + 3", false, "0"],
      ["7 / 2", true, "3.5"],
      ["1 / 0", false, ""],
      ['"x86_64" == "x86_64"', true, "1"],
      ['"abc" < "abd"', true, "1"],
      ['"a" != "a"', false, "0"],
      ['""', false, ""],
      ['"0"', true, "0"],
      ['"a" + "b" == "ab"', true, "1"],
      ["suse == suse", true, "1"],
      ['v"1.2.3" >= v"1.2"', true, "1"],
      ['v"1.10" > v"1.9"', true, "1"],
      ['v"2:1.0" > v"1:9.9"', true, "1"],
      ['v"1.0~rc1" < v"1.0"', true, "1"],
      ['v"1.0"', false, "1.0"],
      ["1 ? 2 : 3", true, "2"],
      ["0 ? 2 : 0", false, "0"],
      ["3 > 2 > 1", false, "0"],
      ["(1", false, ""],
      ["", false, ""],
      ["1 garbage", true, "1"],
    ];
    for (const [expr, truth, text] of cases) {
      it(`should evaluate ${JSON.stringify(expr)} as ${truth}`, () => {
        const ctx = context();
        const r = evalExpr(expr, ctx);
        assert.equal(exprBoolify(r?.[0]), truth);
        assert.equal(r === undefined ? "" : exprToString(r[0]), text);
      });
    }

    it("should print numbers the way Perl does", () => {
      const cases: [number, string][] = [
        [3, "3"],
        [-0, "0"],
        [0.5, "0.5"],
        [1 / 3, "0.333333333333333"],
        [1e18, "1000000000000000000"],
        // Beyond 64-bit integers Perl has a float and prints %.15g.
        [1e20, "1e+20"],
        [1.5e20, "1.5e+20"],
        [1e21 + 0.5, "1e+21"],
        [0.00001, "1e-05"],
        [0.0001, "0.0001"],
        [123456.789, "123456.789"],
        [Infinity, "Inf"],
      ];
      for (const [n, s] of cases) assert.equal(perlNumberToString(n), s, String(n));
    });
  });
});

describe("actors/common/spec", () => {
  describe("conditionals", () => {
    const cases: [string, string[], string[], { arch?: string; prjconf?: string }?][] = [
      ["%if true branch", ["%if 1", "BuildRequires: a", "%endif"], ["a"]],
      ["%if false branch", ["%if 0", "BuildRequires: a", "%endif"], []],
      ["%else", ["%if 0", "BuildRequires: a", "%else", "BuildRequires: b", "%endif"], ["b"]],
      [
        "%elif chain",
        [
          "%if 0",
          "BuildRequires: a",
          "%elif 1",
          "BuildRequires: b",
          "%elif 1",
          "BuildRequires: c",
          "%else",
          "BuildRequires: d",
          "%endif",
        ],
        ["b"],
      ],
      [
        "%elif after a taken branch",
        ["%if 1", "BuildRequires: a", "%elif 1", "BuildRequires: b", "%else", "BuildRequires: c", "%endif"],
        ["a"],
      ],
      [
        "nested conditionals in a false branch",
        [
          "%if 0",
          "%if 1",
          "BuildRequires: a",
          "%else",
          "BuildRequires: b",
          "%endif",
          "%else",
          "BuildRequires: c",
          "%endif",
        ],
        ["c"],
      ],
      [
        "nested conditionals in a true branch",
        ["%if 1", "%if 0", "BuildRequires: a", "%else", "BuildRequires: b", "%endif", "BuildRequires: c", "%endif"],
        ["b", "c"],
      ],
      [
        "%if 0%{?suse_version} with the macro from the config",
        ["%if 0%{?suse_version} >= 1500", "BuildRequires: new", "%else", "BuildRequires: old", "%endif"],
        ["new"],
        { prjconf: "Macros:\n%suse_version 1600\n:Macros\n" },
      ],
      [
        "%if 0%{?suse_version} without the macro",
        ["%if 0%{?suse_version} >= 1500", "BuildRequires: new", "%else", "BuildRequires: old", "%endif"],
        ["old"],
      ],
      [
        "%if with || and string comparison",
        ['%if 0%{?fedora} || "%{_target_cpu}" == "aarch64"', "BuildRequires: a", "%endif"],
        ["a"],
        { arch: "aarch64" },
      ],
      ["%ifarch match", ["%ifarch %{ix86} x86_64", "BuildRequires: x", "%endif"], ["x"], { arch: "i586" }],
      ["%ifarch no match", ["%ifarch %{ix86} x86_64", "BuildRequires: x", "%endif"], [], { arch: "s390x" }],
      [
        "%ifnarch",
        ["%ifnarch s390x", "BuildRequires: x", "%else", "BuildRequires: y", "%endif"],
        ["y"],
        { arch: "s390x" },
      ],
      [
        "%elifarch",
        [
          "%ifarch x86_64",
          "BuildRequires: a",
          "%elifarch aarch64",
          "BuildRequires: b",
          "%else",
          "BuildRequires: c",
          "%endif",
        ],
        ["b"],
        { arch: "aarch64" },
      ],
      ["%ifos", ["%ifos linux", "BuildRequires: l", "%endif", "%ifnos linux", "BuildRequires: n", "%endif"], ["l"]],
      [
        "%{with} from %bcond_without",
        ["%bcond_without tests", "%if %{with tests}", "BuildRequires: t", "%endif"],
        ["t"],
      ],
      ["%{with} from %bcond_with", ["%bcond_with tests", "%if %{with tests}", "BuildRequires: t", "%endif"], []],
      [
        "%bcond_with switched on by the config",
        ["%bcond_with tests", "%if %{with tests}", "BuildRequires: t", "%endif"],
        ["t"],
        { prjconf: "Macros:\n%_with_tests 1\n:Macros\n" },
      ],
      [
        "%bcond_without switched off by the config",
        ["%bcond_without tests", "BuildRequires: %{?with_tests:t}%{!?with_tests:no-t}"],
        ["no-t"],
        { prjconf: "Macros:\n%_without_tests 1\n:Macros\n" },
      ],
      [
        "%define inside a false branch is not made",
        ["%if 0", "%define x 1", "%endif", "BuildRequires: %{!?x:nox}"],
        ["nox"],
      ],
      ["commented %if is ignored", ["# %if 0", "BuildRequires: a", "# %endif"], ["a"]],
    ];
    for (const [title, lines, deps, opts] of cases) {
      it(`should follow ${title}`, () => {
        assert.deepEqual(spec(["Name: p", ...lines], opts).buildRequires, deps);
      });
    }

    it("should mark dependencies inside conditionals as config dependent", () => {
      assert.equal(spec(["Name: p", "BuildRequires: a"]).configDependent, false);
      assert.equal(spec(["Name: p", "%if 1", "%endif", "BuildRequires: a"]).configDependent, true);
      assert.equal(spec(["Name: p", "%if 0", "BuildRequires: a", "%endif"]).configDependent, true);
    });
  });

  describe("dependency lines", () => {
    // [deps text, split as obs-build splits it]
    const cases: [string, string[]][] = [
      ["foo", ["foo"]],
      ["foo bar baz", ["foo", "bar", "baz"]],
      ["foo, bar,baz", ["foo", "bar", "baz"]],
      ["foo >= 1.2", ["foo >= 1.2"]],
      ["foo >= 1.2, bar < 2 baz = 3", ["foo >= 1.2", "bar < 2", "baz = 3"]],
      ["foo   >=   1.2", ["foo   >=   1.2"]],
      ["foo => 1.2", ["foo >= 1.2"]],
      ["foo =< 1.2", ["foo <= 1.2"]],
      // Without whitespace after the operator the version is a separate "package".
      ["foo >=1.2", ["foo", ">=1.2"]],
      ["foo>=1.2", ["foo>=1.2"]],
      ["pkgconfig(glib-2.0) >= 2.56", ["pkgconfig(glib-2.0) >= 2.56"]],
      ["perl(Test::More) >= 0.88", ["perl(Test::More) >= 0.88"]],
      ["(foo or bar)", ["(foo or bar)"]],
      ["a, (b if c) d", ["a", "(b if c)", "d"]],
      ["(rust >= 1.70 or (rust-bin and cargo))", ["(rust >= 1.70 or (rust-bin and cargo))"]],
      ["python3-%{name}", ["python3-%{name}"]],
    ];
    for (const [text, want] of cases) {
      it(`should split ${JSON.stringify(text)}`, () => {
        assert.deepEqual(
          spec(["Name: p", `BuildRequires: ${text}`]).buildRequires,
          want.map((d) => d.replace("%{name}", "p"))
        );
      });
    }

    it("should return name, version and qualifier of each entry", () => {
      assert.deepEqual(splitDeps("a >= 1 [x86_64], b"), [
        ["a", " >= 1", " [x86_64]"],
        ["b", undefined, undefined],
      ]);
    });

    it("should join several BuildRequires lines, BuildPreReq and #!BuildRequires in order", () => {
      const s = spec(["Name: p", "BuildRequires: a", "BuildPreReq: b >= 2", "#!BuildRequires: c", "buildrequires: d"]);
      assert.deepEqual(s.buildRequires, ["a", "b >= 2", "c", "d"]);
    });

    it("should turn BuildConflicts and #!BuildIgnore into -name entries", () => {
      const s = spec(["#!BuildIgnore: post-build-checks", "Name: p", "BuildRequires: a", "BuildConflicts: b < 2"]);
      assert.deepEqual(s.buildRequires, ["-post-build-checks", "a", "-b < 2"]);
    });

    it("should keep or drop dependencies by their [arch] qualifier", () => {
      const lines = ["Name: p", "BuildRequires: a [x86_64 aarch64] b [!s390x] c [i586]"];
      assert.deepEqual(spec(lines, { arch: "aarch64" }).buildRequires, ["a", "b"]);
      assert.deepEqual(spec(lines, { arch: "s390x" }).buildRequires, []);
      assert.deepEqual(spec(lines, { arch: "i586" }).buildRequires, ["b", "c"]);
    });

    it("should ignore BuildRequires after the preamble", () => {
      assert.deepEqual(spec(["Name: p", "%description", "BuildRequires: late"]).buildRequires, []);
      assert.deepEqual(spec(["Name: p", "%description", "x", "%package sub", "BuildRequires: sub-dep"]).buildRequires, [
        "sub-dep",
      ]);
    });

    it("should use a # neededforbuild line when there are no BuildRequires", () => {
      assert.deepEqual(spec(["# neededforbuild gcc make", "Name: p"]).buildRequires, ["gcc", "make"]);
      assert.deepEqual(spec(["# neededforbuild gcc make", "Name: p", "BuildRequires: x"]).buildRequires, ["x"]);
    });

    it("should report prereqs as the OBS source server does", () => {
      const s = spec(
        [
          "Name: p",
          "BuildRequires: sed",
          "PreReq: /usr/sbin/useradd, /bin/sh coreutils",
          "Requires(pre): sed, grep >= 3",
          "Requires(post): %{name}-sub",
          "Requires(pre): %{undefined_macro}",
          "%package sub",
        ],
        { prjconf: "FileProvides: /bin/sh bash\n" }
      );
      assert.deepEqual(s.prereqs, ["/bin/sh", "coreutils", "grep"]);
    });
  });

  describe("packages", () => {
    it("should read name, version, release and the macros they define", () => {
      const s = spec(["Name: foo", "Version: 1.2", "Release: 3%{?dist}", "Source0: %{name}-%{version}.tar.gz"], {
        prjconf: "Macros:\n%dist .kiln1\n:Macros\n",
      });
      assert.deepEqual([s.name, s.version, s.release, s.error], ["foo", "1.2", "3.kiln1", undefined]);
    });

    it("should list subpackages with and without -n", () => {
      const s = spec([
        "Name: foo",
        "%global libname libfoo2",
        "%package devel",
        "%package -n %{libname}",
        "%package -n python3-foo",
        "%description -n python3-foo",
      ]);
      assert.deepEqual(s.subpacks, ["foo", "foo-devel", "libfoo2", "python3-foo"]);
    });

    it("should read only the first word of a tag and only the main preamble's", () => {
      const s = spec(["Name: foo bar", "Version: 1", "%package sub", "Version: 2", "Name: other"]);
      assert.deepEqual([s.name, s.version], ["foo", "1"]);
    });

    it("should read Epoch and BuildArch of the main package", () => {
      const s = spec(["Name: foo", "Epoch: 2", "BuildArch: noarch", "%package doc", "BuildArch: x86_64"]);
      assert.deepEqual([s.epoch, s.buildArch], ["2", "noarch"]);
    });

    it("should report an error when there is no Name", () => {
      const s = parseSpec("Version: 1\n", { arch: "x86_64", config: config(), filename: "x.spec" });
      assert.equal(s.error, "can not parse name from x.spec");
      assert.deepEqual(s.subpacks, []);
    });

    it("should collect #!BuildConstraint lines of the preamble", () => {
      const s = spec([
        "#!BuildConstraint: hardware:disk:size unit=G 20",
        "Name: foo",
        "%if 0",
        "#!BuildConstraint: hardware:jobs 64",
        "%endif",
        "#!BuildConstraint: hardware:memory:size unit=M %{?mem}%{!?mem:512}",
        "%description",
        "#!BuildConstraint: too late",
      ]);
      assert.deepEqual(s.constraints, ["hardware:disk:size unit=G 20", "hardware:memory:size unit=M 512"]);
    });

    it("should replace @BUILD_FLAVOR@ and @OBS_PACKAGE@", () => {
      const text =
        "%define flavor @BUILD_FLAVOR@%{nil}\nName: foo%{?flavor:-%{flavor}}\nBuildRequires: @OBS_PACKAGE@\n";
      const s = parseSpec(text, { arch: "x86_64", config: config(), buildFlavor: "test", obsPackage: "foo" });
      assert.deepEqual([s.name, s.buildRequires], ["foo-test", ["foo"]]);
      // The macro body keeps @BUILD_FLAVOR@; it becomes empty only when a line uses it.
      const plain = parseSpec(text, { arch: "x86_64", config: config() });
      assert.deepEqual([plain.name, plain.buildRequires], ["foo-", ["@OBS_PACKAGE@"]]);
    });
  });

  describe("architectures", () => {
    const cases: [string[], string, boolean][] = [
      [["ExclusiveArch: x86_64 aarch64"], "x86_64", false],
      [["ExclusiveArch: x86_64 aarch64"], "s390x", true],
      [["ExclusiveArch: %{ix86}"], "i586", false],
      [["ExclusiveArch: %{ix86}"], "x86_64", true],
      [["ExclusiveArch: %{rust_arches}"], "riscv64", true],
      [["ExclusiveArch: x86_64", "ExclusiveArch: s390x"], "s390x", false],
      [["ExclusiveArch:"], "x86_64", true],
      [["ExcludeArch: %{arm} s390x"], "armv7l", true],
      [["ExcludeArch: %{arm} s390x"], "x86_64", false],
      [["ExclusiveArch: x86_64 s390x", "ExcludeArch: s390x"], "s390x", true],
    ];
    for (const [lines, arch, excluded] of cases) {
      it(`should ${excluded ? "exclude" : "build"} ${JSON.stringify(lines)} on ${arch}`, () => {
        const s = spec(["Name: p", ...lines], { arch, prjconf: "Macros:\n%rust_arches x86_64 aarch64\n:Macros\n" });
        assert.equal(s.excluded, excluded);
      });
    }

    it("should report the expanded lists", () => {
      const s = spec(["Name: p", "ExclusiveArch: %{arm64} x86_64", "ExcludeArch: %{power64}"]);
      assert.deepEqual(s.exclusiveArch, ["aarch64", "x86_64"]);
      assert.deepEqual(s.excludeArch, ["ppc64", "ppc64p7", "ppc64le"]);
    });

    it("should read the spec for the cpu of the config's Target", () => {
      const cfg = config("Target: i686-suse-linux\n", "x86_64");
      const s = parseSpec("Name: p\nExclusiveArch: %{ix86}\n%ifarch i686\nBuildRequires: x\n%endif\n", {
        arch: "x86_64",
        config: cfg,
      });
      assert.deepEqual([s.excluded, s.buildRequires], [false, ["x"]]);
    });
  });

  describe("untrusted input", () => {
    it("should parse a spec whose macros reference themselves without hanging", () => {
      const s = spec(["%define a %a%a", "Name: %a", "%define b %{expand:%b}", "Version: %b"]);
      // As obs-build: every pending expansion gives up with MACRO (5005 characters here).
      assert.equal(s.name, "MACRO".repeat(1001));
      assert.equal(s.version, "MACRO");
    });

    it("should reject an exponentially growing macro with InvalidInputError", () => {
      const lines = ["%global a 0123456789012345678901234567890123456789"];
      for (let i = 0; i < 30; i++) lines.push("%global a %a%a");
      lines.push("Name: x");
      assert.throws(() => spec(lines), InvalidInputError);
    });

    it("should reject a text above the size limit with InvalidInputError", () => {
      assert.throws(
        () => parseSpec("#".repeat(9 * 1024 * 1024), { arch: "x86_64", config: config() }),
        InvalidInputError
      );
    });

    it("should throw nothing but InvalidInputError on random input", () => {
      let seed = 7;
      const rnd = (): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed / 2147483648;
      };
      const pieces = [
        "%",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "%if ",
        "%else",
        "%endif",
        "%define x ",
        "%global y ",
        "%x",
        "%y",
        "%{expand:",
        "%[",
        "\n",
        "BuildRequires: ",
        "Name: ",
        "%package -n ",
        "?",
        "!",
        ":",
        "\\",
        '"',
        " ",
        "a",
        "1",
      ];
      let parsed = 0;
      for (let i = 0; i < 300; i++) {
        let text = "";
        const n = Math.floor(rnd() * 200);
        for (let j = 0; j < n; j++) text += pieces[Math.floor(rnd() * pieces.length)];
        try {
          parseSpec(text, { arch: "x86_64", config: config(), limits: { maxLineLength: 50_000 } });
          parsed++;
        } catch (err) {
          assert.ok(err instanceof InvalidInputError, String(err));
        }
      }
      assert.ok(parsed > 250, `only ${parsed} of 300 random texts parsed`);
    });
  });
});
