/**
 * The `kiln` command. Every subcommand is registered here; their work lives in cli/commands/.
 *
 * Exit codes (stable, for scripts): 0 success; 1 failure; 2 bad input or usage; 3 not found;
 * 4 not allowed (forbidden or unauthenticated); 5 conflict; 6 integrity or size limit;
 * 7 `--exit-status` and something failed; 69 service unavailable (NATS or a role not answering).
 */
import { Command, CommanderError, Option } from "commander";
import type { Logger } from "pino";
import { KilnError } from "../transport/index.ts";
import { loadSettings, type SettingFlags, type Settings } from "./config.ts";
import { createRootLogger } from "./logger.ts";
import { registerBuildCommands } from "./commands/build.ts";
import { registerRepoCommands } from "./commands/repo.ts";
import { registerRunCommands } from "./commands/run-commands.ts";
import { registerServiceCommands } from "./commands/service.ts";
import { registerSourceCommands } from "./commands/source.ts";

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  forbidden: 4,
  conflict: 5,
  integrity: 6,
  somethingFailed: 7,
  unavailable: 69,
} as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT.usage;
  if (!(err instanceof KilnError)) return EXIT.failure;
  switch (err.code) {
    case "ERR_INVALID_INPUT":
      return EXIT.usage;
    case "ERR_NOT_FOUND":
      return EXIT.notFound;
    case "ERR_FORBIDDEN":
    case "ERR_UNAUTHENTICATED":
      return EXIT.forbidden;
    case "ERR_CONFLICT":
      return EXIT.conflict;
    case "ERR_INTEGRITY":
    case "ERR_TOO_LARGE":
      return EXIT.integrity;
    case "ERR_TIMEOUT":
    case "ERR_NO_RESPONDERS":
    case "ERR_UNAVAILABLE":
      return EXIT.unavailable;
    default:
      return EXIT.failure;
  }
}

/** What a command action gets: merged settings and the root logger. */
export interface CommandEnv {
  settings(): Settings;
  log(): Logger;
  json(): boolean;
}

export function buildProgram(env: NodeJS.ProcessEnv): { program: Command; cenv: CommandEnv } {
  const program = new Command("kiln");
  program
    .description("kiln: a distributed package build service (OBS-compatible semantics over NATS and LMDB)")
    .showHelpAfterError()
    .option("--nats <url>", "NATS server URL (env KILN_NATS_URL)", undefined)
    .option("--identity <file>", "identity file that signs requests (env KILN_IDENTITY)")
    .option("--data <dir>", "data directory of kiln up/serve/worker (env KILN_DATA)")
    .option("--config <file>", "JSON config file (env KILN_CONFIG; default ~/.config/kiln/config.json)")
    .addOption(
      new Option("--log-level <level>", "log level (env KILN_LOG_LEVEL)").choices([
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "fatal",
        "silent",
      ])
    )
    .option("--json", "print machine-readable JSON");
  let settings: Settings | undefined;
  let log: Logger | undefined;
  const flags = (): SettingFlags => {
    const o = program.opts<{ nats?: string; identity?: string; data?: string; config?: string; logLevel?: string }>();
    const f: SettingFlags = {};
    if (o.nats) f.nats = o.nats;
    if (o.identity) f.identity = o.identity;
    if (o.data) f.data = o.data;
    if (o.config) f.config = o.config;
    if (o.logLevel) f.logLevel = o.logLevel;
    return f;
  };
  const cenv: CommandEnv = {
    settings: () => (settings ??= loadSettings(flags(), env)),
    log: () => (log ??= createRootLogger(cenv.settings().logLevel)),
    json: () => program.opts<{ json?: boolean }>().json === true,
  };
  registerRunCommands(program, cenv);
  registerSourceCommands(program, cenv);
  registerBuildCommands(program, cenv);
  registerRepoCommands(program, cenv);
  registerServiceCommands(program, cenv);
  return { program, cenv };
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { program, cenv } = buildProgram(env);
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    const code = exitCodeOf(err);
    if (err instanceof CommanderError) return code;
    const message = err instanceof Error ? err.message : String(err);
    if (cenv.json())
      process.stdout.write(
        JSON.stringify({ error: { code: (err as KilnError).code ?? "ERR_INTERNAL", message } }) + "\n"
      );
    process.stderr.write(`kiln: ${message}\n`);
    if (!(err instanceof KilnError)) cenv.log().debug({ err }, "command failed");
    return code;
  }
}
