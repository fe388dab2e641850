/**
 * Benchmarks of workers and the dispatcher (issue 5):
 *
 * 1. overhead — a trivial package through a kiln worker (fetch, build root, sandbox, post-build
 *    hooks, upload) against bare `rpmbuild -ba` of the same spec, runs interleaved; also commit →
 *    `succeeded` seen end to end. Goal: worker time ≤ 1.5 × bare.
 * 2. dispatch — 200 simulated workers (NATS clients in another process that answer `job.assign`
 *    and report `job.done` at once) drain a queue through the real dispatcher role.
 *    Goal: 2,000 assignments/s.
 * 3. latency — commit acknowledged → build started on an idle worker, p50 and p99.
 *    Goal: p50 < 100 ms.
 * 4. scale-out — 40 trivial builds with 1, 2 and 4 worker processes.
 *
 *   node --import tsx ops/bench/workers.ts [--runs N] [--samples N] [--jobs N] [--only a,b]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { parseStatisticsTimes, type StoredResult } from "../../actors/index.ts";
import type { NatsConnection } from "nats";
import pino from "pino";
import { RoleClient, RpcClient, connectNats, decode, readBlobBytes, subjects } from "../../transport/index.ts";
import type { SchedulerApi } from "../../actors/index.ts";
import { check } from "../../test/helpers/check.ts";
import { simJob } from "../../test/helpers/worker-sim.ts";
import { startStack, type Stack } from "../../test/helpers/worker-stack.ts";
import { percentile } from "./util.ts";

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "test", "fixtures", "worker");

const spec = (name: string, n: number): string =>
  [
    `Name: ${name}`,
    "Version: 1.0",
    "Release: 1",
    "Summary: trivial",
    "License: MIT",
    "BuildArch: noarch",
    "%description",
    `trivial build number ${n}`,
    "%install",
    `mkdir -p %{buildroot}/usr/share/${name}`,
    `echo ${n} > %{buildroot}/usr/share/${name}/n`,
    "%files",
    `/usr/share/${name}/n`,
    "",
  ].join("\n");

const median = (xs: number[]): number => percentile(xs, 50);
const round = (x: number): number => Math.round(x);

/**
 * Waits for builds by their `repo.built` events instead of polling: the benchmark itself must not
 * load the machine it measures (every poll of the stack's clients is a signed request).
 */
class BuiltWatcher {
  readonly #seen = new Map<string, number>();
  readonly #waiting = new Map<string, () => void>();
  #nc?: NatsConnection;

  async start(natsUrl: string): Promise<void> {
    this.#nc = await connectNats({ servers: natsUrl, name: "bench-watcher", log: silent });
    this.#nc.subscribe(subjects.eventFilter({ type: "repo.built" }), {
      callback: (_e, m) => {
        const ev = decode<{ project: string; package: string; srcmd5: string }>(m.data);
        const k = `${ev.project}\u0000${ev.package}\u0000${ev.srcmd5}`;
        this.#seen.set(k, Date.now());
        this.#waiting.get(k)?.();
      },
    });
    await this.#nc.flush();
  }

  /** Resolves once the build of `srcmd5` is stored; with the stored result. */
  async built(s: Stack, project: string, pkg: string, srcmd5: string, timeoutMs = 120_000): Promise<StoredResult> {
    const k = `${project}\u0000${pkg}\u0000${srcmd5}`;
    if (!this.#seen.has(k)) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${project}/${pkg} not built in time`)), timeoutMs);
        this.#waiting.set(k, () => {
          clearTimeout(t);
          resolve();
        });
      });
      this.#waiting.delete(k);
    }
    const r = await s.stored(project, pkg);
    if (!r) throw new Error(`${project}/${pkg}: no stored result after repo.built`);
    return r;
  }

  async stop(): Promise<void> {
    await this.#nc?.drain();
  }
}

const silent = pino({ level: "silent" });

// ---- 1. overhead -----------------------------------------------------------------------------

