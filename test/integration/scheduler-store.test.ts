/**
 * What the scheduler keeps in its LMDB of job signatures and build reasons, with real roles and
 * real builds: one signature per package (its current result's job, and a queued or running
 * one's), none once the package is wiped without a new build or deleted, and a start that
 * converges from a store left by a crash or by a scheduler from before the per-package index.
 * The store is read with the scheduler stopped (it holds the database while it runs).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { startWorker } from "../../actors/index.ts";
import { RoleStore, keys, type Key } from "../../storage/index.ts";
import { check } from "../helpers/check.ts";
import { settledResults, startRoleCluster, writeSpec, type RoleCluster } from "../helpers/roles.ts";

const ARCH = "x86_64";
const SCHEDULER = `scheduler:${ARCH}`;

const META = (name: string, repos = ["r"]): string =>
  `<project name="${name}"><title/><description/>${repos
    .map((r) => `<repository name="${r}"><arch>${ARCH}</arch></repository>`)
    .join("")}</project>`;

/** What the scheduler's store holds of signatures, their index and build reasons. */
interface SchedulerStore {
  /** Job ids with a signature. */
  signatures: Set<string>;
  /** `project/repository/package` → job ids in the index, with their counters. */
  index: Map<string, Map<string, number>>;
  /** `project/repository/package` of every stored build reason. */
  reasons: Set<string>;
}

const prpk = (k: Key): string => `${k[1]}/${k[2]}/${k[3]}`;

/** Runs `fn` on the scheduler's store while the scheduler is stopped, then starts it again. */
async function withStore<T>(c: RoleCluster, fn: (store: RoleStore) => T | Promise<T>): Promise<T> {
  await c.stopRole(SCHEDULER);
  const store = RoleStore.open({
    path: path.join(c.dataDir, `scheduler-${ARCH}`, "db"),
    log: pino({ level: "silent" }),
  });
  try {
    return await fn(store);
  } finally {
    await store.close();
    await c.startScheduler();
  }
}

function readStore(store: RoleStore): SchedulerStore {
  const out: SchedulerStore = { signatures: new Set(), index: new Map(), reasons: new Set() };
  for (const k of store.scanKeys(keys.jobSignaturesAll())) out.signatures.add(k[1] as string);
  for (const { key, value } of store.scan<number>(keys.jobSignatureIndexAll())) {
    const m = out.index.get(prpk(key)) ?? new Map<string, number>();
    m.set(key[4] as string, value);
    out.index.set(prpk(key), m);
  }
  for (const k of store.scanKeys(keys.buildReasonsAll())) out.reasons.add(prpk(k));
  return out;
}

/** Waits until the scheduler has nothing left to do for the project; each package's code by `repository/package`. */
async function settle(c: RoleCluster, project: string): Promise<Record<string, string>> {
  const last = await settledResults(c, project, 120_000, ["unknown"]);
  return Object.fromEntries(last.flatMap((r) => r.packages.map((p) => [`${r.repository}/${p.package}`, p.code])));
}

