import assert from "node:assert/strict";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import type { AddressInfo, Server } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import pino from "pino";
import {
  BUILDTIME_SERVICE_OUTDIR,
  DEFAULT_LIMITS,
  cleanBuildRoot,
  removeStaleSandboxCgroups,
  runRpmBuild,
  runSandboxed,
  sandboxSelfTest,
  WrapperPool,
} from "../../sandbox/index.ts";
import type { BuildOutcome, RpmBuildJob, SandboxLimits } from "../../sandbox/index.ts";
import { HELLO_C, helloCSpec } from "../helpers/c-program.ts";
import { check } from "../helpers/check.ts";
import { Latch } from "../helpers/latch.ts";
import { processAlive } from "../../sandbox/process-tree.ts";

// Every hostile spec here runs through real bwrap and rpmbuild. Each must end with a clear
// reason, leave the host as it was, and leave the sandbox usable for the next, normal build.

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "sandbox");
const log = pino({ level: "warn" });
const MiB = 1024 * 1024;

/** Limits small enough that hostile builds hit them quickly. */
const TEST_LIMITS: SandboxLimits = {
  ...DEFAULT_LIMITS,
  wallMs: 60_000,
  idleLogMs: 30_000,
  logBytes: 4 * MiB,
  memoryBytes: 256 * MiB,
  diskBytes: 64 * MiB,
  pids: 128,
};

let root: string;
let jobs = 0;
/** Builds run as a worker's do: in a wrapper started ahead when one is ready. */
let wrappers: WrapperPool;

interface Built {
  outcome: BuildOutcome;
  output: string;
  jobDir: string;
}

async function build(
  specFile: string,
  opts: {
    limits?: Partial<SandboxLimits>;
    defines?: Record<string, string>;
    sourcesDir?: string;
    dependencyRpms?: string[];
    hiddenPaths?: string[];
    signal?: AbortSignal;
    onLog?: (chunk: Buffer) => void;
    keepOutput?: boolean;
    macros?: string;
    target?: string;
    personality?: "linux32";
    debuginfo?: boolean;
    services?: RpmBuildJob["services"];
  } = {}
): Promise<Built> {
  const jobDir = path.join(root, `job-${++jobs}`);
  let output = "";
  const job: RpmBuildJob = {
    jobDir,
    sourcesDir: opts.sourcesDir ?? FIXTURES,
    specFile,
    dependencyRpms: opts.dependencyRpms ?? [],
    defines: opts.defines ?? {},
    limits: { ...TEST_LIMITS, ...opts.limits },
    onLog: (chunk) => {
      if (opts.keepOutput !== false && output.length < 256 * 1024) output += chunk.toString("utf8");
      opts.onLog?.(chunk);
    },
    log,
    wrappers,
  };
  if (opts.signal) job.signal = opts.signal;
  if (opts.macros) job.macros = opts.macros;
  if (opts.hiddenPaths) job.hiddenPaths = opts.hiddenPaths;
  if (opts.target) job.target = opts.target;
  if (opts.personality) job.personality = opts.personality;
  if (opts.debuginfo !== undefined) job.debuginfo = opts.debuginfo;
  if (opts.services) job.services = opts.services;
  const outcome = await runRpmBuild(job);
  return { outcome, output, jobDir };
}

function failed(b: Built): Extract<BuildOutcome, { type: "build.failed" }> {
  assert.equal(
    b.outcome.type,
    "build.failed",
    `expected a failed build, got ${b.outcome.type}:\n${b.output.slice(-2000)}`
  );
  return b.outcome as Extract<BuildOutcome, { type: "build.failed" }>;
}

function succeeded(b: Built): Extract<BuildOutcome, { type: "build.succeeded" }> {
  assert.equal(
    b.outcome.type,
    "build.succeeded",
    `expected success, got ${JSON.stringify(b.outcome)}\n${b.output.slice(-3000)}`
  );
  return b.outcome as Extract<BuildOutcome, { type: "build.succeeded" }>;
}

async function rpmQuery(file: string, format: string): Promise<string> {
  return (await execa("rpm", ["-qp", "--nosignature", "--nodigest", "--queryformat", format, file])).stdout;
}

/** After a hostile build: a normal build in this same process still works. */
async function assertStillBuilds(): Promise<void> {
  const b = await build("trivial.spec", { defines: { release: "9" } });
  const ok = succeeded(b);
  assert.equal(await rpmQuery(ok.rpms[0]!, "%{RELEASE}"), "9");
  await cleanBuildRoot(b.jobDir);
}

/** Processes anywhere on the host whose command line contains `marker`, as "pid: argv". */
async function processesWith(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, "utf8").catch(() => "");
    const line = cmd.replace(/\0$/, "").replace(/\0/g, " ");
    if (line.includes(marker)) found.push(`${e}: ${line}`);
  }
  return found;
}

