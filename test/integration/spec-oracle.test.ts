/**
 * kiln's spec and prjconf parsers against obs-build's own Perl code (Debian package `obs-build`,
 * modules in /usr/lib/obs-build): every fixture spec, the hand-written ones and the unmodified
 * real distribution specs under fixtures/specs/real, is parsed for several project configs and
 * architectures by `Build::read_config` + `Build::parse` and by kiln, and the results must be
 * identical. The macro engine is additionally compared line by line on hand-picked and
 * generated macro lines. Nothing here skips: a missing perl or obs-build fails the suite.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  concatBuildConfig,
  configHelpers,
  buildFlag,
  expandFlag,
  publishFlag,
  readBuildConfig,
} from "../../actors/common/prjconf.ts";
import type { BuildConfig, ConfigLayer } from "../../actors/common/prjconf.ts";
import { configMacroLines, parseSpec } from "../../actors/common/spec.ts";
import {
  MacroContext,
  defineFromLines,
  evalExpr,
  expandMacros,
  exprBoolify,
  perlSplitLines,
} from "../../actors/common/rpm-macros.ts";

const OBS_BUILD = "/usr/lib/obs-build";
const SPEC_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "specs");
/** Unmodified spec files of real distributions (origins in its README.md). */
const REAL_SPEC_DIR = join(SPEC_DIR, "real");
const ARCHS = ["x86_64", "i586", "aarch64", "ppc64le", "s390x", "armv7l"];

// The Perl side of the oracle: reads jobs as JSON on stdin and answers with what obs-build makes
// of them. Strings are handled as bytes on both ends, as obs-build handles files.
const ORACLE_PL = String.raw`
use strict;
use lib '${OBS_BUILD}';
use Build;
use JSON::PP;
my $json = JSON::PP->new->canonical->allow_nonref;
my $in = $json->decode(do { local $/; scalar <STDIN> });
my @out;
for my $job (@{$in->{jobs}}) {
  my $cf = Build::read_config($job->{arch}, $job->{config});
  if ($job->{kind} eq 'lines') {
    my (%m, %a);
    Build::Rpm::initmacros($cf, \%m, \%a);
    my @r;
    for my $l (@{$job->{lines}}) {
      my $x = Build::Rpm::expandmacros($cf, $l, 1, \%m, \%a);
      my ($v) = Build::Rpm::expr($x);
      push @r, [$x, Build::Rpm::expr_boolify($v) ? 1 : 0];
    }
    push @out, \@r;
  } elsif ($job->{kind} eq 'spec') {
    # What this obs-build does not report: Epoch and #!BuildConstraint (newer obs-build reads
    # them from the preambles) and BuildArch (kiln's own). They are read from the lines as the
    # parse expanded them (save_expanded), so its macros and conditionals decide; the constraint
    # lines, comments to this obs-build, are renamed to preamble tags for that (in a second parse:
    # the first one reads the file as it is).
    my @x;
    my $d = Build::parse({ %$cf, 'save_expanded' => 1 }, $job->{file}, \@x);
    open(my $fh, '<', $job->{file}) or die("$job->{file}: $!");
    my @lines = <$fh>;
    close($fh);
    chomp @lines;
    if (grep {s/^#!BuildConstraint(?=\s*:)/KilnBuildConstraint/i} @lines) {
      @x = ();
      Build::Rpm::parse({ %$cf, 'save_expanded' => 1 }, \@lines, \@x);
    }
    # The source server's view: arch exclusion and the prereqs it reports.
    my $myarch = $cf->{'target'} ? (split('-', $cf->{'target'}))[0] : $job->{arch};
    my $excluded = 0;
    $excluded = 1 if $d->{'exclarch'} && !grep {$_ eq $myarch} @{$d->{'exclarch'}};
    $excluded = 1 if $d->{'badarch'} && grep {$_ eq $myarch} @{$d->{'badarch'}};
    my %deps = map {$_ => 1} (@{$d->{'deps'} || []}, @{$d->{'subpacks'} || []});
    my @prereqs = grep {!$deps{$_} && !/^%/} @{$d->{'prereqs'} || []};
    my ($main, $pre, $epoch, $buildarch, @constraints) = (1, 1);
    for my $e (@x) {
      next unless ref($e) && defined($e->[1]);
      my $l = $e->[1];
      if ($main) {
        $epoch = $1 if $l =~ /^Epoch\s*:\s*(\S+)/i;
        $buildarch = $1 if $l =~ /^BuildArch(?:itectures)?\s*:\s*(\S+)/i;
      }
      if ($pre && $l =~ /^KilnBuildConstraint\s*:\s*(\S.*)$/i) {
        (my $c = $1) =~ s/\s+$//;
        push @constraints, $c;
      }
      ($pre, $main) = (1, 0) if $l =~ /^\s*%package\s+(-n\s+)?(\S+)/;
      ($pre, $main) = (0, 0) if $l =~ /^\s*%(prep|build|install|check|clean|preun|postun|pretrans|posttrans|pre|post|files|changelog|description|triggerpostun|triggerun|triggerin|trigger|verifyscript)/;
    }
    push @out, {
      'epoch' => $epoch, 'buildarch' => $buildarch, 'constraints' => \@constraints,
      'name' => $d->{'name'}, 'version' => $d->{'version'}, 'release' => $d->{'release'},
      'disttag' => $d->{'disttag'}, 'deps' => $d->{'deps'}, 'subpacks' => $d->{'subpacks'},
      'exclarch' => $d->{'exclarch'}, 'badarch' => $d->{'badarch'}, 'excluded' => $excluded,
      'prereqs' => \@prereqs, 'configdependent' => $d->{'configdependent'} ? 1 : 0,
    };
  } else {
    my %c = %$cf;
    $c{'conflicth'} = { map {$_ => $cf->{'conflicth'}->{$_}} keys %{$cf->{'conflicth'}} };
    push @out, \%c;
  }
}
print $json->encode(\@out);
`;

