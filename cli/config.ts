/**
 * Settings of the `kiln` command: defaults → config file → environment → flags, merged here and
 * nowhere else. Library code receives the merged values.
 *
 * Environment: KILN_NATS_URL, KILN_IDENTITY, KILN_DATA, KILN_LOG_LEVEL, KILN_CONFIG.
 * Config file (JSON): `{ "nats": "...", "identity": "...", "data": "...", "logLevel": "..." }`,
 * from `--config FILE`, else KILN_CONFIG, else `~/.config/kiln/config.json` when it exists.
 */
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { InvalidInputError } from "../transport/index.ts";

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

export interface Settings {
  natsUrl: string;
  /** True when a flag, the environment or the config file named the NATS server (`kiln up` then joins it). */
  natsUrlSet: boolean;
  /** Identity file used to sign requests; undefined = anonymous. */
  identityFile?: string;
  dataDir: string;
  logLevel: string;
}

export interface SettingFlags {
  nats?: string;
  identity?: string;
  data?: string;
  logLevel?: string;
  config?: string;
}

/** The data directory of `kiln up` when none is given: `$XDG_DATA_HOME/kiln` or `~/.local/share/kiln`. */
export function defaultDataDir(env: NodeJS.ProcessEnv, home: string): string {
  const base = env.XDG_DATA_HOME && env.XDG_DATA_HOME.length ? env.XDG_DATA_HOME : path.join(home, ".local", "share");
  return path.join(base, "kiln");
}

/** Where `kiln up` keeps the admin identity it creates on first start. */
export function adminIdentityPath(dataDir: string): string {
  return path.join(dataDir, "admin.identity");
}

interface FileSettings {
  nats?: string;
  identity?: string;
  data?: string;
  logLevel?: string;
}

function readConfigFile(file: string): FileSettings {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new InvalidInputError(`config file ${file} is not readable JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new InvalidInputError(`config file ${file} must hold a JSON object`);
  const o = raw as Record<string, unknown>;
  const out: FileSettings = {};
  for (const k of ["nats", "identity", "data", "logLevel"] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== "string") throw new InvalidInputError(`config file ${file}: '${k}' must be a string`);
    out[k] = o[k];
  }
  const unknown = Object.keys(o).filter((k) => !["nats", "identity", "data", "logLevel"].includes(k));
  if (unknown.length)
    throw new InvalidInputError(`config file ${file}: unknown setting ${unknown.map((u) => `'${u}'`).join(", ")}`);
  return out;
}

/** Merges the four sources. `env` and `home` are passed in so this stays testable. */
export function loadSettings(flags: SettingFlags, env: NodeJS.ProcessEnv, home: string = os.homedir()): Settings {
  const configFile = flags.config ?? env.KILN_CONFIG ?? path.join(home, ".config", "kiln", "config.json");
  const explicit = flags.config !== undefined || env.KILN_CONFIG !== undefined;
  const file: FileSettings = existsSync(configFile) ? readConfigFile(configFile) : {};
  if (explicit && !existsSync(configFile)) throw new InvalidInputError(`config file ${configFile} does not exist`);
  const pick = <K extends keyof FileSettings>(k: K, envName: string, flag: string | undefined): string | undefined =>
    flag ?? (env[envName] && env[envName]!.length ? env[envName] : undefined) ?? file[k];
  const dataDir = path.resolve(pick("data", "KILN_DATA", flags.data) ?? defaultDataDir(env, home));
  const natsUrl = pick("nats", "KILN_NATS_URL", flags.nats);
  const settings: Settings = {
    natsUrl: natsUrl ?? DEFAULT_NATS_URL,
    natsUrlSet: natsUrl !== undefined,
    dataDir,
    logLevel: pick("logLevel", "KILN_LOG_LEVEL", flags.logLevel) ?? "info",
  };
  const identity = pick("identity", "KILN_IDENTITY", flags.identity);
  if (identity !== undefined) settings.identityFile = path.resolve(identity);
  else if (existsSync(adminIdentityPath(dataDir))) settings.identityFile = adminIdentityPath(dataDir);
  return settings;
}
