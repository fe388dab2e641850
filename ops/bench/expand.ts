/**
 * Benchmark of build dependency expansion at distribution scale.
 *
 * Generates a distribution (by default 15,000 source packages building about 45,000 binaries:
 * a few hundred core libraries most packages link against, long tails of leaf packages, some
 * dependency cycles, versioned provides, and alternatives settled by Prefer), then times
 * (a) kiln expanding every source package's build dependencies (`getDeps`, the scheduler's
 * full check), cold and warm, plus an incremental recheck through an ExpansionCache after one
 * library changes, and (b) obs-build's Perl expander (`Build::get_deps`, one process, same data)
 * on a sample, and compares the results of that sample.
 *
 * Usage: node --import tsx ops/bench/expand.ts [--packages N] [--perl-sample N] [--seed N]
 */
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ExpansionCache, getDeps } from "../../actors/scheduler/expand.ts";
import type { ExpandConfig, ExpandResult } from "../../actors/scheduler/expand.ts";
import { ProviderIndex } from "../../actors/scheduler/provider-index.ts";
import type { BinaryPackage } from "../../actors/scheduler/provider-index.ts";
import { Rng, toDepfile, toPrjconf } from "../../test/helpers/gen-repo.ts";

/** One source package of a generated distribution. */
export interface SourcePackage {
  name: string;
  /** Names of the binaries it builds. */
  subpacks: string[];
  buildRequires: string[];
}

/** A generated distribution: one pool, its sources and its project config. */
export interface Distribution {
  binaries: BinaryPackage[];
  sources: SourcePackage[];
  config: ExpandConfig;
}

/** Knobs of {@link generateDistribution}. */
export interface DistributionOptions {
  /** Source packages. @default 15000 */
  sources?: number;
  /** Core libraries most packages depend on. @default 300 */
  coreLibs?: number;
  /** @default 1 */
  seed?: number;
}

const BASE = [
  "filesystem",
  "glibc",
  "bash",
  "coreutils",
  "sed",
  "grep",
  "gawk",
  "tar",
  "gzip",
  "xz",
  "rpm",
  "diffutils",
  "findutils",
  "cpio",
  "util-linux",
  "shadow",
  "perl-base",
  "gcc",
  "make",
  "binutils",
  "patch",
  "rpm-build",
  "pkg-config",
  "glibc-devel",
  "linux-glibc-devel",
];

function bin(
  name: string,
  version: string,
  extra: Partial<Pick<BinaryPackage, "provides" | "requires" | "conflicts" | "obsoletes" | "arch">>
): BinaryPackage {
  return {
    name,
    version,
    release: "1.1",
    arch: extra.arch ?? "x86_64",
    provides: extra.provides ?? [],
    requires: extra.requires ?? [],
    conflicts: extra.conflicts ?? [],
    obsoletes: extra.obsoletes ?? [],
  };
}

// Popularity skew: small indices are picked far more often (core libraries like libz).
function skewed(rng: Rng, n: number): number {
  return Math.min(n - 1, Math.floor(n * Math.pow(rng.next(), 1.6)));
}