type Job =
  | { kind: "lines"; arch: string; config: string[]; lines: string[] }
  | { kind: "spec"; arch: string; config: string[]; file: string }
  | { kind: "config"; arch: string; config: string[] };

function runOracle(jobs: Job[], encoding: BufferEncoding = "utf8"): unknown[] {
  const out = execFileSync("perl", ["-e", ORACLE_PL], {
    input: JSON.stringify({ jobs }),
    maxBuffer: 512 * 1024 * 1024,
    stdio: ["pipe", "pipe", "pipe"],
  });
  return JSON.parse(out.toString(encoding)) as unknown[];
}

// --- Project configs, modelled on distribution prjconfs --------------------------------------

const SUSE_BASE = `
# openSUSE-like base distribution
Preinstall: aaa_base attr bash coreutils diffutils filesystem fillup glibc grep
Preinstall: libbz2-1 libgcc_s1 m4 libncurses6 pam permissions libreadline8 rpm sed tar libz1
Preinstall: libselinux1 liblzma5 libcap2 libacl1 libattr1 libpcre2-8-0 libzstd1 libgcc_s1
Runscripts: aaa_base
VMinstall: util-linux libmount1 perl-base libdb-4_8
Required: rpm-build
Support: build-compare build-mkbaselibs brp-check-suse post-build-checks rpmlint-mini
Support: !rpmlint-mini
Keep: libgcc_s1 glibc

Prefer: libreadline8 -libncurses5 python3-base:python3-setuptools
Prefer: -openssl-1_0_0 openssl-3
Ignore: aaa_base:aaa_base-extras,net-tools
Ignore: post-build-checks:syslog
Ignore: rpm:suse-build-key
Conflict: ghostscript-library:ghostscript-mini
Conflict: busybox-sed:sed,busybox-grep
Substitute: build-essential gcc make
Substitute: python3-setuptools python3-setuptools python3-pip=
Substitute: dummy-to-remove foo
Substitute: !dummy-to-remove
FileProvides: /usr/bin/getent glibc
FileProvides: /bin/sh bash
FileProvides: /usr/sbin/groupadd shadow
ExportFilter: \\.x86_64\\.rpm$ . i586
ExportFilter: ^glibc-32bit-.*\\.rpm$ x86_64
ExportFilter: \\.ppc\\.rpm$ ppc64
OptFlags: x86_64 -fmessage-length=0 -O2 -Wall -D_FORTIFY_SOURCE=2 -fstack-protector -funwind-tables
OptFlags: i586 -O2 -march=i586 -mtune=i686
Release: <CI_CNT>.<B_CNT>
Type: spec
Repotype: rpm-md suse
Patterntype: rpm-md comps
ExpandFlags: module:python-3.11 preinstallexpand
BuildFlags: onlybuild:glibc onlybuild:gcc
BuildFlags: excludebuild:kernel-firmware-tool
BuildFlags: useccache:zstd-tool logidlelimit:3600
PublishFlags: noearlykiwipublish
Constraint: hardware:disk:size unit=G 8
Constraint: linux:version:min 5.1
Order: glibc:gcc gcc:binutils

%if "%_repository" == "images"
Type: kiwi
Repotype: staticlinks
Patterntype: none
Prefer: kiwi-settings
%endif

%ifarch x86_64
Support: !build-mkbaselibs
%endif
%ifarch %ix86
Substitute: kernel-dummy kernel-default
%endif
%ifarch %arm aarch64
Constraint: hardware:jobs 4
%else
Constraint: hardware:processors 2
%endif

Macros:
%suse_version 1699
%sle_version 0
%is_opensuse 1
%_vendor suse
%rust_arches x86_64 aarch64 ppc64le s390x riscv64 i686 armv7hl
%dotnet_arches x86_64 aarch64
%python_module() python3-%{**}
%sle15_python_module_pythons %{nil}
%ext_info .gz
%cargo_build cargo build --release
%multi_line first \\
  second \\
  third
%after_multi 1
:Macros
`;

