/**
 * Benchmarks of the repo role and the publisher at distribution scale.
 *
 * 1. Reconstruct a pool: a repository/arch with 15,000 packages and 45,000 pool binaries (plus
 *    a source and a debuginfo package each, which the rule skips), stored in LMDB;
 *    `RepoState.rebuildPool` (`kiln admin rebuild-pool`) reads every package's bininfo, evaluates
 *    the rule from scratch, compares with every stored pool entry and restarts the incremental
 *    structure. Goal: under 1 s. Also measured: the same with `--deep` (bininfo derived from the
 *    full results), and loading the repository/arch into memory.
 * 2. Store one result in that repository: `RepoState.storeResult` — the role's store path after
 *    the request is validated and the headers are read: histories, imports, the incremental pool
 *    update, the stored pool diff and the events, in one LMDB transaction, awaited until
 *    committed (durably: LMDB syncs on commit). Goal: under 5 ms.
 * 3. Publish 5,000 RPMs: real RPMs (generated once with rpmbuild into a cache directory under
 *    /tmp), stored as results of 5,000 packages; the publisher role takes them from the repo role
 *    over NATS, links the tree and runs createrepo_c. Measured cold (empty content cache), and
 *    warm after one package was wiped (content cache and createrepo_c's --update reuse).
 *
 * Run: `node --import tsx ops/bench/repo.ts [--packages N] [--ops N] [--rpms N] [--skip-publish]`
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { start as startActorSystem, stop as stopActorSystem } from "nact";
import pino from "pino";
import {
  startPublisherRole,
  startRepoRole,
  startSourceRole,
  type PublisherApi,
  type RepoApi,
  type RoleContext,
  type SourceApi,
} from "../../actors/index.ts";
import { BuildResultCode } from "../../actors/common/model.ts";
import { readRpmHeader } from "../../actors/repo/rpm-header.ts";
import { RepoState, type ResultInput } from "../../actors/repo/repo-state.ts";
import type { StoredBinary, StoredResult } from "../../actors/repo/protocol.ts";
import { BlobStore, Outbox, RoleStore, keys } from "../../storage/index.ts";
import {
  Identity,
  NatsServerProcess,
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  subjects,
} from "../../transport/index.ts";
import { percentile } from "./util.ts";
import { mulberry32 as rng } from "../../test/helpers/rng.ts";

export interface RepoBenchOptions {
  /** Packages of the pool benchmarks. @default 15000 */
  packages?: number;
  /** Measured stores. @default 500 */
  ops?: number;
  /** RPMs of the publish benchmark. @default 5000 */
  rpms?: number;
  /** Where generated RPMs are kept between runs. @default /tmp/kiln-bench-rpms */
  rpmCache?: string;
  skipPublish?: boolean;
}

export interface Latency {
  median: number;
  p99: number;
  max: number;
  ops: number;
}

export interface RepoBenchReport {
  packages: number;
  binaries: number;
  poolSize: number;
  /**
   * First rebuild of an empty stored pool: derives the bininfo of results written without it,
   * writes every entry and its events (with dependency data read from the full results).
   */
  initialPoolMs: number;
  /** `kiln admin rebuild-pool` on a consistent pool: read bininfo, recompute, compare, restart. */
  reconstructMs: { median: number; min: number; runs: number };
  /** CPU time of this process for one reconstruction (median): what a busy machine does not inflate. */
  reconstructCpuMs: number;
  /** `kiln admin rebuild-pool --deep`: every bininfo derived from the full results first. */
  reconstructDeepMs: number;
  /** Loading the repository/arch into memory (what the first write after a start pays). */
  loadMs: number;
  storeResultMs: Latency;
  publish?: {
    rpms: number;
    generateMs: number;
    coldMs: number;
    warmMs: number;
    createrepoOnlyMs: number;
  };
  goalsMet: boolean;
}

const log = pino({ level: "silent" });
const P = "bench:dist";
const R = "standard";
const A = "x86_64";

const hex = (s: string, n = 64): string => createHash("sha256").update(s).digest("hex").slice(0, n);