export interface OverheadReport {
  runs: number;
  bareRpmbuildMs: number;
  /** Worker time: accepted → result ready to store (fetch, sandbox, hooks, upload). Ratios are medians of per-run ratios. */
  workerMs: number;
  ratio: number;
  /** The same without post-build hooks (no build-compare). */
  workerNoHooksMs: number;
  ratioNoHooks: number;
  /** Commit acknowledged → `succeeded` seen by a client polling the scheduler. */
  endToEndMs: number;
  endToEndRatio: number;
  breakdownMedianMs: Record<string, number>;
}

/** A worker in a process of its own, as on a build host (the fixture the multihost tests use). */
async function workerProcess(
  natsUrl: string,
  dataDir: string,
  worker: Record<string, unknown>
): Promise<{ proc: ResultPromise }> {
  const p = execa(
    "node",
    ["--import", "tsx", path.join(FIXTURES, "worker-process.ts"), JSON.stringify({ natsUrl, dataDir, worker })],
    { reject: false, buffer: false }
  );
  let out = "";
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  await check(() => out.includes("READY"), { timeoutMs: 60_000, name: "worker process ready" });
  // Wrapped: an async function returning the process itself would wait for it to exit.
  return { proc: p };
}

async function stopProcess(w: { proc: ResultPromise } | undefined): Promise<void> {
  if (!w) return;
  w.proc.kill("SIGTERM");
  await w.proc.catch(() => undefined);
}

async function runOverhead(runs: number): Promise<OverheadReport> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-workers-"));
  const s = await startStack({});
  const rows: Record<string, number>[] = [];
  const workers: { proc: ResultPromise }[] = [];
  const watcher = new BuiltWatcher();
  await watcher.start(s.natsUrl);
  const nc = await connectNats({ servers: s.natsUrl, name: "bench-results", log: silent });
  // Unsigned: polling for `succeeded` must not cost a signature per poll.
  const sched = new RoleClient<SchedulerApi>(new RpcClient(nc), (t) => subjects.sched("x86_64", t));
  const succeeded = async (project: string): Promise<boolean> => {
    const rs = await sched.call("results.get", { project, package: "trivial" });
    return rs.some((r) => !r.dirty && r.packages.some((p) => p.code === "succeeded"));
  };
  try {
    // Two workers in processes of their own, as on build hosts: one with the default hooks
    // (build-compare), one without any. Host labels and project constraints pin each project's
    // builds to one of them, so the runs of both (and bare rpmbuild) can be interleaved and see
    // the same machine load.
    workers.push(
      await workerProcess(s.natsUrl, mkdtempSync(path.join(tmp, "w-")), { workerId: "hooks", hostLabels: ["HOOKS"] }),
      await workerProcess(s.natsUrl, mkdtempSync(path.join(tmp, "w-")), {
        workerId: "plain",
        hostLabels: ["PLAIN"],
        hooks: [],
      })
    );
    await s.project("ovh-hooks", { prjconf: "Constraint: hostlabel HOOKS\n" });
    await s.project("ovh-plain", { prjconf: "Constraint: hostlabel PLAIN\n" });
    let n = 0;
    const kilnRun = async (project: string): Promise<{ result: StoredResult; e2e: number }> => {
      n++;
      const t0 = Date.now();
      const srcmd5 = await s.commit(project, "trivial", { "trivial.spec": spec("trivial", n) });
      const result = await watcher.built(s, project, "trivial", srcmd5);
      await check(() => succeeded(project), { intervalMs: 5 });
      return { result, e2e: Date.now() - t0 };
    };
    const bareRun = async (i: number): Promise<number> => {
      const top = path.join(tmp, `bare-${i}`);
      mkdirSync(top, { recursive: true });
      writeFileSync(path.join(top, "trivial.spec"), spec("trivial", 10_000 + i));
      const t0 = performance.now();
      await execa("rpmbuild", ["-ba", "--define", `_topdir ${top}`, path.join(top, "trivial.spec")]);
      return performance.now() - t0;
    };
    // Warm-up: caches, rpm's macro files, the first build's previous-less path.
    await bareRun(-1);
    await kilnRun("ovh-hooks");
    await kilnRun("ovh-plain");
    for (let i = 0; i < runs; i++) {
      const bare = await bareRun(i);
      const { result, e2e } = await kilnRun("ovh-hooks");
      const plain = (await kilnRun("ovh-plain")).result;
      const stats = parseStatisticsTimes((await readBlobBytes(s.repo, result.statsSha256!, 1 << 20)).toString());
      const w = result.endTime - result.startTime;
      const wPlain = plain.endTime - plain.startTime;
      rows.push({
        bare,
        worker: w,
        workerPlain: wPlain,
        ratio: w / bare,
        ratioPlain: wPlain / bare,
        e2e,
        ratioE2e: e2e / bare,
        download: stats.download ?? 0,
        sandboxRpmbuild: stats.main ?? 0,
        buildCompare: stats.buildcmp ?? 0,
        uploadAndRest: w - (stats.total ?? 0),
        jobToStart: result.startTime - result.readyTime,
      });
    }
  } finally {
    for (const w of workers) await stopProcess(w);
    await watcher.stop();
    await nc.drain();
    await s.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  const med = (k: string): number => median(rows.map((r) => r[k]!));
  return {
    runs,
    bareRpmbuildMs: round(med("bare")),
    workerMs: round(med("worker")),
    ratio: +med("ratio").toFixed(2),
    workerNoHooksMs: round(med("workerPlain")),
    ratioNoHooks: +med("ratioPlain").toFixed(2),
    endToEndMs: round(med("e2e")),
    endToEndRatio: +med("ratioE2e").toFixed(2),
    breakdownMedianMs: {
      jobCreatedToWorkerStart: round(med("jobToStart")),
      downloadAndVerify: round(med("download")),
      sandboxAndRpmbuild: round(med("sandboxRpmbuild")),
      buildCompareHook: round(med("buildCompare")),
      uploadAndRest: round(med("uploadAndRest")),
    },
  };
}