const FEDORA_BASE = `
Preinstall: bash bzip2-libs coreutils diffutils filesystem glibc grep libacl libattr libcap
Preinstall: libgcc libselinux ncurses-libs pcre2 popt readline rpm rpm-libs sed setup tar
Preinstall: zlib xz-libs zstd libzstd
Required: gcc redhat-rpm-config rpm-build
Support: fedora-release
Keep: libgcc setup
Prefer: fedora-release-common -generic-release
Prefer: python3-libs
Ignore: fedora-release:fedora-release-identity
Conflict: glibc:glibc32
Substitute: python3-devel python3-devel python3-rpm-macros
Substitute: java-devel java-17-openjdk-devel
BinaryType: rpm
Type: spec
Release: <CI_CNT>.<B_CNT>%%{?dist}
HostArch: x86_64

%ifarch x86_64
Macros:
%__isa_name x86
%__isa_bits 64
:Macros
%endif
%ifarch aarch64
Macros:
%__isa_name aarch
%__isa_bits 64
:Macros
%endif
%ifarch i586
Macros:
%__isa_name x86
%__isa_bits 32
:Macros
%endif
Macros:
%_isa %{?__isa_name:(%{__isa_name}-%{__isa_bits})}
%fedora 40
%dist .fc40
%_vendor redhat
%rust_arches x86_64 aarch64 ppc64le s390x
%dotnet_arches x86_64 aarch64 s390x ppc64le
%python_module() python3-%{**}
:Macros
`;

