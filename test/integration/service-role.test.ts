/**
 * Source services end to end with real roles: the source role records the runs, the service role
 * runs kiln's service programs (and hostile ones) in sandboxes, the scheduler blocks and expands,
 * and a real worker builds from the expanded sources. Downloads and git repositories come from an
 * HTTP server on loopback started here.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  runServices,
  startServiceRole,
  type RunServicesOptions,
  type ServiceParam,
  type ServicesOutcome,
  type Revision,
  type ServiceRunRecord,
  type ServiceStatusView,
} from "../../actors/index.ts";
import { Identity, readBlobBytes } from "../../transport/index.ts";
import { check } from "../helpers/check.ts";
import {
  packageResult,
  projectMeta as META,
  settledStates,
  startRoleCluster,
  writeSpec,
  type RoleCluster,
} from "../helpers/roles.ts";
import {
  git,
  put,
  servicesDirWith,
  sha256,
  startLoopbackServer,
  tarball,
  type LoopbackServer,
} from "../helpers/service-fixtures.ts";

const T = 1700000000;
const MiB = 1024 * 1024;
const IDLE_MS = 6000;
const DISK = 64 * MiB;
const CPU_SECONDS = 2;

/** A noarch spec that unpacks Source0 and installs its README. */
const specFor = (name: string, version: string, source: string): string =>
  [
    `Name: ${name}`,
    `Version: ${version}`,
    "Release: 1",
    `Summary: ${name}`,
    "License: MIT",
    "BuildArch: noarch",
    `Source0: ${source}`,
    "%description",
    name,
    "%prep",
    "%setup -q",
    "%install",
    `mkdir -p %{buildroot}/usr/share/${name}`,
    `cp README %{buildroot}/usr/share/${name}/`,
    "%files",
    `/usr/share/${name}`,
    "",
  ].join("\n");

const services = (body: string): string => `<services>\n${body}\n</services>\n`;

/** Hostile programs: each reads its --outdir like a real service. */
const PREAMBLE = `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --outdir) out=$2; shift 2 ;; *) shift ;; esac; done
`;

/**
 * Tries a TCP connection to each `--target HOST/PORT` and reports `HOST/PORT reachable` or
 * `unreachable` in report.txt, then downloads `--url` (a hostile service looking around).
 */
const NET_PROBE = `#!/bin/bash
targets=()
while [ $# -gt 0 ]; do
  case "$1" in --outdir) out=$2; shift 2 ;; --target) targets+=("$2"); shift 2 ;; --url) url=$2; shift 2 ;; *) shift ;; esac
done
for t in "\${targets[@]}"; do
  if timeout 5 bash -c 'exec 3<>"/dev/tcp/$1"' probe "$t" 2>/dev/null; then echo "$t reachable"; else echo "$t unreachable"; fi
done > "$out/report.txt"
curl -fsS --max-time 20 -o "$out/download.txt" "$url"
`;

