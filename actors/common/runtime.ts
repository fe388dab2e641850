/**
 * What every role needs at run time: its context, the answer to `kiln.sys.ping` (status), and
 * the single-writer lease that stops a second instance of a role from starting.
 */
import os from "node:os";
import type { NatsConnection, KV } from "nats";
import type { ActorSystemRef } from "nact";
import type { Logger } from "pino";
import { ConflictError, decode, encode, subjects, type RpcClient } from "../../transport/index.ts";

/** Handed to every role when it starts. */
export interface RoleContext {
  nc: NatsConnection;
  rpc: RpcClient;
  system: ActorSystemRef;
  log: Logger;
  /** This process's data directory; each role keeps its files under `<dataDir>/<role>`. */
  dataDir: string;
  /** Stable id of this node (kept in the data directory). */
  nodeId: string;
  /** JetStream stream replicas to use when creating streams and buckets. */
  replicas: number;
}

/** A started role; `stop` stops intake, drains and closes its stores. */
export interface RunningRole {
  role: string;
  stop(): Promise<void>;
}

/** What a role or worker says about itself in `kiln status`. */
export interface PingInfo {
  role: string;
  nodeId: string;
  host: string;
  pid: number;
  startedAt: number;
  /** Role-specific facts (a worker's state and job, a scheduler's queue). */
  detail?: Record<string, unknown>;
}

/** Answers `kiln.sys.ping` with `info()`; returns a function that stops answering. */
export function answerPings(nc: NatsConnection, info: () => PingInfo): () => void {
  const sub = nc.subscribe(subjects.ping(), {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      msg.respond(encode(info()));
    },
  });
  return () => sub.unsubscribe();
}

/** Asks everybody who answers pings, collecting replies for `waitMs`. */
export async function collectPings(nc: NatsConnection, waitMs = 500): Promise<PingInfo[]> {
  const out: PingInfo[] = [];
  const { RequestStrategy } = await import("nats");
  try {
    const replies = await nc.requestMany(subjects.ping(), encode({}), {
      strategy: RequestStrategy.Timer,
      maxWait: waitMs,
    });
    for await (const m of replies) {
      try {
        out.push(decode<PingInfo>(m.data));
      } catch {
        // A stranger answering on the subject: ignore.
      }
    }
  } catch (err) {
    if ((err as { code?: string }).code !== "503") throw err;
  }
  return out;
}

export function pingInfo(role: string, nodeId: string, startedAt: number, detail?: Record<string, unknown>): PingInfo {
  return { role, nodeId, host: os.hostname(), pid: process.pid, startedAt, ...(detail ? { detail } : {}) };
}

const LEASE_BUCKET = "kiln-leases";
/** A lease not renewed for this long expires (a crashed holder frees its role). */
export const LEASE_TTL_MS = 15_000;

/** KV keys allow `[-_=.a-zA-Z0-9/]`; role names like `scheduler:x86_64` are escaped. */
export function leaseKey(role: string): string {
  return role.replace(/[^-_a-zA-Z0-9]/g, (c) => `=${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** The held lease of a single-writer role. */
export interface Lease {
  release(): Promise<void>;
}

/**
 * Takes the lease of a single-writer role, refusing when another node holds it. The same node
 * may take over its own lease at once (a restart after a crash does not wait for the TTL).
 */
export async function acquireLease(
  ctx: Pick<RoleContext, "nc" | "log" | "replicas" | "nodeId">,
  role: string
): Promise<Lease> {
  const js = ctx.nc.jetstream();
  const kv: KV = await js.views.kv(LEASE_BUCKET, { ttl: LEASE_TTL_MS, history: 1, replicas: ctx.replicas });
  const key = leaseKey(role);
  const value = encode({ nodeId: ctx.nodeId, host: os.hostname(), pid: process.pid });
  let revision: number;
  try {
    revision = await kv.create(key, value);
  } catch {
    const cur = await kv.get(key);
    const holder =
      cur && cur.value.length > 0 ? decode<{ nodeId: string; host: string; pid: number }>(cur.value) : undefined;
    if (cur && holder && holder.nodeId !== ctx.nodeId) {
      throw new ConflictError(
        `role ${role} is already running on node ${holder.nodeId} (host ${holder.host}, pid ${holder.pid}); a second instance would split its state`
      );
    }
    revision = cur ? await kv.update(key, value, cur.revision) : await kv.create(key, value);
  }
  let stopped = false;
  const timer = setInterval(() => {
    void kv.update(key, value, revision).then(
      (r) => {
        revision = r;
      },
      (err: unknown) => {
        if (!stopped) ctx.log.error({ err, role }, "lease renewal failed");
      }
    );
  }, LEASE_TTL_MS / 3);
  timer.unref();
  return {
    async release(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      await kv.delete(key).catch(() => undefined);
    },
  };
}