const PROJECT_LAYER = `
# a user's project on top of the distribution
Prefer: !python3-libs ruby3.3
Ignore: !rpm:suse-build-key
Required: !*
Required: rpm-build ccache
Substitute: !build-essential
Support: extra-support
%if 0%{?_is_this_project}
Keep: project-keep
%endif
%if %_is_in_project
ExpandFlags: keepfilerequires
%endif
BuildFlags: !onlybuild:gcc
Constraint: !*
Constraint: hardware:memory:size unit=G 2
Macros:
%distrel 42
%vendor_macros_pkg kiln-macros
%_with_bootstrap 1
:Macros
`;

const RESET_LAYER = `
Macros:
!
%suse_version 1500
%sle_version 150600
:Macros
Repotype: rpm-md
Target: i686-suse-linux
`;

const CONFIGS: { name: string; layers: ConfigLayer[] }[] = [
  { name: "suse base", layers: [{ project: "openSUSE:Factory", repository: "standard", text: SUSE_BASE }] },
  {
    name: "suse + project",
    layers: [
      { project: "openSUSE:Factory", repository: "snapshot", text: SUSE_BASE },
      { project: "home:kiln:devel", repository: "openSUSE_Factory", text: PROJECT_LAYER },
    ],
  },
  {
    name: "fedora + subproject",
    layers: [
      { project: "Fedora:40", repository: "standard", text: FEDORA_BASE },
      { project: "home:kiln", repository: "Fedora_40", text: "" },
      { project: "home:kiln:devel", repository: "Fedora_40", text: PROJECT_LAYER },
    ],
  },
  { name: "suse images", layers: [{ project: "openSUSE:Factory", repository: "images", text: SUSE_BASE }] },
  {
    name: "suse with macro reset",
    layers: [
      { project: "openSUSE:Factory", repository: "standard", text: SUSE_BASE },
      { project: "SUSE:SLE-15", repository: "standard", text: RESET_LAYER },
    ],
  },
];

function configLines(layers: ConfigLayer[]): string[] {
  return perlSplitLines(concatBuildConfig(layers));
}

function specFiles(): string[] {
  const own = readdirSync(SPEC_DIR)
    .filter((f) => f.endsWith(".spec"))
    .sort()
    .map((f) => join(SPEC_DIR, f));
  return own;
}

/** The real distribution specs, by distribution directory. */
function realSpecFiles(): string[] {
  return readdirSync(REAL_SPEC_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) =>
      readdirSync(join(REAL_SPEC_DIR, d.name))
        .filter((f) => f.endsWith(".spec"))
        .map((f) => join(REAL_SPEC_DIR, d.name, f))
    )
    .sort();
}

/**
 * Parses every file for every config and arch with obs-build and with kiln and lists where they
 * differ. Files are read as bytes (latin1 on kiln's side), as obs-build reads them.
 */
function oracleDifferences(files: string[]): { compared: number; differences: string[]; perl: PerlSpec[] } {
  const jobs: Job[] = [];
  const cases: { file: string; config: string; arch: string; layers: ConfigLayer[] }[] = [];
  for (const cfg of CONFIGS) {
    const lines = configLines(cfg.layers);
    for (const arch of ARCHS) {
      for (const file of files) {
        jobs.push({ kind: "spec", arch, config: lines, file });
        cases.push({ file, config: cfg.name, arch, layers: cfg.layers });
      }
    }
  }
  const results = runOracle(jobs, "latin1") as PerlSpec[];
  const texts = new Map(files.map((f) => [f, readFileSync(f).toString("latin1")]));
  const configCache = new Map<string, BuildConfig>();
  const differences: string[] = [];
  cases.forEach((c, i) => {
    const key = `${c.config}/${c.arch}`;
    let config = configCache.get(key);
    if (!config) {
      config = readBuildConfig(configLines(c.layers), c.arch);
      configCache.set(key, config);
    }
    const perl = results[i]!;
    const kiln = parseSpec(texts.get(c.file)!, { arch: c.arch, config });
    const where = `${c.file.slice(SPEC_DIR.length + 1)} [${c.config}, ${c.arch}]`;
    const fields: [string, unknown, unknown][] = [
      ["name", kiln.name, perl.name ?? undefined],
      ["version", kiln.version, perl.version ?? undefined],
      ["release", kiln.release, perl.release ?? undefined],
      ["epoch", kiln.epoch, perl.epoch ?? undefined],
      ["disttag", kiln.disttag, perl.disttag ?? undefined],
      ["buildRequires", kiln.buildRequires, perl.deps],
      ["subpacks", kiln.subpacks, perl.subpacks],
      ["buildArch", kiln.buildArch, perl.buildarch ?? undefined],
      ["exclusiveArch", kiln.exclusiveArch, perl.exclarch ?? undefined],
      ["excludeArch", kiln.excludeArch, perl.badarch ?? undefined],
      ["excluded", kiln.excluded, perl.excluded === 1],
      ["constraints", kiln.constraints, perl.constraints],
      ["prereqs", kiln.prereqs, perl.prereqs],
      ["configDependent", kiln.configDependent, perl.configdependent === 1],
      ["error", kiln.error !== undefined, perl.name === null],
    ];
    for (const [field, k, p] of fields) {
      if (!isDeepStrictEqual(k, p))
        differences.push(`${field} of ${where}: kiln ${JSON.stringify(k)}, obs-build ${JSON.stringify(p)}`);
    }
  });
  return { compared: cases.length, differences, perl: results };
}

