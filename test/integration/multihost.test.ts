import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import type { WorkerOptions } from "../../actors/index.ts";
import { check } from "../helpers/check.ts";
import { startJetStreamCluster, startServer, stopAll, type TestServer } from "../helpers/nats-server.ts";
import { startStack, trivialSpec, type Stack } from "../helpers/worker-stack.ts";

// Workers as separate processes that reach NATS over a network: in network namespaces of their
// own behind veth pairs, and through another node of a NATS cluster than the service roles use.

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "worker");

interface WorkerProc {
  id: string;
  proc: ResultPromise;
  out(): string;
}

/** Starts the worker fixture, optionally inside a network namespace; resolves once it is ready. */
async function startWorkerProcess(
  natsUrl: string,
  dataDir: string,
  worker: WorkerOptions,
  netns?: string
): Promise<WorkerProc> {
  const cmd = [
    "node",
    "--import",
    "tsx",
    path.join(FIXTURES, "worker-process.ts"),
    JSON.stringify({ natsUrl, dataDir, worker }),
  ];
  const proc = netns
    ? execa("ip", ["netns", "exec", netns, ...cmd], { reject: false, buffer: false })
    : execa(cmd[0]!, cmd.slice(1), { reject: false, buffer: false });
  let out = "";
  let done = false;
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  void proc.finally(() => (done = true));
  await check(
    () => {
      if (done) throw new Error(`worker ${worker.workerId} exited: ${out.slice(-2000)}`);
      return out.includes("READY");
    },
    { timeoutMs: 60_000, name: `worker ${worker.workerId} ready` }
  );
  return { id: worker.workerId, proc, out: () => out };
}

async function stopWorkerProcess(w: WorkerProc): Promise<void> {
  w.proc.kill("SIGTERM");
  const t = setTimeout(() => w.proc.kill("SIGKILL"), 20_000);
  await w.proc.catch(() => undefined);
  clearTimeout(t);
}

interface Connz {
  connections: { name?: string; ip: string }[];
}

describe("multihost/ workers on other hosts", function () {
  this.timeout(180_000);

  describe("in network namespaces behind veth pairs", () => {
    const tag = String(process.pid % 10000);
    const octet = 100 + (process.pid % 150);
    const hosts = ["a", "b"].map((x, i) => ({
      ns: `kiln-t${tag}${x}`,
      hostIf: `kv${tag}${x}0`,
      nsIf: `kv${tag}${x}1`,
      hostAddr: `10.231.${octet}.${i * 4 + 1}`,
      nsAddr: `10.231.${octet}.${i * 4 + 2}`,
    }));
    let server: TestServer;
    let s: Stack;
    const workers: WorkerProc[] = [];
    let tmp: string;

    const ip = (...args: string[]) => execa("ip", args);

    before(async () => {
      tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-multihost-"));
      for (const h of hosts) {
        await ip("netns", "add", h.ns);
        await ip("link", "add", h.hostIf, "type", "veth", "peer", "name", h.nsIf);
        await ip("link", "set", h.nsIf, "netns", h.ns);
        await ip("addr", "add", `${h.hostAddr}/30`, "dev", h.hostIf);
        await ip("link", "set", h.hostIf, "up");
        await ip("netns", "exec", h.ns, "ip", "addr", "add", `${h.nsAddr}/30`, "dev", h.nsIf);
        await ip("netns", "exec", h.ns, "ip", "link", "set", h.nsIf, "up");
        await ip("netns", "exec", h.ns, "ip", "link", "set", "lo", "up");
      }
      // Reachable from the namespaces through their veth peers (and from the roles on loopback).
      server = await startServer({ host: "0.0.0.0" });
      s = await startStack({ natsUrl: server.url, dispatcher: { heartbeatMs: 500, downAfterMs: 5000 } });
      await s.project("far");
    });

    after(async () => {
      for (const w of workers.splice(0)) await stopWorkerProcess(w);
      await s?.stop();
      if (server) await stopAll([server]);
      for (const h of hosts) {
        await execa("ip", ["link", "del", h.hostIf], { reject: false });
        await execa("ip", ["netns", "del", h.ns], { reject: false });
      }
      rmSync(tmp, { recursive: true, force: true });
    });

    it("should build with workers that reach NATS only over their veth address", async () => {
      // Nothing but the veth link exists in a namespace: loopback NATS is not reachable there.
      const probe = await execa("ip", ["netns", "exec", hosts[0]!.ns, "ip", "-4", "route"], { reject: false });
      assert.doesNotMatch(probe.stdout, /default/);
      for (const [i, h] of hosts.entries()) {
        workers.push(
          await startWorkerProcess(
            `nats://${h.hostAddr}:${server.ports.nats}`,
            mkdtempSync(path.join(tmp, `w${i}-`)),
            { workerId: `ns-${i}` },
            h.ns
          )
        );
      }
      const conns = (await server.monitor<Connz>("connz")).connections;
      for (const [i, h] of hosts.entries()) {
        const c = conns.find((x) => x.name === `worker-ns-${i}`);
        assert.equal(c?.ip, h.nsAddr, `worker ns-${i} connects from its namespace`);
      }
      const pkgs = ["p1", "p2", "p3", "p4"];
      for (const p of pkgs) await s.commit("far", p, { [`${p}.spec`]: trivialSpec(p) });
      for (const p of pkgs) await s.waitCode("far", p, ["succeeded"], 120_000);
      const builtBy = new Set<string>();
      for (const p of pkgs) builtBy.add((await s.stored("far", p))!.workerId);
      assert.deepEqual([...builtBy].sort(), ["ns-0", "ns-1"]);
    });
  });

  describe("through another node of a NATS cluster", () => {
    let servers: TestServer[];
    let s: Stack;
    let worker: WorkerProc | undefined;
    let tmp: string;

    before(async () => {
      tmp = mkdtempSync(path.join(os.tmpdir(), "kiln-multihost-"));
      servers = await startJetStreamCluster(3);
      s = await startStack({ natsUrl: servers[0]!.url, dispatcher: { heartbeatMs: 500, downAfterMs: 5000 } });
      await s.project("clustered");
    });

    after(async () => {
      if (worker) await stopWorkerProcess(worker);
      await s?.stop();
      if (servers) await stopAll(servers);
      rmSync(tmp, { recursive: true, force: true });
    });

    it("should build with a worker connected to node 3 while the roles use node 1", async () => {
      worker = await startWorkerProcess(servers[2]!.url, mkdtempSync(path.join(tmp, "w-")), { workerId: "far-node" });
      const onNode3 = (await servers[2]!.monitor<Connz>("connz")).connections.map((c) => c.name);
      assert.ok(onNode3.includes("worker-far-node"), onNode3.join(","));
      const onNode1 = (await servers[0]!.monitor<Connz>("connz")).connections.map((c) => c.name);
      assert.ok(!onNode1.includes("worker-far-node"));
      await s.commit("clustered", "hello", { "hello.spec": trivialSpec("hello") });
      await s.waitCode("clustered", "hello", ["succeeded"], 120_000);
      assert.equal((await s.stored("clustered", "hello"))!.workerId, "far-node");
      const workers = await s.dispatcher.call("worker.list", {});
      assert.equal(workers.find((w) => w.workerId === "far-node")?.state, "idle");
    });
  });
});
