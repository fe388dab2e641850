/**
 * `kiln up`, `kiln serve` and `kiln worker`: processes that host roles.
 *
 * Shutdown order on SIGINT/SIGTERM: stop intake and the roles (workers first, source last),
 * drain the NATS connection, close the stores (each role closes its own), stop the embedded
 * nats-server. A second signal exits at once.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { start as startActorSystem, stop as stopActor } from "nact";
import type { Logger } from "pino";
import {
  hostArch,
  startDispatcherRole,
  startPublisherRole,
  startRepoRole,
  startSchedulerRole,
  startServiceRole,
  startSourceRole,
  startWorker,
  type RoleContext,
  type RunningPublisher,
  type RunningRole,
  type ServiceRoleOptions,
  type SourceApi,
  type SourceLimits,
  type WorkerOptions,
} from "../../actors/index.ts";
import {
  InvalidInputError,
  NatsServerProcess,
  NoRespondersError,
  Role,
  RoleClient,
  RpcClient,
  UnauthenticatedError,
  UnavailableError,
  connectNats,
  subjects,
  type Identity,
} from "../../transport/index.ts";
import { adminIdentityPath } from "../config.ts";
import { bootstrapAdmin, loadOrCreateRoleIdentity, roleUserName } from "./identity.ts";

type Starter = (ctx: RoleContext) => Promise<RunningRole>;

export interface HostOptions {
  natsUrl: string;
  dataDir: string;
  log: Logger;
  /** JetStream replicas for streams kiln creates. */
  replicas?: number;
  /** Called once everything runs (e.g. to print where things are). */
  ready?: (ctx: RoleContext, roles: RunningRole[]) => Promise<void> | void;
  /** Stopped last, after the NATS connection. */
  onStopped?: () => Promise<void>;
  /** The roles' identity: every request they make is signed with it. */
  identity?: Identity;
  /** Runs once connected, before any role starts (e.g. to wait until the identity is registered). */
  beforeStart?: (ctx: RoleContext) => Promise<void>;
}

/** Reads or creates this data directory's node id. */
export function nodeIdOf(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true });
  const f = path.join(dataDir, "node-id");
  if (existsSync(f)) return readFileSync(f, "utf8").trim();
  const id = `${os.hostname().replace(/[^A-Za-z0-9-]/g, "-")}-${randomBytes(3).toString("hex")}`;
  writeFileSync(f, id + "\n");
  return id;
}

/** Connects, starts the roles in order, and runs until a signal. Resolves after shutdown. */
export async function hostRoles(starters: Starter[], opts: HostOptions): Promise<void> {
  const { log } = opts;
  const nodeId = nodeIdOf(opts.dataDir);
  const nc = await connectNats({ servers: opts.natsUrl, name: `kiln-${nodeId}`, log });
  const system = startActorSystem();
  const ctx: RoleContext = {
    nc,
    rpc: new RpcClient(nc, opts.identity ? { signer: opts.identity } : {}),
    system,
    log,
    dataDir: opts.dataDir,
    nodeId,
    replicas: opts.replicas ?? 1,
  };
  const roles: RunningRole[] = [];
  const unclean: string[] = [];
  let stopping: Promise<void> | undefined;
  const shutdown = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      log.info({ why }, "shutting down");
      for (const r of [...roles].reverse()) {
        try {
          await r.stop();
        } catch (err) {
          unclean.push(r.role);
          log.error({ err, role: r.role }, "role did not stop cleanly");
        }
      }
      stopActor(system);
      await nc.drain().catch(() => undefined);
      await opts.onStopped?.();
      log.info({}, "stopped");
    })());
  try {
    await opts.beforeStart?.(ctx);
    for (const s of starters) roles.push(await s(ctx));
  } catch (err) {
    await shutdown("start-up failed");
    throw err;
  }
  await opts.ready?.(ctx, roles);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      void shutdown(sig).then(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    void nc.closed().then(() => {
      if (!stopping) void shutdown("NATS connection closed").then(resolve);
    });
  });
  // Scripts and service managers learn from the exit code that something may need a look.
  if (unclean.length) throw new UnavailableError(`shut down, but not cleanly: ${unclean.join(", ")} (see the log)`);
}