/** Processes whose whole command line is `argv`. */
async function processesRunning(argv: string): Promise<string[]> {
  return (await processesWith(argv)).filter((p) => p.endsWith(`: ${argv}`));
}

async function duBytes(dir: string): Promise<number> {
  const { stdout } = await execa("du", ["-sb", dir]);
  return Number(stdout.split("\t")[0]);
}

describe("sandbox/ (real bwrap and rpmbuild)", function () {
  this.timeout(60_000);

  before(async () => {
    root = await mkdtemp("/tmp/kiln-sandbox-test-");
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  beforeEach(async () => {
    wrappers = new WrapperPool({ log });
    await check(() => wrappers.readyPids.length === 1, { name: "a wrapper started ahead" });
  });

  afterEach(async () => {
    await wrappers.close();
    // Every run removes its cgroups, however it ended, and so does the pool for the wrapper it
    // started ahead (ours carry this process's pid).
    const pattern = `kiln-sandbox-${process.pid}-*`;
    const { stdout } = await execa("find", ["/sys/fs/cgroup", "-maxdepth", "4", "-name", pattern], {
      reject: false,
    });
    assert.equal(stdout, "", "leftover sandbox cgroups");
  });

  it("should pass the self-test on this machine", async () => {
    const r = await sandboxSelfTest(log, { scratchDir: root });
    assert.deepEqual(r, { ok: true });
  });

  it("should build a trivial spec into an SRPM and an RPM carrying the release from defines", async () => {
    const b = await build("trivial.spec", {
      defines: { release: "3.1", disturl: "obs://kiln/home:test/standard/abc-kiln-trivial" },
    });
    const ok = succeeded(b);
    assert.equal(ok.srpms.length, 1);
    assert.equal(ok.rpms.length, 1);
    for (const f of [...ok.srpms, ...ok.rpms]) assert.ok(f.startsWith(b.jobDir + "/"), f);
    assert.equal(await rpmQuery(ok.rpms[0]!, "%{NAME} %{VERSION} %{RELEASE}"), "kiln-trivial 1.0 3.1");
    assert.equal(await rpmQuery(ok.srpms[0]!, "%{NAME} %{VERSION} %{RELEASE}"), "kiln-trivial 1.0 3.1");
    assert.equal(await rpmQuery(ok.rpms[0]!, "%{DISTURL}"), "obs://kiln/home:test/standard/abc-kiln-trivial");
    assert.match(b.output, /Wrote: .*kiln-trivial-1\.0-3\.1\.noarch\.rpm/);
    assert.equal(ok.stats.logBytes, Buffer.byteLength(b.output));
    assert.ok(ok.stats.wallMs >= 0 && ok.stats.endedAt >= ok.stats.startedAt);
    await cleanBuildRoot(b.jobDir);
    await assert.rejects(stat(b.jobDir), /ENOENT/);
  });

  it("should run several builds at once, each in its own sandbox", async () => {
    const builds = await Promise.all(["1", "2", "3"].map((release) => build("trivial.spec", { defines: { release } })));
    for (const [i, b] of builds.entries()) {
      const ok = succeeded(b);
      assert.equal(await rpmQuery(ok.rpms[0]!, "%{RELEASE}"), String(i + 1));
    }
  });

  it("should build for the target arch under a 32-bit personality, as OBS builds i586 and i686 on x86_64", async () => {
    const sources = path.join(root, "arch-src");
    await mkdir(sources, { recursive: true });
    // No BuildArch: the package takes the arch the build is for.
    await writeFile(
      path.join(sources, "archful.spec"),
      [
        "Name: kiln-archful",
        "Version: 1.0",
        "Release: 1",
        "Summary: a package of the build's arch",
        "License: MIT",
        "%description",
        "Records the machine it was built on.",
        "%install",
        'echo "MACHINE=$(uname -m) ARCH=%{_arch} TARGET=%{_target_cpu}"',
        "mkdir -p %{buildroot}/usr/share/kiln-archful",
        "uname -m > %{buildroot}/usr/share/kiln-archful/machine",
        "%files",
        "/usr/share/kiln-archful/machine",
        "",
      ].join("\n")
    );
    const native = succeeded(await build("archful.spec", { sourcesDir: sources }));
    assert.deepEqual(
      native.rpms.map((f) => path.basename(f)),
      ["kiln-archful-1.0-1.x86_64.rpm"]
    );
    for (const target of ["i586", "i686"]) {
      const b = await build("archful.spec", { sourcesDir: sources, target, personality: "linux32" });
      const ok = succeeded(b);
      assert.deepEqual(
        ok.rpms.map((f) => path.basename(f)),
        [`kiln-archful-1.0-1.${target}.rpm`]
      );
      assert.match(b.output, new RegExp(`^MACHINE=i686 ARCH=i386 TARGET=${target}$`, "m"));
      assert.equal(await rpmQuery(ok.rpms[0]!, "%{ARCH}"), target);
      assert.equal(await rpmQuery(ok.srpms[0]!, "%{NAME}"), "kiln-archful");
    }
  });

  it("should make -debuginfo packages of a C program exactly when debuginfo is on, as OBS does", async () => {
    const sources = path.join(root, "debuginfo-src");
    await mkdir(sources, { recursive: true });
    await writeFile(path.join(sources, "hello.c"), HELLO_C);
    await writeFile(path.join(sources, "hello.spec"), helloCSpec("kiln-hello", { doc: true }));
    const names = (ok: Extract<BuildOutcome, { type: "build.succeeded" }>): string[] =>
      ok.rpms.map((f) => path.basename(f)).sort();
    const on = succeeded(await build("hello.spec", { sourcesDir: sources, debuginfo: true, macros: "%kiln_x 1" }));
    assert.deepEqual(names(on), [
      "kiln-hello-1.0-1.x86_64.rpm",
      "kiln-hello-debuginfo-1.0-1.x86_64.rpm",
      "kiln-hello-doc-1.0-1.noarch.rpm",
    ]);
    const debug = on.rpms.find((f) => f.includes("-debuginfo-"))!;
    assert.match(await rpmQuery(debug, "[%{FILENAMES}\n]"), /^\/usr\/lib\/debug\/usr\/bin\/kiln-hello.*\.debug$/m);
    const off = succeeded(await build("hello.spec", { sourcesDir: sources, debuginfo: false }));
    assert.deepEqual(names(off), ["kiln-hello-1.0-1.x86_64.rpm", "kiln-hello-doc-1.0-1.noarch.rpm"]);
  });

  it("should lay the project's macros over /etc, with dependency packages in the build root too", async () => {
    const provider = succeeded(await build("marker-provider.spec"));
    const sources = path.join(root, "macro-src");
    await mkdir(sources, { recursive: true });
    await writeFile(
      path.join(sources, "macro.spec"),
      (await readFile(path.join(FIXTURES, "trivial.spec"), "utf8")).replace(
        "%install\n",
        '%install\necho "MACRO=%{kiln_test_macro}"\ntest -e /etc/passwd && test -e /etc/rpm/macros.kiln\n'
      )
    );
    for (const deps of [[], provider.rpms]) {
      const b = await build("macro.spec", {
        sourcesDir: sources,
        macros: "%kiln_test_macro from-prjconf",
        dependencyRpms: deps,
      });
      succeeded(b);
      assert.match(b.output, /MACRO=from-prjconf/);
    }
  });

  it("should unpack dependency RPMs into the build root, merging /bin into /usr/bin", async () => {
    const provider = succeeded(await build("marker-provider.spec"));
    const noDeps = failed(await build("needs-marker.spec"));
    assert.equal(noDeps.reason, "rpmbuild exited with 1");
    const b = await build("needs-marker.spec", { dependencyRpms: provider.rpms });
    succeeded(b);
    assert.match(b.output, /KILN-MARKER-FOUND/);
    assert.match(b.output, /\[kiln\] unpacking kiln-marker-1\.0-1\.noarch\.rpm/);
    // The sandbox's uid could not read it; say so up front rather than fail inside.
    const unreadable = path.join(root, "unreadable.rpm");
    await copyFile(provider.rpms[0]!, unreadable);
    await chmod(unreadable, 0o600);
    await assert.rejects(build("needs-marker.spec", { dependencyRpms: [unreadable] }), {
      code: "ERR_INVALID_INPUT",
      message: /not readable by the sandbox/,
    });
  });

  it("should show every top-level directory of the dependency packages, read-only, over the read-only host base", async () => {
    const sources = path.join(root, "toplevel-src");
    await mkdir(sources, { recursive: true });
    const spec = (name: string, body: string[]): string =>
      [
        `Name: ${name}`,
        "Version: 1.0",
        "Release: 1",
        `Summary: ${name}`,
        "License: MIT",
        "BuildArch: noarch",
        "%description",
        `${name}.`,
        ...body,
        "",
      ].join("\n");
    const places = [
      "/opt/kiln-dep/bin/kiln-opt-tool",
      "/var/lib/kiln-dep/state",
      "/srv/kiln-dep/data",
      "/home/shared/kiln-dep",
    ];
    await writeFile(
      path.join(sources, "toplevel-provider.spec"),
      spec("kiln-toplevel", [
        "%install",
        ...places.map((p) => `mkdir -p %{buildroot}${path.dirname(p)} && echo 'from ${p}' > %{buildroot}${p}`),
        "chmod 755 %{buildroot}/opt/kiln-dep/bin/kiln-opt-tool",
        "printf '#!/bin/sh\\necho kiln-opt-tool-ran\\n' > %{buildroot}/opt/kiln-dep/bin/kiln-opt-tool",
        "%files",
        ...places,
      ])
    );
    await writeFile(
      path.join(sources, "toplevel-user.spec"),
      spec("kiln-toplevel-user", [
        "%build",
        ...places.slice(1).map((p) => `grep -qx 'from ${p}' ${p}`),
        'test "$(/opt/kiln-dep/bin/kiln-opt-tool)" = kiln-opt-tool-ran',
        // Read-only, while the sandbox's own writable places inside them still work.
        "if touch /opt/kiln-dep/new /var/lib/kiln-dep/new 2>/dev/null; then echo WROTE-INTO-DEPS; exit 1; fi",
        "echo tmp > /var/tmp/kiln-scratch && echo home > $HOME/kiln-scratch",
        "test -x /usr/bin/rpmbuild",
        "echo KILN-TOPLEVEL-FOUND",
        "%install",
        "mkdir -p %{buildroot}/usr/share/kiln-toplevel-user && echo ok > %{buildroot}/usr/share/kiln-toplevel-user/ok",
        "%files",
        "/usr/share/kiln-toplevel-user/ok",
      ])
    );
    const provider = succeeded(await build("toplevel-provider.spec", { sourcesDir: sources }));
    failed(await build("toplevel-user.spec", { sourcesDir: sources }));
    const b = await build("toplevel-user.spec", { sourcesDir: sources, dependencyRpms: provider.rpms });
    succeeded(b);
    assert.match(b.output, /^KILN-TOPLEVEL-FOUND$/m);
    assert.doesNotMatch(b.output, /WROTE-INTO-DEPS/);
  });

  it("should run build-time services in the build's own sandbox, with its dependencies, before rpmbuild", async () => {
    const provider = succeeded(await build("marker-provider.spec"));
    const servicesDir = path.join(root, "bt-services");
    const sources = path.join(root, "bt-src");
    await mkdir(servicesDir, { recursive: true });
    await mkdir(sources, { recursive: true });
    await chmod(servicesDir, 0o755);
    const program = async (name: string, body: string): Promise<void> => {
      await writeFile(path.join(servicesDir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      await chmod(path.join(servicesDir, name), 0o755);
    };
    // Uses a tool only the dependency package has, rewrites the spec as set_version does, and
    // leaves a mark in the sandbox's /tmp for the build to find.
    await program(
      "gen",
      [
        "while [ $# -gt 0 ]; do case $1 in --outdir) out=$2; shift 2 ;; --word) word=$2; shift 2 ;; *) shift ;; esac; done",
        "set -e",
        "tool=$(kiln-marker-tool)",
        'echo "$tool $word $OBS_SERVICE_PROJECT/$OBS_SERVICE_PACKAGE" > "$out/generated.txt"',
        'sed -e "s/^Version:.*/Version: 2.0/" -e "s/^Release:.*/Release: 0/" gen.spec > "$out/gen.spec"',
        "echo mark > /tmp/kiln-service-mark",
        "echo gen: done",
      ].join("\n")
    );
    await program("broken", 'echo "broken: the upstream tarball is gone" >&2\nexit 2');
    await writeFile(
      path.join(sources, "gen.spec"),
      [
        "Name: kiln-gen",
        "Version: 1.0",
        "Release: 1",
        "Summary: built from what a build-time service made",
        "License: MIT",
        "BuildArch: noarch",
        "Source0: generated.txt",
        "%description",
        "Generated.",
        "%build",
        "cat %{SOURCE0}",
        "test -e /tmp/kiln-service-mark",
        "%install",
        "install -D -m 644 %{SOURCE0} %{buildroot}/usr/share/kiln-gen/generated.txt",
        "%files",
        "/usr/share/kiln-gen/generated.txt",
        "",
      ].join("\n")
    );
    const services = (...calls: { name: string; args: string[] }[]): RpmBuildJob["services"] => ({
      dir: servicesDir,
      calls,
      env: { OBS_SERVICE_PROJECT: "home:me", OBS_SERVICE_PACKAGE: "gen" },
    });
    const gen = { name: "gen", args: ["--outdir", BUILDTIME_SERVICE_OUTDIR, "--word", "it's here"] };
    const b = await build("gen.spec", {
      sourcesDir: sources,
      dependencyRpms: provider.rpms,
      defines: { release: "4.2" },
      services: services(gen),
    });
    const ok = succeeded(b);
    assert.match(b.output, /^kiln-marker-tool-ran it's here home:me\/gen$/m);
    assert.match(b.output, /^gen: done$/m);
    // The spec the service wrote, with the job's release over the service's.
    assert.equal(await rpmQuery(ok.rpms[0]!, "%{VERSION}-%{RELEASE}"), "2.0-4.2");
    // The host's copy of the sources is untouched.
    assert.equal((await readdir(sources)).join(), "gen.spec");

    // Without the dependency the tool is missing: the service fails, and with it the build.
    const noDep = failed(await build("gen.spec", { sourcesDir: sources, services: services(gen) }));
    assert.match(noDep.reason, /^build-time service gen failed \(exit \d+\)/);

    const broken = await build("gen.spec", {
      sourcesDir: sources,
      dependencyRpms: provider.rpms,
      services: services({ name: "broken", args: ["--outdir", BUILDTIME_SERVICE_OUTDIR] }, gen),
    });
    assert.equal(
      failed(broken).reason,
      "build-time service broken failed (exit 2): broken: the upstream tarball is gone"
    );
    assert.match(broken.output, /^broken: the upstream tarball is gone$/m);
    assert.doesNotMatch(broken.output, /running build-time service gen|Executing\(%build\)/);
  });

  it("should deny the network: a TCP server on the host's loopback sees no connection", async () => {
    let connections = 0;
    const server: Server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const b = await build("network.spec", { defines: { kiln_port: String(port) } });
      assert.equal(failed(b).reason, "rpmbuild exited with 1");
      assert.match(b.output, /KILN-NET-BLOCKED/);
      assert.doesNotMatch(b.output, /KILN-NET-CONNECTED/);
      assert.equal(connections, 0);
    } finally {
      server.close();
    }
    await assertStillBuilds();
  });

  it("should allow the network only when asked to (as source services need)", async () => {
    let connections = 0;
    const server: Server = createServer((s) => {
      connections++;
      s.end("hello\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      let out = "";
      const r = await runSandboxed({
        dir: path.join(root, "with-network"),
        command: ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$PORT && head -n1 <&3 && test -s /etc/resolv.conf"],
        env: { PORT: String(port) },
        network: true,
        limits: TEST_LIMITS,
        onOutput: (c) => (out += c.toString("utf8")),
        log,
      });
      assert.equal(r.type === "sandbox.exited" && r.code, 0, `${JSON.stringify(r)}\n${out}`);
      assert.equal(out, "hello\n");
      assert.equal(connections, 1);
    } finally {
      server.close();
    }
  });

  it("should hide /root, /etc/shadow, hidden paths and the worker's environment", async () => {
    const secretRoot = await mkdtemp(path.join(root, "hidden-"));
    const dataDir = path.join(secretRoot, "data");
    const cacheDir = path.join(secretRoot, "cache");
    const sourcesDir = path.join(cacheDir, "sources");
    await mkdir(sourcesDir, { recursive: true, mode: 0o755 });
    await chmod(sourcesDir, 0o755); // as the worker must: the sandbox's uid reads sources as "other"
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, "db.key"), "KILN-SECRET-CONTENT\n");
    await writeFile(path.join(cacheDir, "worker.key"), "KILN-SECRET-CONTENT\n");
    await writeFile(path.join(sourcesDir, "secret.txt"), "KILN-SECRET-CONTENT\n");
    await copyFile(path.join(FIXTURES, "hidden.spec"), path.join(sourcesDir, "hidden.spec"));
    process.env.KILN_SANDBOX_TEST_SECRET = "KILN-SECRET-CONTENT";
    try {
      const b = await build("hidden.spec", {
        sourcesDir,
        hiddenPaths: [dataDir, cacheDir, path.join(sourcesDir, "secret.txt")],
        defines: { kiln_data_dir: dataDir, kiln_cache_dir: cacheDir },
      });
      for (const what of ["root", "shadow", "data-dir", "cache-dir", "masked-source", "environment", "init-environ"]) {
        assert.match(b.output, new RegExp(`KILN-DENIED-${what}\\b`), `no denial for ${what}:\n${b.output}`);
        assert.doesNotMatch(b.output, new RegExp(`KILN-LEAK-${what}\\b`));
      }
      succeeded(b);
    } finally {
      delete process.env.KILN_SANDBOX_TEST_SECRET;
    }
  });

  it("should keep writes outside the build root from reaching the host", async () => {
    const name = `kiln-evil-${process.pid}-${Date.now()}`;
    const sourcesDir = await mkdtemp(path.join(root, "escape-src-"));
    await chmod(sourcesDir, 0o755);
    await copyFile(path.join(FIXTURES, "escape-write.spec"), path.join(sourcesDir, "escape-write.spec"));
    const hostDir = path.join("/tmp", `${name}-dir`);
    const { stdout: hostnameBefore } = await execa("hostname");
    const b = await build("escape-write.spec", { sourcesDir, defines: { kiln_name: name, kiln_host_dir: hostDir } });
    succeeded(b);
    assert.match(b.output, /KILN-ESCAPE-DONE/);
    for (const what of ["usr", "root", "etc", "sources", "specs", "sysrq", "hostname"]) {
      assert.match(b.output, new RegExp(`KILN-DENIED-${what}\\b`), `write to ${what} was not denied`);
    }
    const hostPaths = [
      `/usr/${name}`,
      `/${name}`,
      `/etc/${name}`,
      `/var/lib/${name}`,
      `/home/${name}`,
      `/tmp/${name}`,
      hostDir,
      path.join(sourcesDir, name),
    ];
    for (const p of hostPaths) await assert.rejects(stat(p), /ENOENT/, `${p} appeared on the host`);
    const { stdout: hostnameAfter } = await execa("hostname");
    assert.equal(hostnameAfter, hostnameBefore);
    assert.deepEqual((await readdir(sourcesDir)).sort(), ["escape-write.spec"]);
  });

  it("should kill a fork bomb at the process limit and leave the worker unharmed", async () => {
    const marker = `kiln-bomb-${process.pid}`;
    const b = await build("fork-bomb.spec", { limits: { pids: 64 }, defines: { kiln_marker: marker } });
    const f = failed(b);
    assert.equal(f.reason, "killed: process limit (64)");
    assert.equal(f.signal, "SIGKILL");
    assert.deepEqual(await processesWith(marker), []);
    assert.equal((await execa("true")).exitCode, 0);
    await assertStillBuilds();
  });

  it("should not follow a build directory the build turned into a symlink when collecting", async () => {
    // A world-readable host directory that looks like rpmbuild's output.
    const leak = await mkdtemp(path.join("/tmp", "kiln-leak-"));
    try {
      await mkdir(path.join(leak, "RPMS", "noarch"), { recursive: true });
      await writeFile(path.join(leak, "RPMS", "noarch", "host-secret.rpm"), "KILN-SECRET\n");
      for (const d of [leak, path.join(leak, "RPMS"), path.join(leak, "RPMS", "noarch")]) await chmod(d, 0o755);
      const b = await build("topdir-swap.spec", { defines: { kiln_leak_dir: leak } });
      assert.match(b.output, /KILN-TOPDIR-SWAPPED/);
      failed(b);
      const copied = (await readdir(path.join(b.jobDir, "build", "out"), { recursive: true })).map(String);
      assert.ok(!copied.some((f) => f.includes("host-secret")), `copied: ${copied.join(", ")}`);
    } finally {
      await rm(leak, { recursive: true, force: true });
    }
  });

  it("should not follow package directories the build turned into symlinks when collecting", async () => {
    // Collecting runs as the wrapper's root: a host directory readable by root only.
    const leak = await mkdtemp(path.join("/tmp", "kiln-leak-"));
    try {
      await mkdir(path.join(leak, "RPMS", "noarch"), { recursive: true });
      await writeFile(path.join(leak, "RPMS", "noarch", "host-secret.rpm"), "KILN-SECRET\n");
      await writeFile(path.join(leak, "RPMS", "host-secret.src.rpm"), "KILN-SECRET\n");
      const b = await build("rpms-swap.spec", { defines: { kiln_leak_dir: leak } });
      assert.match(b.output, /KILN-RPMS-SWAPPED/);
      const copied = (await readdir(path.join(b.jobDir, "build", "out"), { recursive: true })).map(String);
      assert.ok(!copied.some((f) => f.includes("host-secret")), `copied: ${copied.join(", ")}`);
      // What the build really made, in the directories it moved, is still collected.
      assert.ok(
        copied.includes(path.join("RPMS", "noarch.real", "kiln-rpms-swap-1.0-1.noarch.rpm")),
        copied.join(", ")
      );
    } finally {
      await rm(leak, { recursive: true, force: true });
    }
  });

  it("should stop a build that fills the disk at the disk limit, without filling the host", async () => {
    const diskBytes = 32 * MiB;
    const b = await build("fill-disk.spec", { limits: { diskBytes } });
    const f = failed(b);
    assert.match(f.reason, new RegExp(`disk limit.*${diskBytes} bytes`));
    assert.ok((f.stats.diskBytes ?? 0) > diskBytes / 2, `diskBytes ${f.stats.diskBytes}`);
    assert.ok((await duBytes(b.jobDir)) < diskBytes / 4, "the job directory grew on the host");
    await assertStillBuilds();
  });

  it("should kill a build whose log exceeds logBytes, delivering no more than that", async () => {
    const logBytes = 2 * MiB;
    let delivered = 0;
    const rssBefore = process.memoryUsage().rss;
    const b = await build("log-flood.spec", {
      limits: { logBytes },
      keepOutput: false,
      onLog: (c) => (delivered += c.length),
    });
    const f = failed(b);
    assert.equal(f.reason, `killed: log exceeded ${logBytes} bytes`);
    assert.equal(delivered, logBytes);
    assert.equal(f.stats.logBytes, logBytes);
    assert.ok(process.memoryUsage().rss - rssBefore < 200 * MiB, "the test process grew with the log");
    await assertStillBuilds();
  });

  it("should kill a build that prints nothing for idleLogMs", async () => {
    const marker = String(4_000_000 + (process.pid % 1_000_000));
    const b = await build("sleep-forever.spec", { limits: { idleLogMs: 2500 }, defines: { kiln_marker: marker } });
    const f = failed(b);
    assert.equal(f.reason, "killed: no output for 2.5 s");
    assert.match(b.output, /KILN-SLEEPING/);
    assert.deepEqual(await processesWith(marker), []);
  });

  it("should kill a build that outlasts wallMs even though it keeps printing", async () => {
    const b = await build("tick-forever.spec", { limits: { wallMs: 2500, idleLogMs: 30_000 } });
    const f = failed(b);
    assert.equal(f.reason, "killed: wall time 2.5 s exceeded");
    assert.match(b.output, /tick/);
    await assertStillBuilds();
  });

  it("should kill a build that ignores SIGTERM on abort, leaving no process behind", async () => {
    const marker = String(7_000_000 + (process.pid % 1_000_000));
    const ready = new Latch();
    const abort = new AbortController();
    let seen = "";
    const running = build("ignore-term.spec", {
      defines: { kiln_marker: marker },
      signal: abort.signal,
      onLog: (c) => {
        seen += c.toString("utf8");
        if (seen.includes("KILN-READY")) ready.countDown();
      },
    });
    await ready.wait(30_000, "build started");
    // KILN-READY is printed just before the marked sleep starts.
    const marked = await check(
      async () => {
        const found = await processesRunning(`sleep ${marker}2`);
        return found.length === 1 ? found : undefined;
      },
      { timeoutMs: 10_000, name: "marked process running" }
    );
    // It runs as an unprivileged host uid, not as root mapped into a namespace.
    const status = await readFile(`/proc/${marked[0]!.split(":")[0]}/status`, "utf8");
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    assert.ok(uids && uids[1] !== "0" && uids[2] !== "0", `sandbox uid: ${uids?.[0]}`);
    abort.abort();
    const b = await running;
    const f = failed(b);
    assert.equal(f.reason, "killed: aborted");
    assert.deepEqual(await processesWith(marker), []);
    await assertStillBuilds();
  });

  it("should SIGKILL a whole tree that ignores SIGTERM once the grace period is over", async () => {
    const marker = String(6_000_000 + (process.pid % 1_000_000));
    const ready = new Latch();
    const abort = new AbortController();
    const running = runSandboxed({
      dir: path.join(root, "ignore-term"),
      command: ["/bin/sh", "-c", `trap '' TERM; sleep ${marker}1 & echo ready; sleep ${marker}2; wait`],
      limits: TEST_LIMITS,
      onOutput: (c) => {
        if (c.toString("utf8").includes("ready")) ready.countDown();
      },
      signal: abort.signal,
      graceMs: 500,
      log,
    });
    await ready.wait(30_000, "command started");
    abort.abort();
    const r = await running;
    assert.deepEqual(
      {
        type: r.type,
        reason: r.type === "sandbox.killed" && r.reason,
        signal: r.type === "sandbox.killed" && r.signal,
      },
      { type: "sandbox.killed", reason: "aborted", signal: "SIGKILL" }
    );
    assert.deepEqual(await processesWith(marker), []);
  });

  it("should kill a build that allocates more than memoryBytes", async () => {
    const memoryBytes = 128 * MiB;
    const b = await build("memory-hog.spec", { limits: { memoryBytes, diskBytes: 16 * MiB } });
    const f = failed(b);
    assert.equal(f.reason, `killed: memory limit (${memoryBytes} bytes)`);
    assert.ok((f.stats.peakMemoryBytes ?? 0) > memoryBytes / 2, `peak ${f.stats.peakMemoryBytes}`);
    await assertStillBuilds();
  });

  it("should take the whole sandbox down when the worker process dies, and clean its cgroups later", async () => {
    const marker = String(5_000_000 + (process.pid % 1_000_000));
    const runner = execa(
      "node",
      ["--import", "tsx", path.join(FIXTURES, "orphan-runner.ts"), path.join(root, "orphan"), marker],
      {
        reject: false,
      }
    );
    let runnerDone = false;
    void runner.then(() => (runnerDone = true));
    await check(
      async () => {
        if (runnerDone) throw new Error(`runner exited early: ${(await runner).stderr}`);
        return (await processesRunning(`sleep ${marker}2`)).length === 1;
      },
      { timeoutMs: 30_000, name: "sandboxed sleep started" }
    );
    runner.kill("SIGKILL");
    await runner;
    await check(async () => (await processesWith(marker)).length === 0, { timeoutMs: 5_000, name: "orphans gone" });
    const removed = await removeStaleSandboxCgroups(log);
    assert.ok(removed.length > 0, "the dead worker's cgroups should have been found");
    assert.ok(
      removed.some((d) => d.includes(`kiln-sandbox-${runner.pid}-`)),
      removed.join(" ")
    );
  });

  it("should build in the wrapper started ahead, then start the next one", async () => {
    const [first] = wrappers.readyPids;
    assert.ok(first !== undefined && processAlive(first));
    succeeded(await build("trivial.spec"));
    // Only a run takes a wrapper before it is a minute old: this build ran in it.
    assert.ok(!processAlive(first), "the wrapper started ahead is still waiting");
    await check(() => wrappers.readyPids.length === 1 && wrappers.readyPids[0] !== first, { name: "the next wrapper" });
  });

  it("should keep `size` wrappers ready, replace those that waited longer than maxIdleMs, and stop them on close", async () => {
    const pool = new WrapperPool({ log, maxIdleMs: 1000, size: 2 });
    try {
      await check(() => pool.readyPids.length === 2, { name: "two wrappers started ahead" });
      const first = pool.readyPids;
      await check(() => pool.readyPids.length === 2 && !pool.readyPids.some((p) => first.includes(p)), {
        name: "the stale wrappers replaced",
        timeoutMs: 10_000,
      });
      await check(() => !first.some(processAlive), { name: "the stale wrappers stopped" });
      const last = pool.readyPids;
      // Each joins its cgroups as soon as its shell runs, before any job comes.
      for (const pid of last) {
        await check(async () => /kiln-sandbox-[0-9a-f-]+/.test(await readFile(`/proc/${pid}/cgroup`, "utf8")), {
          name: `wrapper ${pid} in its cgroups`,
        });
      }
      await pool.close();
      assert.deepEqual(pool.readyPids, []);
      assert.ok(!last.some(processAlive), "close() left a wrapper running");
    } finally {
      await pool.close();
    }
  });

  it("should refuse a run directory the wrapper could not be told (a newline in it), starting nothing", async () => {
    const dir = path.join(root, "bad\nname");
    await assert.rejects(
      runSandboxed({ dir, command: ["true"], limits: TEST_LIMITS, onOutput: () => undefined, log }),
      /sandbox dir must not contain a newline/
    );
    await assert.rejects(stat(dir), /ENOENT/);
  });

  it("should run a plain command with runSandboxed and collect only regular files", async () => {
    const dir = path.join(root, "generic");
    let out = "";
    const r = await runSandboxed({
      dir,
      command: [
        "/bin/sh",
        "-c",
        "mkdir -p res/sub && echo data > res/a.txt && echo deep > res/sub/b.txt && ln -s /etc/passwd res/link.txt && " +
          "mkfifo res/fifo.txt && id -un && pwd && echo $PATH && echo core=$(ulimit -c)",
      ],
      collect: { dir: ".", paths: ["res"], maxDepth: 2, name: "*.txt" },
      limits: TEST_LIMITS,
      onOutput: (c) => (out += c.toString("utf8")),
      log,
    });
    assert.equal(r.type, "sandbox.exited", JSON.stringify(r));
    assert.equal(r.type === "sandbox.exited" && r.code, 0);
    assert.match(out, /^abuild\n\/home\/abuild\n/);
    assert.match(out, /\ncore=0\n$/, "no core dumps");
    const files = r.type === "sandbox.exited" ? r.files.map((f) => path.relative(path.join(dir, "out"), f)) : [];
    assert.deepEqual(files, ["res/a.txt", "res/sub/b.txt"]);
    assert.equal(await readFile(path.join(dir, "out", "res", "a.txt"), "utf8"), "data\n");
  });

  // Without network the prepared /etc has the links; with network bwrap makes them for the run.
  for (const network of [false, true]) {
    it(`should run programs the host reaches through /etc/alternatives (awk on Debian)${network ? ", with network" : ""}`, async () => {
      let out = "";
      const r = await runSandboxed({
        dir: path.join(root, `alternatives-${network}`),
        command: ["/bin/sh", "-c", "echo 'first second' | awk '{ print $2 }'"],
        limits: TEST_LIMITS,
        network,
        onOutput: (c) => (out += c.toString("utf8")),
        log,
      });
      assert.equal(r.type === "sandbox.exited" && r.code, 0, out);
      assert.equal(out, "second\n");
    });
  }
});