function packageName(i: number): string {
  const base = `pkg-${String(i).padStart(5, "0")}`;
  if (i % 50 === 1) return `${base}.${10000 + i}`;
  if (i % 50 === 2) return `pkg-${String(i - 1).padStart(5, "0")}:flavor`;
  return base;
}

function binary(name: string, release: number, arch: string, pkgIndex: number): StoredBinary {
  const filename = `${name}-1.0-${release}.${arch}.rpm`;
  const id = `${filename}/${pkgIndex}`;
  return {
    filename,
    name,
    version: "1.0",
    release: String(release),
    arch,
    isSource: arch === "src",
    provides: [`${name} = 1.0-${release}`, `lib${name}.so.1()(64bit)`],
    requires: [`libc.so.6()(64bit)`, `pkg-${String((pkgIndex * 7) % 1000).padStart(5, "0")}`],
    conflicts: [],
    obsoletes: [],
    hdrmd5: hex(id, 32),
    sha256: hex(id),
    md5: hex(id, 32),
    size: 10_000 + pkgIndex,
    ...(arch === "src" ? {} : { sourceRpm: `${name}-1.0-${release}.src.rpm`, source: name }),
  };
}

function binariesOf(pkg: string, i: number, release: number, r: () => number, packages: number): StoredBinary[] {
  const stem = pkg.replace(/[.:].*$/, "");
  const third = r() < 0.1 ? `shared-${Math.floor(r() * (packages / 20))}` : `${stem}-lang`;
  return [
    binary(stem, release, "src", i),
    binary(stem, release, A, i),
    binary(`${stem}-devel`, release, A, i),
    binary(third, release, "noarch", i),
    binary(`${stem}-debuginfo`, release, A, i),
  ];
}

function latency(samples: number[]): Latency {
  return {
    median: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: Math.max(...samples),
    ops: samples.length,
  };
}