export interface UpOptions {
  dataDir: string;
  natsUrl?: string;
  natsPort: number;
  workers: number;
  archs: string[];
  jobs: number;
  log: Logger;
  worker?: Partial<WorkerOptions>;
  /** Serve the published repositories over HTTP on 127.0.0.1 at this port (0: any free one). */
  publishPort?: number;
  sourceLimits?: Partial<SourceLimits>;
  /** Programs of source services (service role and workers). @default kiln's own, ops/services */
  servicesDir?: string;
  /** Ports of this host's loopback that source services may connect to. @default none */
  serviceHostPorts?: number[];
  /** Announce on stderr where things are. */
  announce?: (text: string) => void;
}

/** Starts the embedded nats-server, unless a URL is given. */
async function embeddedNats(dataDir: string, port: number, log: Logger): Promise<NatsServerProcess> {
  const dir = path.join(dataDir, "nats");
  mkdirSync(dir, { recursive: true });
  try {
    return await NatsServerProcess.start(
      {
        port,
        http: "127.0.0.1:-1",
        server_name: `kiln-${nodeIdOf(dataDir)}`,
        jetstream: { store_dir: path.join(dir, "jetstream") },
        max_payload: 1024 * 1024,
      },
      { dir }
    );
  } catch (err) {
    log.error({ err }, "embedded nats-server failed");
    throw new UnavailableError(
      `the embedded nats-server could not start on 127.0.0.1:${port} (is the port in use? pass --nats-port or --nats URL): ${(err as Error).message.split("\n").slice(-3).join(" ")}`
    );
  }
}

export async function runUp(opts: UpOptions): Promise<void> {
  const { log } = opts;
  mkdirSync(opts.dataDir, { recursive: true });
  if (opts.workers < 0 || !Number.isInteger(opts.workers))
    throw new InvalidInputError("--workers must be a whole number");
  const server = opts.natsUrl ? undefined : await embeddedNats(opts.dataDir, opts.natsPort, log);
  const natsUrl = opts.natsUrl ?? server!.url;
  const nodeId = nodeIdOf(opts.dataDir);
  const role = loadOrCreateRoleIdentity(opts.dataDir);
  const starters: Starter[] = [
    (ctx) =>
      startSourceRole(ctx, {
        ...(opts.sourceLimits ? { limits: opts.sourceLimits } : {}),
        serviceUsers: [{ name: roleUserName(nodeId), pubkey: role.identity.publicKey }],
      }),
    (ctx) => startServiceRole(ctx, serviceRoleOptions(opts)),
    (ctx) => startRepoRole(ctx),
    (ctx) => startPublisherRole(ctx, opts.publishPort !== undefined ? { httpPort: opts.publishPort } : {}),
    (ctx) => startDispatcherRole(ctx),
    ...opts.archs.map((arch) => (ctx: RoleContext) => startSchedulerRole(ctx, { arch })),
    ...Array.from(
      { length: opts.workers },
      (_, i) => (ctx: RoleContext) =>
        startWorker(ctx, {
          ...opts.worker,
          ...(opts.servicesDir ? { servicesDir: opts.servicesDir } : {}),
          workerId: `${nodeId}:${i + 1}`,
          jobs: opts.jobs,
        })
    ),
  ];
  try {
    await hostRoles(starters, {
      natsUrl,
      dataDir: opts.dataDir,
      log,
      identity: role.identity,
      ready: async (ctx, roles) => {
        const admin = await bootstrapAdmin(ctx, opts.dataDir);
        opts.announce?.(
          [
            `kiln is up (node ${nodeId})`,
            `  NATS:     ${natsUrl}${server ? " (embedded)" : ""}`,
            `  data:     ${opts.dataDir}`,
            `  roles:    ${roles.map((r) => r.role).join(", ")}`,
            admin.created
              ? `  identity: created admin identity ${adminIdentityPath(opts.dataDir)} (user 'admin'); kiln commands on this machine use it`
              : `  identity: ${adminIdentityPath(opts.dataDir)} (user 'admin')`,
            `  role key: ${role.file} (service user '${roleUserName(nodeId)}')`,
            ...roles
              .filter((r): r is RunningPublisher => r.role === "publisher")
              .map((r) => `  publish:  ${r.publishDir}${r.httpUrl ? ` (served at ${r.httpUrl})` : ""}`),
            `Stop with Ctrl-C.`,
          ].join("\n")
        );
      },
      onStopped: async () => {
        await server?.stop();
      },
    });
  } catch (err) {
    await server?.stop();
    throw err;
  }
}

