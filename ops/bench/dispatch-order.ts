/**
 * Benchmark of the dispatcher's pure logic at scale (actors/dispatcher/fairness.ts and
 * constraints.ts): 100,000 queued jobs over thousands of (project, repository, arch), 200 workers
 * of two host archs and mixed hardware asking for work, about one job in ten with constraints.
 *
 * Each assignment is what the dispatcher actor does for an idle worker: pick the best
 * job the worker can take (arch, constraint matching with `workerSatisfies`), record the
 * assignment, and — to stay in steady state — record a finished build and queue a new job.
 *
 * Goal: at least 2,000 assignments per second including constraint matching.
 *
 * Run: `node --import tsx ops/bench/dispatch-order.ts [--jobs N] [--workers N] [--assignments N]`
 */
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import { parseConstraintLines, workerSatisfies, type Constraints } from "../../actors/dispatcher/constraints.ts";
import { FairQueue, type QueuedJob } from "../../actors/dispatcher/fairness.ts";
import type { WorkerCapabilities } from "../../actors/dispatcher/worker-info.ts";
import { mulberry32 as rng } from "../../test/helpers/rng.ts";

export interface DispatchBenchOptions {
  jobs?: number;
  workers?: number;
  assignments?: number;
  seed?: number;
}

interface Latency {
  median: number;
  p99: number;
  max: number;
  ops: number;
}

export interface DispatchBenchReport {
  jobs: number;
  prpas: number;
  workers: number;
  addAllMs: number;
  assignmentsPerSecond: number;
  /** Per second of CPU time: what the logic costs when the machine is shared. */
  assignmentsPerCpuSecond: number;
  assignments: number;
  unassignable: number;
  nextMs: Latency;
  assignMs: Latency;
  fullScanMs: number;
  matchesPerSecond: number;
  goalsMet: boolean;
}

const GOAL_PER_SECOND = 2000;

function latency(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)] ?? 0,
    p99: s[Math.floor(s.length * 0.99)] ?? 0,
    max: s[s.length - 1] ?? 0,
    ops: s.length,
  };
}

