/**
 * Benchmark of the scheduler's check at distribution scale (issue 4): a generated repository of
 * 15,000 source packages building ~45,000 binaries (a few hundred core libraries most packages
 * need, long tails, cycles, versioned provides, alternatives resolved by Prefer), every package
 * built once with a consistent meta (the steady state of a distribution).
 *
 * Measured in one process:
 * - a full check from scratch: every expansion, every state, every rebuild decision (meta
 *   comparison), and the process's peak RSS;
 * - an incremental recheck after a leaf package's binaries changed;
 * - an incremental recheck after a core library's binaries changed.
 * obs-build's Perl expander on the same packages is measured by ops/bench/expand.ts.
 *
 *   node --import tsx ops/bench/scheduler.ts [--packages N] [--runs N]
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { decode, encode } from "../../transport/index.ts";
import type { PoolBinary } from "../../actors/common/model.ts";
import { parseBuildConfig, type BuildConfig } from "../../actors/common/prjconf.ts";
import { IncrementalChecker, signatureDigests, type LastBuild } from "../../actors/scheduler/checker.ts";
import type { PackageBuildInfo } from "../../actors/source/protocol.ts";
import { generateDistribution } from "./expand.ts";
import { kilnNodeFlags } from "./util.ts";

const md5 = (s: string): string => createHash("md5").update(s).digest("hex");
const sha = (s: string): string => createHash("sha256").update(s).digest("hex");

export interface SchedulerBenchResult {
  sources: number;
  binaries: number;
  fullCheckMs: number;
  fullCheckCpuMs: number;
  /** The expansions' invalidation filters, made after the check in idle time. */
  filtersMs: number;
  fullCheckPhasesMs: { expand: number; order: number; evaluate: number };
  /** The same, again, with the expansion cache warm (what a recheck costs once running). */
  warmFullCheckMs: number;
  /** Median over ten leaf changes (after one warm-up). */
  leafRecheckMs: number;
  leafRecheckMaxMs: number;
  leafEvaluated: number;
  leafPhasesMs: { applyPoolDiff: number; expand: number; order: number; evaluate: number };
  coreRecheckMs: number;
  coreEvaluated: number;
  peakRssMiB: number;
  states: Record<string, number>;
}

interface Prepared {
  sources: number;
  binaries: number;
  config: BuildConfig;
  infos: PackageBuildInfo[];
  pool: PoolBinary[];
  results: [string, LastBuild][];
}

/** The steady state of a generated distribution, as plain data. */
function prepare(sources: number): Prepared {
  const dist = generateDistribution({ sources });
  const base = parseBuildConfig([{ project: "dist", repository: "standard", text: "" }], { arch: "x86_64" });
  const config: BuildConfig = { ...base, ...dist.config } as BuildConfig;
  const owner = new Map<string, string>();
  for (const s of dist.sources) for (const b of s.subpacks) owner.set(b, s.name);
  const infos: PackageBuildInfo[] = dist.sources.map((s) => ({
    project: "dist",
    package: s.name,
    repository: "standard",
    arch: "x86_64",
    rev: 1,
    srcmd5: md5(`src-${s.name}`),
    verifymd5: md5(`src-${s.name}`),
    revTime: 0,
    files: [],
    specFile: `${s.name}.spec`,
    version: "1.0",
    buildRequires: s.buildRequires,
    subpacks: s.subpacks,
    constraints: [],
    flags: { build: true, lock: false, useforbuild: true, debuginfo: false, publish: true },
  }));

  // The steady state: every package built once, in build order; each build recorded the
  // dependency signature of its job, and its binaries carry the id of its meta.
  const metas = new Map<string, string[]>();
  const pool: PoolBinary[] = dist.binaries.map((b) => ({
    ...b,
    epoch: b.epoch === undefined ? undefined : Number(b.epoch),
    package: owner.get(b.name) ?? "unknown",
    filename: `${b.name}-${b.version}-${b.release}.${b.arch}.rpm`,
    sha256: sha(b.name),
    hdrmd5: md5(`hdr-${b.name}`),
    size: 1000,
    // One meta id per build. In a real distribution cycles settle because a meta leaves out the
    // package's own subpackages; here the id simply does not depend on the dependencies' ids.
    metaSha256: sha(`meta-${md5(`src-${owner.get(b.name) ?? "unknown"}`)}`),
  })) as PoolBinary[];
  const setupChecker = new IncrementalChecker({
    project: "dist",
    repository: "standard",
    arch: "x86_64",
    rebuild: "transitive",
    block: "never",
    config,
    layers: [{ project: "dist", repository: "standard", binaries: pool }],
    metaOf: (s) => metas.get(s),
  });
  for (const i of infos) setupChecker.upsertPackage(i);
  setupChecker.check();
  const results = new Map<string, LastBuild>();
  const byName = new Map(pool.map((b) => [b.name, b]));
  const done = new Set<string>();
  const order = [...infos].sort(
    (a, b) => setupChecker.pkgdeps(a.package).length - setupChecker.pkgdeps(b.package).length
  );
  // Dependencies first where possible (a topological walk), the rest (cycles) after.
  const visit = (name: string, stack: Set<string>): void => {
    if (done.has(name) || stack.has(name)) return;
    stack.add(name);
    for (const d of setupChecker.pkgdeps(name)) visit(d, stack);
    stack.delete(name);
    done.add(name);
    const info = infos.find((x) => x.package === name)!;
    const metaSha256 = sha(`meta-${info.verifymd5}`);
    results.set(name, { code: "succeeded", srcmd5: info.verifymd5, versrel: "1.0-1", bcnt: 1, metaSha256 });
  };
  for (const i of order) visit(i.package, new Set());
  // Each build recorded the signature of the dependencies it was built with.
  for (const i of infos) {
    const exp = setupChecker.expansionOf(i.package);
    const digests = signatureDigests(
      exp?.ok ? exp.packages : [],
      (n) => byName.get(n),
      (src) => results.get(src)?.srcmd5,
      true
    );
    results.get(i.package)!.digests = digests;
  }

  return {
    sources: dist.sources.length,
    binaries: dist.binaries.length,
    config,
    infos,
    pool,
    results: [...results],
  };
}