/** Generates a distribution-scale pool deterministically from the seed. */
export function generateDistribution(opts: DistributionOptions = {}): Distribution {
  const rng = new Rng(opts.seed ?? 1);
  const nSources = opts.sources ?? 15_000;
  const nCore = Math.min(opts.coreLibs ?? 300, Math.max(20, nSources >> 2));
  const binaries: BinaryPackage[] = [];
  const sources: SourcePackage[] = [];
  const soname = (lib: string): string => `${lib}.so.1()(64bit)`;

  // The base system: a tight cluster (with cycles) everything ends up needing.
  for (let i = 0; i < BASE.length; i++) {
    const name = BASE[i]!;
    const requires = [soname("libc")];
    if (i > 2) requires.push(BASE[1 + rng.int(i - 1)]!);
    if (name === "bash") requires.push("coreutils"); // cycle bash ↔ coreutils
    if (name === "coreutils") requires.push("bash");
    const provides = name === "glibc" ? [soname("libc"), "/bin/sh"] : name === "gawk" ? ["awk"] : [];
    binaries.push(bin(name, `${1 + (i % 5)}.${i}`, { provides, requires: name === "glibc" ? [] : requires }));
  }
  binaries.push(bin("mawk", "1.3", { provides: ["awk"], requires: [soname("libc")] }));
  sources.push({ name: "base", subpacks: [...BASE, "mawk"], buildRequires: ["gcc", "make"] });

  // Core libraries: lib, -devel, some with tools; they link against earlier core libraries.
  const coreDevel: string[] = [];
  for (let i = 0; i < nCore; i++) {
    const lib = `libcore${i}`;
    const version = `${1 + rng.int(3)}.${rng.int(20)}`;
    const requires = [soname("libc")];
    const deps = i === 0 ? 0 : 2 + rng.int(5);
    for (let k = 0; k < deps; k++) requires.push(soname(`libcore${skewed(rng, i)}`));
    // A few mutual dependencies make cycles.
    if (i > 10 && rng.chance(0.03)) requires.push(soname(`libcore${i + 1 < nCore ? i + 1 : 0}`));
    binaries.push(bin(lib, version, { provides: [soname(lib)], requires: [...new Set(requires)] }));
    const devel = `core${i}-devel`;
    binaries.push(
      bin(devel, version, {
        provides: [`pkgconfig(core${i}) = ${version}`],
        requires: [`${lib} = ${version}-1.1`, "glibc-devel"],
      })
    );
    const subpacks = [lib, devel];
    if (rng.chance(0.3)) {
      const tool = `core${i}-tools`;
      binaries.push(bin(tool, version, { requires: [soname(lib), soname("libc")] }));
      subpacks.push(tool);
    }
    coreDevel.push(devel);
    const br = ["pkg-config"];
    for (let k = 0; k < rng.int(4); k++) br.push(`pkgconfig(core${skewed(rng, Math.max(1, i))})`);
    sources.push({ name: `core${i}`, subpacks, buildRequires: [...new Set(br)] });
  }

  // Alternatives settled by Prefer: a virtual JDK and a virtual MTA.
  const alternatives: [string, string[]][] = [
    ["java-devel", ["openjdk11-devel", "openjdk17-devel", "openjdk21-devel"]],
    ["smtp_daemon", ["postfix", "exim", "sendmail"]],
  ];
  for (const [cap, impls] of alternatives) {
    for (const impl of impls) {
      binaries.push(bin(impl, "1.0", { provides: [`${cap} = 1.0`], requires: [soname("libc"), soname("libcore0")] }));
    }
    sources.push({ name: cap, subpacks: [...impls], buildRequires: ["gcc"] });
  }

  // The long tail: each source builds a library, its -devel, the main package and sometimes
  // docs; build dependencies skew towards core and popular packages.
  const leafDevel: string[] = [];
  const nLeaf = nSources - sources.length;
  for (let i = 0; i < nLeaf; i++) {
    const name = `pkg${i}`;
    const version = `${rng.int(10)}.${rng.int(30)}.${rng.int(5)}`;
    const lib = `lib${name}`;
    const libReq = [soname("libc")];
    for (let k = 0; k < 3 + rng.int(8); k++) libReq.push(soname(`libcore${skewed(rng, nCore)}`));
    if (i > 0 && rng.chance(0.4)) libReq.push(soname(`libpkg${skewed(rng, i)}`));
    binaries.push(bin(lib, version, { provides: [soname(lib)], requires: [...new Set(libReq)] }));
    const devel = `${name}-devel`;
    binaries.push(
      bin(devel, version, {
        provides: [`pkgconfig(${name}) = ${version}`],
        requires: [`${lib} = ${version}-1.1`, coreDevel[skewed(rng, nCore)]!],
      })
    );
    const mainReq = [soname(lib), soname("libc")];
    if (rng.chance(0.1)) mainReq.push("awk");
    if (rng.chance(0.05)) mainReq.push("smtp_daemon");
    const subpacks = [lib, devel, name];
    binaries.push(
      bin(name, version, {
        requires: mainReq,
        ...(rng.chance(0.02) ? { obsoletes: [`${name}-old < ${version}`] } : {}),
      })
    );
    if (rng.chance(0.15)) {
      binaries.push(bin(`${name}-doc`, version, { arch: "noarch" }));
      subpacks.push(`${name}-doc`);
    }
    // Average about three binaries per source.
    if (rng.chance(0.1) && subpacks.length < 4) {
      binaries.push(bin(`${name}-tools`, version, { requires: [soname(lib)] }));
      subpacks.push(`${name}-tools`);
    }
    const br = ["gcc", "make"];
    for (let k = 0; k < 3 + rng.int(8); k++) {
      const x = rng.next();
      if (x < 0.6) br.push(rng.chance(0.5) ? coreDevel[skewed(rng, nCore)]! : `pkgconfig(core${skewed(rng, nCore)})`);
      else if (x < 0.9 && leafDevel.length > 0) {
        const j = skewed(rng, leafDevel.length);
        br.push(rng.chance(0.5) ? leafDevel[j]! : `pkgconfig(pkg${j}) >= 0.0`);
      } else if (x < 0.95) br.push("java-devel");
      else br.push(rng.pick(BASE));
    }
    leafDevel.push(devel);
    sources.push({ name, subpacks, buildRequires: [...new Set(br)] });
  }

  const config: ExpandConfig = {
    preinstall: BASE.slice(0, 17),
    vminstall: [],
    required: ["rpm-build", "gcc", "make", "binutils"],
    support: ["pkg-config", "patch", "diffutils"],
    keep: [],
    runscripts: [],
    prefer: ["openjdk17-devel", "postfix", "gawk"],
    ignore: ["rpm-build:smtp_daemon"],
    conflict: [],
    ignoreRebuild: [],
    expandFlags: [],
    substitute: {},
    fileProvides: {},
    binaryType: "rpm",
  };
  return { binaries, sources, config };
}

