import assert from "node:assert/strict";
import {
  addFinishedJob,
  decayedLoad,
  effectiveLoad,
  FairQueue,
  isSourceChange,
  LOAD_HALF_LIFE_MS,
  NO_LOAD,
  priorityScale,
  resolveAdjust,
  staleness,
  type PrpaRef,
  type QueuedJob,
} from "../../../actors/dispatcher/fairness.ts";
import { ErrorCode } from "../../../transport/index.ts";
import { mulberry32 as rng } from "../../helpers/rng.ts";

const H = 3600 * 1000;
const T0 = Date.UTC(2025, 0, 1);

/** A controllable clock. */
function clock(start = T0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

let ids = 0;
function job(project: string, over: Partial<QueuedJob> = {}): QueuedJob {
  ids++;
  return {
    jobId: `j${ids}`,
    project,
    repository: "standard",
    arch: "x86_64",
    package: `pkg${ids}`,
    needed: 0,
    reason: "source change",
    readyTime: T0 + ids,
    ...over,
  };
}

const prpa = (project: string, repository = "standard", arch = "x86_64"): PrpaRef => ({ project, repository, arch });
const any = () => true;

/** Takes the next job, assigns it, and returns it. */
function take(q: FairQueue, eligible: (j: QueuedJob) => boolean = any): QueuedJob {
  const j = q.next(eligible);
  assert.ok(j, "a job is queued");
  q.recordAssignment(j.jobId);
  return j;
}

describe("actors/dispatcher/fairness", () => {
  describe("load arithmetic", () => {
    it("should add half a unit for a 4-hour build and halve it every 4 hours", () => {
      const l = addFinishedJob(NO_LOAD, { start: T0, end: T0 + 4 * H });
      assert.equal(l.at, T0 + 4 * H);
      assert.ok(Math.abs(l.value - 0.5) < 1e-12);
      assert.ok(Math.abs(decayedLoad(l, T0 + 8 * H) - 0.25) < 1e-12);
      assert.ok(Math.abs(decayedLoad(l, T0 + 12 * H) - 0.125) < 1e-12);
      assert.equal(decayedLoad(l, T0), l.value, "no growth for a time before the load");
    });

    it("should decay the old load to the new end and add the new busy time", () => {
      const a = addFinishedJob(NO_LOAD, { start: T0, end: T0 + 4 * H });
      const b = addFinishedJob(a, { start: T0 + 6 * H, end: T0 + 8 * H });
      const expected = 0.5 * 0.5 + (1 - Math.pow(0.5, 0.5));
      assert.ok(Math.abs(b.value - expected) < 1e-12);
      assert.equal(b.at, T0 + 8 * H);
    });

    it("should add a late-reported job decayed from its end, and ignore empty spans", () => {
      const a = addFinishedJob(NO_LOAD, { start: T0 + 4 * H, end: T0 + 8 * H });
      const b = addFinishedJob(a, { start: T0, end: T0 + 4 * H });
      assert.equal(b.at, T0 + 8 * H);
      assert.ok(Math.abs(b.value - (0.5 + 0.5 * 0.5)) < 1e-12);
      assert.equal(addFinishedJob(a, { start: T0, end: T0 }), a);
      assert.equal(addFinishedJob(a, { start: T0 + 1, end: T0 }), a);
    });

    it("should average with the project-arch total, and scale by priority", () => {
      assert.equal(effectiveLoad(1, 3), 2);
      assert.equal(effectiveLoad(0, 0), 0);
      assert.ok(Math.abs(priorityScale(10) - 0.1) < 1e-12);
      assert.ok(Math.abs(priorityScale(-10) - 10) < 1e-9);
      assert.equal(priorityScale(0), 1);
      assert.equal(priorityScale(1e9), priorityScale(10000));
    });

    it("should let the last matching dispatch priority rule win", () => {
      const prios = [{ adjust: 5 }, { project: "A", adjust: 10 }, { project: "A", arch: "i586", adjust: -3 }];
      assert.equal(resolveAdjust(prios, prpa("A")), 10);
      assert.equal(resolveAdjust(prios, prpa("A", "standard", "i586")), -3);
      assert.equal(resolveAdjust(prios, prpa("B")), 5);
      assert.equal(resolveAdjust([], prpa("B")), 0);
    });

    it("should count new builds and fresh source changes as source changes", () => {
      assert.equal(isSourceChange({ reason: "new build", readyTime: T0 }), true);
      assert.equal(isSourceChange({ reason: "source change", readyTime: T0 }), true);
      assert.equal(isSourceChange({ reason: "source change", readyTime: T0 + 23 * H, revTime: T0 }), true);
      assert.equal(isSourceChange({ reason: "source change", readyTime: T0 + 25 * H, revTime: T0 }), false);
      assert.equal(isSourceChange({ reason: "meta change", readyTime: T0 }), false);
      assert.equal(isSourceChange({ reason: "rebuild counter sync", readyTime: T0 }), false);
    });

    it("should compute OBS's staleness, never negative", () => {
      // Last build a day after the newest source change, right now: 86400 / 5e6.
      assert.ok(Math.abs(staleness(T0 + 24 * H, T0, T0 + 24 * H) - 86400 / 5_000_000) < 1e-15);
      // The same, idle for 1000 s since: the denominator grows by 40 per second.
      assert.ok(Math.abs(staleness(T0 + 24 * H, T0, T0 + 24 * H + 1_000_000) - 86400 / 5_040_000) < 1e-15);
      assert.equal(staleness(T0, T0 + H, T0 + 2 * H), 0);
    });
  });

  describe("FairQueue ordering", () => {
    it("should order a prpa's jobs by needed, then ready time", () => {
      const c = clock();
      const q = new FairQueue({ clock: c.now });
      q.add(job("A", { jobId: "low", needed: 1, readyTime: T0 }));
      q.add(job("A", { jobId: "high", needed: 7, readyTime: T0 + 5 }));
      q.add(job("A", { jobId: "mid-late", needed: 3, readyTime: T0 + 9 }));
      q.add(job("A", { jobId: "mid-early", needed: 3, readyTime: T0 + 2 }));
      assert.deepEqual(
        q.ordered().map((j) => j.jobId),
        ["high", "mid-early", "mid-late", "low"]
      );
      assert.deepEqual(
        [take(q), take(q), take(q), take(q)].map((j) => j.jobId),
        ["high", "mid-early", "mid-late", "low"]
      );
    });

    it("should put a prpa's source-change jobs before its dependency-triggered ones", () => {
      const q = new FairQueue({ clock: clock().now });
      q.add(job("A", { jobId: "dep", reason: "meta change", needed: 50, readyTime: T0 }));
      q.add(job("A", { jobId: "src", reason: "source change", needed: 0, readyTime: T0 + 10 }));
      q.add(job("A", { jobId: "new", reason: "new build", needed: 1, readyTime: T0 + 20 }));
      assert.deepEqual(
        q.ordered().map((j) => j.jobId),
        ["new", "src", "dep"]
      );
      assert.equal(q.next(any)!.jobId, "new");
    });

    it("should serve the least loaded prpa first and alternate as loads grow", () => {
      const q = new FairQueue({ clock: clock().now });
      for (let i = 0; i < 10; i++) q.add(job("A"));
      for (let i = 0; i < 10; i++) q.add(job("B"));
      const order = Array.from({ length: 8 }, () => take(q).project);
      assert.deepEqual(order, ["A", "B", "A", "B", "A", "B", "A", "B"]);
      assert.equal(q.currentLoad(prpa("A")), 4);
    });

    it("should not let a project with 500 queued jobs starve one that queues a single job later", () => {
      for (let seed = 1; seed <= 20; seed++) {
        const r = rng(seed);
        const c = clock();
        const q = new FairQueue({ clock: c.now, refreshMs: 60_000 });
        const big: QueuedJob[] = Array.from({ length: 500 }, () =>
          job("big", { repository: r() < 0.5 ? "standard" : "other", needed: Math.floor(r() * 10) })
        );
        for (const j of big) q.add(j);
        // The big project builds for a while: some jobs finish, some keep building.
        const before = Math.floor(r() * 60);
        const running: QueuedJob[] = [];
        for (let i = 0; i < before; i++) {
          running.push(take(q));
          c.advance(Math.floor(r() * 10 * 60_000));
          if (r() < 0.7) {
            const done = running.shift()!;
            q.recordFinished(done, { start: c.now() - 20 * 60_000, end: c.now() });
          }
        }
        const reason = r() < 0.5 ? "source change" : "meta change";
        const small = job("small", { reason, readyTime: c.now() });
        q.add(small);
        let picked = 0;
        for (let k = 1; k <= 3 && picked === 0; k++) if (take(q).jobId === small.jobId) picked = k;
        assert.ok(picked > 0, `seed ${seed}: the late job was not picked within 3 assignments`);
      }
    });

    it("should average a prpa's load with its project on that arch", () => {
      const c = clock();
      const q = new FairQueue({ clock: c.now });
      for (const repo of ["r1", "r2", "r3"]) {
        q.add(job("P", { repository: repo }));
        take(q);
      }
      q.add(job("Q"));
      take(q);
      q.add(job("Q"));
      take(q);
      // P: three repos with one build each; Q: one repo with two.
      assert.equal(q.currentLoad(prpa("P", "r1")), (1 + 3) / 2);
      assert.equal(q.currentLoad(prpa("Q")), (2 + 2) / 2);
      // Another arch of P is another project-arch.
      assert.equal(q.currentLoad(prpa("P", "r1", "aarch64")), 0);
      // A new repository of the busy project P waits behind a new project R.
      q.add(job("P", { repository: "r4", jobId: "p-r4", readyTime: T0 }));
      q.add(job("R", { jobId: "r", readyTime: T0 + 100 }));
      assert.equal(q.currentLoad(prpa("P", "r4")), 1.5);
      assert.equal(q.next(any)!.jobId, "r");
    });

    it("should put dependency-only prpas behind at three times their load", () => {
      const q = new FairQueue({ clock: clock().now });
      q.add(job("dep"));
      take(q);
      q.add(job("src"));
      take(q);
      q.add(job("src"));
      take(q);
      // dep has load 1 but only a dependency-triggered job: 3 > 2.
      q.add(job("dep", { jobId: "d", reason: "meta change" }));
      q.add(job("src", { jobId: "s", reason: "source change" }));
      assert.equal(q.next(any)!.jobId, "s");
      q.remove("s");
      assert.equal(q.next(any)!.jobId, "d");
    });

    it("should favour prpas with a positive priority adjustment", () => {
      const q = new FairQueue({ clock: clock().now, prios: [{ project: "VIP", adjust: 10 }] });
      for (let i = 0; i < 20; i++) q.add(job("VIP"));
      for (let i = 0; i < 20; i++) q.add(job("normal"));
      const order = Array.from({ length: 22 }, () => take(q).project);
      // Ten times less loaded: about ten VIP jobs per normal one.
      assert.equal(order.filter((p) => p === "normal").length, 2);
      q.setPrios([]);
      assert.equal(q.next(any)!.project, "normal");
    });

    it("should let loads decay with time", () => {
      const c = clock();
      const q = new FairQueue({ clock: c.now });
      q.recordFinished(prpa("A"), { start: c.now() - 4 * H, end: c.now() });
      assert.ok(Math.abs(q.currentLoad(prpa("A")) - 0.5) < 1e-12);
      c.advance(4 * H);
      assert.ok(Math.abs(q.currentLoad(prpa("A")) - 0.25) < 1e-12);
      // Finishing a job without a span only ends its building count.
      q.setBuilding(prpa("A"), 2);
      assert.ok(Math.abs(q.currentLoad(prpa("A")) - 2.25) < 1e-12);
      q.recordFinished(prpa("A"));
      assert.ok(Math.abs(q.currentLoad(prpa("A")) - 1.25) < 1e-12);
    });

    it("should persist loads and restore them", () => {
      const c = clock();
      const q = new FairQueue({ clock: c.now });
      q.recordFinished(prpa("A"), { start: c.now() - LOAD_HALF_LIFE_MS, end: c.now() });
      const snap = q.snapshotLoads();
      assert.deepEqual(snap, [{ ...prpa("A"), at: c.now(), value: snap[0]!.value }]);
      const q2 = new FairQueue({ clock: c.now, loads: snap });
      assert.equal(q2.currentLoad(prpa("A")), q.currentLoad(prpa("A")));
      assert.throws(() => new FairQueue({ loads: [{ ...prpa("A"), at: 0, value: -1 }] }), {
        code: ErrorCode.InvalidInput,
      });
    });
  });

  describe("FairQueue operations", () => {
    it("should skip jobs the worker cannot take and restrict to the worker's archs", () => {
      const q = new FairQueue({ clock: clock().now });
      q.add(job("A", { jobId: "arm", arch: "aarch64", readyTime: T0 }));
      q.add(job("A", { jobId: "big", needed: 5, readyTime: T0 + 1 }));
      q.add(job("A", { jobId: "small", needed: 1, readyTime: T0 + 2 }));
      assert.equal(q.next((j) => j.jobId !== "big", { archs: ["x86_64", "i586"] })!.jobId, "small");
      assert.equal(q.next(any, { archs: ["aarch64"] })!.jobId, "arm");
      assert.equal(q.next(any, { archs: ["s390x"] }), undefined);
      assert.equal(
        q.next(() => false),
        undefined
      );
      assert.equal(
        q.next((j) => j.jobId === "small", { maxScan: 1 }),
        undefined
      );
    });

    it("should replace a job queued again under the same id and remove jobs", () => {
      const q = new FairQueue({ clock: clock().now });
      q.add(job("A", { jobId: "x", needed: 1 }));
      q.add(job("A", { jobId: "y", needed: 2 }));
      q.add(job("A", { jobId: "x", needed: 3 }));
      assert.equal(q.size, 2);
      assert.equal(q.next(any)!.jobId, "x");
      assert.equal(q.remove("x")!.jobId, "x");
      assert.equal(q.remove("x"), undefined);
      assert.equal(q.has("x"), false);
      assert.equal(q.next(any)!.jobId, "y");
    });

    it("should refuse to assign a job that is not queued", () => {
      const q = new FairQueue({ clock: clock().now });
      assert.throws(() => q.recordAssignment("nope"), { code: ErrorCode.NotFound });
      assert.throws(() => q.add(job("A", { needed: Number.NaN })), { code: ErrorCode.InvalidInput });
    });

    it("should pick exactly what a from-scratch computation picks, over random operations", () => {
      // Reference: recompute every score from the definition and sort. The clock stands still so
      // the queue runs on its incremental updates only; loads are halves so sums are exact.
      for (let seed = 1; seed <= 10; seed++) {
        const r = rng(seed * 7919);
        const q = new FairQueue({ clock: () => T0 });
        const queued = new Map<string, { job: QueuedJob; seq: number }>();
        const building = new Map<string, number>();
        const loads = new Map<string, number>();
        let seq = 0;
        const key = (p: PrpaRef) => `${p.project}|${p.repository}|${p.arch}`;
        const projects = ["a", "b", "c", "d"];
        const repos = ["r1", "r2", "r3"];
        const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
        const reference = (eligible: (j: QueuedJob) => boolean) => {
          const own = new Map<string, number>();
          const pra = new Map<string, number>();
          for (const k of new Set([...building.keys(), ...loads.keys()])) {
            const v = (building.get(k) ?? 0) + (loads.get(k) ?? 0);
            own.set(k, v);
            const [p, , a] = k.split("|");
            pra.set(`${p}|${a}`, (pra.get(`${p}|${a}`) ?? 0) + v);
          }
          const entries = new Map<string, { score: number; src: boolean; jobs: { job: QueuedJob; seq: number }[] }>();
          for (const s of queued.values()) {
            const k = key(s.job);
            const src = isSourceChange(s.job);
            const ek = `${k}|${src}`;
            if (!entries.has(ek)) {
              const eff = effectiveLoad(own.get(k) ?? 0, pra.get(`${s.job.project}|${s.job.arch}`) ?? 0);
              // Staleness is 0 here: every last build is at T0, before or at the newest source change.
              entries.set(ek, { score: src ? eff : eff * 3, src, jobs: [] });
            }
            entries.get(ek)!.jobs.push(s);
          }
          const bySlot = (x: { job: QueuedJob; seq: number }, y: { job: QueuedJob; seq: number }) =>
            y.job.needed - x.job.needed || x.job.readyTime - y.job.readyTime || x.seq - y.seq;
          const list = [...entries.values()].map((e) => ({ ...e, jobs: e.jobs.sort(bySlot) }));
          list.sort(
            (x, y) =>
              x.score - y.score || Number(y.src) - Number(x.src) || x.jobs[0]!.job.readyTime - y.jobs[0]!.job.readyTime
          );
          for (const e of list) for (const s of e.jobs) if (eligible(s.job)) return s.job;
          return undefined;
        };
        for (let step = 0; step < 400; step++) {
          const op = r();
          if (op < 0.45 || queued.size === 0) {
            const j = job(pick(projects), {
              repository: pick(repos),
              needed: Math.floor(r() * 4),
              reason: r() < 0.5 ? "source change" : "meta change",
              readyTime: T0 + Math.floor(r() * 1e9),
            });
            q.add(j);
            queued.set(j.jobId, { job: j, seq: seq++ });
          } else if (op < 0.55) {
            const victim = pick([...queued.keys()]);
            q.remove(victim);
            queued.delete(victim);
          } else if (op < 0.85) {
            const parity = Math.floor(r() * 3);
            const eligible = (j: QueuedJob) => Number(j.jobId.slice(1)) % 3 !== parity;
            const want = reference(eligible);
            const got = q.next(eligible);
            assert.equal(got?.jobId, want?.jobId, `seed ${seed} step ${step}`);
            if (got) {
              q.recordAssignment(got.jobId);
              queued.delete(got.jobId);
              building.set(key(got), (building.get(key(got)) ?? 0) + 1);
            }
          } else {
            const busy = [...building.entries()].filter(([, n]) => n > 0);
            if (busy.length === 0) continue;
            const [k] = pick(busy);
            const [project, repository, arch] = k.split("|") as [string, string, string];
            building.set(k, building.get(k)! - 1);
            q.recordFinished({ project, repository, arch }, { start: T0 - 4 * H, end: T0 });
            loads.set(k, (loads.get(k) ?? 0) + 0.5);
          }
        }
      }
    });
  });
});