/** 1 and 2: the pool of a big repository/arch. */
async function poolBench(
  opts: Required<Pick<RepoBenchOptions, "packages" | "ops">>
): Promise<Omit<RepoBenchReport, "publish" | "goalsMet">> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-repo-"));
  const store = RoleStore.open({ path: path.join(dir, "db"), log });
  const outbox = new Outbox(store, async () => undefined, log);
  const lookups = {
    project: async () => ({ flags: {}, repositories: [{ name: R, archs: [A] }] }),
    package: async () => ({ flags: {} }),
    buildConfig: async () => ({ exportFilter: [], path: [{ project: P, repository: R }] }),
  };
  const state = new RepoState({ store, outbox, lookups, log });
  try {
    const r = rng(42);
    const names: string[] = [];
    let binaries = 0;
    // Results are written straight into LMDB: the set-up is not what is measured.
    for (let start = 0; start < opts.packages; start += 1000) {
      await store.transact(() => {
        void store.db.put(keys.projectFlags(P), { project: P, flags: {}, repositories: [{ name: R, archs: [A] }] });
        for (let i = start; i < Math.min(opts.packages, start + 1000); i++) {
          const pkg = packageName(i);
          names.push(pkg);
          const bins = binariesOf(pkg, i, 1, r, opts.packages);
          binaries += bins.filter((b) => !b.isSource && !b.name.endsWith("-debuginfo")).length;
          const res: StoredResult = {
            project: P,
            repository: R,
            arch: A,
            package: pkg,
            code: BuildResultCode.Succeeded,
            jobId: hex(pkg, 32),
            srcmd5: hex(pkg, 32),
            verifymd5: hex(pkg, 32),
            rev: 1,
            versrel: "1.0-1",
            bcnt: 1,
            release: "1.1",
            reason: "new build",
            workerId: "w",
            readyTime: 0,
            startTime: 0,
            endTime: 1,
            binaries: bins,
            metaSha256: hex(`meta${pkg}`),
          };
          void store.db.put(keys.result(P, R, A, pkg), res);
          void store.db.put(keys.packageFlags(P, pkg), { project: P, package: pkg, flags: {} });
        }
      });
    }
    let t0 = performance.now();
    const first = await state.rebuildPool(P, R, A);
    const initialPoolMs = performance.now() - t0;
    await outbox.flush();
    const runs: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < 5; i++) {
      t0 = performance.now();
      const c0 = process.cpuUsage();
      const again = await state.rebuildPool(P, R, A);
      runs.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
      if (again.added + again.removed + again.changed !== 0) throw new Error("reconstruction found differences");
    }
    t0 = performance.now();
    await state.rebuildPool(P, R, A, { deep: true });
    const reconstructDeepMs = performance.now() - t0;
    state.unload();
    t0 = performance.now();
    await state.ensurePrpa(P, R, A);
    const loadMs = performance.now() - t0;

    const stores: number[] = [];
    const release = new Map<string, number>();
    for (let op = 0; op < opts.ops + 50; op++) {
      const i = Math.floor(r() * names.length);
      const pkg = names[i]!;
      const rel = (release.get(pkg) ?? 1) + 1;
      release.set(pkg, rel);
      const input: ResultInput = {
        project: P,
        repository: R,
        arch: A,
        package: pkg,
        jobId: hex(`${pkg}${rel}`, 32),
        srcmd5: hex(pkg, 32),
        verifymd5: hex(pkg, 32),
        rev: 1,
        versrel: "1.0-1",
        bcnt: rel,
        release: `1.${rel}`,
        reason: "meta change",
        readyTime: Date.now(),
        workerId: "w",
        code: BuildResultCode.Succeeded,
        startTime: Date.now(),
        endTime: Date.now(),
        binaries: binariesOf(pkg, i, rel, r, opts.packages).map((b) => ({ ...b, metaSha256: hex(`m${pkg}${rel}`) })),
        metaSha256: hex(`m${pkg}${rel}`),
      };
      const s = performance.now();
      await state.storeResult(input);
      // The first stores warm up caches and the JIT.
      if (op >= 50) stores.push(performance.now() - s);
      if (op % 100 === 0) await outbox.flush();
    }
    runs.sort((a, b) => a - b);
    return {
      packages: opts.packages,
      binaries,
      poolSize: first.binaries,
      initialPoolMs,
      reconstructMs: { median: runs[Math.floor(runs.length / 2)]!, min: runs[0]!, runs: runs.length },
      reconstructCpuMs: percentile(cpu, 50),
      reconstructDeepMs,
      loadMs,
      storeResultMs: latency(stores),
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Generates `n` small noarch RPMs once (rpmbuild, 500 subpackages per spec). */
async function generateRpms(cacheRoot: string, n: number): Promise<{ dir: string; ms: number }> {
  const dir = path.join(cacheRoot, String(n));
  const done = path.join(dir, ".complete");
  if (existsSync(done)) return { dir, ms: 0 };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const per = 500;
  for (let start = 0; start < n; start += per) {
    const count = Math.min(per, n - start);
    const top = path.join(dir, `top-${start}`);
    mkdirSync(top, { recursive: true });
    const name = (i: number): string => `bench-${String(i).padStart(5, "0")}`;
    const lines = [
      `Name: bench-set-${start}`,
      "Version: 1.0",
      "Release: 1",
      "Summary: kiln benchmark packages",
      "License: MIT",
      "BuildArch: noarch",
      "%description",
      "Generated by ops/bench/repo.ts.",
    ];
    for (let i = start; i < start + count; i++) {
      lines.push(`%package -n ${name(i)}`, "Summary: one benchmark package", `%description -n ${name(i)}`, "x");
    }
    lines.push(
      "%install",
      `mkdir -p %{buildroot}/usr/share/kiln-bench && for i in $(seq -f %05g ${start} ${start + count - 1}); do echo $i > %{buildroot}/usr/share/kiln-bench/$i; done`,
      "%files",
      ""
    );
    for (let i = start; i < start + count; i++)
      lines.push(`%files -n ${name(i)}`, `/usr/share/kiln-bench/${String(i).padStart(5, "0")}`);
    const spec = path.join(top, "bench.spec");
    writeFileSync(spec, lines.join("\n") + "\n");
    await execa("rpmbuild", ["-bb", "--quiet", "--define", `_topdir ${top}`, spec], { timeout: 30 * 60_000 });
  }
  writeFileSync(done, "");
  return { dir, ms: performance.now() - t0 };
}

function rpmFiles(dir: string): string[] {
  const out: string[] = [];
  for (const top of readdirSync(dir).filter((d) => d.startsWith("top-"))) {
    const d = path.join(dir, top, "RPMS", "noarch");
    for (const f of readdirSync(d))
      if (f.startsWith("bench-") && !f.startsWith("bench-set-")) out.push(path.join(d, f));
  }
  return out.sort();
}

/** 3: publishing 5,000 RPMs through the real repo and publisher roles. */
async function publishBench(n: number, cacheRoot: string): Promise<NonNullable<RepoBenchReport["publish"]>> {
  const gen = await generateRpms(cacheRoot, n);
  const files = rpmFiles(gen.dir).slice(0, n);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-publish-"));
  const natsDir = path.join(dataDir, "nats");
  mkdirSync(natsDir, { recursive: true });
  const server = await NatsServerProcess.start(
    { port: -1, jetstream: { store_dir: path.join(natsDir, "js") } },
    { dir: natsDir }
  );
  try {
    // The repo role's store is filled before the role starts: the set-up is not measured.
    {
      const store = RoleStore.open({ path: path.join(dataDir, "repo", "db"), log });
      const blobs = new BlobStore({ dir: path.join(dataDir, "repo", "blobs"), store, log });
      const results: StoredResult[] = [];
      for (const f of files) {
        const info = await blobs.putFile(f);
        const h = await readRpmHeader(f);
        results.push({
          project: P,
          repository: R,
          arch: A,
          package: h.name,
          code: BuildResultCode.Succeeded,
          jobId: info.md5,
          srcmd5: info.md5,
          verifymd5: info.md5,
          rev: 1,
          versrel: "1.0-1",
          bcnt: 1,
          release: "1",
          reason: "new build",
          workerId: "w",
          readyTime: 0,
          startTime: 0,
          endTime: 1,
          binaries: [
            {
              filename: path.basename(f),
              name: h.name,
              version: h.version,
              release: h.release,
              arch: h.arch,
              isSource: h.isSource,
              provides: h.provides,
              requires: h.requires,
              conflicts: h.conflicts,
              obsoletes: h.obsoletes,
              hdrmd5: h.hdrmd5,
              sha256: info.sha256,
              md5: info.md5,
              size: info.size,
            },
          ],
        });
      }
      await store.transact(() => {
        void store.db.put(keys.projectFlags(P), { project: P, flags: {}, repositories: [{ name: R, archs: [A] }] });
        for (const res of results) {
          void store.db.put(keys.result(P, R, A, res.package), res);
          void store.db.put(keys.packageFlags(P, res.package), { project: P, package: res.package, flags: {} });
        }
      });
      await blobs.close();
      await store.close();
    }
    const nc = await connectNats({ servers: server.url, name: "bench-publish", log });
    const ctx: RoleContext = {
      nc,
      rpc: new RpcClient(nc),
      system: startActorSystem(),
      log,
      dataDir,
      nodeId: "bench",
      replicas: 1,
    };
    const roles = [await startSourceRole(ctx), await startRepoRole(ctx), await startPublisherRole(ctx)];
    try {
      const admin = Identity.create();
      const source = new RoleClient<SourceApi>(ctx.rpc.withSigner(admin), (t) => subjects.rpc(Role.Source, t));
      await source.call("user.add", { name: "admin", pubkey: admin.publicKey, admin: true });
      await source.call("project.put-meta", {
        project: P,
        xml: `<project name="${P}"><title/><description/><repository name="${R}"><arch>${A}</arch></repository></project>`,
      });
      const publisher = new RoleClient<PublisherApi>(ctx.rpc.withSigner(admin), (t) => subjects.rpc(Role.Publisher, t));
      const repo = new RoleClient<RepoApi>(ctx.rpc.withSigner(admin), (t) => subjects.rpc(Role.Repo, t));
      let t0 = performance.now();
      const cold = await publisher.call("publish.now", { project: P, repository: R }, { timeoutMs: 3600_000 });
      const coldMs = performance.now() - t0;
      if (cold.outcome !== "published" || cold.binaries !== files.length) {
        throw new Error(`cold publish: ${JSON.stringify(cold)}`);
      }
      await repo.call("result.wipe", { project: P, package: "bench-00000" });
      t0 = performance.now();
      const warm = await publisher.call("publish.now", { project: P, repository: R }, { timeoutMs: 3600_000 });
      const warmMs = performance.now() - t0;
      if (warm.outcome !== "published") throw new Error(`warm publish: ${JSON.stringify(warm)}`);
      // createrepo_c alone on the same tree, for comparison.
      const copy = path.join(dataDir, "createrepo-only");
      await execa("cp", ["-al", path.join(dataDir, "publish", P, R) + "/.", copy]);
      rmSync(path.join(copy, "repodata"), { recursive: true, force: true });
      t0 = performance.now();
      await execa("createrepo_c", ["--quiet", "--no-database", "--workers", "2", copy]);
      const createrepoOnlyMs = performance.now() - t0;
      return { rpms: files.length, generateMs: gen.ms, coldMs, warmMs, createrepoOnlyMs };
    } finally {
      for (const r of roles.reverse()) await r.stop();
      stopActorSystem(ctx.system);
      await nc.close();
    }
  } finally {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs the benchmarks and returns the figures; prints nothing. */
export async function runRepoBench(options: RepoBenchOptions = {}): Promise<RepoBenchReport> {
  const pool = await poolBench({ packages: options.packages ?? 15000, ops: options.ops ?? 500 });
  const publish = options.skipPublish
    ? undefined
    : await publishBench(options.rpms ?? 5000, options.rpmCache ?? path.join(os.tmpdir(), "kiln-bench-rpms"));
  const report: RepoBenchReport = { ...pool, ...(publish ? { publish } : {}), goalsMet: false };
  report.goalsMet = report.reconstructMs.median < 1000 && report.storeResultMs.median < 5;
  return report;
}

function fmt(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 10_000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rep = await runRepoBench({
    packages: arg("--packages"),
    ops: arg("--ops"),
    rpms: arg("--rpms"),
    skipPublish: process.argv.includes("--skip-publish"),
  });
  process.stdout.write(`${JSON.stringify(rep, null, 2)}\n`);
  const lines = [
    `repo benchmark: ${rep.packages} packages, ${rep.binaries} pool candidates, ${rep.poolSize} names in the pool (load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs)`,
    `  reconstruct pool (rebuild-pool)  median ${fmt(rep.reconstructMs.median)}, min ${fmt(rep.reconstructMs.min)}, CPU ${fmt(rep.reconstructCpuMs)} (${rep.reconstructMs.runs} runs; goal < 1 s)`,
    `  rebuild-pool --deep              ${fmt(rep.reconstructDeepMs)} (bininfo derived from the full results first)`,
    `  first pool build (writes all)    ${fmt(rep.initialPoolMs)}`,
    `  load into memory                 ${fmt(rep.loadMs)}`,
    `  store one result + pool update   median ${fmt(rep.storeResultMs.median)}, p99 ${fmt(rep.storeResultMs.p99)}, max ${fmt(rep.storeResultMs.max)} (${rep.storeResultMs.ops} stores, durable commits; goal < 5 ms)`,
  ];
  if (rep.publish) {
    const p = rep.publish;
    lines.push(
      `  publish ${p.rpms} RPMs              cold ${fmt(p.coldMs)}, after one change ${fmt(p.warmMs)} (createrepo_c alone: ${fmt(p.createrepoOnlyMs)}${p.generateMs ? `; generating the RPMs took ${fmt(p.generateMs)}` : ""})`
    );
  }
  lines.push(rep.goalsMet ? "goals met" : "GOALS MISSED");
  process.stdout.write(lines.join("\n") + "\n");
  process.exitCode = rep.goalsMet ? 0 : 1;
}