function digestLine(name: string, r: ExpandResult): string {
  return `${name}\n${r.ok ? `1 ${r.packages.join(" ")}` : `0 ${r.errors.join("|")}`}\n`;
}

const PERL_DRIVER = String.raw`
use strict;
use Build;
use Time::HiRes qw(time);
use Digest::MD5;
my ($conffile, $depfile, $jobsfile) = @ARGV;
my $cf = Build::read_config('x86_64', $conffile);
my %repo;
open(my $fh, '<', $depfile) or die;
while (my $line = <$fh>) {
  chomp $line;
  next unless $line =~ /^([PRCOr]):(.*?)\.[^.]+-\d+\/\d+\/\d+: ?(.*)$/;
  my ($tag, $name, $rest) = ($1, $2, $3);
  my @tok = split(' ', $rest);
  my @deps;
  while (@tok) {
    my $t = shift @tok;
    if (@deps && $t =~ /^[<=>]/) { $deps[-1] .= " $t " . shift(@tok); next; }
    push @deps, $t;
  }
  my %key = ('P' => 'provides', 'R' => 'requires', 'C' => 'conflicts', 'O' => 'obsoletes', 'r' => 'recommends');
  $repo{$name}->{$key{$tag}} = \@deps;
}
close $fh;
Build::readdeps($cf, undef, \%repo);
my @jobs;
open($fh, '<', $jobsfile) or die;
while (my $line = <$fh>) {
  chomp $line;
  my ($name, $sub, @deps) = split("\t", $line);
  push @jobs, [$name, [split(' ', $sub)], \@deps];
}
close $fh;
my $md5 = Digest::MD5->new;
my $t0 = time();
for my $j (@jobs) {
  my ($ok, @r) = Build::get_deps($cf, $j->[1], @{$j->[2]});
  $md5->add("$j->[0]\n" . ($ok ? "1 " . join(' ', @r) : "0 " . join('|', @r)) . "\n");
}
my $t = time() - $t0;
printf("%d %.6f %s\n", scalar(@jobs), $t, $md5->hexdigest);
`;

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

function fullCheck(
  dist: Distribution,
  index: ProviderIndex,
  cache?: ExpansionCache
): { ms: number; cpuMs: number; ok: number; packages: number } {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let ok = 0;
  let packages = 0;
  for (const s of dist.sources) {
    const r = getDeps(dist.config, s.subpacks, s.buildRequires, index, cache ? { cache } : {});
    if (r.ok) {
      ok++;
      packages += r.packages.length;
    }
  }
  const c = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, ok, packages };
}