// ---- 2. dispatch throughput ------------------------------------------------------------------

export interface DispatchReport {
  workers: number;
  jobs: number;
  submitPerSecond: number;
  assignmentsPerSecond: number;
  drainMs: number;
}

async function runDispatch(workers: number, jobs: number): Promise<DispatchReport> {
  const s = await startStack({ roles: ["source", "dispatcher"], dispatcher: { heartbeatMs: 2000 } });
  let fleet: ResultPromise | undefined;
  try {
    // The queue first, with nobody to take it.
    const t0 = performance.now();
    const batch = 500;
    for (let i = 0; i < jobs; i += batch) {
      await Promise.all(
        Array.from({ length: Math.min(batch, jobs - i) }, (_, k) =>
          s.submitter.call(
            "job.submit",
            { job: simJob(`prj${(i + k) % 50}`, `pkg${i + k}`, { readyTime: Date.now() }) },
            { timeoutMs: 60_000 }
          )
        )
      );
    }
    const submitMs = performance.now() - t0;
    fleet = execa(
      "node",
      ["--import", "tsx", path.join(FIXTURES, "sim-fleet.ts"), s.natsUrl, String(workers), String(jobs)],
      {
        reject: false,
        buffer: false,
      }
    );
    let out = "";
    fleet.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    const drained = await check(
      () => {
        const m = [...out.matchAll(/ACCEPTED (\d+) (\d+)/g)].pop();
        return m && Number(m[1]) >= jobs ? Number(m[2]) : undefined;
      },
      { timeoutMs: 600_000, intervalMs: 50, name: "queue drained" }
    );
    return {
      workers,
      jobs,
      submitPerSecond: round(jobs / (submitMs / 1000)),
      assignmentsPerSecond: round(jobs / (drained / 1000)),
      drainMs: drained,
    };
  } finally {
    fleet?.kill("SIGTERM");
    await fleet?.catch(() => undefined);
    await s.stop();
  }
}