/** Runs the benchmark and returns its figures. */
export function runDispatchOrderBench(opts: DispatchBenchOptions = {}): DispatchBenchReport {
  const nJobs = opts.jobs ?? 100_000;
  const nWorkers = opts.workers ?? 200;
  const nAssign = opts.assignments ?? 50_000;
  const r = rng(opts.seed ?? 42);
  // The real clock: the queue re-decays loads once a second of wall time, as in production.
  const now = () => Date.now();

  // Constraint sets are shared objects, as the dispatcher caches them per source content.
  const kinds: Constraints[] = [
    parseConstraintLines(["hardware:memory:size unit=G 16"]),
    parseConstraintLines(["hardware:disk:size unit=G 100", "hardware:processors 8"]),
    parseConstraintLines(["hostlabel BIG", "hardware:memoryperjob:size unit=G 4"]),
    parseConstraintLines(["hardware:cpu:flag avx2", "linux:version:min 5.14"]),
  ];
  const impossible = parseConstraintLines(["hostlabel NOSUCHLABEL"]);

  // Projects: a few huge distributions and many small home projects; 1-3 repos, 1-3 archs.
  const prpaList: { project: string; repository: string; arch: string }[] = [];
  const nProjects = Math.max(1, Math.round(nJobs / 60));
  for (let p = 0; p < nProjects; p++) {
    const repos = 1 + Math.floor(r() * 3);
    const archs = r() < 0.5 ? ["x86_64"] : r() < 0.6 ? ["x86_64", "aarch64"] : ["x86_64", "aarch64", "i586"];
    for (let k = 0; k < repos; k++)
      for (const arch of archs) prpaList.push({ project: `home:u${p}`, repository: `repo${k}`, arch });
  }
  let seq = 0;
  const makeJob = (): QueuedJob => {
    // Skewed: a quarter of the prpas get most of the jobs.
    const idx = Math.floor(Math.pow(r(), 3) * prpaList.length);
    const p = prpaList[idx]!;
    const roll = r();
    const job: QueuedJob = {
      jobId: `job${seq++}`,
      ...p,
      package: `pkg${seq}`,
      needed: r() < 0.3 ? Math.floor(r() * 50) : 0,
      reason: r() < 0.4 ? "source change" : "meta change",
      readyTime: now() - Math.floor(r() * 3_600_000),
      revTime: now() - 4_000_000,
    };
    if (roll < 0.1) job.constraints = kinds[Math.floor(r() * kinds.length)]!;
    else if (roll < 0.1005) job.constraints = impossible;
    return job;
  };

  const workers: WorkerCapabilities[] = Array.from({ length: nWorkers }, (_, i) => {
    const arm = i % 10 >= 7;
    const big = r() < 0.3;
    return {
      workerId: `w${i}`,
      hostArch: arm ? "aarch64" : "x86_64",
      buildArchs: arm ? ["aarch64"] : ["x86_64", "i586", "i686"],
      hostLabels: r() < 0.2 ? ["BIG"] : [],
      sandbox: "bwrap",
      linux: { version: r() < 0.5 ? "6.8.0" : "5.3.18", flavor: "default" },
      cpuFlags: arm ? ["fp", "asimd"] : r() < 0.7 ? ["sse4_2", "avx", "avx2"] : ["sse4_2"],
      processors: big ? 32 : 4,
      jobs: big ? 8 : 2,
      memoryMb: big ? 65536 : 8192,
      swapMb: 4096,
      diskMb: big ? 500_000 : 60_000,
    };
  });

  const queue = new FairQueue({ clock: now });
  const jobs = Array.from({ length: nJobs }, makeJob);
  const t0 = performance.now();
  for (const j of jobs) queue.add(j);
  const addAllMs = performance.now() - t0;

  // What the dispatcher does for a worker: its archs cheaply, constraints memoised per call.
  const pickFor = (w: WorkerCapabilities): QueuedJob | undefined => {
    const memo = new Map<Constraints, boolean>();
    return queue.next(
      (j) => {
        if (j.constraints === undefined) return true;
        let ok = memo.get(j.constraints);
        if (ok === undefined) {
          ok = workerSatisfies(w, j.constraints, j.arch).ok;
          memo.set(j.constraints, ok);
        }
        return ok;
      },
      { archs: w.buildArchs }
    );
  };

  const running: { job: QueuedJob; start: number }[] = [];
  const nextSamples: number[] = [];
  const assignSamples: number[] = [];
  let unassignable = 0;
  let assigned = 0;
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < nAssign; i++) {
    const w = workers[i % workers.length]!;
    const a = performance.now();
    const j = pickFor(w);
    const b = performance.now();
    nextSamples.push(b - a);
    if (j === undefined) {
      unassignable++;
      continue;
    }
    queue.recordAssignment(j.jobId);
    assignSamples.push(performance.now() - b);
    assigned++;
    running.push({ job: j, start: now() });
    // Steady state: about 200 × 2 builds running, one finishes and one new job arrives per assignment.
    if (running.length > nWorkers * 2) {
      const done = running.shift()!;
      queue.recordFinished(done.job, { start: done.start, end: now() + 1 });
    }
    queue.add(makeJob());
  }
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;

  const s0 = performance.now();
  queue.next(() => false);
  const fullScanMs = performance.now() - s0;

  const sample = jobs.filter((j) => j.constraints !== undefined).slice(0, 2000);
  const m0 = performance.now();
  let matches = 0;
  for (let round = 0; round < 10; round++) {
    for (const w of workers)
      for (const j of sample.slice(0, 50)) if (workerSatisfies(w, j.constraints, j.arch).ok) matches++;
  }
  const matchSeconds = (performance.now() - m0) / 1000;
  const matchCalls = 10 * workers.length * Math.min(50, sample.length);

  const assignmentsPerSecond = assigned / elapsed;
  return {
    jobs: nJobs,
    prpas: prpaList.length,
    workers: nWorkers,
    addAllMs,
    assignmentsPerSecond,
    assignmentsPerCpuSecond: assigned / cpuSeconds,
    assignments: assigned,
    unassignable,
    nextMs: latency(nextSamples),
    assignMs: latency(assignSamples),
    fullScanMs,
    matchesPerSecond: matches >= 0 ? matchCalls / matchSeconds : 0,
    goalsMet: assignmentsPerSecond >= GOAL_PER_SECOND,
  };
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rep = runDispatchOrderBench({
    jobs: arg("--jobs"),
    workers: arg("--workers"),
    assignments: arg("--assignments"),
  });
  const fmt = (ms: number) => `${ms.toFixed(3)} ms`;
  const lat = (label: string, s: Latency) =>
    console.log(`  ${label.padEnd(26)} median ${fmt(s.median)}  p99 ${fmt(s.p99)}  max ${fmt(s.max)}  (${s.ops} ops)`);
  console.log(`dispatch-order benchmark: ${rep.jobs} queued jobs over ${rep.prpas} prpas, ${rep.workers} workers`);
  console.log(`  add all jobs               ${fmt(rep.addAllMs)}`);
  console.log(
    `  assignments                ${rep.assignments} at ${Math.round(rep.assignmentsPerSecond)}/s` +
      ` (goal ≥ ${GOAL_PER_SECOND}/s; ${rep.unassignable} asks found nothing)`
  );
  console.log(`  per CPU second             ${Math.round(rep.assignmentsPerCpuSecond)}/s`);
  lat("next() incl. matching", rep.nextMs);
  lat("recordAssignment()", rep.assignMs);
  console.log(`  full scan, nothing fits    ${fmt(rep.fullScanMs)}`);
  console.log(`  workerSatisfies            ${Math.round(rep.matchesPerSecond)} calls/s`);
  console.log(rep.goalsMet ? "goals met" : "GOALS MISSED");
  process.exitCode = rep.goalsMet ? 0 : 1;
}
