import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { check } from "../helpers/check.ts";
import { startStack, trivialSpec, type Stack } from "../helpers/worker-stack.ts";

// Hostile specs through a real worker: each build fails with a clear reason in its log, the host
// is untouched, and the same worker builds the next package normally. (The sandbox's own tests
// cover the mechanisms; these cover the worker around them.)

const MiB = 1024 * 1024;

/** Processes anywhere on the host whose command line contains `marker`. */
function processesWith(marker: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let cmd = "";
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
    } catch {
      continue;
    }
    if (cmd.replace(/\0/g, " ").includes(marker)) found.push(`${e}: ${cmd.replace(/\0/g, " ")}`);
  }
  return found;
}

/** A spec whose %build is `script`, failing or not as the script decides. */
const hostile = (name: string, script: string): string =>
  [
    `Name: ${name}`,
    "Version: 1.0",
    "Release: 1",
    "Summary: hostile",
    "License: MIT",
    "BuildArch: noarch",
    "%description",
    "hostile",
    "%build",
    script,
    "%files",
    "",
  ].join("\n");

describe("worker/ hostile specs", function () {
  this.timeout(120_000);
  let s: Stack;
  let tmp: string;
  let cacheDir: string;
  let okRuns = 0;
  const marker = `${8_000_000 + (process.pid % 1_000_000)}`;

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-hostile-"));
    cacheDir = path.join(tmp, "cache");
    mkdirSync(cacheDir);
    s = await startStack({
      dispatcher: { heartbeatMs: 500, downAfterMs: 5000 },
      workers: [
        {
          workerId: "guard",
          cacheDir,
          limits: {
            wallMs: 60_000,
            idleLogMs: 30_000,
            logBytes: MiB,
            memoryBytes: 256 * MiB,
            diskBytes: 64 * MiB,
            pids: 128,
          },
        },
      ],
    });
    // Secrets a build must not see: in the worker's cache and kiln's data directory.
    writeFileSync(path.join(cacheDir, "secret.txt"), "KILN-SECRET\n");
    writeFileSync(path.join(s.dataDir, "secret.txt"), "KILN-SECRET\n");
    await s.project("evil", { prjconf: "BuildFlags: logidlelimit:3\n" });
  });

  after(async () => {
    await s?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Builds a hostile package; returns its log after it ended as failed. */
  const failing = async (name: string, script: string): Promise<string> => {
    await s.commit("evil", name, { [`${name}.spec`]: hostile(name, script) });
    const r = await s.waitCode("evil", name, ["failed", "succeeded"], 90_000);
    const buildLog = await s.buildLog("evil", name);
    assert.equal(r.code, "failed", buildLog.slice(-3000));
    assert.equal((await s.stored("evil", name))!.workerId, "guard");
    return buildLog;
  };

  /** The same worker still builds a normal package. */
  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    okRuns++;
    await s.commit("evil", "ok", { "ok.spec": trivialSpec("ok", { content: String(okRuns) }) });
    await check(
      async () => {
        const st = await s.stored("evil", "ok");
        const r = await s.result("evil", "ok");
        return st && r?.code === "succeeded" && st.release.startsWith(`${okRuns}.`) ? st : undefined;
      },
      { timeoutMs: 60_000, name: `normal build #${okRuns} after a hostile one` }
    );
  });

  it("should not let a build connect to a server on the host's loopback", async () => {
    let connections = 0;
    const server: Server = createServer((c) => {
      connections++;
      c.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const buildLog = await failing(
        "net",
        `if bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}' 2>/dev/null; then echo KILN-NET-CONNECTED; else echo KILN-NET-BLOCKED; fi; exit 1`
      );
      assert.match(buildLog, /^KILN-NET-BLOCKED$/m);
      assert.doesNotMatch(buildLog, /^KILN-NET-CONNECTED$/m);
      assert.match(buildLog, /build failed: rpmbuild exited with 1/);
      assert.equal(connections, 0);
    } finally {
      server.close();
    }
  });

  it("should not let a build read /root, the worker's cache or kiln's data directory", async () => {
    const rootSecret = `/root/kiln-hostile-${process.pid}`;
    writeFileSync(rootSecret, "KILN-SECRET\n");
    try {
      const probe = (what: string, p: string): string =>
        `if cat ${p} 2>/dev/null | grep -q KILN-SECRET; then echo KILN-LEAK-${what}; else echo KILN-DENIED-${what}; fi`;
      const buildLog = await failing(
        "peek",
        [
          probe("root", rootSecret),
          probe("cache", path.join(cacheDir, "secret.txt")),
          probe("data", path.join(s.dataDir, "secret.txt")),
          `ls -A /root 2>/dev/null | grep -q . && echo KILN-LEAK-rootdir || echo KILN-DENIED-rootdir`,
          "exit 1",
        ].join("\n")
      );
      for (const what of ["root", "cache", "data", "rootdir"])
        assert.match(buildLog, new RegExp(`^KILN-DENIED-${what}$`, "m"));
      assert.doesNotMatch(buildLog, /KILN-LEAK-\w+$/m);
    } finally {
      rmSync(rootSecret, { force: true });
    }
  });

  it("should keep writes outside the build root from reaching the host", async () => {
    const name = `kiln-evil-${process.pid}`;
    const hostDir = path.join(tmp, "host-dir");
    mkdirSync(hostDir);
    const targets = [`/usr/${name}`, `/etc/${name}`, `/${name}`, path.join(hostDir, name), path.join(cacheDir, name)];
    const buildLog = await failing(
      "scribble",
      [
        ...targets.map((t) => `(echo evil > ${t}) 2>/dev/null && echo KILN-WROTE ${t} || echo KILN-DENIED ${t}`),
        "exit 1",
      ].join("\n")
    );
    for (const t of targets) {
      assert.match(buildLog, new RegExp(`^KILN-DENIED ${t}$`, "m"));
      assert.equal(existsSync(t), false, `${t} appeared on the host`);
    }
  });

  it("should stop a fork bomb at the process limit", async () => {
    const buildLog = await failing("bomb", `sh -c 'bomb() { bomb | bomb & }; bomb; sleep 120' bomb${marker}`);
    assert.match(buildLog, /build failed: killed: process limit \(128\)/);
    await check(() => processesWith(`bomb${marker}`).length === 0, { name: "no survivors" });
  });

  it("should stop a build that fills the disk at the disk limit", async () => {
    const buildLog = await failing(
      "filler",
      "dd if=/dev/zero of=fill bs=1M count=100000 2>&1 || :\ndd if=/dev/zero of=/tmp/fill bs=1M count=100000 2>&1 || :\nsleep 60"
    );
    assert.match(buildLog, new RegExp(`build failed: .*disk limit.*${64 * MiB} bytes`));
  });

  it("should cut a 10 GB log at the log limit and keep only that much", async () => {
    const buildLog = await failing("flood", "yes 'kiln log flood kiln log flood kiln log flood'");
    assert.match(buildLog, /build failed: killed: log exceeded 1048576 bytes/);
    const size = Buffer.byteLength(buildLog);
    assert.ok(size > MiB && size < MiB + 64 * 1024, `stored log has ${size} bytes`);
  });

  it("should kill a build that sleeps forever at the project's idle-log limit", async () => {
    const buildLog = await failing("sleeper", `echo KILN-SLEEPING; sleep ${marker}1`);
    assert.match(buildLog, /build failed: killed: no output for 3 s/);
    await check(() => processesWith(`sleep ${marker}1`).length === 0, { name: "sleep gone" });
  });

  it("should kill a build that ignores SIGTERM, its whole tree", async () => {
    const buildLog = await failing(
      "stubborn",
      `trap '' TERM\nsleep ${marker}2 &\necho KILN-READY\nsleep ${marker}3\nwait`
    );
    assert.match(buildLog, /^KILN-READY$/m);
    assert.match(buildLog, /build failed: killed: no output for 3 s/);
    await check(() => processesWith(`${marker}2`).length + processesWith(`${marker}3`).length === 0, {
      name: "the whole tree gone",
    });
  });
});
