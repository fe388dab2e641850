/**
 * The nats-server harness: real servers on random loopback ports, single or clustered.
 *
 * - `startServer(conf)` — one server (JetStream on unless `jetstream: false`).
 * - `startCluster(n)` — a plain cluster: a seed and n-1 members routing to it.
 * - `startJetStreamCluster(n)` — nats-server 2.9 refuses a clustered JetStream server without
 *   routes, so: start a plain cluster to learn free ports, stop it, then restart every node with
 *   JetStream, a server name, its fixed cluster port and a full route mesh, and wait until all
 *   nodes agree on a meta leader.
 * - `stopAll(servers)` — stops them and removes their directories.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { NatsServerProcess, type ConfObject } from "../../transport/index.ts";
import { check } from "./check.ts";

export type TestServer = NatsServerProcess;

function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startServer(conf: ConfObject & { jetstream?: unknown } = {}): Promise<TestServer> {
  const dir = tempDir("kiln-nats-");
  const full: ConfObject = { ...conf };
  if (conf.jetstream === undefined) full.jetstream = { store_dir: path.join(dir, "js") };
  if (conf.jetstream === false) delete full.jetstream;
  return NatsServerProcess.start(full, { dir });
}

export async function startCluster(n: number, conf: ConfObject = {}): Promise<TestServer[]> {
  const name = `C_${randomUUID().slice(0, 8)}`;
  const seed = await startServer({ ...conf, jetstream: false, cluster: { name, listen: "127.0.0.1:-1" } });
  const servers = [seed];
  for (let i = 1; i < n; i++) {
    servers.push(
      await startServer({
        ...conf,
        jetstream: false,
        cluster: { name, listen: "127.0.0.1:-1", routes: [`nats://127.0.0.1:${seed.ports.cluster}`] },
      })
    );
  }
  await clusterFormed(servers);
  return servers;
}

export async function startJetStreamCluster(n: number): Promise<TestServer[]> {
  const probe = await startCluster(n);
  const ports = probe.map((s) => ({ nats: s.ports.nats, cluster: s.ports.cluster!, monitoring: s.ports.monitoring! }));
  await stopAll(probe);
  const name = `JSC_${randomUUID().slice(0, 8)}`;
  const servers = await Promise.all(
    ports.map((p, i) => {
      const dir = tempDir("kiln-nats-js-");
      return NatsServerProcess.start(
        {
          port: p.nats,
          http: `127.0.0.1:${p.monitoring}`,
          server_name: `n${i}`,
          jetstream: { store_dir: path.join(dir, "js") },
          cluster: {
            name,
            listen: `127.0.0.1:${p.cluster}`,
            routes: ports.filter((_, j) => j !== i).map((q) => `nats://127.0.0.1:${q.cluster}`),
          },
        },
        { dir }
      );
    })
  );
  await clusterFormed(servers);
  await check(
    async () => {
      const leaders = await Promise.all(
        servers.map(async (s) => (await s.monitor<{ meta_cluster?: { leader?: string } }>("jsz")).meta_cluster?.leader)
      );
      return leaders.every((l) => l && l === leaders[0]);
    },
    { timeoutMs: 20_000, intervalMs: 250, name: "jetstream meta leader" }
  );
  return servers;
}

/** Waits until every server sees a route to every other one. */
export async function clusterFormed(servers: TestServer[]): Promise<void> {
  await check(
    async () => {
      const counts = await Promise.all(
        servers.map(async (s) => (await s.monitor<{ num_routes: number }>("routez")).num_routes)
      );
      return counts.every((c) => c >= servers.length - 1);
    },
    { timeoutMs: 15_000, intervalMs: 50, name: "cluster formation" }
  );
}

export async function stopAll(servers: TestServer[]): Promise<void> {
  await Promise.all(servers.map((s) => s.stop(2000)));
  for (const s of servers) rmSync(s.dir, { recursive: true, force: true });
}
