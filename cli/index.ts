/**
 * cli/ — the `kiln` command: settings, the root logger, client commands and the processes that
 * host roles (`up`, `serve`, `worker`).
 */
export { main, buildProgram, exitCodeOf, EXIT } from "./main.ts";
export type { CommandEnv } from "./main.ts";
export { loadSettings, defaultDataDir, adminIdentityPath, DEFAULT_NATS_URL } from "./config.ts";
export type { Settings, SettingFlags } from "./config.ts";
export { createRootLogger } from "./logger.ts";
export { connectClients, loadIdentity } from "./client.ts";
export type { Clients } from "./client.ts";
