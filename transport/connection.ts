/**
 * Connecting to NATS. nats.js status events become log lines here, so a reconnect or a slow
 * consumer is visible in kiln's logs.
 */
import { connect, type NatsConnection } from "nats";
import type { Logger } from "pino";
import { UnavailableError } from "./errors.ts";

export interface ConnectOptions {
  /** One URL or several, comma-separated (`nats://127.0.0.1:4222`). */
  servers: string | string[];
  /** Connection name shown by the server's monitoring. */
  name: string;
  log: Logger;
  /** Keep trying to reconnect forever (roles) or give up (CLI). @default true */
  reconnectForever?: boolean;
  /** @default 5000 */
  timeoutMs?: number;
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const servers = (Array.isArray(opts.servers) ? opts.servers : opts.servers.split(","))
    .map((s) => s.trim())
    .filter(Boolean);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: opts.name,
      timeout: opts.timeoutMs ?? 5000,
      maxReconnectAttempts: opts.reconnectForever === false ? 3 : -1,
      reconnectTimeWait: 250,
      pingInterval: 10_000,
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
