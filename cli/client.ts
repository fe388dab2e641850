/**
 * What a client command needs: a NATS connection, the user's identity, and typed clients for
 * every role.
 */
import { readFileSync } from "node:fs";
import type { NatsConnection } from "nats";
import type { Logger } from "pino";
import type { DispatcherApi, RepoApi, SchedulerApi, SourceApi } from "../actors/index.ts";
import {
  Identity,
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  subjects,
  UnauthenticatedError,
} from "../transport/index.ts";
import type { Settings } from "./config.ts";

export interface Clients {
  nc: NatsConnection;
  rpc: RpcClient;
  identity?: Identity;
  source: RoleClient<SourceApi>;
  repo: RoleClient<RepoApi>;
  dispatcher: RoleClient<DispatcherApi>;
  sched(arch: string): RoleClient<SchedulerApi>;
  close(): Promise<void>;
}

export function loadIdentity(file: string): Identity {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UnauthenticatedError(`cannot read identity file ${file}: ${(err as Error).message}`);
  }
  const seed = text.split("\n").find((l) => l.trim().startsWith("SU"));
  if (!seed) throw new UnauthenticatedError(`identity file ${file} holds no nkey seed`);
  return Identity.fromSeed(seed);
}

export async function connectClients(settings: Settings, log: Logger): Promise<Clients> {
  const nc = await connectNats({ servers: settings.natsUrl, name: "kiln-cli", log, reconnectForever: false });
  const identity = settings.identityFile ? loadIdentity(settings.identityFile) : undefined;
  const rpc = new RpcClient(nc, identity ? { signer: identity } : {});
  return {
    nc,
    rpc,
    ...(identity ? { identity } : {}),
    source: new RoleClient<SourceApi>(rpc, (t) => subjects.rpc(Role.Source, t)),
    repo: new RoleClient<RepoApi>(rpc, (t) => subjects.rpc(Role.Repo, t)),
    dispatcher: new RoleClient<DispatcherApi>(rpc, (t) => subjects.rpc(Role.Dispatcher, t)),
    sched: (arch) => new RoleClient<SchedulerApi>(rpc, (t) => subjects.sched(arch, t)),
    async close() {
      await nc.drain().catch(() => undefined);
    },
  };
}
