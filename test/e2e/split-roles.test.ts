import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { check } from "../helpers/check.ts";
import { KILN_BIN, REPO_ROOT, kiln, kilnOk, removeDir, type KilnEnv } from "../helpers/kiln.ts";
import { startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";

const examples = path.join(REPO_ROOT, "ops", "examples");

/** One `kiln serve` or `kiln worker` process with a data directory of its own. */
interface Host {
  name: string;
  dataDir: string;
  proc: ResultPromise;
  log(): string;
  exited(): boolean;
}

interface Ping {
  role: string;
  nodeId: string;
  pid: number;
}

interface WorkerLine {
  workerId: string;
  state: string;
  hostArch: string;
  buildArchs: string[];
  jobs: number;
  registration: {
    hostLabels: string[];
    memoryMb: number;
    diskMb: number;
    processors: number;
    sandbox: string;
    cpuFlags: string[];
    linux: { version: string };
  };
}

describe("e2e/roles in separate processes: kiln serve and kiln worker on one nats-server", function () {
  this.timeout(300_000);
  let server: TestServer;
  let client: KilnEnv;
  const hosts: Host[] = [];
  const work = mkdtempSync(path.join(os.tmpdir(), "kiln-e2e-split-"));

  /** Starts `kiln --data <own dir> --nats <url> ARGS…` in the background. */
  const startHost = (name: string, args: string[]): Host => {
    const dataDir = path.join(work, name);
    const proc = execa("node", [KILN_BIN, "--data", dataDir, "--nats", server.url, ...args], {
      env: { KILN_LOG_LEVEL: "info", HOME: dataDir },
      extendEnv: true,
      reject: false,
      buffer: false,
      stdin: "ignore",
    });
    let log = "";
    let exited = false;
    proc.stderr?.on("data", (d: Buffer) => {
      log = (log + d.toString()).slice(-2_000_000);
    });
    proc.stdout?.on("data", () => undefined);
    void proc.then(() => (exited = true));
    const host = { name, dataDir, proc, log: () => log, exited: () => exited };
    hosts.push(host);
    return host;
  };
  /** Stops a host with `signal` and returns its exit code. */
  const stopHost = async (host: Host, signal: NodeJS.Signals): Promise<number> => {
    if (!host.exited()) host.proc.kill(signal);
    const r = await host.proc;
    return r.exitCode ?? -1;
  };
  const status = async (): Promise<Ping[]> => {
    const r = await kiln(client, ["--json", "status", "--wait", "300"]);
    return r.exitCode === 0 ? (JSON.parse(r.stdout) as Ping[]) : [];
  };
  const alive = (h: Host): void => {
    if (h.exited()) throw new Error(`${h.name} exited early:\n${h.log().slice(-4000)}`);
  };

  let roles: Host;
  let scheduler: Host;
  let worker: Host;

  before(async () => {
    server = await startServer();
    client = { dataDir: path.join(work, "client"), natsUrl: server.url };
  });

  after(async () => {
    for (const h of hosts) await stopHost(h, "SIGKILL");
    await stopAll(server ? [server] : []);
    removeDir(work);
  });

  /** Waits until `want` roles answer status; returns the pings. */
  const answering = (want: string[], what: string): Promise<Ping[]> =>
    check(
      async () => {
        for (const h of hosts) alive(h);
        const p = await status();
        const names = p.map((x) => x.role);
        return want.every((r) => names.includes(r)) ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, name: what }
    );

  it("should run the roles and a worker as separate processes; a scheduler elsewhere waits to be registered", async () => {
    roles = startHost("roles", ["serve", "--roles", "source,service,repo,publisher,dispatcher"]);
    scheduler = startHost("sched", ["serve", "--roles", "scheduler:x86_64"]);
    worker = startHost("worker", [
      "worker",
      "--id",
      "split:1",
      "--arch",
      "x86_64",
      "--hostlabel",
      "fast-disk,split",
      "--memory",
      "3000",
      "--disk",
      "7000",
      "--jobs",
      "1",
    ]);
    const pings = await answering(["source", "service", "repo", "publisher", "dispatcher", "worker"], "roles answer");
    const by = (role: string): Ping => pings.find((p) => p.role === role)!;
    // Separate processes, separate nodes: the roles of one `kiln serve` share a node id and a pid.
    assert.equal(by("source").nodeId, by("dispatcher").nodeId);
    assert.equal(by("source").pid, by("repo").pid);
    assert.notEqual(by("worker").nodeId, by("source").nodeId);
    assert.notEqual(by("worker").pid, by("source").pid);
    // A `kiln serve` without the source role waits until its identity is registered, and says how.
    await check(() => /kiln user add kiln-roles-\S+ --pubkey U[A-Z0-9]+ --service/.test(scheduler.log()), {
      name: "registration command printed",
    });
    alive(scheduler);
    assert.ok(!pings.some((p) => p.role === "scheduler:x86_64"));
  });

  it("should list the worker with the capabilities its flags announce", async () => {
    const ws = JSON.parse(await kilnOk(client, ["--json", "workers"])) as WorkerLine[];
    const w = ws.find((x) => x.workerId === "split:1");
    assert.ok(w, JSON.stringify(ws));
    assert.equal(w.state, "idle");
    assert.equal(w.hostArch, "x86_64");
    assert.deepEqual(w.buildArchs, ["x86_64"]);
    assert.equal(w.jobs, 1);
    assert.deepEqual(w.registration.hostLabels, ["fast-disk", "split"]);
    assert.equal(w.registration.memoryMb, 3000);
    assert.equal(w.registration.diskMb, 7000);
    assert.equal(w.registration.sandbox, "bwrap");
    assert.equal(w.registration.processors, os.cpus().length);
    assert.equal(w.registration.linux.version, os.release());
    // cpuinfo's flags of this host, as OBS's worker reports them.
    assert.ok(w.registration.cpuFlags.includes("sse2"), w.registration.cpuFlags.join(" "));
  });

  it("should make the first registered key the admin, and build a package across the processes", async () => {
    const idFile = path.join(work, "admin.identity");
    const pub = (await kilnOk(client, ["identity", "new", "--out", idFile])).trim();
    const admin = { ...client };
    const as = ["--identity", idFile];
    await kilnOk(admin, [...as, "user", "add", "admin", "--pubkey", pub, "--admin"]);
    // The scheduler's node registers as a service user, as its start-up message says.
    const m = /kiln user add (kiln-roles-\S+) --pubkey (U[A-Z0-9]+) --service/.exec(scheduler.log())!;
    await kilnOk(admin, [...as, "user", "add", m[1]!, "--pubkey", m[2]!, "--service"]);
    const pings = await answering(["scheduler:x86_64"], "scheduler starts once registered");
    const nodeOf = (role: string): string => pings.find((p) => p.role === role)!.nodeId;
    assert.notEqual(nodeOf("scheduler:x86_64"), nodeOf("source"));
    assert.notEqual(nodeOf("scheduler:x86_64"), nodeOf("worker"));
    await kilnOk(admin, [...as, "meta", "prj", "demo", "-F", path.join(examples, "demo-meta.xml")]);
    await kilnOk(admin, [...as, "commit", "demo", "hello", path.join(examples, "hello"), "-m", "split"]);
    const r = await kilnOk(admin, [...as, "--json", "results", "demo", "-w", "--timeout", "200"], {
      timeoutMs: 210_000,
    });
    const lines = JSON.parse(r) as { package: string; code: string; details: string }[];
    assert.deepEqual(
      lines.map((l) => [l.package, l.code]),
      [["hello", "succeeded"]],
      JSON.stringify(lines)
    );
    const hist = JSON.parse(
      await kilnOk(admin, [...as, "--json", "jobhistory", "demo", "standard", "x86_64", "hello"])
    ) as { workerId: string }[];
    assert.equal(hist.at(-1)?.workerId, "split:1");
  });

  it("should stop every process cleanly on SIGINT and SIGTERM, and start again on the same data", async () => {
    assert.equal(await stopHost(worker, "SIGTERM"), 0, worker.log().slice(-3000));
    assert.equal(await stopHost(scheduler, "SIGINT"), 0, scheduler.log().slice(-3000));
    assert.equal(await stopHost(roles, "SIGINT"), 0, roles.log().slice(-3000));
    for (const h of [worker, scheduler, roles]) assert.doesNotMatch(h.log(), /did not stop cleanly/);
    // Same data directories: the stores were closed, the leases come back, the results are there.
    roles = startHost("roles", ["serve", "--roles", "source,service,repo,publisher,dispatcher"]);
    scheduler = startHost("sched", ["serve", "--roles", "scheduler:x86_64"]);
    const lines = await check(
      async () => {
        alive(roles);
        alive(scheduler);
        const r = await kiln(client, ["--json", "results", "demo"]);
        if (r.exitCode !== 0) return undefined;
        const l = JSON.parse(r.stdout) as { package: string; code: string }[];
        return l.length ? l : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, name: "results after restart" }
    );
    assert.deepEqual(
      lines.map((l) => [l.package, l.code]),
      [["hello", "succeeded"]]
    );
    const bins = JSON.parse(await kilnOk(client, ["--json", "binaries", "demo", "standard", "x86_64", "hello"])) as {
      filename: string;
    }[];
    assert.deepEqual(bins.map((b) => b.filename).sort(), ["hello-1.0-1.1.noarch.rpm", "hello-1.0-1.1.src.rpm"]);
  });
});