interface PerlSpec {
  name: string | null;
  version: string | null;
  release: string | null;
  epoch: string | null;
  buildarch: string | null;
  constraints: string[];
  disttag: string | null;
  deps: string[];
  subpacks: string[];
  exclarch: string[] | null;
  badarch: string[] | null;
  excluded: number;
  prereqs: string[];
  configdependent: number;
}

type PerlConfig = Record<string, unknown>;

describe("integration/spec-oracle", function () {
  before(function () {
    // Fail, never skip: the set-up script installs perl and obs-build.
    assert.ok(existsSync(join(OBS_BUILD, "Build.pm")), `obs-build is not installed (${OBS_BUILD}/Build.pm missing)`);
    execFileSync("perl", [`-I${OBS_BUILD}`, "-MBuild", "-MJSON::PP", "-e", "1"], { stdio: "pipe" });
  });

  it("should have at least 15 fixture specs", function () {
    assert.ok(specFiles().length >= 15, `only ${specFiles().length} fixture specs`);
  });

  it("should parse every fixture spec exactly as obs-build does, for every config and arch", function () {
    const files = specFiles();
    const { compared, differences } = oracleDifferences(files);
    assert.deepEqual(differences.slice(0, 20), [], `${differences.length} differences`);
    assert.equal(compared, files.length * CONFIGS.length * ARCHS.length);
  });

  it("should parse real distribution specs exactly as obs-build does, for every config and arch", function () {
    this.timeout(300_000);
    const files = realSpecFiles();
    assert.ok(files.length >= 15, `only ${files.length} real specs`);
    // Unmodified, as their README says: the checksums recorded when they were taken.
    const sums = readFileSync(join(REAL_SPEC_DIR, "SHA256SUMS"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(/ +/));
    assert.deepEqual(
      sums.map(([, f]) => join(REAL_SPEC_DIR, f!)),
      files
    );
    for (const [sum, f] of sums)
      assert.equal(
        createHash("sha256")
          .update(readFileSync(join(REAL_SPEC_DIR, f!)))
          .digest("hex"),
        sum,
        `${f} changed`
      );
    const { compared, differences, perl } = oracleDifferences(files);
    assert.deepEqual(differences.slice(0, 20), [], `${differences.length} differences`);
    assert.equal(compared, files.length * CONFIGS.length * ARCHS.length);
    // The comparison covers what the fields can differ in: counted over the whole matrix.
    const count = (f: (p: PerlSpec) => boolean): number => perl.filter(f).length;
    const seen = {
      epoch: count((p) => p.epoch !== null),
      buildArch: count((p) => p.buildarch !== null),
      excluded: count((p) => p.excluded === 1),
      excludeArch: count((p) => p.badarch !== null),
      manySubpackages: count((p) => p.subpacks.length >= 10),
      prereqs: count((p) => p.prereqs.length > 0),
      ignores: count((p) => p.deps.some((d) => d.startsWith("-"))),
      richDeps: count((p) => p.deps.some((d) => d.startsWith("("))),
      versionedDeps: count((p) => p.deps.some((d) => / [<>=]+ /.test(d))),
    };
    for (const [what, n] of Object.entries(seen)) assert.ok(n > 0, `no real spec has ${what}`);
    assert.ok(seen.excluded < compared, "every real spec is excluded everywhere");
    // Configs and archs change the results: on average several distinct ones per file.
    const distinct = new Set(perl.map((p, i) => `${i % files.length}:${JSON.stringify(p)}`)).size;
    assert.ok(distinct > files.length * 3, `only ${distinct} distinct results`);
  });

  it("should make the fixtures differ across configs and archs (the matrix is not trivial)", function () {
    const variants = new Set<string>();
    for (const cfg of CONFIGS) {
      for (const arch of ARCHS) {
        const config = readBuildConfig(configLines(cfg.layers), arch);
        for (const file of specFiles()) {
          const s = parseSpec(readFileSync(file, "utf8"), { arch, config });
          variants.add(`${file}:${JSON.stringify([s.buildRequires, s.subpacks, s.excluded, s.release])}`);
        }
      }
    }
    // Each spec yields on average well over one distinct result across the matrix.
    assert.ok(variants.size > specFiles().length * 2, `only ${variants.size} distinct results`);
  });

  it("should read project configs exactly as Build::read_config does", function () {
    const jobs: Job[] = [];
    const cases: { name: string; arch: string; lines: string[] }[] = [];
    for (const cfg of CONFIGS) {
      for (const arch of ARCHS) {
        const lines = configLines(cfg.layers);
        jobs.push({ kind: "config", arch, config: lines });
        cases.push({ name: cfg.name, arch, lines });
      }
    }
    const results = runOracle(jobs) as PerlConfig[];
    cases.forEach((c, i) => {
      const perl = results[i]!;
      const kiln = readBuildConfig(c.lines, c.arch);
      const where = `[${c.name}, ${c.arch}]`;
      const lists: [keyof BuildConfig, string][] = [
        ["preinstall", "preinstall"],
        ["vminstall", "vminstall"],
        ["required", "required"],
        ["support", "support"],
        ["keep", "keep"],
        ["runscripts", "runscripts"],
        ["prefer", "prefer"],
        ["ignore", "ignore"],
        ["conflict", "conflict"],
        ["expandFlags", "expandflags"],
        ["buildFlags", "buildflags"],
        ["publishFlags", "publishflags"],
        ["repotype", "repotype"],
        ["patterntype", "patterntype"],
        ["constraint", "constraint"],
        ["publishFilter", "publishfilter"],
      ];
      for (const [k, p] of lists) assert.deepEqual(kiln[k], perl[p], `${k} of ${where}`);
      assert.deepEqual(kiln.substitute, perl["substitute"], `substitute of ${where}`);
      assert.deepEqual(kiln.fileProvides, perl["fileprovides"], `fileProvides of ${where}`);
      assert.deepEqual(kiln.optFlags, perl["optflags"], `optFlags of ${where}`);
      assert.deepEqual(
        Object.fromEntries(kiln.exportFilter.map((e) => [e.regex, e.archs])),
        perl["exportfilter"],
        `exportFilter of ${where}`
      );
      assert.deepEqual([...kiln.order].sort(), Object.keys(perl["order"] as object).sort(), `order of ${where}`);
      const scalars: [keyof BuildConfig, string][] = [
        ["release", "release"],
        ["type", "type"],
        ["binaryType", "binarytype"],
        ["hostArch", "hostarch"],
        ["target", "target"],
        ["buildEngine", "buildengine"],
        ["singleExport", "singleexport"],
        ["macros", "rawmacros"],
      ];
      for (const [k, p] of scalars) assert.equal(kiln[k], perl[p] ?? undefined, `${k} of ${where}`);
      // The macro definitions a spec parse starts from, after obs-build's rawmacros conversion.
      assert.deepEqual(["", ...configMacroLines(c.arch, kiln)], perl["macros"], `macro lines of ${where}`);
      // Flag lookups and helper tables.
      for (const [kind, fn] of [
        ["buildflags", buildFlag],
        ["expandflags", expandFlag],
        ["publishflags", publishFlag],
      ] as const) {
        const keys = Object.keys(perl).filter((k) => k.startsWith(`${kind}:`));
        for (const key of keys) {
          const name = key.slice(kind.length + 1);
          assert.equal(fn(kiln, name), String(perl[key]), `${key} of ${where}`);
        }
      }
      const helpers = configHelpers(kiln);
      assert.deepEqual(
        [...helpers.prefer].sort(),
        Object.keys(perl["preferh"] as object).sort(),
        `preferh of ${where}`
      );
      assert.deepEqual(
        [...helpers.ignore].sort(),
        Object.keys(perl["ignoreh"] as object).sort(),
        `ignoreh of ${where}`
      );
      assert.deepEqual(Object.fromEntries(helpers.conflict), perl["conflicth"], `conflicth of ${where}`);
    });
  });

  it("should expand macro lines exactly as obs-build does", function () {
    const cfg = CONFIGS[1]!;
    const config = configLines(cfg.layers);
    const lines = [...HAND_PICKED_LINES, ...generatedLines(4000, 20240601)];
    const perl = runOracle([{ kind: "lines", arch: "x86_64", config, lines }])[0] as [string, number][];
    const ctx = new MacroContext();
    defineFromLines(ctx, configMacroLines("x86_64", readBuildConfig(config, "x86_64")));
    let differences = 0;
    const report: string[] = [];
    lines.forEach((line, i) => {
      const x = expandMacros(ctx, line);
      const b = exprBoolify(evalExpr(x, ctx)?.[0]) ? 1 : 0;
      if (x !== perl[i]![0] || b !== perl[i]![1]) {
        differences++;
        if (report.length < 10)
          report.push(`${JSON.stringify(line)}: kiln ${JSON.stringify(x)}/${b}, obs-build ${JSON.stringify(perl[i])}`);
      }
    });
    assert.equal(differences, 0, report.join("\n"));
  });
});

/** Lines chosen to hit obs-build's quirks; macro state carries from one line to the next. */
const HAND_PICKED_LINES = [
  "%[1+2] foo",
  "a %{expr:1+2} b",
  "%{?foo:x}y",
  "%define foo 1",
  "x%{?foo:yes}",
  "%{expand:%%{foo}}",
  'v=%[v"1.2" < v"1.10"]',
  '%[v"11.2" < v"9.1"]',
  "%[10/3]",
  "%[1e3]",
  '%[ "abc" + "def" ]',
  "%{!?bar:b}",
  "%define p(ab:) A%{-a}B%{-b*}C%1D%#E%*",
  "%p -a -b zz x y",
  "%{p -bq r}",
  "%{nil}x%{nil}",
  "%%{foo}",
  "%{foo{bar}",
  "%{}x%foo",
  "%if 0%{?foo} >= 1",
  '%if "%{_target_cpu}" == "x86_64"',
  "%if %{with x} || !%{without y}",
  "%bcond_without y",
  "%if %{with y}",
  "%{ix86}",
  "%{mips}",
  "%(echo hi) rest",
  "%[2*3+4]",
  "%[(2+3)*4 == 20 ? 7 : 8]",
  "%[ 1 && 0 || 5 ]",
  "%[-3]",
  "%[!0]",
  "%[100000000000000000000]",
  "%[1/3]",
  "%[2/4]",
  "%[0.00001 + 0]",
  "%{?_isa}",
  "foo%{?_isa} >= 1",
  "%global g %{foo}-%{?bar}",
  "%g",
  "%define h() %1-%2",
  "%h a b",
  "%{h x y} z",
  "%{!?with_x:0}%{?with_x:1}",
  "%{defined foo}",
  "%{undefined foo}",
  "%{defined nope}%{undefined nope}",
  "%{lua: print(1)}",
  "%{expand:%{foo}%{foo}}",
  "%{expr:3*4}",
  "%*",
  "%#",
  "%{-f}",
  "%1",
  "%define r %r%r",
  "%r",
  '%if v"1.2.3" >= v"1.2"',
  '%if "a" < "b"',
  "%if 1 - 1",
  "%if (1",
  '%if "x" + "y" == "xy"',
  "%[3 > 2 > 0]",
  "%if",
  "%[3 ? 4 : 5]",
  "%[0 ? 4 : 5]",
  "%{foo:bar}",
  "%{foo bar}",
  "%{?foo bar}",
  "%!foo",
  "%?!nope",
  "%{!?nope:%{foo}}",
  "%{?foo:%{foo}%{foo}}",
  "100%",
  "%{",
  "%{foo",
  "a%%b",
  "%-x",
  "%{expand:%define zz 5}%zz",
  "%define  spaced   body with  spaces  ",
  "[%spaced]",
  "%define args(x:y) [%{-x*}][%{-y}][%{**}]",
  "%args -x1 -y a b",
  "%args -x -- -y",
  "%args -yx q",
  "%python_module foo >= 1",
  "%{?multi_line}|%{after_multi}",
  "%distrel-%{?vendor_macros_pkg}-%_repository-%{?_project}-%{?distribution}",
  "%{with bootstrap}%{?_with_bootstrap}",
  "%{?suse_version:suse}%{!?fedora:notfedora}",
  // obs-build has no %undefine (real specs use it: glibc's bootstrap mode): the macro stays.
  "%define gone 1",
  "%undefine gone",
  "%{?gone:still}%{!?gone:removed}",
  "x%{undefine gone}y%{?gone}",
  "%if %{with bootstrap}",
  "%undefine with_bootstrap",
  "%{with bootstrap}",
];

/** Deterministic random macro lines built from tokens that exercise the expander. */
function generatedLines(n: number, seed: number): string[] {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const toks = [
    "%foo",
    "%{foo}",
    "%{?foo}",
    "%{!?foo}",
    "%{?foo:a}",
    "%{!?foo:b}",
    "%{?nope:c}",
    "%{!?nope:d}",
    "%distrel",
    "%{distrel}",
    "%%",
    "%",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "%[",
    "%{expand:",
    "%{expr:",
    "%{with x}",
    "%{without y}",
    "%{defined foo}",
    "%{undefined nope}",
    " ",
    " ",
    "1",
    "0",
    "2",
    "+",
    "-",
    "*",
    "/",
    "==",
    "!=",
    ">=",
    "<",
    "&&",
    "||",
    "!",
    "?",
    ":",
    '"',
    'v"',
    "abc",
    "1.2",
    ",",
    "%python_module",
    "%{python_module a b}",
    "%define q ",
    "%global q ",
    "%q",
    "%{q}",
    "%1",
    "%*",
    "%#",
    "%{-a}",
    "%{-a*}",
    "\\",
    "%(",
    "%{lua:x}",
    "%_target_cpu",
    "%{ix86}",
    "%{?_isa}",
    "%nil",
    "%{nil}",
    "%{suse_version}",
    "%{?is_opensuse}",
  ];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let line = rnd() < 0.3 ? "%if " : rnd() < 0.3 ? "%[" : "";
    const len = 1 + Math.floor(rnd() * 10);
    for (let j = 0; j < len; j++) line += toks[Math.floor(rnd() * toks.length)]!;
    out.push(line);
  }
  return out;
}
