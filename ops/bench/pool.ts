/**
 * Benchmark of the build pool rule (actors/repo/pool.ts) at distribution scale: 15,000 packages
 * with 45,000 pool binaries (plus a source and a debuginfo package each, which the rule must skip),
 * some binary names built by several packages, maintenance incidents and multibuild flavors.
 *
 * Goals: `computePool` from scratch under 1 s; one incremental `setResult` (a package rebuilt
 * with a new release) under 5 ms, looked at as median and p99 over many operations.
 *
 * Run: `node --import tsx ops/bench/pool.ts [--packages N] [--ops N]`
 */
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import { IncrementalPool, computePool } from "../../actors/repo/pool.ts";
import type { PackageResult, PoolBinary } from "../../actors/repo/pool.ts";
import { mulberry32 as rng } from "../../test/helpers/rng.ts";

export interface PoolBenchOptions {
  packages?: number;
  ops?: number;
  seed?: number;
}

export interface PoolBenchReport {
  packages: number;
  binaries: number;
  poolSize: number;
  computePoolMs: { median: number; min: number; runs: number };
  buildIncrementalMs: number;
  setResultMs: { median: number; p99: number; max: number; ops: number };
  setUseForBuildMs: { median: number; p99: number; max: number; ops: number };
  wipeMs: { median: number; p99: number; max: number; ops: number };
  goalsMet: boolean;
}

function packageName(i: number): string {
  const base = `pkg-${String(i).padStart(5, "0")}`;
  // A sprinkling of the names that make ordering interesting.
  if (i % 50 === 1) return `${base}.${10000 + i}`;
  if (i % 50 === 2) return `pkg-${String(i - 1).padStart(5, "0")}:flavor`;
  return base;
}

function rpm(name: string, release: number, arch: string, extra: Partial<PoolBinary> = {}): PoolBinary {
  return {
    filename: `${name}-1.0-${release}.${arch}.rpm`,
    name,
    version: "1.0",
    release: String(release),
    arch,
    isSource: arch === "src",
    hdrmd5: `${name}-${release}`,
    ...extra,
  };
}

function makeResult(pkg: string, release: number, r: () => number, packages: number): PackageResult {
  const stem = pkg.replace(/[.:].*$/, "");
  // Every tenth package also builds a binary name that some other package builds too.
  const third = r() < 0.1 ? `shared-${Math.floor(r() * (packages / 20))}` : `${stem}-lang`;
  return {
    binaries: [
      rpm(stem, release, "src"),
      rpm(stem, release, "x86_64"),
      rpm(`${stem}-devel`, release, "x86_64"),
      rpm(third, release, "noarch"),
      rpm(`${stem}-debuginfo`, release, "x86_64"),
    ],
  };
}

function stats(samples: number[]): { median: number; p99: number; max: number; ops: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { median: at(0.5), p99: at(0.99), max: s[s.length - 1]!, ops: s.length };
}

/** Runs the benchmark and returns its figures; prints nothing. */
export function runPoolBench(options: PoolBenchOptions = {}): PoolBenchReport {
  const packages = options.packages ?? 15000;
  const ops = options.ops ?? 5000;
  const r = rng(options.seed ?? 42);
  const results = new Map<string, PackageResult>();
  const names: string[] = [];
  for (let i = 0; i < packages; i++) {
    const pkg = packageName(i);
    names.push(pkg);
    results.set(pkg, makeResult(pkg, 1, r, packages));
  }
  const binaries = [...results.values()].reduce(
    (n, res) => n + res.binaries.filter((b) => !b.isSource && !b.name.endsWith("-debuginfo")).length,
    0
  );
  const enabled = (pkg: string) => !pkg.endsWith("9");

  const runs: number[] = [];
  let poolSize = 0;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    poolSize = computePool(results, enabled).size;
    runs.push(performance.now() - t0);
  }
  runs.sort((a, b) => a - b);

  const t0 = performance.now();
  const pool = IncrementalPool.from(results, enabled);
  const buildIncrementalMs = performance.now() - t0;

  const release = new Map<string, number>();
  const setResult: number[] = [];
  for (let i = 0; i < ops; i++) {
    const pkg = names[Math.floor(r() * names.length)]!;
    const rel = (release.get(pkg) ?? 1) + 1;
    release.set(pkg, rel);
    const res = makeResult(pkg, rel, r, packages);
    const s = performance.now();
    pool.setResult(pkg, res);
    setResult.push(performance.now() - s);
  }

  const toggles: number[] = [];
  for (let i = 0; i < ops; i++) {
    const pkg = names[Math.floor(r() * names.length)]!;
    const s = performance.now();
    pool.setUseForBuild(pkg, !pool.useForBuild(pkg));
    toggles.push(performance.now() - s);
  }

  const wipes: number[] = [];
  for (let i = 0; i < Math.min(ops, 1000); i++) {
    const pkg = names[Math.floor(r() * names.length)]!;
    const s = performance.now();
    pool.setResult(pkg, undefined);
    wipes.push(performance.now() - s);
  }

  const report: PoolBenchReport = {
    packages,
    binaries,
    poolSize,
    computePoolMs: { median: runs[Math.floor(runs.length / 2)]!, min: runs[0]!, runs: runs.length },
    buildIncrementalMs,
    setResultMs: stats(setResult),
    setUseForBuildMs: stats(toggles),
    wipeMs: stats(wipes),
    goalsMet: false,
  };
  report.goalsMet = report.computePoolMs.median < 1000 && report.setResultMs.p99 < 5;
  return report;
}

function fmt(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`;
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rep = runPoolBench({ packages: arg("--packages"), ops: arg("--ops") });
  const line = (label: string, s: { median: number; p99: number; max: number; ops: number }) =>
    console.log(`  ${label.padEnd(26)} median ${fmt(s.median)}  p99 ${fmt(s.p99)}  max ${fmt(s.max)}  (${s.ops} ops)`);
  console.log(`pool benchmark: ${rep.packages} packages, ${rep.binaries} pool binaries, ${rep.poolSize} names in pool`);
  console.log(
    `  computePool (from scratch)  median ${fmt(rep.computePoolMs.median)}  min ${fmt(rep.computePoolMs.min)}  (${rep.computePoolMs.runs} runs; goal < 1 s)`
  );
  console.log(`  IncrementalPool.from        ${fmt(rep.buildIncrementalMs)}`);
  line("setResult (rebuild)", rep.setResultMs);
  console.log("  (goal for setResult: < 5 ms)");
  line("setUseForBuild (toggle)", rep.setUseForBuildMs);
  line("setResult (wipe)", rep.wipeMs);
  console.log(rep.goalsMet ? "goals met" : "GOALS MISSED");
  process.exitCode = rep.goalsMet ? 0 : 1;
}
