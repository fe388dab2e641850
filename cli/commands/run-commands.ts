/**
 * Registration of `kiln up`, `kiln serve`, `kiln worker` and `kiln status`.
 */
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import type * as Actors from "../../actors/index.ts";
import { InvalidInputError, connectNats } from "../../transport/index.ts";
import type * as Runner from "./run.ts";
import type { CommandEnv } from "../main.ts";
import { formatAge, print, printJson, table } from "../output.ts";

/** The roles are loaded only by the commands that host them: client commands start faster. */
const actors = (): Promise<typeof Actors> => import("../../actors/index.ts");
const runner = (): Promise<typeof Runner> => import("./run.ts");

const int =
  (what: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidInputError(`${what} must be a whole number, got '${v}'`);
    return n;
  };
const collect = (v: string, prev: string[] = []): string[] => [...prev, ...v.split(",").filter(Boolean)];

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `4G`, `512M`, `1024K` or bytes. */
export function parseSize(what: string) {
  return (v: string): number => {
    const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(v.trim());
    const n = m ? Number(m[1]) * UNITS[m[2]!.toLowerCase()]! : NaN;
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new InvalidInputError(`${what} must be a size such as 4G, 512M or 65536, got '${v}'`);
    }
    return n;
  };
}

interface LimitFlags {
  maxFileSize?: number;
  maxFiles?: number;
  maxConfigSize?: number;
  servicesDir?: string;
  serviceAllowPort?: number[];
}

const port =
  (what: string) =>
  (v: string, prev: number[] = []): number[] => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > 65535)
      throw new InvalidInputError(`${what} must be a port number, got '${v}'`);
    return [...prev, n];
  };

/** The source role's size limits (`kiln up`, `kiln serve`). */
function addLimitOptions(cmd: Command): Command {
  return cmd
    .option(
      "--max-file-size <size>",
      "largest source file the source role accepts (default 4G)",
      parseSize("--max-file-size")
    )
    .option("--max-files <n>", "most files in one package revision (default 10000)", int("--max-files"))
    .option("--max-config-size <size>", "largest project config (default 1M)", parseSize("--max-config-size"))
    .option("--services-dir <dir>", "programs of source services (default: kiln's own, ops/services)")
    .option(
      "--service-allow-port <port>",
      "a TCP port of this host's loopback that source services may connect to (repeatable; default: none)",
      port("--service-allow-port")
    );
}

function limitsOf(o: LimitFlags): Partial<Actors.SourceLimits> | undefined {
  const l: Partial<Actors.SourceLimits> = {};
  if (o.maxFileSize !== undefined) l.maxFileBytes = o.maxFileSize;
  if (o.maxFiles !== undefined) l.maxFiles = o.maxFiles;
  if (o.maxConfigSize !== undefined) l.maxConfigBytes = o.maxConfigSize;
  return Object.keys(l).length ? l : undefined;
}

const LIMIT_NAMES: Record<string, string> = {
  wall: "wallMs",
  idle: "idleLogMs",
  log: "logBytes",
  memory: "memoryBytes",
  disk: "diskBytes",
  pids: "pids",
};

/** `--limit wall=4h --limit log=512M` → sandbox limit input (parsed and checked by the sandbox). */
export function workerLimits(specs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of specs) {
    const i = spec.indexOf("=");
    const name = spec.slice(0, i);
    const key = i > 0 && Object.hasOwn(LIMIT_NAMES, name) ? LIMIT_NAMES[name] : undefined;
    if (key === undefined) {
      throw new InvalidInputError(
        `--limit '${spec}': use name=value with name one of ${Object.keys(LIMIT_NAMES).join(", ")}`
      );
    }
    out[key] = spec.slice(i + 1);
  }
  return out;
}