/** The measurement, in a process that holds nothing but the scheduler's own state. */
function measure(data: Prepared): SchedulerBenchResult {
  const { config, infos, pool } = data;
  const results = new Map(data.results);
  const metas = new Map<string, string[]>();
  const owner = new Map<string, string>();
  for (const i of infos) for (const s of i.subpacks) owner.set(s, i.package);
  const checker = new IncrementalChecker({
    project: "dist",
    repository: "standard",
    arch: "x86_64",
    rebuild: "transitive",
    block: "all",
    config,
    layers: [{ project: "dist", repository: "standard", binaries: pool }],
    metaOf: (s) => metas.get(s),
  });
  for (const i of infos) checker.upsertPackage(i);
  for (const [k, v] of results) checker.setResult(k, v);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const full = checker.check();
  const cpu = process.cpuUsage(c0);
  const fullCheckMs = performance.now() - t0;
  // What the scheduler role does in idle time after a check: the expansions' invalidation filters.
  const tf = performance.now();
  checker.makeFilters();
  const filtersMs = performance.now() - tf;
  checker.recheckAll();
  const tw = performance.now();
  checker.check();
  const warmFullCheckMs = performance.now() - tw;
  const states: Record<string, number> = {};
  for (const s of full.states.values()) states[s.code] = (states[s.code] ?? 0) + 1;

  // A leaf package's binaries change (it was rebuilt): only its few users are looked at again.
  // A running scheduler sees such changes all the time: one warms up, ten different ones count.
  const revCount = (bin: string): number => checker.revdeps(owner.get(bin) ?? "").length;
  // A leaf: a binary nothing refers to — no other binary requires, conflicts with, obsoletes or
  // provides its name and no package build-requires it (a name a core library conflicts with is
  // looked at by every expansion that installs that library, rightly).
  const referenced = new Set<string>();
  const nameOf = (dep: string): string => dep.split(/[\s<>=]/)[0]!;
  for (const b of pool)
    for (const d of [...b.requires, ...b.conflicts, ...b.obsoletes, ...b.provides]) referenced.add(nameOf(d));
  for (const i of infos) for (const d of i.buildRequires) referenced.add(nameOf(d.replace(/^-/, "")));
  const leaves = pool
    .filter((b) => owner.get(b.name) && revCount(b.name) === 0 && b.provides.length === 0 && !referenced.has(b.name))
    .slice(0, 11);
  const leafTimes: number[] = [];
  let leaf = full;
  let leafPhases = { applyPoolDiff: 0, expand: 0, order: 0, evaluate: 0 };
  for (const [i, leafBin] of leaves.entries()) {
    const t1 = performance.now();
    checker.applyPoolDiff(
      0,
      [{ ...leafBin, hdrmd5: md5(`leaf-new-${i}`), metaSha256: sha(`leaf-new-${i}`), release: "1.2" }],
      [leafBin.name]
    );
    const tDiffEnd = performance.now();
    leaf = checker.check();
    if (i === 0) continue;
    leafTimes.push(performance.now() - t1);
    leafPhases = {
      applyPoolDiff: +(tDiffEnd - t1).toFixed(2),
      expand: +leaf.timings.expandMs.toFixed(2),
      order: +leaf.timings.orderMs.toFixed(2),
      evaluate: +leaf.timings.evaluateMs.toFixed(2),
    };
  }
  leafTimes.sort((a, b) => a - b);
  const leafRecheckMs = leafTimes[Math.floor(leafTimes.length / 2)]!;
  const leafRecheckMaxMs = leafTimes[leafTimes.length - 1]!;

  // A core library's binaries change: most of the distribution is affected.
  const coreBin = pool.find((b) => b.name === "libcore5") ?? pool[0]!;
  const t2 = performance.now();
  checker.applyPoolDiff(
    0,
    [{ ...coreBin, hdrmd5: md5("core-new"), metaSha256: sha("core-new"), release: "1.2" }],
    [coreBin.name]
  );
  const core = checker.check();
  const coreRecheckMs = performance.now() - t2;

  return {
    sources: data.sources,
    binaries: data.binaries,
    fullCheckMs: Math.round(fullCheckMs),
    fullCheckCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    filtersMs: Math.round(filtersMs),
    warmFullCheckMs: Math.round(warmFullCheckMs),
    fullCheckPhasesMs: {
      expand: Math.round(full.timings.expandMs),
      order: Math.round(full.timings.orderMs),
      evaluate: Math.round(full.timings.evaluateMs),
    },
    leafRecheckMs: +leafRecheckMs.toFixed(2),
    leafEvaluated: leaf.evaluated,
    leafRecheckMaxMs: +leafRecheckMaxMs.toFixed(2),
    leafPhasesMs: leafPhases,
    coreRecheckMs: Math.round(coreRecheckMs),
    coreEvaluated: core.evaluated,
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    states,
  };
}

