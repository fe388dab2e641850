/**
 * Registration of `kiln up`, `kiln serve`, `kiln worker` and `kiln status`.
 */
import os from "node:os";
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

export function registerRunCommands(program: Command, cenv: CommandEnv): void {
  program
    .command("up")
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
      "\nWith --nats URL, joins that NATS server instead of starting one.\nData (LMDB stores, blobs, NATS JetStream) lives under --data (default ~/.local/share/kiln)."
    )
    .action(async (o: { natsPort: number; workers: number; jobs: number; arch?: string[]; publishPort?: number }) => {
      const s = cenv.settings();
      const explicitNats = program.opts<{ nats?: string }>().nats ?? process.env.KILN_NATS_URL;
      const { runUp, defaultArchs } = await runner();
      await runUp({
        dataDir: s.dataDir,
        ...(explicitNats ? { natsUrl: s.natsUrl } : {}),
        natsPort: o.natsPort,
        workers: o.workers,
        jobs: o.jobs,
        ...(o.publishPort !== undefined ? { publishPort: o.publishPort } : {}),
        archs: o.arch ?? defaultArchs(),
        log: cenv.log(),
        announce: (t) => process.stderr.write(t + "\n"),
      });
    });

  program
    .command("serve")
    .description("run some roles in this process (the others run elsewhere on the same NATS)")
    .requiredOption(
      "--roles <list>",
      "comma-separated: source, repo, publisher[:<http port>], dispatcher, scheduler:<arch>"
    )
    .action(async (o: { roles: string }) => {
      const s = cenv.settings();
      const { hostRoles, parseRoles } = await runner();
      await hostRoles(parseRoles(o.roles), { natsUrl: s.natsUrl, dataDir: s.dataDir, log: cenv.log() });
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
      }) => {
        const s = cenv.settings();
        const workerId = o.id ?? `${os.hostname()}:1`;
        const { hostRoles } = await runner();
        const { startWorker, buildableArchs, hostArch } = await actors();
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