export function registerRunCommands(program: Command, cenv: CommandEnv): void {
  addLimitOptions(program.command("up"))
    .description("run the whole service on this machine: embedded NATS, every role and local workers")
    .option("--nats-port <port>", "port of the embedded nats-server", int("--nats-port"), 4222)
    .option("--workers <n>", "local workers to start", int("--workers"), 1)
    .option("--jobs <n>", "build slots per local worker", int("--jobs"), 1)
    .option(
      "--publish-port <port>",
      "serve the published repositories over HTTP on 127.0.0.1 at this port",
      int("--publish-port")
    )
    .option("--arch <arch...>", "archs to schedule (default: the host arch)", collect)
    .addHelpText(
      "after",
      "\nWith a NATS URL (--nats, KILN_NATS_URL or the config file), joins that server instead of starting one.\nData (LMDB stores, blobs, NATS JetStream) lives under --data (default $XDG_DATA_HOME/kiln, else ~/.local/share/kiln)."
    )
    .action(
      async (
        o: { natsPort: number; workers: number; jobs: number; arch?: string[]; publishPort?: number } & LimitFlags
      ) => {
        const s = cenv.settings();
        const { runUp, defaultArchs } = await runner();
        const limits = limitsOf(o);
        await runUp({
          ...(limits ? { sourceLimits: limits } : {}),
          ...(o.servicesDir ? { servicesDir: path.resolve(o.servicesDir) } : {}),
          ...(o.serviceAllowPort ? { serviceHostPorts: o.serviceAllowPort } : {}),
          dataDir: s.dataDir,
          ...(s.natsUrlSet ? { natsUrl: s.natsUrl } : {}),
          natsPort: o.natsPort,
          workers: o.workers,
          jobs: o.jobs,
          ...(o.publishPort !== undefined ? { publishPort: o.publishPort } : {}),
          archs: o.arch ?? defaultArchs(),
          log: cenv.log(),
          announce: (t) => process.stderr.write(t + "\n"),
        });
      }
    );

  addLimitOptions(program.command("serve"))
    .description("run some roles in this process (the others run elsewhere on the same NATS)")
    .requiredOption(
      "--roles <list>",
      "comma-separated: source, service, repo, publisher[:<http port>], dispatcher, scheduler:<arch>"
    )
    .addHelpText(
      "after",
      "\nThe roles sign their requests with <data>/role.identity (created on first start). With the\nsource role here, it is registered as a service user at once; otherwise the roles wait until an\nadmin registers it, and print the command: kiln user add NAME --pubkey KEY --service"
    )
    .action(async (o: { roles: string } & LimitFlags) => {
      const s = cenv.settings();
      const { hostRoles, parseRoles, nodeIdOf } = await runner();
      const { loadOrCreateRoleIdentity, roleUserName } = await import("./identity.ts");
      const name = roleUserName(nodeIdOf(s.dataDir));
      const role = loadOrCreateRoleIdentity(s.dataDir);
      const limits = limitsOf(o);
      const starters = parseRoles(o.roles, {
        ...(limits ? { sourceLimits: limits } : {}),
        ...(o.servicesDir ? { servicesDir: path.resolve(o.servicesDir) } : {}),
        ...(o.serviceAllowPort ? { serviceHostPorts: o.serviceAllowPort } : {}),
        serviceUsers: [{ name, pubkey: role.identity.publicKey }],
      });
      const withSource = o.roles.split(",").some((r) => r.trim() === "source");
      const { waitUntilRegistered } = await runner();
      await hostRoles(starters, {
        natsUrl: s.natsUrl,
        dataDir: s.dataDir,
        log: cenv.log(),
        identity: role.identity,
        // The source role registers this node's identity itself; elsewhere an admin does.
        ...(withSource
          ? {}
          : {
              beforeStart: (ctx) =>
                waitUntilRegistered(ctx, {
                  remind: () =>
                    process.stderr.write(
                      `waiting for the source role to accept this node's identity (${role.file}); register it with:\n  kiln user add ${name} --pubkey ${role.identity.publicKey} --service\n`
                    ),
                }),
            }),
      });
    });

  program
    .command("worker")
    .description("run a build worker that takes jobs from the dispatcher over NATS")
    .option("--id <id>", "worker id (default <hostname>:1)")
    .option("--arch <arch...>", "archs this worker builds (default: what the host can build)", collect)
    .option("--jobs <n>", "build slots", int("--jobs"), 1)
    .option("--hostlabel <label...>", "host labels for build constraints", collect)
    .option("--memory <mb>", "memory to announce, in MB", int("--memory"))
    .option("--disk <mb>", "disk to announce, in MB", int("--disk"))
    .option("--cache-dir <dir>", "cache of sources and binaries")
    .option("--cache-size <mb>", "cache size limit, in MB", int("--cache-size"), 2048)
    .option(
      "--limit <name=value...>",
      "limits of every build: wall=4h idle=30m log=512M memory=2G disk=4G pids=4096 (the defaults)",
      collect
    )
    .option(
      "--hook <spec...>",
      "a hook program: [optional:]prebuild|postbuild:/path/to/program",
      (v, p: string[] = []) => [...p, v]
    )
    .option("--no-default-hooks", "do not offer the shipped hooks (build-compare, rpmlint)")
    .option("--services-dir <dir>", "programs of build-time source services (default: kiln's own, ops/services)")
    .addHelpText(
      "after",
      "\nHooks run before the sandbox (prebuild, on the host) or after the build (postbuild, sandboxed);\nprojects pick optional ones with 'BuildFlags: hooks:<name>' and drop others with 'nohooks:<name>'.\nSee the README, section \"Workers\", for the hook interface."
    )
    .action(
      async (o: {
        id?: string;
        arch?: string[];
        jobs: number;
        hostlabel?: string[];
        memory?: number;
        disk?: number;
        cacheDir?: string;
        cacheSize: number;
        limit?: string[];
        hook?: string[];
        defaultHooks: boolean;
        servicesDir?: string;
      }) => {
        const s = cenv.settings();
        const workerId = o.id ?? `${os.hostname()}:1`;
        const { hostRoles } = await runner();
        const { startWorker, buildableArchs, hostArch, defaultHooks, parseHookSpec } = await actors();
        const { resolveLimits } = await import("../../sandbox/index.ts");
        const limits = resolveLimits(workerLimits(o.limit ?? []));
        const hooks = [...(o.defaultHooks ? defaultHooks() : []), ...(o.hook ?? []).map(parseHookSpec)];
        await hostRoles(
          [
            (ctx) =>
              startWorker(ctx, {
                workerId,
                archs: o.arch ?? buildableArchs(hostArch()),
                jobs: o.jobs,
                hostLabels: o.hostlabel ?? [],
                ...(o.memory !== undefined ? { memoryMb: o.memory } : {}),
                ...(o.disk !== undefined ? { diskMb: o.disk } : {}),
                ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}),
                cacheSizeMb: o.cacheSize,
                limits,
                hooks,
                ...(o.servicesDir ? { servicesDir: path.resolve(o.servicesDir) } : {}),
              }),
          ],
          { natsUrl: s.natsUrl, dataDir: s.dataDir, log: cenv.log() }
        );
      }
    );

  program
    .command("status")
    .description("list the roles and workers that answer, with node and uptime")
    .option("--wait <ms>", "how long to collect answers", int("--wait"), 500)
    .action(async (o: { wait: number }) => {
      const s = cenv.settings();
      const nc = await connectNats({ servers: s.natsUrl, name: "kiln-cli", log: cenv.log(), reconnectForever: false });
      const { collectPings } = await actors();
      try {
        const pings = (await collectPings(nc, o.wait)).sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : 0));
        if (cenv.json()) return printJson(pings.map((p) => ({ ...p, uptimeMs: Date.now() - p.startedAt })));
        if (!pings.length) return print(`nothing answers on ${s.natsUrl}`);
        print(
          table(
            ["ROLE", "NODE", "HOST", "PID", "UP", "DETAIL"],
            pings.map((p) => [
              p.role,
              p.nodeId,
              p.host,
              p.pid,
              formatAge(Date.now() - p.startedAt),
              p.detail
                ? Object.entries(p.detail)
                    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`)
                    .join(" ")
                : "",
            ])
          )
        );
      } finally {
        await nc.drain();
      }
    });
}