function main(): void {
  const nSources = arg("--packages", 15_000);
  const perlSample = arg("--perl-sample", 300);
  const seed = arg("--seed", 1);
  const t0 = performance.now();
  const dist = generateDistribution({ sources: nSources, seed });
  const tGen = performance.now() - t0;
  const t1 = performance.now();
  const index = new ProviderIndex([dist.binaries]);
  const tIndex = performance.now() - t1;
  console.log(
    `distribution: ${dist.sources.length} sources, ${dist.binaries.length} binaries (generated in ${tGen.toFixed(0)} ms)`
  );
  console.log(`index build: ${tIndex.toFixed(0)} ms`);

  const cold = fullCheck(dist, index);
  let warm = fullCheck(dist, index);
  for (let i = 0; i < 2; i++) {
    const again = fullCheck(dist, index);
    if (again.ms < warm.ms) warm = again;
  }
  console.log(
    `kiln full check (getDeps of every source): cold ${cold.ms.toFixed(0)} ms (cpu ${cold.cpuMs.toFixed(0)}), ` +
      `warm ${warm.ms.toFixed(0)} ms (cpu ${warm.cpuMs.toFixed(0)}; best of 3), ` +
      `${((warm.ms * 1000) / dist.sources.length).toFixed(1)} µs/package; ${cold.ok} resolvable, ` +
      `${(warm.packages / Math.max(1, warm.ok)).toFixed(0)} packages per expansion on average`
  );

  // Incremental: fill a cache, change one popular library and one leaf, recheck everything.
  const cache = new ExpansionCache();
  const filled = fullCheck(dist, index, cache);
  const leaf = dist.binaries.find((b) => b.name === "libpkg100") ?? dist.binaries[dist.binaries.length - 1]!;
  index.setPackages(0, [{ ...leaf, release: "1.2" }]);
  const t2 = performance.now();
  const before = cache.misses;
  const leafRecheck = fullCheck(dist, index, cache);
  const leafMs = performance.now() - t2;
  const leafMisses = cache.misses - before;
  const core = dist.binaries.find((b) => b.name === "libcore5")!;
  index.setPackages(0, [{ ...core, release: "1.2" }]);
  const before2 = cache.misses;
  const coreRecheck = fullCheck(dist, index, cache);
  console.log(
    `kiln with cache: fill ${filled.ms.toFixed(0)} ms; recheck after a leaf library changed ${leafMs.toFixed(0)} ms ` +
      `(${leafMisses} re-expanded); after a core library changed ${coreRecheck.ms.toFixed(0)} ms (${cache.misses - before2} re-expanded)`
  );
  void leafRecheck;

  // obs-build's Perl expander on a sample of the same sources.
  if (perlSample > 0) {
    const dir = mkdtempSync(join(tmpdir(), "kiln-bench-expand-"));
    try {
      // Undo the incremental edits so both sides see the same pool.
      index.setPackages(0, [leaf, core]);
      writeFileSync(join(dir, "repo.deps"), toDepfile([dist.binaries]));
      writeFileSync(join(dir, "prj.conf"), toPrjconf(dist.config));
      writeFileSync(join(dir, "driver.pl"), PERL_DRIVER);
      const step = Math.max(1, Math.floor(dist.sources.length / perlSample));
      const sample = dist.sources.filter((_, i) => i % step === 0).slice(0, perlSample);
      writeFileSync(
        join(dir, "jobs"),
        sample.map((s) => [s.name, s.subpacks.join(" "), ...s.buildRequires].join("\t")).join("\n") + "\n"
      );
      const md5 = createHash("md5");
      const tk = performance.now();
      for (const s of sample) md5.update(digestLine(s.name, getDeps(dist.config, s.subpacks, s.buildRequires, index)));
      const kilnSampleMs = performance.now() - tk;
      const r = spawnSync(
        "perl",
        [
          "-I",
          "/usr/lib/obs-build",
          join(dir, "driver.pl"),
          join(dir, "prj.conf"),
          join(dir, "repo.deps"),
          join(dir, "jobs"),
        ],
        { encoding: "utf8", maxBuffer: 1 << 26 }
      );
      if (r.status !== 0) {
        console.log(`obs-build perl expander: failed (${r.error?.message ?? r.stderr.trim().slice(0, 300)})`);
      } else {
        const [count, secs, digest] = r.stdout.trim().split(" ");
        const perlMs = Number(secs) * 1000;
        const perlPer = perlMs / Number(count);
        const kilnPer = warm.ms / dist.sources.length;
        console.log(
          `obs-build Build::get_deps: ${count} packages in ${perlMs.toFixed(0)} ms (${(perlPer * 1000).toFixed(0)} µs/package; ` +
            `full check extrapolated ${((perlPer * dist.sources.length) / 1000).toFixed(1)} s)`
        );
        console.log(
          `kiln on the same sample: ${kilnSampleMs.toFixed(1)} ms; speed-up ${(perlPer / kilnPer).toFixed(0)}x; ` +
            `results ${digest === md5.digest("hex") ? "identical" : "DIFFER"}`
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
