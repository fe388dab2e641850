/** A real nats-server under kiln's example authorization (ops/nats/), and connections as its users. */
import type { NatsConnection } from "nats";
import type { Logger } from "pino";
import { kilnAuthorization, type NatsUser } from "../../ops/nats/authz.ts";
import { connectNats, type ConfObject } from "../../transport/index.ts";
import { startServer, type TestServer } from "./nats-server.ts";

/** The server for `users`, plus `spy` (password `x`): a test-only user without limits that watches what gets through. */
export async function startAuthzServer(users: NatsUser[]): Promise<TestServer> {
  const conf = kilnAuthorization(users);
  (conf.authorization as { users: ConfObject[] }).users.push({ user: "spy", password: "x" });
  return startServer(conf);
}

/** Connects as NATS user `user`, giving up when the server goes (a test's client, not a role's). */
export function connectAsUser(
  server: TestServer,
  user: string,
  password: string,
  log: Logger
): Promise<NatsConnection> {
  const u = new URL(server.url);
  return connectNats({ servers: `nats://${user}:${password}@${u.host}`, name: user, log, reconnectForever: false });
}