// ---- 3. commit → build started ---------------------------------------------------------------

export interface LatencyReport {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Parts, median: commit acknowledged → job created (scheduler), job created → worker start. */
  commitToJobMs: number;
  jobToStartMs: number;
}

async function runLatency(samples: number): Promise<LatencyReport> {
  const s = await startStack({ workers: [{ workerId: "lat", hooks: [] }] });
  const total: number[] = [];
  const toJob: number[] = [];
  const toStart: number[] = [];
  const watcher = new BuiltWatcher();
  await watcher.start(s.natsUrl);
  try {
    await s.project("lat");
    for (let i = 0; i <= samples; i++) {
      const srcmd5 = await s.commit("lat", "quick", { "quick.spec": spec("quick", i) });
      const acked = Date.now();
      const r = await watcher.built(s, "lat", "quick", srcmd5);
      // The worker is idle again once the dispatcher forgot the job.
      await check(async () => (await s.dispatcher.call("job.list", { project: "lat" })).length === 0, {
        intervalMs: 5,
      });
      if (i === 0) continue;
      total.push(r.startTime - acked);
      toJob.push(r.readyTime - acked);
      toStart.push(r.startTime - r.readyTime);
    }
  } finally {
    await watcher.stop();
    await s.stop();
  }
  return {
    samples,
    p50Ms: round(percentile(total, 50)),
    p99Ms: round(percentile(total, 99)),
    maxMs: round(Math.max(...total)),
    commitToJobMs: round(median(toJob)),
    jobToStartMs: round(median(toStart)),
  };
}

// ---- 4. scale-out ----------------------------------------------------------------------------

export interface ScaleOutRow {
  workers: number;
  builds: number;
  wallMs: number;
  buildsPerMinute: number;
  speedup: number;
}

