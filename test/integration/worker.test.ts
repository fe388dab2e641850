import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import type { NatsConnection } from "nats";
import pino from "pino";
import type { BuildJob, RunningRole, StoredResult } from "../../actors/index.ts";
import { connectNats, downloadBlob, readBlobBytes, subjects } from "../../transport/index.ts";
import { HELLO_C, helloCSpec } from "../helpers/c-program.ts";
import { check } from "../helpers/check.ts";
import { jobFields } from "../helpers/jobs.ts";
import { ARCH, startStack, trivialSpec, type Stack } from "../helpers/worker-stack.ts";
import { SimWorker } from "../helpers/worker-sim.ts";

// Workers through the whole service: the real source, repo, dispatcher and scheduler roles, real
// workers (bwrap, rpmbuild, hooks), packages committed as a user commits them.

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "worker");
const log = pino({ level: "silent" });

const rpmQuery = async (file: string, fmt: string): Promise<string> =>
  (await execa("rpm", ["-qp", "--nosignature", "--nodigest", "--qf", fmt, file])).stdout;

/** A hook program in a temporary directory: `body` is bash. */
function hookProgram(dir: string, name: string, body: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, `#!/bin/bash\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

/** A spec without BuildArch: its package takes the arch it is built for. */
function archSpec(name: string): string {
  return trivialSpec(name, { build: 'echo "MACHINE=$(uname -m)"' }).replace("BuildArch: noarch\n", "");
}

/** A job as a scheduler would submit it, for a committed revision (the test sets what it needs). */
function jobFor(
  rev: { srcmd5: string; rev: number; files: BuildJob["files"] },
  over: Partial<BuildJob> & Pick<BuildJob, "project" | "package" | "specFile">
): BuildJob {
  const j: Omit<BuildJob, "jobId"> = {
    ...jobFields({ project: over.project, package: over.package, srcmd5: rev.srcmd5, arch: ARCH }),
    rev: rev.rev,
    files: rev.files,
    ...over,
  };
  return { ...j, jobId: createHash("md5").update(JSON.stringify(j)).digest("hex") };
}

describe("worker/ (through the whole service)", function () {
  this.timeout(120_000);
  let s: Stack;
  let nc: NatsConnection;
  let tmp: string;
  const extra: RunningRole[] = [];

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-worker-test-"));
    chmodSync(tmp, 0o755);
    s = await startStack({
      dispatcher: { heartbeatMs: 250, downAfterMs: 3000, startupGraceMs: 0, constraintCheckMs: 100 },
      workers: [{ workerId: "main" }],
    });
    nc = await connectNats({ servers: s.natsUrl, name: "worker-test", log });
  });

  after(async () => {
    await nc?.drain();
    await s?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const r of extra.splice(0)) await s.stopRole(r);
  });

  it("should build against a dependency with the job's release and disturl, and store log, meta and statistics", async () => {
    await s.project("bld");
    await s.commit("bld", "base", { "base.spec": trivialSpec("base", { content: "base-content" }) });
    await s.waitCode("bld", "base", ["succeeded"]);
    const srcmd5 = await s.commit("bld", "app", {
      "app.spec": trivialSpec("app", {
        extra: "BuildRequires: base",
        build: "cat /usr/share/base/data && echo APP-SAW-BASE",
      }),
    });
    const r = await s.waitCode("bld", "app", ["succeeded", "failed"]);
    const buildLog = await s.buildLog("bld", "app");
    assert.equal(r.code, "succeeded", buildLog);
    assert.match(buildLog, /^base-content$/m);
    assert.match(buildLog, /^APP-SAW-BASE$/m);
    assert.match(buildLog, /srcmd5 [0-9a-f]{32} verified/);
    assert.match(buildLog, /\[kiln\] finished: succeeded/);

    const stored = (await s.stored("bld", "app"))!;
    assert.equal(stored.workerId, "main");
    const rpm = stored.binaries.find((b) => b.filename.endsWith(".noarch.rpm"))!;
    const file = path.join(tmp, rpm.filename);
    await downloadBlob(s.repo, rpm.sha256, file);
    assert.equal(await rpmQuery(file, "%{RELEASE}"), stored.release);
    assert.equal(await rpmQuery(file, "%{DISTURL}"), `obs://kiln/bld/standard/${srcmd5}-app`);

    // The meta as OBS's worker writes it: the sources, then each dependency.
    const meta = (await readBlobBytes(s.repo, stored.metaSha256!, 1 << 20)).toString().trim().split("\n");
    assert.equal(meta[0], `${srcmd5}  app`);
    assert.ok(
      meta.slice(1).some((l) => /^[0-9a-f]{32} {2}base$/.test(l)),
      meta.join("\n")
    );
    for (const l of meta) assert.match(l, /^[0-9a-f]{32} {2}.+$/);

    const stats = (await readBlobBytes(s.repo, stored.statsSha256!, 1 << 20)).toString();
    assert.match(stats, /^<buildstatistics>/);
    for (const el of ["total", "download", "main", "buildcmp"]) {
      assert.match(stats, new RegExp(`<${el}>\\s*<time unit="s">[0-9.]+</time>`), `${el} in\n${stats}`);
    }
    assert.match(stats, /<memory>\s*<usage>\s*<size unit="M">\d+<\/size>/);
    assert.match(stats, /<disk>\s*<usage>\s*<size unit="M">\d+<\/size>/);
    assert.match(stats, /<binaries>1<\/binaries>/);

    // Nothing of the build stays on the worker: job directory, build root and log are gone.
    const jobsDirs = readdirSync(s.dataDir)
      .filter((d) => d.startsWith("worker-"))
      .map((d) => path.join(s.dataDir, d, "worker", "main", "jobs"))
      .filter((d) => existsSync(d));
    assert.equal(jobsDirs.length, 1, "the main worker's jobs directory");
    await check(() => readdirSync(jobsDirs[0]!).length === 0, {
      name: `jobs directory emptied (${readdirSync(jobsDirs[0]!).join(", ")})`,
    });
  });

  it("should keep the previous packages when a rebuild is unchanged, without a rebuild cascade", async () => {
    await s.project("cmp");
    await s.commit("cmp", "lib", { "lib.spec": trivialSpec("lib") });
    await s.waitCode("cmp", "lib", ["succeeded"]);
    await s.commit("cmp", "user", { "user.spec": trivialSpec("user", { extra: "BuildRequires: lib" }) });
    await s.waitCode("cmp", "user", ["succeeded"]);
    const libBefore = (await s.stored("cmp", "lib"))!;
    const userBefore = (await s.stored("cmp", "user"))!;
    const poolChanges: unknown[] = [];
    const subs = [
      subjects.event("repo.pool-changed", "cmp"),
      subjects.eventFilter({ type: "repo.pool-changed", project: "cmp" }),
    ].map((subject) => nc.subscribe(subject, { callback: (_e, m) => poolChanges.push(m.subject) }));
    try {
      await s.sched.call("rebuild.request", { project: "cmp", package: "lib" });
      await check(async () => (await s.stored("cmp", "lib"))?.jobId !== libBefore.jobId, {
        timeoutMs: 60_000,
        name: "lib rebuilt",
      });
      const libAfter = (await s.stored("cmp", "lib"))!;
      assert.equal(libAfter.code, "unchanged", await s.buildLog("cmp", "lib"));
      assert.match(await s.buildLog("cmp", "lib"), /build-compare: the packages are the same/);
      assert.deepEqual(
        libAfter.binaries.map((b) => [b.filename, b.sha256]),
        libBefore.binaries.map((b) => [b.filename, b.sha256]),
        "the previous packages stay"
      );
      await s.waitCode("cmp", "lib", ["succeeded"]);
      await s.waitCode("cmp", "user", ["succeeded"]);
      assert.equal((await s.stored("cmp", "user"))!.jobId, userBefore.jobId, "user was not rebuilt");
      await nc.flush();
      assert.deepEqual(poolChanges, [], "no pool change announced");

      // A real change does change the pool and rebuilds what depends on it.
      await s.commit("cmp", "lib", { "lib.spec": trivialSpec("lib", { content: "2" }) });
      await check(async () => (await s.stored("cmp", "user"))?.jobId !== userBefore.jobId, {
        timeoutMs: 60_000,
        name: "user rebuilt after a real change",
      });
      assert.equal((await s.stored("cmp", "lib"))!.code, "succeeded");
      assert.ok(poolChanges.length > 0);
    } finally {
      for (const sub of subs) sub.unsubscribe();
    }
  });

  it("should run rpmlint for a project that asks for it, its findings in the log", async () => {
    await s.project("lint", { prjconf: "BuildFlags: hooks:rpmlint\n" });
    await s.commit("lint", "linted", { "linted.spec": trivialSpec("linted") });
    const r = await s.waitCode("lint", "linted", ["succeeded", "failed"]);
    const buildLog = await s.buildLog("lint", "linted");
    assert.equal(r.code, "succeeded", buildLog);
    assert.match(buildLog, /\[kiln\] postbuild hook rpmlint/);
    assert.match(buildLog, /linted\.noarch: W: no-url-tag/);
    assert.match(buildLog, /\[kiln\] rpmlint exited with \d+/);
  });

  /** Commits a package the scheduler never builds (build disabled), for jobs the test submits itself. */
  const commitUnscheduled = async (
    project: string,
    pkg: string,
    files: Record<string, string>
  ): Promise<{ srcmd5: string; rev: number; files: BuildJob["files"] }> => {
    await s.source.call("package.put-meta", {
      project,
      package: pkg,
      xml: `<package name="${pkg}" project="${project}"><title/><description/><build><disable/></build></package>`,
    });
    await s.commit(project, pkg, files);
    return s.source.call("package.get", { project, package: pkg });
  };

  /**
   * Submits a job and waits for its stored result. The scheduler is stopped meanwhile: it would
   * cancel a job of a package whose build is disabled, as OBS's killunwantedjobs does.
   */
  const runJob = async (job: BuildJob): Promise<{ stored: StoredResult; log: string }> => {
    const scheduler = s.roles.find((r) => r.role.startsWith("scheduler:"));
    if (scheduler) await s.stopRole(scheduler);
    try {
      await s.dispatcher.call("job.submit", { job });
      const q = { project: job.project, repository: job.repository, arch: job.arch, package: job.package };
      const stored = await check(
        async () => {
          const r = await s.repo.call("result.get", q, { idempotent: true });
          return r?.jobId === job.jobId ? r : undefined;
        },
        { timeoutMs: 60_000, name: `${job.package} (${job.arch}) reported` }
      );
      const text = stored.logSha256 ? (await readBlobBytes(s.repo, stored.logSha256, 16 << 20)).toString() : "";
      return { stored, log: text };
    } finally {
      if (scheduler) await s.startRole("scheduler");
    }
  };

  it("should build an i586 job as OBS does on x86_64: under linux32, for i586, giving .i586.rpm", async () => {
    await s.project("arch32", {
      meta: `<project name="arch32"><title/><description/><repository name="standard"><arch>x86_64</arch><arch>i586</arch></repository></project>`,
    });
    const rev = await commitUnscheduled("arch32", "archful", { "archful.spec": archSpec("archful") });
    const { stored, log: buildLog } = await runJob(
      jobFor(rev, { project: "arch32", package: "archful", specFile: "archful.spec", arch: "i586" })
    );
    assert.equal(stored.code, "succeeded", buildLog);
    assert.match(buildLog, /\[kiln\] i586 on a x86_64 host: rpmbuild --target=i586 under setarch linux32/);
    assert.match(buildLog, /^MACHINE=i686$/m);
    const rpms = stored.binaries.filter((b) => !b.isSource).map((b) => b.filename);
    assert.deepEqual(rpms, ["archful-1.0-1.1.i586.rpm"]);
    const file = path.join(tmp, rpms[0]!);
    await downloadBlob(s.repo, stored.binaries.find((b) => b.filename === rpms[0])!.sha256, file);
    assert.equal(await rpmQuery(file, "%{ARCH}"), "i586");
  });

  it("should make -debuginfo packages for a project with debuginfo enabled, and none without", async () => {
    const files = { "hello.c": HELLO_C, "hello.spec": helloCSpec("hello") };
    const meta = (name: string, debuginfo: string): string =>
      `<project name="${name}"><title/><description/>${debuginfo}<repository name="standard"><arch>${ARCH}</arch></repository></project>`;
    await s.project("dbg-on", { meta: meta("dbg-on", "<debuginfo><enable/></debuginfo>") });
    await s.project("dbg-off", { meta: meta("dbg-off", "") });
    for (const p of ["dbg-on", "dbg-off"]) await s.commit(p, "hello", files);
    const binaries = async (p: string): Promise<string[]> => {
      const r = await s.waitCode(p, "hello", ["succeeded", "failed"]);
      assert.equal(r.code, "succeeded", await s.buildLog(p, "hello"));
      return (await s.stored(p, "hello"))!.binaries
        .filter((b) => !b.isSource)
        .map((b) => b.filename)
        .sort();
    };
    assert.deepEqual(await binaries("dbg-on"), ["hello-1.0-1.1.x86_64.rpm", "hello-debuginfo-1.0-1.1.x86_64.rpm"]);
    assert.deepEqual(await binaries("dbg-off"), ["hello-1.0-1.1.x86_64.rpm"]);
  });

  it("should run build-time services in the build's sandbox with the job's dependencies, failing the build when one fails", async () => {
    const servicesDir = mkdtempSync(path.join(tmp, "services-"));
    chmodSync(servicesDir, 0o755);
    hookProgram(
      servicesDir,
      "gen",
      [
        "set -e",
        "while [ $# -gt 0 ]; do case $1 in --outdir) out=$2; shift 2 ;; --word) word=$2; shift 2 ;; *) shift ;; esac; done",
        "made=$(kiln-svc-tool)",
        'echo "$made $word" > "$out/generated.txt"',
        'echo "gen: wrote generated.txt for $OBS_SERVICE_PROJECT/$OBS_SERVICE_PACKAGE"',
      ].join("\n")
    );
    hookProgram(servicesDir, "broken", 'echo "broken: the upstream tarball is gone" >&2; exit 2');
    // Only this worker has the services; the jobs' constraint sends them to it.
    extra.push(await s.addWorker({ workerId: "services", servicesDir, hostLabels: ["SERVICES"] }));

    await s.project("btsvc");
    await s.commit("btsvc", "tooldep", {
      "tooldep.spec": trivialSpec("tooldep").replace(
        "%files",
        "mkdir -p %{buildroot}/usr/bin && printf '#!/bin/sh\\necho made-by-the-dependency\\n' > %{buildroot}/usr/bin/kiln-svc-tool && chmod 755 %{buildroot}/usr/bin/kiln-svc-tool\n%files\n/usr/bin/kiln-svc-tool"
      ),
    });
    await s.waitCode("btsvc", "tooldep", ["succeeded"]);
    const dep = (await s.stored("btsvc", "tooldep"))!.binaries.find((b) => !b.isSource)!;
    const rev = await commitUnscheduled("btsvc", "gen", {
      "gen.spec": trivialSpec("gen", { build: "cat %{SOURCE0}", extra: "Source0: generated.txt" }),
    });
    const job = (services: { name: string; params: { name: string; value: string }[] }[], n: number): BuildJob =>
      jobFor(rev, {
        project: "btsvc",
        package: "gen",
        specFile: "gen.spec",
        readyTime: Date.now() + n,
        buildtimeServices: services,
        constraints: { prjconf: [], recipe: ["hostlabel SERVICES"] },
        bdeps: [
          {
            name: "tooldep",
            version: dep.version,
            release: dep.release,
            arch: dep.arch,
            project: "btsvc",
            repository: "standard",
            package: "tooldep",
            filename: dep.filename,
            sha256: dep.sha256,
            hdrmd5: dep.hdrmd5,
            size: dep.size,
          },
        ],
      });
    const gen = { name: "gen", params: [{ name: "word", value: "and-the-service" }] };
    const ok = await runJob(job([gen], 1));
    assert.equal(ok.stored.code, "succeeded", ok.log);
    assert.equal(ok.stored.workerId, "services");
    assert.match(ok.log, /\[kiln\] build-time services: gen/);
    assert.match(ok.log, /^gen: wrote generated.txt for btsvc\/gen$/m);
    assert.match(ok.log, /^made-by-the-dependency and-the-service$/m);

    const bad = await runJob(job([{ name: "broken", params: [] }, gen], 2));
    assert.equal(bad.stored.code, "failed");
    assert.match(bad.log, /^broken: the upstream tarball is gone$/m);
    assert.match(
      bad.log,
      /\[kiln\] build failed: build-time service broken failed \(exit 2\): broken: the upstream tarball is gone/
    );
    assert.doesNotMatch(bad.log, /running build-time service gen|Executing\(%build\)/);
  });

  it("should verify sources against the srcmd5 and dependencies against their checksums", async () => {
    await s.project("verify");
    // The scheduler never builds this package, so only the forged jobs below run.
    const rev = await commitUnscheduled("verify", "forged", { "forged.spec": trivialSpec("forged") });
    const base = (await s.stored("bld", "base"))!;
    const baseRpm = base.binaries.find((b) => !b.isSource)!;
    const job = (over: Partial<BuildJob>): BuildJob =>
      jobFor(rev, {
        name: "verify::standard::forged",
        project: "verify",
        package: "forged",
        specFile: "forged.spec",
        disturl: "obs://kiln/verify/standard/x-forged",
        ...over,
      });
    const run = async (j: BuildJob): Promise<string> => (await runJob(j)).log;
    const badTree = await run(job({ verifymd5: "0".repeat(32) }));
    assert.match(badTree, /the sources have srcmd5 [0-9a-f]{32}, the job says 0{32}/);
    assert.equal((await s.stored("verify", "forged"))!.code, "failed");

    const dep = {
      name: "base",
      version: baseRpm.version,
      release: baseRpm.release,
      arch: baseRpm.arch,
      project: "bld",
      repository: "standard",
      package: "base",
      filename: baseRpm.filename,
      sha256: baseRpm.sha256,
      hdrmd5: "f".repeat(32),
      size: baseRpm.size,
    };
    const badDep = await run(job({ bdeps: [dep], readyTime: Date.now() + 1 }));
    assert.match(badDep, /dependency base has hdrmd5 [0-9a-f]{32}, expected f{32}/);
    const badSize = await run(job({ bdeps: [{ ...dep, hdrmd5: baseRpm.hdrmd5, size: 1 }], readyTime: Date.now() + 2 }));
    assert.match(badSize, /dependency base has \d+ bytes, expected 1/);
    const good = await run(job({ bdeps: [{ ...dep, hdrmd5: baseRpm.hdrmd5 }], readyTime: Date.now() + 3 }));
    assert.match(good, /finished: succeeded/);
  });

  it("should give a job a pre-build hook rejects to another worker, and take no jobs once a hook marks the host bad", async () => {
    await s.project("hooks");
    const picky = hookProgram(tmp, "picky", '[ "$KILN_PACKAGE" = choosy ] && exit 11; exit 0');
    const poison = hookProgram(tmp, "poison", '[ "$KILN_PACKAGE" = poisoned ] && exit 12; exit 0');
    const main = s.roles.find((r) => r.role === "worker:main")!;
    await s.stopRole(main);
    extra.push(
      await s.addWorker({ workerId: "picky-worker", hooks: [{ name: "picky", stage: "prebuild", program: picky }] })
    );
    await s.commit("hooks", "choosy", { "choosy.spec": trivialSpec("choosy") });
    await check(async () => ((await s.dispatcher.call("job.list", { project: "hooks" }))[0]?.rejections ?? 0) > 0, {
      timeoutMs: 30_000,
      name: "refused by the picky worker",
    });
    extra.push(await s.addWorker({ workerId: "other-worker" }));
    await s.waitCode("hooks", "choosy", ["succeeded"]);
    assert.equal((await s.stored("hooks", "choosy"))!.workerId, "other-worker");

    for (const r of extra.splice(0)) await s.stopRole(r);
    extra.push(
      await s.addWorker({ workerId: "poison-worker", hooks: [{ name: "poison", stage: "prebuild", program: poison }] })
    );
    await s.commit("hooks", "poisoned", { "poisoned.spec": trivialSpec("poisoned") });
    await check(
      async () =>
        (await s.dispatcher.call("worker.list", {})).find((w) => w.workerId === "poison-worker")?.details ===
        "marked bad: hook poison marked the host bad",
      { timeoutMs: 30_000, name: "worker marked bad" }
    );
    const waiting = await s.waitCode("hooks", "poisoned", ["scheduled"]);
    void waiting;
    extra.push(await s.addWorker({ workerId: "healthy-worker" }));
    await s.waitCode("hooks", "poisoned", ["succeeded"]);
    assert.equal((await s.stored("hooks", "poisoned"))!.workerId, "healthy-worker");
    // The bad worker refuses whatever comes.
    const ws = await s.dispatcher.call("worker.list", {});
    assert.equal(ws.find((w) => w.workerId === "poison-worker")?.state, "down");
    extra.push(await s.addWorker({ workerId: "main" }));
  });

  it("should fail the build when a post-build hook fails, saying which", async () => {
    await s.project("postfail");
    const failing = hookProgram(tmp, "strict-check", 'echo "strict-check: found a problem"; exit 3');
    extra.push(
      await s.addWorker({
        workerId: "strict",
        hooks: [{ name: "strict-check", stage: "postbuild", program: failing }],
      })
    );
    const main = s.roles.find((r) => r.role === "worker:main");
    if (main) await s.stopRole(main);
    await s.commit("postfail", "checked", { "checked.spec": trivialSpec("checked") });
    await s.waitCode("postfail", "checked", ["failed"]);
    const buildLog = await s.buildLog("postfail", "checked");
    assert.match(buildLog, /strict-check: found a problem/);
    assert.match(buildLog, /hook strict-check failed \(exit 3\)/);
    extra.push(await s.addWorker({ workerId: "main" }));
  });

  it("should fail a job no worker can take with the blocking constraint, and explain one that waits", async () => {
    await s.project("con");
    await s.commit("con", "huge", {
      "huge.spec": trivialSpec("huge"),
      _constraints: "<constraints><hardware><memory><size unit='T'>64</size></memory></hardware></constraints>",
    });
    await s.waitCode("con", "huge", ["failed"]);
    assert.match(
      await s.buildLog("con", "huge"),
      /package build was not possible: no compliant workers \(constraints mismatch hint: hardware:memory\)/
    );

    const labelled = new SimWorker(nc, { workerId: "labelled", hostLabels: ["SPECIAL"] });
    await labelled.start();
    await labelled.stop(true);
    await s.commit("con", "special", {
      "special.spec": `#!BuildConstraint: hostlabel SPECIAL\n${trivialSpec("special")}`,
    });
    const r = await s.waitCode("con", "special", ["scheduled"]);
    await check(
      async () => (await s.result("con", "special"))?.details === "waiting for 1 compliant workers (1 of them down)",
      { name: `waiting details (${r.details})` }
    );
    await s.dispatcher.call("job.abort", { project: "con", package: "special" });
  });

  it("should apply the project config's Constraint: lines, with _constraints over them and the recipe over both", async () => {
    // A live worker with this host's processors (fewer than 4096; no worker anywhere has that many).
    extra.push(await s.addWorker({ workerId: "con-worker" }));
    await s.project("conprj", { prjconf: "Constraint: hardware:processors 4096\n" });
    const lenient = "<constraints><hardware><processors>1</processors></hardware></constraints>";
    const strict = "<constraints><hardware><processors>4096</processors></hardware></constraints>";
    const packages: Record<string, Record<string, string>> = {
      // prjconf alone: nobody qualifies.
      plain: { "plain.spec": trivialSpec("plain") },
      // _constraints over prjconf.
      viafile: { "viafile.spec": trivialSpec("viafile"), _constraints: lenient },
      // The recipe over prjconf, and over _constraints.
      lean: { "lean.spec": `#!BuildConstraint: hardware:processors 1\n${trivialSpec("lean")}` },
      both: { "both.spec": `#!BuildConstraint: hardware:processors 1\n${trivialSpec("both")}`, _constraints: strict },
      greedy: {
        "greedy.spec": `#!BuildConstraint: hardware:processors 4096\n${trivialSpec("greedy")}`,
        _constraints: lenient,
      },
    };
    for (const [pkg, files] of Object.entries(packages)) await s.commit("conprj", pkg, files);
    for (const pkg of ["plain", "greedy"]) {
      await s.waitCode("conprj", pkg, ["failed"]);
      assert.match(
        await s.buildLog("conprj", pkg),
        /package build was not possible: no compliant workers \(constraints mismatch hint: hardware:processors\)/,
        pkg
      );
    }
    for (const pkg of ["viafile", "lean", "both"]) {
      const r = await s.waitCode("conprj", pkg, ["succeeded", "failed"]);
      assert.equal(r.code, "succeeded", `${pkg}: ${await s.buildLog("conprj", pkg)}`);
    }
  });

  it("should never store a result uploaded half-way: the job runs again and the stored result is complete", async () => {
    await s.project("upl");
    for (const r of s.roles.filter((x) => x.role.startsWith("worker:"))) await s.stopRole(r);
    const dataDir = mkdtempSync(path.join(tmp, "frozen-"));
    const child: ResultPromise = execa(
      "node",
      [
        "--import",
        "tsx",
        path.join(FIXTURES, "worker-process.ts"),
        JSON.stringify({ natsUrl: s.natsUrl, dataDir, worker: { workerId: "frozen" }, blockUpload: true }),
      ],
      { reject: false, buffer: false }
    );
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await check(() => out.includes("READY"), { timeoutMs: 30_000, name: "worker process ready" });
      // An incompressible payload larger than one upload chunk.
      await s.commit("upl", "large", {
        "large.spec": trivialSpec("large", {
          build: "head -c 1500000 /dev/urandom > payload",
          extra: "",
        }).replace(
          "%files",
          "install -m 644 payload %{buildroot}/usr/share/large/payload\n%files\n/usr/share/large/payload"
        ),
      });
      await check(() => out.includes("UPLOADING"), { timeoutMs: 60_000, name: "upload half-way" });
      child.kill("SIGKILL");
      await child;
      assert.equal(await s.stored("upl", "large"), null, "nothing stored from the frozen worker");
      extra.push(await s.addWorker({ workerId: "finisher" }));
      await s.waitCode("upl", "large", ["succeeded"], 90_000);
      const stored = (await s.stored("upl", "large"))!;
      assert.equal(stored.workerId, "finisher");
      const rpm = stored.binaries.find((b) => b.filename.endsWith(".noarch.rpm"))!;
      assert.ok(rpm.size > 1_000_000);
      const file = path.join(tmp, rpm.filename);
      await downloadBlob(s.repo, rpm.sha256, file);
      assert.match(await rpmQuery(file, "[%{FILENAMES} %{FILESIZES}\n]"), /\/usr\/share\/large\/payload 1500000/);
    } finally {
      child.kill("SIGKILL");
      await child.catch(() => undefined);
    }
    extra.push(await s.addWorker({ workerId: "main" }));
  });
});
