/**
 * The real source role in-process on a real nats-server, for integration tests: clients signed
 * as any identity, users registered through the role's own requests, and a digest of everything
 * the role stores (LMDB key/values and the blob directory) to prove a refused request changed
 * nothing.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { open, type RootDatabase } from "lmdb";
import { start as startActorSystem, stop as stopActorSystem } from "nact";
import type { NatsConnection } from "nats";
import pino from "pino";
import {
  startSourceRole,
  type RoleContext,
  type RunningRole,
  type SourceApi,
  type Revision,
  type SourceRoleOptions,
} from "../../actors/index.ts";
import {
  Identity,
  Role,
  RoleClient,
  RpcClient,
  backoff,
  connectNats,
  subjects,
  uploadStream,
  type RequestSigner,
} from "../../transport/index.ts";
import { startServer, stopAll, type TestServer } from "./nats-server.ts";

export const log = pino({ level: process.env.KILN_TEST_LOG ?? "silent" });

export interface SourceHarness {
  server: TestServer;
  dataDir: string;
  /** The role's own connection and context. */
  ctx: RoleContext;
  role: RunningRole;
  /** A client connection (another "process"). */
  nc: NatsConnection;
  admin: Identity;
  /** The identity kiln's roles sign with (a service user). */
  service: Identity;
  /** A source client signed by `signer` (anonymous when undefined). */
  client(signer?: RequestSigner): RoleClient<SourceApi>;
  /** Registers a new user (as admin) and returns their identity. */
  addUser(name: string, opts?: { admin?: boolean; service?: boolean }): Promise<Identity>;
  /** A digest of everything the role stores except the replay cache (nonces). */
  digest(): Promise<StoreDigest>;
  /** Restarts the role on the same data (e.g. to check what survives). */
  restart(opts?: SourceRoleOptions): Promise<void>;
  stop(): Promise<void>;
}

export interface StoreDigest {
  /** sha256 over the sorted key/value dump. */
  db: string;
  /** Number of key/values in the dump. */
  entries: number;
  /** `path size sha256` of every file under the blob directory. */
  files: string[];
}

function walk(dir: string, base = dir): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out = out.concat([`${path.relative(base, p)}/`], walk(p, base));
    else {
      const h = createHash("sha256").update(readFileSync(p)).digest("hex");
      out.push(`${path.relative(base, p)} ${st.size} ${h}`);
    }
  }
  return out;
}

export async function startSourceHarness(opts: SourceRoleOptions = {}): Promise<SourceHarness> {
  const server = await startServer();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kiln-source-"));
  const admin = Identity.create();
  const service = Identity.create();
  let system = startActorSystem();
  const roleNc = await connectNats({ servers: server.url, name: "source-role", log });
  const ctx: RoleContext = {
    nc: roleNc,
    rpc: new RpcClient(roleNc, { signer: service }),
    system,
    log,
    dataDir,
    nodeId: "test-node",
    replicas: 1,
  };
  const start = (o: SourceRoleOptions): Promise<RunningRole> =>
    startSourceRole(ctx, { ...o, serviceUsers: [{ name: "kiln-roles", pubkey: service.publicKey }] });
  let role = await start(opts);
  const nc = await connectNats({ servers: server.url, name: "source-client", log });
  // Retries only for "no responders" while the role (re)starts; never repeat a refused request.
  const rpc = new RpcClient(nc, { backoff: backoff([50, 100, 200, 400]) });
  const client = (signer?: RequestSigner): RoleClient<SourceApi> =>
    new RoleClient<SourceApi>(rpc.withSigner(signer), (t) => subjects.rpc(Role.Source, t));
  await client(admin).call("user.add", { name: "admin", pubkey: admin.publicKey, admin: true });
  let dump: RootDatabase | undefined;
  const h: SourceHarness = {
    server,
    dataDir,
    ctx,
    get role() {
      return role;
    },
    nc,
    admin,
    service,
    client,
    async addUser(name, o = {}) {
      const id = Identity.create();
      await client(admin).call("user.add", {
        name,
        pubkey: id.publicKey,
        ...(o.admin ? { admin: true } : {}),
        ...(o.service ? { service: true } : {}),
      });
      return id;
    },
    async digest() {
      dump ??= open({ path: path.join(dataDir, "source", "db"), encoding: "msgpack", readOnly: true });
      const lines: string[] = [];
      for (const { key, value } of dump.getRange({})) {
        if (Array.isArray(key) && key[0] === "nonce") continue;
        lines.push(`${JSON.stringify(key)}=${JSON.stringify(value)}`);
      }
      return {
        db: createHash("sha256").update(lines.join("\n")).digest("hex"),
        entries: lines.length,
        files: walk(path.join(dataDir, "source", "blobs")),
      };
    },
    async restart(o = opts) {
      await role.stop();
      stopActorSystem(system);
      system = startActorSystem();
      ctx.system = system;
      role = await start(o);
    },
    async stop() {
      await dump?.close();
      await role.stop();
      stopActorSystem(system);
      await nc.drain().catch(() => undefined);
      await roleNc.drain().catch(() => undefined);
      await stopAll([server]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

/** A project meta with the given repositories and extra XML inside `<project>`. */
export function projectXml(
  name: string,
  opts: { repos?: { name: string; paths?: [string, string][]; archs?: string[] }[]; extra?: string } = {}
): string {
  const repos = (opts.repos ?? [])
    .map(
      (r) =>
        `<repository name="${r.name}">${(r.paths ?? []).map(([p, rr]) => `<path project="${p}" repository="${rr}"/>`).join("")}${(r.archs ?? ["x86_64"]).map((a) => `<arch>${a}</arch>`).join("")}</repository>`
    )
    .join("");
  return `<project name="${name}"><title>${name}</title><description/>${opts.extra ?? ""}${repos}</project>`;
}

export function md5Of(data: Uint8Array | string): string {
  return createHash("md5").update(data).digest("hex");
}

/**
 * osc's commit protocol with in-memory files: send the list, upload what the server lacks,
 * commit again. Returns the revision and what was uploaded.
 */
export async function commitFiles(
  source: RoleClient<SourceApi>,
  project: string,
  pkg: string,
  files: Record<string, string | Uint8Array>,
  comment = ""
): Promise<{ revision: Revision; uploadedFiles: number; uploadedBytes: number }> {
  const bufs = new Map(Object.entries(files).map(([n, d]) => [n, Buffer.from(d)]));
  const entries = [...bufs].map(([name, b]) => ({ name, md5: md5Of(b), size: b.length }));
  let uploadedFiles = 0;
  let uploadedBytes = 0;
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await source.call("package.commit", { project, package: pkg, files: entries, comment });
    if ("revision" in r) return { revision: r.revision, uploadedFiles, uploadedBytes };
    for (const m of r.missing) {
      const b = bufs.get(m.name)!;
      await uploadStream(source, Readable.from([b]), { md5: m.md5, size: m.size });
      uploadedFiles++;
      uploadedBytes += b.length;
    }
  }
  throw new Error("the server kept asking for files");
}