/** Waits until the scheduler has read every project's repositories and consumed every event. */
async function quiet(c: RoleCluster): Promise<void> {
  await check(
    async () => {
      for (const p of await c.source.call("project.list", {})) {
        const rs = await c.sched().call("results.get", { project: p.name });
        if (rs.some((r) => r.dirty)) return false;
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 100, name: "scheduler quiet" }
  );
}

describe("actors/scheduler: what its store keeps (real roles, real builds)", function () {
  this.timeout(300_000);
  let c: RoleCluster;
  let tmp: string;

  const resultJob = async (project: string, pkg: string, repository = "r"): Promise<string> => {
    const r = await c.repo.call("result.get", { project, repository, arch: ARCH, package: pkg });
    assert.ok(r, `${project}/${repository}/${pkg} has no result`);
    return r.jobId;
  };
  /** Waits for a result of the package from a job not among `old`, and returns its job id. */
  const newResult = (project: string, pkg: string, old: string[]): Promise<string> =>
    check(
      async () => {
        const r = await c.repo.call("result.get", { project, repository: "r", arch: ARCH, package: pkg });
        return r && !old.includes(r.jobId) ? r.jobId : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100, name: `new result of ${pkg}` }
    );
  const jobsOf = async (project: string, pkg: string): Promise<string[]> =>
    (await c.repo.call("history.jobs", { project, repository: "r", arch: ARCH, package: pkg })).map((j) => j.jobId);

  /** Creates project P with a package `slow` whose build runs until it is killed; its running job's id. */
  const slowBuilding = async (P: string): Promise<string> => {
    await c.source.call("project.put-meta", { project: P, xml: META(P) });
    await c.commitDir(P, "slow", writeSpec(tmp, "slow", { build: "sleep 300" }));
    return check(
      async () => (await c.dispatcher.call("job.list", { project: P })).find((j) => j.code === "building")?.jobId,
      { timeoutMs: 120_000, name: `${P}/slow building` }
    );
  };

  before(async () => {
    c = await startRoleCluster({ workers: 1, logLevel: process.env.TEST_LOG_LEVEL ?? "warn" });
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-sched-store-"));
  });
  after(async () => {
    await c?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("should keep one signature per package, its current result's, through rebuilds and a wipe", async () => {
    const P = "sigs";
    await c.source.call("project.put-meta", { project: P, xml: META(P) });
    await c.commitDir(P, "a", writeSpec(tmp, "a"));
    await c.commitDir(P, "b", writeSpec(tmp, "b"));
    assert.deepEqual(await settle(c, P), { "r/a": "succeeded", "r/b": "succeeded" });
    const built = [await resultJob(P, "a")];
    for (const version of ["2.0", "3.0"]) {
      await c.commitDir(P, "a", writeSpec(tmp, "a", { version }));
      built.push(await newResult(P, "a", built));
      await settle(c, P);
    }
    assert.deepEqual([...(await jobsOf(P, "a"))].sort(), [...built].sort(), "a was not built three times");
    const current = built[2]!;
    const b = await resultJob(P, "b");

    const s = await withStore(c, readStore);
    // Of a's three jobs only the one its result names is still known; b's one is kept.
    assert.deepEqual(
      built.filter((j) => s.signatures.has(j)),
      [current]
    );
    assert.ok(s.signatures.has(b));
    assert.deepEqual([...(s.index.get(`${P}/r/a`)?.keys() ?? [])], [current]);
    assert.deepEqual([...(s.index.get(`${P}/r/b`)?.keys() ?? [])], [b]);
    assert.ok(s.reasons.has(`${P}/r/a`) && s.reasons.has(`${P}/r/b`));
    // Nothing outside the index: every signature can be found (and dropped) through its package.
    const indexed = new Set([...s.index.values()].flatMap((m) => [...m.keys()]));
    assert.deepEqual([...s.signatures].sort(), [...indexed].sort());

    // A wipe: a is built again ("new build"); the wiped build's signature goes.
    await quiet(c);
    await c.repo.call("result.wipe", { project: P, package: "a" });
    const rebuilt = await newResult(P, "a", built);
    await settle(c, P);
    const after = await withStore(c, readStore);
    assert.deepEqual(
      [...built, rebuilt].filter((j) => after.signatures.has(j)),
      [rebuilt]
    );
    assert.equal(
      (await c.sched().call("reason.get", { project: P, repository: "r", package: "a" }))?.explain,
      "new build"
    );
  });

  it("should keep no signature or reason of a package wiped without a new build, deleted, or in a deleted project", async () => {
    const P = "sigdel";
    const Q = "siggone";
    await c.source.call("project.put-meta", { project: P, xml: META(P, ["r", "s"]) });
    await c.source.call("project.put-meta", { project: Q, xml: META(Q) });
    await c.commitDir(P, "x", writeSpec(tmp, "x"));
    await c.commitDir(P, "y", writeSpec(tmp, "y"));
    await c.commitDir(P, "keep", writeSpec(tmp, "keep"));
    await c.commitDir(Q, "z", writeSpec(tmp, "z"));
    await settle(c, P);
    await settle(c, Q);
    const jobs = {
      x: [await resultJob(P, "x"), await resultJob(P, "x", "s")],
      y: [await resultJob(P, "y"), await resultJob(P, "y", "s")],
      z: [await resultJob(Q, "z")],
      keep: [await resultJob(P, "keep"), await resultJob(P, "keep", "s")],
    };
    // Restarted on purpose: what follows is the event handling's doing, not the start's.
    const before = await withStore(c, readStore);
    for (const j of Object.values(jobs).flat()) assert.ok(before.signatures.has(j), `no signature of ${j} yet`);
    await quiet(c);

    // x no longer builds, then its results are wiped: nothing of it is needed any more.
    await c.source.call("package.put-meta", {
      project: P,
      package: "x",
      xml: `<package name="x" project="${P}"><title/><description/><build><disable/></build></package>`,
    });
    await check(async () => (await settle(c, P))["r/x"] === "disabled", { timeoutMs: 60_000, name: "x disabled" });
    await c.repo.call("result.wipe", { project: P, package: "x" });
    await c.source.call("package.delete", { project: P, package: "y" });
    await c.source.call("project.delete", { project: Q });
    await check(
      async () => {
        const s = await settle(c, P);
        return s["r/y"] === undefined && s["s/y"] === undefined;
      },
      { timeoutMs: 60_000, name: "y gone" }
    );
    await quiet(c);

    const s = await withStore(c, readStore);
    for (const j of [...jobs.x, ...jobs.y, ...jobs.z]) assert.ok(!s.signatures.has(j), `signature of ${j} kept`);
    for (const j of jobs.keep) assert.ok(s.signatures.has(j), `signature of ${j} lost`);
    for (const k of [`${P}/r/x`, `${P}/s/x`, `${P}/r/y`, `${P}/s/y`, `${Q}/r/z`]) {
      assert.ok(!s.index.has(k), `index entries of ${k} kept`);
      assert.ok(!s.reasons.has(k), `reason of ${k} kept`);
    }
    assert.ok(s.reasons.has(`${P}/r/keep`) && s.reasons.has(`${P}/s/keep`));
  });

  it("should drop the signature of a job the check cancels as soon as the dispatcher lets it go", async () => {
    const P = "sigcancel";
    const jobId = await slowBuilding(P);
    const before = await withStore(c, readStore);
    assert.ok(before.signatures.has(jobId), "the running job has no signature");
    await quiet(c);

    // Disabled: the running job is cancelled (and killed on its worker) and ends without a result.
    await c.source.call("package.put-meta", {
      project: P,
      package: "slow",
      xml: `<package name="slow" project="${P}"><title/><description/><build><disable/></build></package>`,
    });
    await check(async () => (await c.dispatcher.call("job.list", { project: P })).length === 0, {
      timeoutMs: 60_000,
      name: "slow's job cancelled",
    });
    await check(async () => (await settle(c, P))["r/slow"] === "disabled", {
      timeoutMs: 60_000,
      name: "slow disabled",
    });
    await quiet(c);
    // Read before the scheduler starts again (a start prunes too): the event handling dropped it.
    const s = await withStore(c, readStore);
    assert.ok(!s.signatures.has(jobId), "the cancelled job's signature was kept");
    assert.ok(!s.index.get(`${P}/r/slow`)?.has(jobId), "the cancelled job is still indexed");
  });

  it("should drop the signature of a job a new source change supersedes", async () => {
    const P = "sigsuper";
    const first = await slowBuilding(P);
    // New sources, still slow: the new job supersedes the running one.
    await c.commitDir(P, "slow", writeSpec(tmp, "slow", { version: "2.0", build: "sleep 300" }));
    const second = await check(
      async () => {
        const jobs = await c.dispatcher.call("job.list", { project: P });
        return jobs.length === 1 && jobs[0]!.jobId !== first ? jobs[0]!.jobId : undefined;
      },
      { timeoutMs: 60_000, name: "the new job alone" }
    );
    await quiet(c);
    const s = await withStore(c, readStore);
    assert.ok(!s.signatures.has(first), "the superseded job's signature was kept");
    assert.ok(s.signatures.has(second), "the new job has no signature");
    assert.deepEqual([...(s.index.get(`${P}/r/slow`)?.keys() ?? [])], [second]);
    // Done with it: no build left running for the next tests.
    await c.source.call("project.delete", { project: P });
    await check(async () => (await c.dispatcher.call("job.list", { project: P })).length === 0, {
      timeoutMs: 60_000,
      name: "sigsuper's jobs gone",
    });
  });

  it("should converge at start: keep the current result's and a queued job's signatures, drop what nothing names", async () => {
    const P = "sigboot";
    await c.source.call("project.put-meta", { project: P, xml: META(P) });
    await c.commitDir(P, "p", writeSpec(tmp, "p"));
    await settle(c, P);
    const current = await resultJob(P, "p");
    // Without a worker the job of new sources stays queued.
    await c.stopRole("worker:w1");
    await c.commitDir(P, "p", writeSpec(tmp, "p", { version: "2.0" }));
    const queued = await check(async () => (await c.dispatcher.call("job.list", { project: P }))[0]?.jobId, {
      timeoutMs: 30_000,
      name: "p's job queued",
    });
    await quiet(c);

    // A store as a crash and a scheduler from before the index leave it: a signature whose job
    // was never submitted, the current result's signature outside the index, one nothing names,
    // and the signature and reason of a repository that no longer exists.
    const crashed = "c".repeat(32);
    const orphan = "0".repeat(32);
    const gone = "9".repeat(32);
    const sig = { depsig: [], digests: { sig: "x", direct: "x" } };
    await withStore(c, (store) =>
      store.transact(() => {
        void store.db.put(keys.jobSignature(crashed), sig);
        void store.db.put(keys.jobSignatureIndex(P, "r", "p", crashed), 1e9);
        void store.db.remove(keys.jobSignatureIndex(P, "r", "p", current));
        void store.db.put(keys.jobSignature(orphan), sig);
        void store.db.put(keys.jobSignature(gone), sig);
        void store.db.put(keys.jobSignatureIndex(P, "gone", "p", gone), 1);
        void store.db.put(keys.buildReason(P, "gone", "p"), { explain: "new build", time: 1 });
      })
    );
    await quiet(c);

    const s = await withStore(c, readStore);
    assert.ok(s.signatures.has(current), "the current result's signature was dropped");
    assert.ok(s.signatures.has(queued), "the queued job's signature was dropped");
    for (const j of [crashed, orphan, gone]) assert.ok(!s.signatures.has(j), `signature ${j} kept`);
    // The current result's is indexed again, as older than every job since.
    const index = s.index.get(`${P}/r/p`);
    assert.deepEqual([...(index?.keys() ?? [])].sort(), [current, queued].sort());
    assert.equal(index!.get(current), 0);
    assert.ok(index!.get(queued)! > 0);
    assert.ok(!s.index.has(`${P}/gone/p`) && !s.reasons.has(`${P}/gone/p`));
    assert.ok(s.reasons.has(`${P}/r/p`));

    // The queued job is built (not a new one), and then its signature is the only one of p.
    c.roles.set("worker:w2", await startWorker(c.ctx, { workerId: "w2", jobs: 1 }));
    await settle(c, P);
    assert.equal(await resultJob(P, "p"), queued);
    assert.deepEqual((await jobsOf(P, "p")).sort(), [current, queued].sort());
    const after = await withStore(c, readStore);
    assert.deepEqual([...(after.index.get(`${P}/r/p`)?.keys() ?? [])], [queued]);
    assert.ok(!after.signatures.has(current));
  });
});
