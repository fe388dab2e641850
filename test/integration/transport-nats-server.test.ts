import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { connect } from "nats";
import { ErrorCode, NatsServerProcess, natsServerBinary, toConf } from "../../transport/index.ts";
import { startCluster, startServer, stopAll } from "../helpers/nats-server.ts";

describe("transport/nats-server", () => {
  it("should find the nats-server binary", () => {
    assert.match(natsServerBinary(), /\/nats-server$/);
  });

  it("should start a server from a config with nested blocks and arrays of blocks", async () => {
    const conf = {
      jetstream: false,
      max_payload: 2 * 1024 * 1024,
      authorization: {
        users: [
          { user: "alice", password: 's3cret "quoted"' },
          { user: "bob", password: "other" },
        ],
      },
    };
    assert.match(toConf(conf), /users: \[\{/);
    const server = await startServer(conf);
    try {
      assert.ok(server.ports.nats > 0 && server.ports.monitoring! > 0);
      const nc = await connect({ servers: server.url, user: "alice", pass: 's3cret "quoted"' });
      assert.equal(nc.info?.max_payload, 2 * 1024 * 1024);
      await nc.close();
      await assert.rejects(connect({ servers: server.url, user: "alice", pass: "wrong", reconnect: false }));
      const varz = await server.monitor<{ max_payload: number }>("varz");
      assert.equal(varz.max_payload, 2 * 1024 * 1024);
    } finally {
      await stopAll([server]);
    }
    assert.ok(!existsSync(server.dir), "stopAll removes the server's directory");
  });

  it("should remove its ports file when stopped or killed", async () => {
    const a = await startServer({ jetstream: false });
    const b = await startServer({ jetstream: false });
    const portsFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith(".ports"));
    assert.equal(portsFiles(a.dir).length, 1);
    await a.stop();
    await b.kill();
    assert.deepEqual(portsFiles(a.dir), []);
    assert.deepEqual(portsFiles(b.dir), []);
    assert.notEqual(await b.exited(), 0);
    await stopAll([a, b]);
  });

  it("should fail with a readable error on a config the server refuses", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-nats-bad-"));
    try {
      await assert.rejects(NatsServerProcess.start({ port: "not-a-port" }, { dir }), (err: unknown) => {
        assert.equal((err as { code?: string }).code, ErrorCode.Unavailable);
        assert.match((err as Error).message, /nats-server did not start \(config /);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("should form a 3-node cluster in which every node routes to the others", async () => {
    const servers = await startCluster(3);
    try {
      for (const s of servers) {
        const routez = await s.monitor<{ num_routes: number }>("routez");
        assert.ok(routez.num_routes >= 2);
      }
      assert.equal(new Set(servers.map((s) => s.ports.nats)).size, 3);
    } finally {
      await stopAll(servers);
    }
  });
});