export interface ServeOptions {
  sourceLimits?: Partial<SourceLimits>;
  /** Service users the source role registers when it runs here (this node's role identity). */
  serviceUsers?: { name: string; pubkey: string }[];
  /** Programs of source services, for the service role. @default kiln's own, ops/services */
  servicesDir?: string;
  /** Ports of this host's loopback that source services may connect to. @default none */
  serviceHostPorts?: number[];
}

/** The service role's options from `kiln up`/`kiln serve` flags. */
function serviceRoleOptions(opts: { servicesDir?: string; serviceHostPorts?: number[] }): ServiceRoleOptions {
  return {
    ...(opts.servicesDir ? { servicesDir: opts.servicesDir } : {}),
    ...(opts.serviceHostPorts ? { hostLoopbackPorts: opts.serviceHostPorts } : {}),
  };
}

/** `kiln serve --roles source,repo,dispatcher,scheduler:x86_64`. */
export function parseRoles(spec: string, opts: ServeOptions = {}): Starter[] {
  const starters: Starter[] = [];
  for (const raw of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, arg] = raw.split(":") as [string, string | undefined];
    switch (name) {
      case "source":
        starters.push((ctx) =>
          startSourceRole(ctx, {
            ...(opts.sourceLimits ? { limits: opts.sourceLimits } : {}),
            ...(opts.serviceUsers ? { serviceUsers: opts.serviceUsers } : {}),
          })
        );
        break;
      case "repo":
        starters.push((ctx) => startRepoRole(ctx));
        break;
      case "service":
        starters.push((ctx) => startServiceRole(ctx, serviceRoleOptions(opts)));
        break;
      case "publisher": {
        // `publisher:<port>` also serves the published trees over HTTP on 127.0.0.1.
        const port = arg === undefined ? undefined : Number(arg);
        if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536))
          throw new InvalidInputError(`role 'publisher:${arg}' needs a port number`);
        starters.push((ctx) => startPublisherRole(ctx, port !== undefined ? { httpPort: port } : {}));
        break;
      }
      case "dispatcher":
        starters.push((ctx) => startDispatcherRole(ctx));
        break;
      case "scheduler":
        if (!arg) throw new InvalidInputError("role 'scheduler' needs an arch: scheduler:x86_64");
        starters.push((ctx) => startSchedulerRole(ctx, { arch: arg }));
        break;
      default:
        throw new InvalidInputError(
          `unknown role '${raw}' (known: source, service, repo, publisher[:<port>], dispatcher, scheduler:<arch>)`
        );
    }
  }
  if (!starters.length) throw new InvalidInputError("--roles names no role");
  return starters;
}

/**
 * Waits until the source role accepts the roles' identity: the roles of a `kiln serve` without
 * the source role sign every request, and the source role refuses keys it does not know. Says
 * every `remindMs` what is missing (the caller prints the command that registers the key).
 */
export async function waitUntilRegistered(
  ctx: RoleContext,
  opts: { remind: () => void; remindMs?: number; pollMs?: number; signal?: AbortSignal }
): Promise<void> {
  const source = new RoleClient<SourceApi>(ctx.rpc, (t) => subjects.rpc(Role.Source, t));
  let reminded = 0;
  for (;;) {
    try {
      const me = await source.call("user.whoami", {}, { idempotent: true });
      ctx.log.info({ user: me.user }, "role identity accepted");
      return;
    } catch (err) {
      if (!(err instanceof UnauthenticatedError) && !(err instanceof NoRespondersError)) throw err;
      if (Date.now() - reminded >= (opts.remindMs ?? 30_000)) {
        reminded = Date.now();
        opts.remind();
      }
    }
    if (opts.signal?.aborted) throw new UnavailableError("stopped while waiting for the role identity's registration");
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
  }
}

export function defaultArchs(): string[] {
  return [hostArch()];
}