/**
 * Prepares the data here and measures in `runs` fresh child processes (each one's peak RSS is the
 * scheduler's), with the Node flags `kiln up` runs with. A shared 2-core VM's timings move with
 * its neighbours, so the figures are those of the run with the median full check, and every
 * run's full check is listed.
 */
export function runSchedulerBench(sources = 15_000, runs = 3): SchedulerBenchResult & { fullCheckRunsMs: number[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-sched-"));
  try {
    const file = path.join(dir, "state.msgpack");
    writeFileSync(file, encode(prepare(sources)));
    const results: SchedulerBenchResult[] = [];
    for (let i = 0; i < runs; i++) {
      const r = spawnSync(
        process.execPath,
        [
          ...kilnNodeFlags(),
          ...(process.env.KILN_BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.KILN_BENCH_PROFILE}`] : []),
          "--import",
          "tsx",
          fileURLToPath(import.meta.url),
          "--measure",
          file,
        ],
        {
          encoding: "utf8",
          maxBuffer: 1 << 24,
        }
      );
      if (r.status !== 0) throw new Error(`measurement failed: ${r.stderr}`);
      if (r.stderr) process.stderr.write(r.stderr);
      results.push(JSON.parse(r.stdout) as SchedulerBenchResult);
    }
    const byCheck = [...results].sort((a, b) => a.fullCheckMs - b.fullCheckMs);
    return {
      ...byCheck[Math.floor((byCheck.length - 1) / 2)]!,
      peakRssMiB: Math.max(...results.map((r) => r.peakRssMiB)),
      fullCheckRunsMs: results.map((r) => r.fullCheckMs),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes("--measure")) {
  const file = process.argv[process.argv.indexOf("--measure") + 1]!;
  process.stdout.write(JSON.stringify(measure(decode<Prepared>(readFileSync(file)))));
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--packages");
  const j = process.argv.indexOf("--runs");
  const r = runSchedulerBench(i >= 0 ? Number(process.argv[i + 1]) : 15_000, j >= 0 ? Number(process.argv[j + 1]) : 3);
  console.log(JSON.stringify(r, null, 2));
  console.log(
    `scheduler: full check of ${r.sources} packages / ${r.binaries} binaries ${r.fullCheckMs} ms cold (median of ${r.fullCheckRunsMs.length} processes: ${r.fullCheckRunsMs.join(", ")}), ${r.warmFullCheckMs} ms warm (goal < 2000), then ${r.filtersMs} ms of invalidation filters in idle time, ` +
      `leaf change ${r.leafRecheckMs} ms median, ${r.leafRecheckMaxMs} ms worst of 10 (goal < 20; ${r.leafEvaluated} packages looked at), ` +
      `core library change ${r.coreRecheckMs} ms (${r.coreEvaluated} looked at), peak RSS ${r.peakRssMiB} MiB (goal < 600)`
  );
}
