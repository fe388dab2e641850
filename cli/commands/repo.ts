/**
 * Repository commands: `wipe`, `jobhistory`, `buildhistory`, `published`, and the admin commands
 * `admin rebuild-pool`, `admin pool` and `admin publish`.
 */
import type { Command } from "commander";
import type { PoolBinary, PublisherApi } from "../../actors/index.ts";
import { InvalidInputError, Role, RoleClient, subjects } from "../../transport/index.ts";
import type { Clients } from "../client.ts";
import type { CommandEnv } from "../main.ts";
import { formatAge, formatBytes, print, printJson, table } from "../output.ts";
import { withClients } from "./source.ts";

const limit = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidInputError(`--limit must be 1…10000, got '${v}'`);
  return n;
};

const when = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
const seconds = (ms: number): string => `${Math.round(ms / 1000)}s`;

function publisher(c: Clients): RoleClient<PublisherApi> {
  return new RoleClient<PublisherApi>(c.rpc, (t) => subjects.rpc(Role.Publisher, t));
}

/** The `admin` command group, shared with other modules that add admin commands. */
function adminGroup(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === "admin") ??
    program.command("admin").description("administration: pools, publishing")
  );
}

export function registerRepoCommands(program: Command, cenv: CommandEnv): void {
  program
    .command("wipe <project> [package]")
    .description("remove build results (binaries, logs, imports); the pool follows, builds start again")
    .option("-r, --repo <repository>", "only this repository")
    .option("-a, --arch <arch>", "only this arch")
    .action(async (project: string, pkg: string | undefined, o: { repo?: string; arch?: string }) => {
      await withClients(cenv, async (c) => {
        const r = await c.repo.call("result.wipe", {
          project,
          ...(pkg ? { package: pkg } : {}),
          ...(o.repo ? { repository: o.repo } : {}),
          ...(o.arch ? { arch: o.arch } : {}),
        });
        if (cenv.json()) return printJson(r.wiped);
        if (r.wiped.length === 0) return print("nothing to wipe");
        print(
          table(
            ["REPOSITORY", "ARCH", "PACKAGE"],
            r.wiped.map((w) => [w.repository, w.arch, w.package])
          )
        );
      });
    });

  program
    .command("jobhistory <project> <repository> <arch> [package]")
    .description("finished jobs of a repository/arch, newest first (OBS _jobhistory)")
    .option("--limit <n>", "at most this many", limit, 50)
    .action(
      async (project: string, repository: string, arch: string, pkg: string | undefined, o: { limit: number }) => {
        await withClients(cenv, async (c) => {
          const list = await c.repo.call(
            "history.jobs",
            { project, repository, arch, ...(pkg ? { package: pkg } : {}), limit: o.limit },
            { idempotent: true }
          );
          if (cenv.json()) return printJson(list);
          print(
            table(
              ["ENDED", "PACKAGE", "CODE", "VERSREL", "BCNT", "WAITED", "BUILT", "WORKER", "REASON"],
              list.map((j) => [
                when(j.endTime),
                j.package,
                j.code,
                j.versrel,
                j.bcnt,
                seconds(Math.max(0, j.startTime - j.readyTime)),
                seconds(Math.max(0, j.endTime - j.startTime)),
                j.workerId,
                j.reason,
              ])
            )
          );
        });
      }
    );

  program
    .command("buildhistory <project> <repository> <arch> <package>")
    .description("successful builds of a package, oldest first (OBS _history)")
    .option("--limit <n>", "only the newest N", limit)
    .action(async (project: string, repository: string, arch: string, pkg: string, o: { limit?: number }) => {
      await withClients(cenv, async (c) => {
        const list = await c.repo.call(
          "history.build",
          { project, repository, arch, package: pkg, ...(o.limit ? { limit: o.limit } : {}) },
          { idempotent: true }
        );
        if (cenv.json()) return printJson(list);
        print(
          table(
            ["TIME", "VERSREL", "BCNT", "REV", "SRCMD5", "DURATION", "WORKER"],
            list.map((b) => [when(b.time), b.versrel, b.bcnt, b.rev, b.srcmd5, seconds(b.duration), b.workerId])
          )
        );
      });
    });

  program
    .command("published <project>")
    .description("the published repositories of a project: version, binaries, where they are")
    .action(async (project: string) => {
      await withClients(cenv, async (c) => {
        const list = await publisher(c).call("publish.status", { project }, { idempotent: true });
        if (cenv.json()) return printJson(list);
        print(
          table(
            ["REPOSITORY", "VERSION", "BINARIES", "ARCHS", "PUBLISHED", "PATH"],
            list.map((r) => [
              r.repository,
              r.version,
              r.binaries,
              r.archs.join(","),
              `${formatAge(Date.now() - r.time)} ago`,
              r.path,
            ])
          )
        );
      });
    });

  const admin = adminGroup(program);
  admin
    .command("rebuild-pool <project> <repository> <arch>")
    .description("recompute the build pool from the stored results and repair the stored pool")
    .option("--deep", "first derive each package's bininfo from its full result again")
    .action(async (project: string, repository: string, arch: string, o: { deep?: boolean }) => {
      await withClients(cenv, async (c) => {
        const r = await c.repo.call(
          "pool.rebuild",
          { project, repository, arch, ...(o.deep ? { deep: true } : {}) },
          { timeoutMs: 300_000 }
        );
        if (cenv.json()) return printJson(r);
        print(
          `pool of ${project}/${repository}/${arch}: ${r.binaries} binaries; repaired ${r.added} missing, ${r.removed} extra, ${r.changed} wrong${o.deep ? `; ${r.bininfoRepaired} bininfo repaired` : ""}`
        );
      });
    });

  admin
    .command("pool <project> <repository> <arch>")
    .description("list the build pool: the binary each name resolves to, and its package")
    .action(async (project: string, repository: string, arch: string) => {
      await withClients(cenv, async (c) => {
        const pool: PoolBinary[] = [];
        let after: string | undefined;
        do {
          const page = await c.repo.call(
            "pool.page",
            { project, repository, arch, ...(after !== undefined ? { after } : {}) },
            { idempotent: true, timeoutMs: 60_000 }
          );
          pool.push(...page.binaries);
          after = page.next;
        } while (after !== undefined);
        if (cenv.json()) return printJson(pool);
        print(
          table(
            ["NAME", "VERSION", "ARCH", "PACKAGE", "FILE", "SIZE"],
            pool.map((b) => [
              b.name,
              `${b.epoch ? `${b.epoch}:` : ""}${b.version}-${b.release}`,
              b.arch,
              b.package,
              b.filename,
              formatBytes(b.size),
            ])
          )
        );
      });
    });

  admin
    .command("publish <project> <repository>")
    .description("publish a repository now, from every arch's current results")
    .action(async (project: string, repository: string) => {
      await withClients(cenv, async (c) => {
        const r = await publisher(c).call("publish.now", { project, repository }, { timeoutMs: 60 * 60_000 });
        if (cenv.json()) return printJson(r);
        print(
          r.outcome === "published"
            ? `published version ${r.version} (${r.binaries} binaries) at ${r.path}`
            : `${r.outcome}${r.version !== undefined ? ` (version ${r.version}, ${r.binaries} binaries)` : ""}`
        );
      });
    });
}
