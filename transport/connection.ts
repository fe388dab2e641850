/**
 * Connecting to NATS. nats.js status events become log lines here, so a reconnect or a slow
 * consumer is visible in kiln's logs.
 */
import { connect, type NatsConnection } from "nats";
import type { Logger } from "pino";
import { UnavailableError } from "./errors.ts";

export interface ConnectOptions {
  /**
   * One URL or several, comma-separated (`nats://127.0.0.1:4222`); `nats://user:password@host`
   * authenticates as that NATS user, whose replies then arrive under {@link inboxPrefixOf}.
   */
  servers: string | string[];
  /** Connection name shown by the server's monitoring. */
  name: string;
  log: Logger;
  /** Keep trying to reconnect forever (roles) or give up (CLI). @default true */
  reconnectForever?: boolean;
  /** @default 5000 */
  timeoutMs?: number;
}

/**
 * Takes `user:password@` out of server URLs (nats.js ignores it there): a NATS server with
 * authorization (ops/nats/) is reached with `nats://alice:secret@host:4222`.
 */
export function splitCredentials(urls: string[]): { servers: string[]; user?: string; pass?: string } {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = urls.map((s) => {
    if (!s.includes("@")) return s;
    let u: URL;
    try {
      u = new URL(s.includes("://") ? s : `nats://${s}`);
    } catch {
      return s;
    }
    if (!u.username) return s;
    user = decodeURIComponent(u.username);
    pass = decodeURIComponent(u.password);
    return `${u.protocol}//${u.host}`;
  });
  return { servers, ...(user !== undefined ? { user, pass: pass ?? "" } : {}) };
}

/**
 * The inbox prefix of a NATS user: replies to a user's requests arrive under `_INBOX_<user>.`, so
 * a server may let each user subscribe to their own replies only.
 */
export function inboxPrefixOf(user: string): string {
  return `_INBOX_${user.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const { servers, user, pass } = splitCredentials(
    (Array.isArray(opts.servers) ? opts.servers : opts.servers.split(",")).map((s) => s.trim()).filter(Boolean)
  );
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      ...(user !== undefined ? { user, pass: pass ?? "", inboxPrefix: inboxPrefixOf(user) } : {}),
      name: opts.name,
      timeout: opts.timeoutMs ?? 5000,
      maxReconnectAttempts: opts.reconnectForever === false ? 3 : -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
      // nats.js captures two stack traces per request otherwise; at thousands of requests a second
      // (dispatching, blob chunks) that was the largest CPU cost. kiln's errors name the subject.
      noAsyncTraces: true,
    });
  } catch (err) {
    throw new UnavailableError(`cannot connect to NATS at ${servers.join(",")}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const log = opts.log.child({ component: "nats" });
  void (async () => {
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
        case "reconnecting":
        case "error":
        case "ldm":
          log.warn({ status: s.type, data: String(s.data) }, "nats connection status");
          break;
        default:
          log.debug({ status: s.type, data: String(s.data) }, "nats connection status");
      }
    }
  })();
  return nc;
}