describe("service role (real roles, sandboxed services, real builds)", function () {
  this.timeout(300_000);
  let c: RoleCluster;
  let http: LoopbackServer;
  let tmp: string;
  let programs: string;
  /** Shown to services at /kiln/services/secret, unless hidden. */
  let secretDir: string;
  /** Listens on every address of the host; no service may connect to it. */
  let other: net.Server;
  let startService: () => Promise<void>;

  before(async () => {
    c = await startRoleCluster({ workers: 1, logLevel: process.env.TEST_LOG_LEVEL ?? "warn" });
    http = await startLoopbackServer();
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-svc-role-"));
    programs = await servicesDirWith({
      bad_exit: `${PREAMBLE}echo "bad_exit: the upstream server said no" >&2\nexit 3\n`,
      hang: `${PREAMBLE}echo "hang: waiting for ever"\nexec sleep 100000\n`,
      // Prints now and then, so that only its CPU time can stop it.
      spin: `${PREAMBLE}while :; do i=0; while [ $i -lt 20000 ]; do i=$((i + 1)); done; echo spin; done\n`,
      origin: `${PREAMBLE}printf '%s/%s\\n' "$OBS_SERVICE_PROJECT" "$OBS_SERVICE_PACKAGE" > "$out/origin.txt"\n`,
      escape_up: `${PREAMBLE}printf x > "$out/../x"\necho "escape_up: wrote ../x"\n`,
      escape_abs: `${PREAMBLE}printf x > /x\n`,
      escape_link: `${PREAMBLE}ln -s /etc/passwd "$out/passwd"\n`,
      fill_disk: `${PREAMBLE}dd if=/dev/zero of="$out/big" bs=1M count=10240\n`,
      read_data: `${PREAMBLE}if cat "${c.dataDir}/role.identity" "${c.dataDir}/source/db/data.mdb" > "$out/stolen"; then exit 0; fi
ls -la "${c.dataDir}" > "$out/listing" && exit 0
echo "read_data: kiln's data directory is not there" >&2
exit 1
`,
      read_secret: `${PREAMBLE}if cat /kiln/services/secret/token > "$out/stolen"; then exit 0; fi
echo "read_secret: the secret is not there" >&2
exit 1
`,
      net_probe: NET_PROBE,
      many_files: `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --outdir) out=$2; shift 2 ;; --count) n=$2; shift 2 ;; *) shift ;; esac; done
i=0; while [ $i -lt "$n" ]; do i=$((i + 1)); printf '%s' $i > "$out/f$i"; done
`,
      dash_name: `${PREAMBLE}printf x > "$out/-x"\n`,
      dot_name: `${PREAMBLE}printf x > "$out/.hidden"\n`,
      // Prints all the time, so that only the wall-time limit can stop it.
      chatty: `${PREAMBLE}while :; do echo "chatty: still here"; sleep 0.2; done\n`,
    });
    // A secret in a directory the sandbox shows (the services directory), readable by the
    // sandbox's uid: only hiding it keeps it from services.
    secretDir = path.join(programs, "secret");
    mkdirSync(secretDir, { mode: 0o755 });
    chmodSync(secretDir, 0o755);
    writeFileSync(path.join(secretDir, "token"), "s3cret\n", { mode: 0o644 });
    other = net.createServer((s) => s.destroy());
    other.listen(0, "::");
    await once(other, "listening");
    // kiln's roles sign with an identity registered as a service user: the service role's right
    // to deliver service output.
    const roleId = Identity.create();
    await c.source.call("user.add", { name: "kiln-roles-test", pubkey: roleId.publicKey, service: true });
    startService = async () => {
      c.roles.set(
        "service",
        await startServiceRole(
          { ...c.ctx, rpc: c.ctx.rpc.withSigner(roleId) },
          {
            servicesDir: programs,
            limits: { idleLogMs: IDLE_MS, wallMs: 120_000, diskBytes: DISK, memoryBytes: 512 * MiB, logBytes: MiB },
            concurrency: 4,
            cpuSeconds: CPU_SECONDS,
            retryMs: 200,
            hiddenPaths: [secretDir],
            // The test's HTTP server on loopback: the only port of it services reach.
            hostLoopbackPorts: [http.port],
          }
        )
      );
    };
    await startService();
  });
  after(async () => {
    await c?.stop();
    await http?.close();
    other?.close();
    rmSync(tmp, { recursive: true, force: true });
    if (programs) rmSync(programs, { recursive: true, force: true });
  });

  const status = (project: string, pkg: string): Promise<ServiceStatusView> =>
    c.source.call("package.service-status", { project, package: pkg });

  /** Waits until the package's run `runId` (or any newer) has ended. */
  const runEnded = (project: string, pkg: string, runId = 1): Promise<ServiceRunRecord> =>
    check(
      async () => {
        const r = (await status(project, pkg)).run;
        return r && r.runId >= runId && r.state !== "running" ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100, name: `service run of ${project}/${pkg}` }
    );

  /** Waits until nothing of the project waits to build, and returns code and details per package. */
  const settle = (project: string): Promise<Map<string, string>> => settledStates(c, project);

  const result = (project: string, pkg: string) => packageResult(c, project, pkg);

  const revisions = async (project: string, pkg: string): Promise<{ head: Revision; history: unknown[] }> => ({
    head: await c.source.call("package.get", { project, package: pkg }),
    history: await c.source.call("package.history", { project, package: pkg }),
  });

  const LIMITS = {
    wallMs: 60_000,
    idleLogMs: IDLE_MS,
    logBytes: MiB,
    memoryBytes: 512 * MiB,
    diskBytes: DISK,
    pids: 256,
  };

  /**
   * Runs services as the service role does (runner.ts, real sandboxes) on a working directory
   * holding keep.txt, without network and with the role's hidden paths unless `o` says otherwise.
   */
  async function runDirect(
    calls: { name: string; params?: ServiceParam[] }[],
    o: Partial<RunServicesOptions> = {}
  ): Promise<{ outcome: ServicesOutcome; workDir: string }> {
    const root = mkdtempSync(path.join(tmp, "direct-"));
    chmodSync(root, 0o755);
    const workDir = path.join(root, "src");
    mkdirSync(workDir, { mode: 0o755 });
    writeFileSync(path.join(workDir, "keep.txt"), "keep\n", { mode: 0o644 });
    const outcome = await runServices(
      calls.map((s) => ({ name: s.name, params: s.params ?? [] })),
      {
        workDir,
        scratchDir: path.join(root, "sandbox"),
        servicesDir: programs,
        network: false,
        limits: LIMITS,
        cpuSeconds: CPU_SECONDS,
        hiddenPaths: [c.dataDir, secretDir],
        log: c.ctx.log,
        ...o,
      }
    );
    return { outcome, workDir };
  }

  const failure = (o: ServicesOutcome): string => {
    assert.equal(o.type, "services.failed", o.output);
    return o.type === "services.failed" ? o.error : "";
  };

  /** The host's addresses a connection can name without a scope (not loopback, not link-local). */
  const hostAddresses = (): string[] =>
    Object.values(os.networkInterfaces())
      .flatMap((l) => l ?? [])
      .filter((a) => !a.internal && !a.address.startsWith("fe80:") && !a.address.startsWith("169.254."))
      .map((a) => a.address);

  it("should download and verify a tarball and build from it (seed 004 example 1)", async () => {
    const tgz = await tarball("krabber-1.0", { README: "krabber\n" });
    http.files.set("/pub/kde/stuff/krabber-1.0.tar.gz", tgz);
    await c.source.call("project.put-meta", { project: "ex1", xml: META("ex1") });
    const dir = path.join(tmp, "krabber");
    await put(dir, "krabber.spec", specFor("krabber", "1.0", "krabber-1.0.tar.gz"));
    await put(
      dir,
      "_service",
      services(`  <service name="download_url">
    <param name="protocol">http</param>
    <param name="host">127.0.0.1</param>
    <param name="port">${http.port}</param>
    <param name="path">pub/kde/stuff/krabber-1.0.tar.gz</param>
  </service>
  <service name="verify_file">
    <param name="file">_service:download_url:krabber-1.0.tar.gz</param>
    <param name="verifier">sha256</param>
    <param name="checksum">${sha256(tgz)}</param>
  </service>`)
    );
    await c.commitDir("ex1", "krabber", dir);
    const run = await runEnded("ex1", "krabber");
    assert.equal(run.state, "succeeded", run.output);
    assert.match(run.output ?? "", /\[kiln\] running service verify_file/);

    const st = await status("ex1", "krabber");
    assert.deepEqual(
      st.expansion?.files.map((f) => [f.name, f.size]),
      [["_service:download_url:krabber-1.0.tar.gz", tgz.length]]
    );
    // The build's sources are the revision's files and the service's; its srcmd5 is theirs.
    const info = await c.source.call("package.buildinfo", {
      project: "ex1",
      package: "krabber",
      repository: "r",
      arch: "x86_64",
    });
    assert.deepEqual(
      info.files.map((f) => f.name),
      ["_service", "_service:download_url:krabber-1.0.tar.gz", "krabber.spec"]
    );
    assert.equal(info.verifymd5, st.expansion?.xsrcmd5);
    assert.notEqual(
      info.verifymd5,
      (await c.source.call("package.get", { project: "ex1", package: "krabber" })).srcmd5
    );

    const states = await settle("ex1");
    assert.equal(states.get("krabber"), "succeeded");
    const built = await result("ex1", "krabber");
    assert.ok(built?.binaries.some((b) => b.filename === "krabber-1.0-1.1.noarch.rpm"));
    assert.equal(built?.verifymd5, info.verifymd5);

    // kiln service run: a new run, blocked until it ends, with the same files.
    const again = await c.source.call("package.service-run", { project: "ex1", package: "krabber" });
    assert.equal(again.runId, 2);
    const run2 = await runEnded("ex1", "krabber", 2);
    assert.equal(run2.state, "succeeded");
    assert.equal((await status("ex1", "krabber")).expansion?.xsrcmd5, info.verifymd5);
    // The same files: the sources did not change, so nothing is built again.
    assert.equal((await settle("ex1")).get("krabber"), "succeeded");
    assert.equal((await result("ex1", "krabber"))?.jobId, built?.jobId);
  });

  it("should mark the package broken with the checksum error and build nothing for a wrong sha256 (seed 004 example 1)", async () => {
    const tgz = await tarball("krabber-1.0", { README: "krabber\n" });
    http.files.set("/pub/kde/stuff/krabber-1.0.tar.gz", tgz);
    await c.source.call("project.put-meta", { project: "ex1bad", xml: META("ex1bad") });
    const wrong = "7f535a96a834b31ba2201a90c4d365990785dead92be02d4cf846713be938b78";
    const dir = path.join(tmp, "krabber-bad");
    await put(dir, "krabber.spec", specFor("krabber", "1.0", "krabber-1.0.tar.gz"));
    await put(
      dir,
      "_service",
      services(`  <service name="download_url"><param name="url">${http.base}/pub/kde/stuff/krabber-1.0.tar.gz</param></service>
  <service name="verify_file">
    <param name="file">_service:download_url:krabber-1.0.tar.gz</param>
    <param name="verifier">sha256</param>
    <param name="checksum">${wrong}</param>
  </service>`)
    );
    await c.commitDir("ex1bad", "krabber", dir);
    const before = await revisions("ex1bad", "krabber");
    const run = await runEnded("ex1bad", "krabber");
    assert.equal(run.state, "failed");
    const mismatch = `verify_file: checksum mismatch for _service:download_url:krabber-1.0.tar.gz: expected ${wrong}, got ${sha256(tgz)}`;
    assert.equal(run.error, mismatch);
    assert.ok(run.output?.includes(mismatch), "the whole output is kept");
    const states = await settle("ex1bad");
    assert.equal(states.get("krabber"), `broken: service error: ${mismatch}`);
    assert.equal(await result("ex1bad", "krabber"), null, "nothing was built");
    assert.deepEqual(await c.dispatcher.call("job.list", { project: "ex1bad" }), []);
    assert.deepEqual(await revisions("ex1bad", "krabber"), before);
    assert.deepEqual((await status("ex1bad", "krabber")).expansion?.files, []);
  });

  it("should export a git repository with tar_scm, extract the spec, recompress and set the version (seed 004 example 2)", async () => {
    const spec = specFor("obslight", "0.1", "obslight-%{version}.tar.gz");
    await http.publishRepo("obslight", async (w) => {
      await put(w, "src/README", "obslight\n");
      await put(w, "src/rpm/obslight.spec", spec);
      await put(w, "src/deb/obslight.dsc", "Source: obslight\nVersion: 0.1-1\n");
      await git(w, ["add", "-A"]);
      await git(w, ["commit", "--quiet", "-m", "first"], T);
    });
    await c.source.call("project.put-meta", { project: "ex2", xml: META("ex2") });
    const dir = path.join(tmp, "obslight");
    await put(
      dir,
      "_service",
      services(`  <service name="tar_scm">
    <param name="scm">git</param>
    <param name="subdir">src</param>
    <param name="url">${http.base}/git/obslight.git</param>
    <param name="versionprefix">0.4.git</param>
    <param name="filename">obslight</param>
  </service>
  <service name="extract_file">
    <param name="archive">*.tar</param>
    <param name="files">*/rpm/obslight.spec</param>
  </service>
  <service name="recompress">
    <param name="file">*git*.tar</param>
    <param name="compression">gz</param>
  </service>
  <service name="set_version"/>`)
    );
    await c.commitDir("ex2", "obslight", dir);
    const run = await runEnded("ex2", "obslight");
    assert.equal(run.state, "succeeded", run.output);
    const version = `0.4.git.${T}`;
    assert.deepEqual(
      (await status("ex2", "obslight")).expansion?.files.map((f) => f.name),
      [`_service:recompress:obslight-${version}.tar.gz`, "_service:set_version:obslight.spec"]
    );
    const states = await settle("ex2");
    assert.equal(states.get("obslight"), "succeeded");
    const built = await result("ex2", "obslight");
    const rpm = built?.binaries.find((b) => !b.isSource);
    assert.equal(rpm?.version, version);
    assert.equal(rpm?.filename, `obslight-${version}-1.1.noarch.rpm`);
  });

  it("should mirror a git repository with obs_scm and run tar, recompress and set_version at build time (OBS Concepts §22.4.2)", async () => {
    const T3 = T + 172800;
    await http.publishRepo("hello-scm", async (w) => {
      await put(w, "README", "hello from git\n");
      await git(w, ["add", "-A"]);
      await git(w, ["commit", "--quiet", "-m", "hello"], T3);
    });
    await c.source.call("project.put-meta", { project: "scm", xml: META("scm") });
    const dir = path.join(tmp, "hello-scm");
    await put(dir, "hello-scm.spec", specFor("hello-scm", "0", "hello-scm-%{version}.tar.xz"));
    await put(
      dir,
      "_service",
      services(`  <service name="obs_scm">
    <param name="url">${http.base}/git/hello-scm.git</param>
    <param name="scm">git</param>
  </service>
  <service name="tar" mode="buildtime"/>
  <service name="recompress" mode="buildtime">
    <param name="file">*.tar</param>
    <param name="compression">xz</param>
  </service>
  <service name="set_version" mode="buildtime" />`)
    );
    await c.commitDir("scm", "hello-scm", dir);
    const run = await runEnded("scm", "hello-scm");
    assert.equal(run.state, "succeeded", run.output);
    // Only obs_scm ran on the server.
    assert.deepEqual(
      (await status("scm", "hello-scm")).expansion?.files.map((f) => f.name),
      [`_service:obs_scm:hello-scm-${T3}.obscpio`, "_service:obs_scm:hello-scm.obsinfo"]
    );
    const info = await c.source.call("package.buildinfo", {
      project: "scm",
      package: "hello-scm",
      repository: "r",
      arch: "x86_64",
    });
    assert.deepEqual(
      info.buildtimeServices?.map((s) => s.name),
      ["tar", "recompress", "set_version"]
    );
    const states = await settle("scm");
    assert.equal(states.get("hello-scm"), "succeeded");
    const built = await result("scm", "hello-scm");
    const rpm = built?.binaries.find((b) => !b.isSource);
    assert.equal(rpm?.version, String(T3), "set_version ran in the build");
    const buildLog = (await readBlobBytes(c.repo, built!.logSha256!, 16 * MiB)).toString();
    assert.match(buildLog, /\[kiln\] build-time services: tar, recompress, set_version/);
    assert.match(buildLog, /recompress: compressed hello-scm-\d+\.tar to hello-scm-\d+\.tar\.xz/);
  });

  it("should append the project's services (_project/_service) and leave _project out of the results", async () => {
    http.files.set("/NOTICE", Buffer.from("project-wide notice\n"));
    await c.source.call("project.put-meta", { project: "prjsvc", xml: META("prjsvc") });
    const prj = path.join(tmp, "prjsvc-project");
    await put(
      prj,
      "_service",
      services(`<service name="download_url"><param name="url">${http.base}/NOTICE</param></service>
<service name="origin"/>`)
    );
    await c.commitDir("prjsvc", "_project", prj);
    await c.commitDir("prjsvc", "plain", writeSpec(tmp, "plain"));
    const run = await runEnded("prjsvc", "plain");
    assert.equal(run.state, "succeeded", run.output);
    const st = await status("prjsvc", "plain");
    assert.deepEqual(
      st.services.map((s) => [s.name, s.origin]),
      [
        ["download_url", "project"],
        ["origin", "project"],
      ]
    );
    assert.deepEqual(
      st.expansion?.files.map((f) => f.name),
      ["_service:download_url:NOTICE", "_service:origin:origin.txt"]
    );
    // Services learn whom they run for, as from OBS.
    const origin = st.expansion!.files.find((f) => f.name === "_service:origin:origin.txt")!;
    assert.equal((await readBlobBytes(c.source, origin.sha256, 1024)).toString(), "prjsvc/plain\n");
    const states = await settle("prjsvc");
    assert.deepEqual([...states.keys()], ["plain"]);
    assert.equal(states.get("plain"), "succeeded");
  });

  it("should run manual services only when asked and commit their output as files of a new revision", async () => {
    http.files.set("/files/extra.txt", Buffer.from("extra\n"));
    await c.source.call("project.put-meta", { project: "manual", xml: META("manual") });
    const dir = writeSpec(tmp, "handmade");
    await put(
      dir,
      "_service",
      services(
        `<service name="download_url" mode="manual"><param name="url">${http.base}/files/extra.txt</param></service>`
      )
    );
    await c.commitDir("manual", "handmade", dir);
    assert.equal((await status("manual", "handmade")).run, undefined, "a manual service does not run by itself");
    await assert.rejects(
      c.source.call("package.service-run", { project: "manual", package: "handmade" }),
      /has no services the server runs/
    );
    const { runId } = await c.source.call("package.service-run", {
      project: "manual",
      package: "handmade",
      kind: "manual",
    });
    const run = await runEnded("manual", "handmade", runId);
    assert.equal(run.state, "succeeded", run.output);
    assert.equal(run.committedRev, 2);
    const head = await c.source.call("package.get", { project: "manual", package: "handmade" });
    assert.equal(head.rev, 2);
    assert.equal(head.user, "admin");
    assert.deepEqual(
      head.files.map((f) => f.name),
      ["_service", "extra.txt", "handmade.spec"]
    );
    assert.equal((await settle("manual")).get("handmade"), "succeeded");
  });

  it("should run what was asked for while the service role was down", async () => {
    http.files.set("/late.txt", Buffer.from("late\n"));
    await c.source.call("project.put-meta", { project: "late", xml: META("late") });
    await c.stopRole("service");
    const dir = writeSpec(tmp, "late");
    await put(
      dir,
      "_service",
      services(`<service name="download_url"><param name="url">${http.base}/late.txt</param></service>`)
    );
    await c.commitDir("late", "late", dir);
    assert.equal((await status("late", "late")).run?.state, "running");
    await check(
      async () => {
        const p = (await c.sched().call("results.get", { project: "late" }))[0]?.packages.find(
          (x) => x.package === "late"
        );
        return p?.code === "blocked" && p.details === "service in progress";
      },
      { timeoutMs: 30_000, intervalMs: 50, name: "blocked while the service runs" }
    );
    await startService();
    const run = await runEnded("late", "late");
    assert.equal(run.state, "succeeded", run.output);
    assert.equal((await settle("late")).get("late"), "succeeded");
  });

  it("should refuse _service: files from users and a _service that does not parse", async () => {
    await c.source.call("project.put-meta", { project: "refuse", xml: META("refuse") });
    await assert.rejects(
      c.source.call("package.commit", {
        project: "refuse",
        package: "p",
        files: [{ name: "_service:download_url:x.tar", md5: "d41d8cd98f00b204e9800998ecf8427e", size: 0 }],
      }),
      /reserved for the output of source services/
    );
    const dir = path.join(tmp, "refuse");
    await put(dir, "_service", `<services><service name="x"><oops/></service></services>`);
    await assert.rejects(c.commitDir("refuse", "p", dir), /_service: unknown element <oops>/);
  });

  it("should end hostile services as clear service errors and leave the stored sources unchanged", async () => {
    await c.source.call("project.put-meta", { project: "hostile", xml: META("hostile") });
    const cases: [string, RegExp][] = [
      ["bad_exit", /^bad_exit: the upstream server said no$/],
      ["hang", new RegExp(`^hang: killed: no output for ${IDLE_MS / 1000} s$`)],
      ["spin", new RegExp(`^spin: CPU time limit of ${CPU_SECONDS} s exceeded$`)],
      ["escape_up", /^escape_up wrote outside its output directory \("x"\); only files in --outdir are kept$/],
      ["escape_abs", /^escape_abs: .*\/x: Read-only file system$/],
      ["escape_link", /^escape_link wrote "passwd", which is not a regular file$/],
      ["fill_disk", new RegExp(`^fill_disk: .*disk limit.*${DISK}`)],
      // The test's data directory is under /tmp, which no sandbox shows: this case alone would pass
      // without any hiding. read_secret (and the test after this one) is the one that can fail.
      ["read_data", /^read_data: kiln's data directory is not there$/],
      // A hidden path inside a directory the sandbox shows (see the test after this one).
      ["read_secret", /^read_secret: the secret is not there$/],
    ];
    const before = new Map<string, Awaited<ReturnType<typeof revisions>>>();
    for (const [name] of cases) {
      const dir = writeSpec(tmp, `h-${name.replace(/_/g, "-")}`);
      await put(dir, "_service", services(`<service name="${name}"/>`));
      const pkg = path.basename(dir);
      await c.commitDir("hostile", pkg, dir);
      before.set(pkg, await revisions("hostile", pkg));
    }
    const states = await settle("hostile");
    for (const [name, error] of cases) {
      const pkg = `h-${name.replace(/_/g, "-")}`;
      const run = await runEnded("hostile", pkg);
      assert.equal(run.state, "failed", `${name}: ${run.output}`);
      assert.match(run.error ?? "", error, `${name}: ${run.output}`);
      assert.equal(states.get(pkg), `broken: service error: ${run.error}`);
      assert.deepEqual(await revisions("hostile", pkg), before.get(pkg), `${name} changed the stored sources`);
      const st = await status("hostile", pkg);
      assert.deepEqual(st.expansion?.files, [], `${name} left service files`);
      assert.equal(await result("hostile", pkg), null, `${name}: something was built`);
    }
  });
  it("should show services a hidden path only when it is not hidden (the read_secret case can fail)", async () => {
    const shown = await runDirect([{ name: "read_secret" }], { hiddenPaths: [c.dataDir] });
    assert.equal(shown.outcome.type, "services.succeeded", shown.outcome.output);
    assert.equal(readFileSync(path.join(shown.workDir, "stolen"), "utf8"), "s3cret\n");
    const hidden = await runDirect([{ name: "read_secret" }]);
    assert.equal(failure(hidden.outcome), "read_secret: the secret is not there");
    assert.deepEqual(readdirSync(hidden.workDir), ["keep.txt"]);
  });

  it("should keep services off kiln's NATS server and the host's loopback and addresses, but for the allowed ports", async () => {
    http.files.set("/probe.txt", Buffer.from("probe\n"));
    const natsPort = Number(new URL(c.server.url).port);
    const otherPort = (other.address() as net.AddressInfo).port;
    const allowed = `127.0.0.1/${http.port}`;
    const targets = [
      `127.0.0.1/${natsPort}`,
      `127.0.0.1/${otherPort}`,
      ...hostAddresses().map((a) => `${a}/${otherPort}`),
      allowed,
    ];
    const params: ServiceParam[] = [
      ...targets.map((t) => ({ name: "target", value: t })),
      { name: "url", value: `${http.base}/probe.txt` },
    ];
    // The probe sees them all on the host's network (what services had before): it can tell.
    const host = await runDirect([{ name: "net_probe", params }], { network: true });
    assert.equal(host.outcome.type, "services.succeeded", host.outcome.output);
    assert.equal(
      readFileSync(path.join(host.workDir, "report.txt"), "utf8"),
      targets.map((t) => `${t} reachable\n`).join("")
    );

    await c.source.call("project.put-meta", { project: "netiso", xml: META("netiso") });
    const dir = writeSpec(tmp, "probe");
    const xml = params.map((p) => `<param name="${p.name}">${p.value}</param>`).join("");
    await put(dir, "_service", services(`<service name="net_probe">${xml}</service>`));
    await c.commitDir("netiso", "probe", dir);
    const run = await runEnded("netiso", "probe");
    assert.equal(run.state, "succeeded", run.output);
    const files = new Map((await status("netiso", "probe")).expansion!.files.map((f) => [f.name, f.sha256]));
    const read = async (name: string): Promise<string> =>
      (await readBlobBytes(c.source, files.get(name)!, 64 * 1024)).toString();
    assert.equal(
      await read("_service:net_probe:report.txt"),
      targets.map((t) => `${t} ${t === allowed ? "reachable" : "unreachable"}\n`).join("")
    );
    assert.equal(await read("_service:net_probe:download.txt"), "probe\n");
  });

  it("should fail a service that writes more files than allowed, and take as many as allowed", async () => {
    const count = (n: number): ServiceParam[] => [{ name: "count", value: String(n) }];
    const over = await runDirect([{ name: "many_files", params: count(6) }], { maxFiles: 5 });
    assert.equal(failure(over.outcome), "many_files wrote 6 files, more than the limit of 5");
    assert.deepEqual(readdirSync(over.workDir), ["keep.txt"], "nothing of the run was taken");
    const at = await runDirect([{ name: "many_files", params: count(5) }], { maxFiles: 5 });
    assert.equal(at.outcome.type, "services.succeeded", at.outcome.output);
    assert.deepEqual(readdirSync(at.workDir).sort(), ["f1", "f2", "f3", "f4", "f5", "keep.txt"]);
  });

  it("should refuse outputs named like an option or a hidden file", async () => {
    const dash = await runDirect([{ name: "dash_name" }]);
    assert.equal(failure(dash.outcome), `dash_name wrote a file it may not: "-x" starts with '-'`);
    assert.deepEqual(readdirSync(dash.workDir), ["keep.txt"]);
    const dot = await runDirect([{ name: "dot_name" }]);
    assert.equal(
      failure(dot.outcome),
      `dot_name wrote a file it may not: invalid file name ".hidden": must not start with '.'`
    );
    assert.deepEqual(readdirSync(dot.workDir), ["keep.txt"]);
  });

  it("should stop a service that keeps printing at its wall-time limit", async () => {
    const started = Date.now();
    const { outcome, workDir } = await runDirect([{ name: "chatty" }], {
      limits: { ...LIMITS, wallMs: 3000, idleLogMs: 60_000 },
    });
    assert.equal(failure(outcome), "chatty: killed: wall time 3 s exceeded");
    assert.match(outcome.output, /chatty: still here/);
    assert.ok(Date.now() - started < 30_000, "ended by the wall time, not by a backstop");
    assert.deepEqual(readdirSync(workDir), ["keep.txt"]);
  });

  it("should neither block nor run a package whose services are localonly, buildtime, manual or disabled, and build it (as OBS)", async () => {
    await c.source.call("project.put-meta", { project: "notserver", xml: META("notserver") });
    const dir = writeSpec(tmp, "quiet");
    // Each would fail the run if the server ran it.
    const nowhere = `${http.base}/no/such/file.tar.gz`;
    await put(
      dir,
      "_service",
      services(
        [
          `<service name="download_url" mode="localonly"><param name="url">${nowhere}</param></service>`,
          `<service name="bad_exit" mode="manual"/>`,
          `<service name="bad_exit" mode="disabled"/>`,
          `<service name="set_version" mode="buildtime"><param name="version">1.0</param></service>`,
        ].join("\n")
      )
    );
    await c.commitDir("notserver", "quiet", dir);
    const st = await status("notserver", "quiet");
    assert.equal(st.run, undefined, "no service run was started");
    assert.deepEqual(
      st.services.map((s) => s.mode),
      ["localonly", "manual", "disabled", "buildtime"]
    );
    assert.equal((await settle("notserver")).get("quiet"), "succeeded");
    assert.equal((await status("notserver", "quiet")).run, undefined);
    assert.ok((await result("notserver", "quiet"))?.binaries.some((b) => b.filename.startsWith("quiet-")));
  });
});
