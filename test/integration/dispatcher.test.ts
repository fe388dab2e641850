import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import type { NatsConnection } from "nats";
import pino from "pino";
import { JOB_PAGE, listAllJobs, type BuildJob } from "../../actors/index.ts";
import { connectNats } from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import { startStack, type Stack } from "../helpers/worker-stack.ts";
import { SimWorker, simJob } from "../helpers/worker-sim.ts";

// The real dispatcher role over a real nats-server, with simulated workers (NATS clients that
// speak the worker protocol) so that only the dispatcher's decisions are under test.

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "worker");
const log = pino({ level: "silent" });

describe("dispatcher/ (real role, simulated workers)", function () {
  this.timeout(60_000);
  let s: Stack;
  let nc: NatsConnection;
  const sims: SimWorker[] = [];
  const children: ResultPromise[] = [];

  const sim = async (workerId: string, opts: Partial<ConstructorParameters<typeof SimWorker>[1]> = {}) => {
    const w = new SimWorker(nc, { workerId, ...opts });
    await w.start();
    sims.push(w);
    return w;
  };
  const submit = async (job: BuildJob): Promise<BuildJob> => {
    await s.dispatcher.call("job.submit", { job });
    return job;
  };
  const jobOf = (jobId: string) => s.dispatcher.call("job.get", { jobId });

  beforeEach(async () => {
    s = await startStack({
      roles: ["source", "dispatcher"],
      dispatcher: { heartbeatMs: 200, downAfterMs: 2000, startupGraceMs: 0, constraintCheckMs: 50 },
    });
    nc = await connectNats({ servers: s.natsUrl, name: "sims", log });
  });

  afterEach(async () => {
    for (const w of sims.splice(0)) await w.stop(false);
    for (const c of children.splice(0)) {
      c.kill("SIGKILL");
      await c.catch(() => undefined);
    }
    await nc.drain();
    await s.stop();
  });

  it("should keep queued jobs across a dispatcher restart and hand them out afterwards", async () => {
    const jobs = [await submit(simJob("persist", "a")), await submit(simJob("persist", "b"))];
    const first = s.roles.find((r) => r.role === "dispatcher")!;
    await s.stopRole(first);
    await s.startRole("dispatcher");
    const listed = await s.dispatcher.call("job.list", { project: "persist" });
    assert.deepEqual(listed.map((j) => j.jobId).sort(), jobs.map((j) => j.jobId).sort());
    assert.ok(listed.every((j) => j.code === "scheduled"));
    const w = await sim("after-restart", { jobs: 2 });
    await check(() => w.accepted.length === 2, { name: "both jobs assigned" });
    await check(async () => (await jobOf(jobs[0]!.jobId))?.code === "building", { name: "building" });
  });

  it("should keep a running job with its worker across a dispatcher restart", async () => {
    const w = await sim("survivor");
    const job = await submit(simJob("persist", "running"));
    await check(async () => (await jobOf(job.jobId))?.code === "building", { name: "building" });
    await s.stopRole(s.roles.find((r) => r.role === "dispatcher")!);
    await s.startRole("dispatcher");
    // The worker re-registers on its next heartbeat and still has the job; nothing is re-queued.
    await check(
      async () =>
        (await s.dispatcher.call("worker.list", {})).find((x) => x.workerId === "survivor")?.running[0]?.jobId ===
        job.jobId,
      { name: "job claimed by its worker again" }
    );
    assert.equal((await jobOf(job.jobId))?.workerId, "survivor");
    await w.finish(job.jobId);
    assert.equal(await jobOf(job.jobId), null);
    assert.equal(w.accepted.length, 1, "never assigned twice");
  });

  it("should keep a job dispatching until the worker accepts it, and re-queue a refused one", async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const slow = await sim("slow", { acceptGate: () => gate });
    const job = await submit(simJob("ack", "a"));
    await check(async () => (await jobOf(job.jobId))?.code === "dispatching", { name: "dispatching" });
    assert.equal((await jobOf(job.jobId))?.workerId, "slow");
    open();
    await check(async () => (await jobOf(job.jobId))?.code === "building", { name: "building after ack" });
    assert.equal(slow.accepted.length, 1);

    await slow.finish(job.jobId);
    await slow.stop();
    const refusing = await sim("refusing", { refuse: "no thanks" });
    const job2 = await submit(simJob("ack", "b"));
    // Refused: back to the queue, then to a worker that takes it.
    const taker = await sim("taker");
    await check(() => taker.accepted.some((j) => j.jobId === job2.jobId), { name: "taken by the other worker" });
    assert.equal(refusing.accepted.length, 0);
  });

  it("should re-queue the jobs of a worker process that was killed", async () => {
    const child = execa("node", ["--import", "tsx", path.join(FIXTURES, "sim-worker.ts"), s.natsUrl, "doomed"], {
      reject: false,
      buffer: false,
    });
    children.push(child);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    await check(() => out.includes("READY"), { timeoutMs: 30_000, name: "sim worker process ready" });
    const job = await submit(simJob("killed", "a"));
    await check(() => out.includes(`ACCEPTED ${job.jobId}`), { name: "accepted by the doomed worker" });
    await check(async () => (await jobOf(job.jobId))?.code === "building", { name: "building" });
    child.kill("SIGKILL");
    await child.catch(() => undefined);
    const rescuer = await sim("rescuer");
    await check(() => rescuer.accepted.some((j) => j.jobId === job.jobId), {
      timeoutMs: 15_000,
      name: "re-queued to the rescuer",
    });
    const ws = await s.dispatcher.call("worker.list", {});
    const doomed = ws.find((w) => w.workerId === "doomed")!;
    assert.equal(doomed.state, "down");
    assert.match(doomed.details ?? "", /silent/);
  });

  it("should not starve a project that queues one job after another queued 500", async () => {
    const w1 = await sim("f1");
    const w2 = await sim("f2");
    const order: string[] = [];
    for (const w of [w1, w2]) w.onAccept((j) => order.push(j.project));
    const big: BuildJob[] = [];
    for (let i = 0; i < 500; i++) big.push(simJob("big", `p${i}`, { readyTime: Date.now() - 1000 + i }));
    await Promise.all(big.map(submit));
    // Let the big project build for a while: its load grows with every assignment.
    const finishSome = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const w = i % 2 ? w2 : w1;
        await check(() => w.running.size > 0, { name: "a job running" });
        await w.finish([...w.running.keys()][0]!);
      }
    };
    await finishSome(20);
    // Counted before the submission: the job may be assigned before its submission is answered.
    const before = order.length;
    const small = await submit(simJob("small", "only"));
    await finishSome(6);
    await check(() => order.includes("small"), { name: "small project's job assigned" });
    const after = order.indexOf("small") - before;
    assert.ok(after <= 2, `the small project's job waited for ${after} assignments: ${order.slice(before).join(",")}`);
    assert.ok(
      order.slice(0, before).every((p) => p === "big"),
      "only the big project was queued before"
    );
    void small;
  });

  it("should list more jobs than one message holds page by page, and filter by repository and package", async () => {
    const many: BuildJob[] = [];
    for (let i = 0; i < 2100; i++) many.push(simJob("paged", `p${i}`));
    for (let i = 0; i < many.length; i += 300) await Promise.all(many.slice(i, i + 300).map(submit));
    const first = await s.dispatcher.call("job.list", { project: "paged", after: "" });
    assert.equal(first.length, JOB_PAGE);
    const all = await listAllJobs(s.dispatcher, { project: "paged", repository: "standard", arch: "x86_64" });
    assert.deepEqual(all.map((j) => j.jobId).sort(), many.map((j) => j.jobId).sort());
    const one = await s.dispatcher.call("job.list", { project: "paged", package: "p7" });
    assert.deepEqual(
      one.map((j) => j.jobId),
      [many[7]!.jobId]
    );
    assert.equal((await s.dispatcher.call("job.list", { project: "paged", repository: "other" })).length, 0);
  });

  it("should order by needed, then ready time within a project", async () => {
    const older = await submit(simJob("ord", "older", { readyTime: 1000 }));
    const needed = await submit(simJob("ord", "needed", { readyTime: 2000, needed: 5 }));
    const newer = await submit(simJob("ord", "newer", { readyTime: 3000 }));
    const taker = await sim("order");
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      await check(() => taker.running.size > 0, { name: `job ${i}` });
      const id = [...taker.running.keys()][0]!;
      seen.push(id);
      await taker.finish(id);
    }
    assert.deepEqual(seen, [needed.jobId, older.jobId, newer.jobId]);
  });

  it("should give constrained jobs only to compliant workers and explain waiting ones", async () => {
    const plain = await sim("plain");
    const job = await submit(simJob("con", "big", { constraints: { prjconf: [], recipe: ["hostlabel BIGMEM"] } }));
    const free = await submit(simJob("con", "small"));
    await check(() => plain.accepted.some((j) => j.jobId === free.jobId), { name: "plain job assigned" });
    // No known worker has the label: the job fails (the stack has no repo role to take the failed
    // result, so the job stays listed with its reason).
    await check(async () => (await jobOf(job.jobId))?.details !== undefined, { name: "explained" });
    assert.equal(
      (await jobOf(job.jobId))?.details,
      "package build was not possible: no compliant workers (constraints mismatch hint: hostlabel)"
    );
    assert.equal((await jobOf(job.jobId))?.workerId, "kiln-dispatcher");
    assert.ok(!plain.accepted.some((j) => j.jobId === job.jobId));
    // A compliant worker that is down makes the job wait instead of fail.
    const big = new SimWorker(nc, { workerId: "bigmem", hostLabels: ["BIGMEM"] });
    await big.start();
    await big.stop(true);
    const job3 = await submit(simJob("con", "big3", { constraints: { prjconf: [], recipe: ["hostlabel BIGMEM"] } }));
    await check(async () => (await jobOf(job3.jobId))?.details === "waiting for 1 compliant workers (1 of them down)", {
      name: "waiting details",
    });
    const back = await sim("bigmem", { hostLabels: ["BIGMEM"], jobs: 4 });
    await check(() => back.accepted.some((j) => j.jobId === job3.jobId), { name: "assigned when it is back" });
    assert.ok(!plain.accepted.some((j) => j.jobId === job3.jobId));
  });

  it("should keep a refused package away from the refusing worker and count refusals", async () => {
    const a = await sim("ra");
    const job = await submit(simJob("rej", "x"));
    await check(() => a.accepted.length === 1, { name: "assigned" });
    await s.dispatcher.call("job.reject", { jobId: job.jobId, workerId: "ra", reason: "hook said no", hostBad: false });
    const b = await sim("rb");
    await check(() => b.accepted.some((j) => j.jobId === job.jobId), { name: "went to the other worker" });
    assert.equal(a.accepted.length, 1, "not back to the refusing worker");
    assert.equal((await jobOf(job.jobId))?.rejections, 1);
    await s.dispatcher.call("job.reject", { jobId: job.jobId, workerId: "rb", reason: "broken host", hostBad: true });
    const ws = await s.dispatcher.call("worker.list", {});
    assert.match(ws.find((w) => w.workerId === "rb")?.details ?? "", /marked bad: broken host/);
    assert.equal(ws.find((w) => w.workerId === "rb")?.state, "down");
    await check(
      async () => /waiting for 2 compliant workers \(2 of them bad\)/.test((await jobOf(job.jobId))?.details ?? ""),
      {
        name: "both refused",
      }
    );
  });

  it("should fail a job after 5 + 20/workers refusals, as OBS does, before every worker refused it", async () => {
    // 10 workers: the job fails at the refusal after 5 + 20/10 = 7, so two workers never get it.
    const ws: SimWorker[] = [];
    for (let i = 0; i < 10; i++) ws.push(await sim(`r${i}`));
    const job = await submit(simJob("refused", "x"));
    const refusers: string[] = [];
    for (let i = 1; i <= 8; i++) {
      // Each refusal keeps the job away from its worker: the next assignment is elsewhere.
      const holder = await check(
        async () => {
          const v = await jobOf(job.jobId);
          return v?.code === "building" && v.workerId && !refusers.includes(v.workerId) ? v.workerId : undefined;
        },
        { name: `assignment ${i}` }
      );
      assert.equal((await jobOf(job.jobId))?.rejections ?? 0, i - 1);
      await s.dispatcher.call("job.reject", {
        jobId: job.jobId,
        workerId: holder,
        reason: `no (${i})`,
        hostBad: false,
      });
      refusers.push(holder);
    }
    const failed = await check(async () => {
      const v = await jobOf(job.jobId);
      return v?.details?.startsWith("refused by") ? v : undefined;
    });
    assert.equal(failed.details, "refused by 8 workers, last: no (8)");
    assert.equal(failed.rejections, 8);
    assert.equal(failed.workerId, "kiln-dispatcher");
    assert.equal(new Set(refusers).size, 8);
    assert.equal(ws.filter((w) => w.accepted.some((j) => j.jobId === job.jobId)).length, 8);
  });

  it("should re-queue a job whose worker does not answer job.assign in time, and mark that worker down", async () => {
    await s.stopRole(s.roles.find((r) => r.role === "dispatcher")!);
    await s.startRole("dispatcher", {
      heartbeatMs: 200,
      downAfterMs: 2000,
      startupGraceMs: 0,
      constraintCheckMs: 50,
      assignTimeoutMs: 500,
    });
    // Registered and heartbeating, but its answer to job.assign never comes.
    const mute = await sim("mute", { acceptGate: () => new Promise<void>(() => undefined) });
    const job = await submit(simJob("mute", "a"));
    await check(async () => (await jobOf(job.jobId))?.workerId === "mute", { name: "assigned to the mute worker" });
    assert.equal((await jobOf(job.jobId))?.code, "dispatching");
    await check(
      async () => (await s.dispatcher.call("worker.list", {})).find((w) => w.workerId === "mute")?.state === "down",
      { timeoutMs: 5000, name: "mute worker marked down" }
    );
    const view = (await s.dispatcher.call("worker.list", {})).find((w) => w.workerId === "mute")!;
    assert.match(view.details ?? "", /^unreachable: /);
    const answering = await sim("answering");
    await check(() => answering.accepted.some((j) => j.jobId === job.jobId), {
      name: "re-queued to a worker that answers",
    });
    await check(async () => (await jobOf(job.jobId))?.code === "building", { name: "building" });
    assert.equal(mute.accepted.length, 0);
  });

  it("should re-queue a restored running job whose worker never comes back after a dispatcher restart", async () => {
    const vanishing = await sim("vanishing");
    const job = await submit(simJob("restart", "orphan"));
    await check(async () => (await jobOf(job.jobId))?.code === "building", { name: "building" });
    await s.stopRole(s.roles.find((r) => r.role === "dispatcher")!);
    // Its worker goes silent while the dispatcher is away, and never returns.
    await vanishing.stop(false);
    await s.startRole("dispatcher");
    const restored = await jobOf(job.jobId);
    assert.equal(restored?.code, "building", "kept with its worker at first: it may still come back");
    assert.equal(restored?.workerId, "vanishing");
    const heir = await sim("heir");
    await check(() => heir.accepted.some((j) => j.jobId === job.jobId), {
      timeoutMs: 15_000,
      name: "re-queued after the grace period",
    });
    assert.equal(vanishing.accepted.length, 1);
    const ws = await s.dispatcher.call("worker.list", {});
    assert.equal(ws.find((w) => w.workerId === "vanishing")?.state, "down");
  });

  it("should list workers with state and current job", async () => {
    const w = await sim("lister", { jobs: 2, hostLabels: ["L1"] });
    const job = await submit(simJob("list", "a"));
    await check(() => w.running.size === 1, { name: "running" });
    await check(async () => (await jobOf(job.jobId))?.code === "building", { name: "building" });
    const ws = await s.dispatcher.call("worker.list", {});
    const v = ws.find((x) => x.workerId === "lister")!;
    assert.equal(v.state, "building");
    assert.deepEqual(
      v.running.map((r) => `${r.project}/${r.package}`),
      ["list/a"]
    );
    assert.deepEqual(v.registration.hostLabels, ["L1"]);
    await w.finish(job.jobId);
    await check(
      async () => (await s.dispatcher.call("worker.list", {})).find((x) => x.workerId === "lister")?.state === "idle",
      {
        name: "idle again",
      }
    );
  });
});