async function runScaleOut(counts: number[], builds: number): Promise<ScaleOutRow[]> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-scale-"));
  const s = await startStack({});
  const rows: ScaleOutRow[] = [];
  const watcher = new BuiltWatcher();
  await watcher.start(s.natsUrl);
  try {
    for (const count of counts) {
      const procs: ResultPromise[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const p = execa(
            "node",
            [
              "--import",
              "tsx",
              path.join(FIXTURES, "worker-process.ts"),
              JSON.stringify({
                natsUrl: s.natsUrl,
                dataDir: mkdtempSync(path.join(tmp, "w-")),
                worker: { workerId: `scale-${count}-${i}` },
              }),
            ],
            { reject: false, buffer: false }
          );
          let out = "";
          p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
          await check(() => out.includes("READY"), { timeoutMs: 60_000, name: "worker ready" });
          procs.push(p);
        }
        const project = `scale${count}`;
        await s.project(project);
        const t0 = Date.now();
        const srcmd5s = new Map<string, string>();
        for (let i = 0; i < builds; i++) {
          srcmd5s.set(`p${i}`, await s.commit(project, `p${i}`, { [`p${i}.spec`]: spec(`p${i}`, i) }));
        }
        for (const [pkg, srcmd5] of srcmd5s) await watcher.built(s, project, pkg, srcmd5, 600_000);
        const wallMs = Date.now() - t0;
        rows.push({
          workers: count,
          builds,
          wallMs,
          buildsPerMinute: +((builds * 60_000) / wallMs).toFixed(1),
          speedup: rows.length ? +(rows[0]!.wallMs / wallMs).toFixed(2) : 1,
        });
      } finally {
        for (const p of procs) p.kill("SIGTERM");
        for (const p of procs) await p.catch(() => undefined);
      }
    }
  } finally {
    await watcher.stop();
    await s.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

// ---- driver ----------------------------------------------------------------------------------

export interface WorkersBenchOptions {
  runs?: number;
  samples?: number;
  jobs?: number;
  workers?: number;
  scaleBuilds?: number;
  only?: string[];
}

export interface WorkersBenchReport {
  machine: { cpus: number; loadavg: number[] };
  overhead?: OverheadReport;
  dispatch?: DispatchReport;
  latency?: LatencyReport;
  scaleOut?: ScaleOutRow[];
  goals: Record<string, boolean>;
}

export async function runWorkersBench(opts: WorkersBenchOptions = {}): Promise<WorkersBenchReport> {
  const want = (k: string): boolean => !opts.only || opts.only.includes(k);
  const report: WorkersBenchReport = { machine: { cpus: os.cpus().length, loadavg: os.loadavg() }, goals: {} };
  if (want("overhead")) report.overhead = await runOverhead(opts.runs ?? 7);
  if (want("dispatch")) report.dispatch = await runDispatch(opts.workers ?? 200, opts.jobs ?? 20_000);
  if (want("latency")) report.latency = await runLatency(opts.samples ?? 40);
  if (want("scale")) report.scaleOut = await runScaleOut([1, 2, 4], opts.scaleBuilds ?? 40);
  if (report.overhead) {
    // The issue's pipeline (fetch, build root, sandbox, upload) is the worker without hooks; the
    // default build-compare hook is a second sandbox run on top, reported on its own.
    report.goals.overheadAtMost1_5x = report.overhead.ratioNoHooks <= 1.5;
    report.goals.overheadWithBuildCompareAtMost1_5x = report.overhead.ratio <= 1.5;
  }
  if (report.dispatch) report.goals.dispatch2000PerSecond = report.dispatch.assignmentsPerSecond >= 2000;
  if (report.latency) report.goals.commitToStartP50Under100ms = report.latency.p50Ms < 100;
  return report;
}

function text(r: WorkersBenchReport): string {
  const lines: string[] = [];
  if (r.overhead) {
    const o = r.overhead;
    lines.push(
      `overhead: worker ${o.workerMs} ms vs bare rpmbuild -ba ${o.bareRpmbuildMs} ms = ${o.ratio}x (without hooks ${o.workerNoHooksMs} ms = ${o.ratioNoHooks}x); commit → succeeded ${o.endToEndMs} ms = ${o.endToEndRatio}x`,
      `  breakdown (median ms): ${Object.entries(o.breakdownMedianMs)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}`
    );
  }
  if (r.dispatch) {
    const d = r.dispatch;
    lines.push(
      `dispatch: ${d.assignmentsPerSecond} assignments/s with ${d.workers} simulated workers (${d.jobs} jobs in ${d.drainMs} ms; submitted at ${d.submitPerSecond}/s)`
    );
  }
  if (r.latency) {
    const l = r.latency;
    lines.push(
      `commit → build started: p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms over ${l.samples} (commit → job ${l.commitToJobMs} ms, job → worker ${l.jobToStartMs} ms)`
    );
  }
  for (const row of r.scaleOut ?? []) {
    lines.push(
      `scale-out: ${row.builds} builds with ${row.workers} worker process${row.workers === 1 ? "" : "es"}: ${row.wallMs} ms (${row.buildsPerMinute}/min, ${row.speedup}x)`
    );
  }
  lines.push(
    `goals: ${JSON.stringify(r.goals)} on ${r.machine.cpus} cpus, load ${r.machine.loadavg.map((x) => x.toFixed(1)).join(" ")}`
  );
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const num = (name: string): number | undefined => (arg(name) ? Number(arg(name)) : undefined);
  const o: WorkersBenchOptions = {};
  if (num("--runs")) o.runs = num("--runs")!;
  if (num("--samples")) o.samples = num("--samples")!;
  if (num("--jobs")) o.jobs = num("--jobs")!;
  if (num("--workers")) o.workers = num("--workers")!;
  if (arg("--only")) o.only = arg("--only")!.split(",");
  const r = await runWorkersBench(o);
  console.log(JSON.stringify(r, null, 2));
  console.log(text(r));
}
