/**
 * Build commands: `results`, `log`, `binaries`, `rebuild`, `abort`, `workers`, `jobs`, `reason`,
 * `buildinfo`, `builddepinfo`, `events`.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { repoFileClient, type BuildInfoView, type PackageResult, type RepoResult } from "../../actors/index.ts";
import {
  InvalidInputError,
  NotFoundError,
  delay,
  downloadBlob,
  readBlobBytes,
  subjects,
  subscribeLog,
  type KilnError,
  type LogChunk,
} from "../../transport/index.ts";
import type { Clients } from "../client.ts";
import { EXIT, type CommandEnv } from "../main.ts";
import { count, formatAge, formatBytes, print, printJson, progress, progressDone, table } from "../output.ts";
import { timeout } from "./service.ts";
import { followEvents, withClients } from "./source.ts";

interface Target {
  repository: string;
  arch: string;
}

/** The repository/arch pairs of a project, filtered by -r/-a. */
async function targetsOf(c: Clients, project: string, repo?: string, arch?: string): Promise<Target[]> {
  const meta = (await c.source.call("project.get-meta", { project })).meta;
  const out: Target[] = [];
  for (const r of meta.repositories) {
    if (repo && r.name !== repo) continue;
    for (const a of r.archs) if (!arch || a === arch) out.push({ repository: r.name, arch: a });
  }
  if (!out.length)
    throw new NotFoundError(
      `project ${project} has no repository${repo ? ` '${repo}'` : ""}${arch ? ` for ${arch}` : ""}`
    );
  return out;
}

async function collectResults(
  c: Clients,
  project: string,
  repo?: string,
  arch?: string,
  pkg?: string
): Promise<RepoResult[]> {
  const targets = await targetsOf(c, project, repo, arch);
  const out: RepoResult[] = [];
  for (const a of [...new Set(targets.map((t) => t.arch))]) {
    try {
      const r = await c
        .sched(a)
        .call(
          "results.get",
          { project, ...(repo ? { repository: repo } : {}), ...(pkg ? { package: pkg } : {}) },
          { idempotent: true }
        );
      out.push(...r);
    } catch (err) {
      if ((err as KilnError).code !== "ERR_NO_RESPONDERS" && (err as KilnError).code !== "ERR_TIMEOUT") throw err;
      for (const t of targets.filter((x) => x.arch === a)) {
        out.push({ project, repository: t.repository, arch: a, code: "unknown", dirty: true, packages: [] });
      }
    }
  }
  return out.sort((x, y) => (x.repository + x.arch < y.repository + y.arch ? -1 : 1));
}

/** Codes while which `results -w` keeps waiting (as osc does); kept in step with actors' UNFINISHED_CODES by a unit test. */
export const WAIT_CODES: ReadonlySet<string> = new Set([
  "blocked",
  "scheduled",
  "dispatching",
  "building",
  "signing",
  "finished",
]);
const unfinished = (rs: RepoResult[]): boolean =>
  rs.some((r) => r.dirty || r.packages.some((p) => WAIT_CODES.has(p.code)));

const failedCodes = new Set<string>(["failed", "broken", "unresolvable"]);

/** What `rebuild --code` can select: the codes the scheduler decides (a job's own codes are `scheduled` there). */
const REBUILD_CODES: readonly string[] = [
  "succeeded",
  "failed",
  "unresolvable",
  "broken",
  "blocked",
  "scheduled",
  "disabled",
  "excluded",
  "locked",
  "unknown",
];

/**
 * `kiln results` as text: one row per package, and a row with the repository's own state where
 * it says something (no packages yet, or OBS's reason: broken, …).
 */
export function renderResults(rs: RepoResult[]): string {
  const rows: string[][] = [];
  for (const r of rs) {
    if (!r.packages.length || r.details)
      rows.push([r.repository, r.arch, "", `(${r.code}${r.dirty ? ", outdated" : ""})`, r.details ?? ""]);
    for (const p of r.packages) rows.push([r.repository, r.arch, p.package, p.code + (r.dirty ? "*" : ""), p.details]);
  }
  return table(["REPOSITORY", "ARCH", "PACKAGE", "CODE", "DETAILS"], rows);
}

/** `kiln buildinfo` as text: the job's header lines, then its dependencies (as OBS's buildinfo). */
export function renderBuildInfo(b: BuildInfoView): string {
  const lines = [`${b.package}: ${b.code}${b.details ? ` (${b.details})` : ""}`];
  const field = (k: string, v: string): void => void lines.push(`  ${k.padEnd(11)} ${v}`);
  field("srcmd5", b.srcmd5 ?? "-");
  field("recipe", b.specFile ?? "-");
  if (b.versrel) field("versrel", `${b.versrel}, build counter ${b.bcnt}, release ${b.release ?? "-"}`);
  if (b.debuginfo !== undefined) field("debuginfo", b.debuginfo ? "yes" : "no");
  if (b.subpacks?.length) field("subpacks", b.subpacks.join(" "));
  for (const x of b.constraints?.prjconf ?? []) field("constraint", `${x} (project config)`);
  for (const x of b.constraints?.recipe ?? []) field("constraint", `${x} (recipe)`);
  if (b.constraints?.file !== undefined) {
    field("constraint", "_constraints:");
    for (const l of b.constraints.file.trimEnd().split("\n")) lines.push(`    ${l}`);
  }
  if (b.error) {
    lines.push(`cannot expand: ${b.error}`);
    return lines.join("\n");
  }
  lines.push(
    table(
      ["DEPENDENCY", "VERSION", "FROM", "FLAGS"],
      b.bdeps.map((d) => [
        d.name,
        `${d.epoch ? `${d.epoch}:` : ""}${d.version}-${d.release}.${d.arch}`,
        `${d.project}/${d.repository}`,
        (["preinstall", "vminstall", "runscripts", "notmeta"] as const).filter((f) => d[f]).join(","),
      ])
    )
  );
  return lines.join("\n");
}

/** Finds the job of a package now queued or building, through the dispatcher. */
async function findJob(c: Clients, project: string, repository: string, arch: string, pkg: string) {
  const jobs = await c.dispatcher.call("job.list", { project, repository, arch, package: pkg }, { idempotent: true });
  return jobs[0];
}

export function registerBuildCommands(program: Command, cenv: CommandEnv): void {
  program
    .command("results <project> [package]")
    .description("show the state of every package per repository/arch (OBS codes)")
    .option("-r, --repo <repository>", "only this repository")
    .option("-a, --arch <arch>", "only this arch")
    .option("-w, --watch", "wait until nothing is left to build, showing progress")
    .option("--exit-status", `exit ${EXIT.somethingFailed} when a package failed, is broken or unresolvable`)
    .option("--timeout <seconds>", "with -w, give up waiting after this long (exit 1)", timeout)
    .action(
      async (
        project: string,
        pkg: string | undefined,
        o: { repo?: string; arch?: string; watch?: boolean; exitStatus?: boolean; timeout?: number }
      ) => {
        await withClients(cenv, async (c) => {
          const deadline = o.timeout ? Date.now() + o.timeout : Infinity;
          let rs = await collectResults(c, project, o.repo, o.arch, pkg);
          let last = "";
          while (o.watch && unfinished(rs)) {
            // Not bad input: exit 1, as `kiln service wait` when it gives up.
            if (Date.now() > deadline) throw new Error(`still building after ${o.timeout! / 1000} s`);
            const counts = new Map<string, number>();
            for (const r of rs) for (const p of r.packages) counts.set(p.code, (counts.get(p.code) ?? 0) + 1);
            const line = [...counts].map(([k, v]) => `${v} ${k}`).join(", ") || "waiting for the scheduler";
            if (line !== last) {
              if (process.stderr.isTTY) progress(line);
              else process.stderr.write(line + "\n");
              last = line;
            }
            await delay(500);
            rs = await collectResults(c, project, o.repo, o.arch, pkg);
          }
          progressDone();
          const flat: PackageResult[] = rs.flatMap((r) => r.packages);
          if (cenv.json()) printJson(flat);
          else print(renderResults(rs));
          if (o.exitStatus && flat.some((p) => failedCodes.has(p.code))) process.exitCode = EXIT.somethingFailed;
        });
      }
    );

  program
    .command("log <project> <repository> <arch> <package>")
    .description("print the build log (-f follows a running build live)")
    .option("-f, --follow", "follow a running (or waiting) build until it ends")
    .action(async (project: string, repository: string, arch: string, pkg: string, o: { follow?: boolean }) => {
      await withClients(cenv, async (c) => {
        let job = await findJob(c, project, repository, arch, pkg);
        while (o.follow && job && job.code !== "building") {
          progress(`waiting for the build to start (${job.code}${job.details ? `: ${job.details}` : ""})`);
          await delay(500);
          job = await findJob(c, project, repository, arch, pkg);
        }
        progressDone();
        if (job?.code === "building" && job.workerId) {
          await streamLog(c, job.jobId, job.workerId, o.follow === true);
          return;
        }
        const r = await c.repo.call("result.get", { project, repository, arch, package: pkg });
        if (!r?.logSha256) throw new NotFoundError(`no build log of ${pkg} in ${project}/${repository}/${arch}`);
        const file = repoFileClient(c.repo, { project, repository, arch, package: pkg });
        process.stdout.write(await readBlobBytes(file, r.logSha256, 1024 ** 3));
      });
    });

  program
    .command("binaries <project> <repository> <arch> <package>")
    .description("list the built files of a package, or download them with -o")
    .option("-o, --out <dir>", "download into DIR")
    .action(async (project: string, repository: string, arch: string, pkg: string, o: { out?: string }) => {
      await withClients(cenv, async (c) => {
        const where = { project, repository, arch, package: pkg };
        const list = await c.repo.call("binaries.list", where);
        if (o.out) {
          mkdirSync(o.out, { recursive: true });
          for (const b of list) {
            if (b.filename.includes("/") || b.filename.startsWith("."))
              throw new InvalidInputError(`refusing file name ${b.filename}`);
            await downloadBlob(repoFileClient(c.repo, where), b.sha256, path.join(o.out, b.filename), {
              size: b.size,
              onProgress: (d, t) => progress(`${b.filename}: ${formatBytes(d)} / ${formatBytes(t)}`),
            });
            progressDone();
          }
        }
        if (cenv.json()) return printJson(list);
        print(
          table(
            ["FILE", "SIZE", "SHA256"],
            list.map((b) => [b.filename, formatBytes(b.size), b.sha256])
          )
        );
        if (o.out) print(`downloaded ${list.length} files into ${o.out}`);
      });
    });

  program
    .command("rebuild <project> [package]")
    .description("rebuild packages (all, or one; filtered by repository, arch and code)")
    .option("-r, --repo <repository>", "only this repository")
    .option("-a, --arch <arch>", "only this arch")
    .option("--code <code>", "only packages with this code (e.g. failed)")
    .action(async (project: string, pkg: string | undefined, o: { repo?: string; arch?: string; code?: string }) => {
      if (o.code !== undefined && !REBUILD_CODES.includes(o.code))
        throw new InvalidInputError(`unknown package code '${o.code}' (one of ${REBUILD_CODES.join(", ")})`);
      await withClients(cenv, async (c) => {
        const targets = await targetsOf(c, project, o.repo, o.arch);
        let n = 0;
        let kept = 0;
        for (const a of [...new Set(targets.map((t) => t.arch))]) {
          const r = await c.sched(a).call("rebuild.request", {
            project,
            ...(pkg ? { package: pkg } : {}),
            ...(o.repo ? { repository: o.repo } : {}),
            ...(o.code ? { code: o.code } : {}),
          });
          n += r.packages;
          kept += r.kept;
        }
        if (cenv.json()) return printJson({ packages: n, kept });
        print(
          `rebuild triggered for ${count(n, "package build")}` +
            (kept ? ` (${kept} already queued or building with the current sources: that build is kept)` : "")
        );
      });
    });

  program
    .command("abort <project> [packages...]")
    .description(
      "abort queued and running builds: a running build's whole process tree is killed, and the package ends failed"
    )
    .option("-r, --repo <repository>", "only this repository")
    .option("-a, --arch <arch>", "only this arch")
    .action(async (project: string, pkgs: string[], o: { repo?: string; arch?: string }) => {
      await withClients(cenv, async (c) => {
        const r = await c.dispatcher.call("job.abort", {
          project,
          ...(pkgs.length ? { packages: pkgs } : {}),
          ...(o.repo ? { repository: o.repo } : {}),
          ...(o.arch ? { arch: o.arch } : {}),
        });
        if (cenv.json()) return printJson(r);
        print(`aborted ${count(r.aborted, "job")}`);
      });
    });

  program
    .command("workers")
    .description("list workers: idle, building or down, with their current jobs")
    .action(async () => {
      await withClients(cenv, async (c) => {
        const ws = await c.dispatcher.call("worker.list", {}, { idempotent: true });
        if (cenv.json()) return printJson(ws);
        print(
          table(
            ["WORKER", "STATE", "HOSTARCH", "ARCHS", "LABELS", "SLOTS", "SEEN", "JOBS / DETAILS"],
            ws.map((w) => [
              w.workerId,
              w.state,
              w.hostArch,
              w.buildArchs.join(","),
              w.registration.hostLabels.join(",") || "-",
              `${w.running.length}/${w.jobs}`,
              `${formatAge(Date.now() - w.lastSeen)} ago`,
              [
                ...w.running.map(
                  (r) => `${r.project}/${r.repository}/${r.arch}/${r.package} (${formatAge(Date.now() - r.since)})`
                ),
                ...(w.details ? [w.details] : []),
              ].join(" "),
            ])
          )
        );
      });
    });

  program
    .command("jobs [project]")
    .description("list queued and running jobs")
    .option("-a, --arch <arch>", "only this arch")
    .action(async (project: string | undefined, o: { arch?: string }) => {
      await withClients(cenv, async (c) => {
        const limit = 2000;
        const js = await c.dispatcher.call(
          "job.list",
          { ...(project ? { project } : {}), ...(o.arch ? { arch: o.arch } : {}), limit },
          { idempotent: true }
        );
        if (cenv.json()) return printJson(js);
        print(
          table(
            ["JOB", "PACKAGE", "CODE", "WORKER", "REASON", "WAITING", "DETAILS"],
            js.map((j) => [
              j.jobId.slice(0, 12),
              `${j.project}/${j.repository}/${j.arch}/${j.package}`,
              j.code,
              j.workerId ?? "",
              j.reason,
              formatAge(Date.now() - j.readyTime),
              j.details ?? "",
            ])
          )
        );
        if (js.length === limit) print(`(the first ${limit} jobs, running ones first; narrow with PROJECT or -a)`);
      });
    });

  program
    .command("reason <project> <repository> <arch> <package>")
    .description("why a package was (re)built: the changed sources or dependencies")
    .action(async (project: string, repository: string, arch: string, pkg: string) => {
      await withClients(cenv, async (c) => {
        const r = await c.sched(arch).call("reason.get", { project, repository, package: pkg });
        if (cenv.json()) return printJson(r);
        if (!r) return print(`${pkg} was not built by this scheduler yet`);
        print(`${r.explain} (${new Date(r.time).toISOString()})`);
        if (r.oldsource) print(`  previous sources: ${r.oldsource}`);
        for (const ch of r.packagechange ?? []) print(`  ${ch.change.padEnd(8)} ${ch.key}`);
      });
    });

  program
    .command("buildinfo <project> <repository> <arch> <package>")
    .description("the job a build would get: release, debuginfo, constraints, the expanded dependencies with versions")
    .action(async (project: string, repository: string, arch: string, pkg: string) => {
      await withClients(cenv, async (c) => {
        const b = await c.sched(arch).call("buildinfo.get", { project, repository, package: pkg });
        if (cenv.json()) return printJson(b);
        print(renderBuildInfo(b));
      });
    });

  program
    .command("builddepinfo <project> <repository> <arch>")
    .description("dependencies, reverse dependencies and cycles of a repository's packages")
    .action(async (project: string, repository: string, arch: string) => {
      await withClients(cenv, async (c) => {
        const d = await c.sched(arch).call("builddepinfo.get", { project, repository });
        if (cenv.json()) return printJson(d);
        print(
          table(
            ["PACKAGE", "DEPENDS ON", "NEEDED BY"],
            d.packages.map((p) => [p.package, p.pkgdeps.join(" "), p.revdeps.join(" ")])
          )
        );
        for (const cyc of d.cycles) print(`cycle: ${cyc.join(" ")}`);
      });
    });

  program
    .command("events [project]")
    .description("print kiln's events as they happen (one JSON object per line), hidden projects' only to members")
    .option("--from <seq>", "start at this event stream sequence number (default: new events only)", (v) => Number(v))
    .action(async (project: string | undefined, o: { from?: number }) => {
      await withClients(cenv, async (c) => {
        const stop = new AbortController();
        process.once("SIGINT", () => stop.abort());
        await followEvents(
          c,
          { ...(project ? { project } : {}), ...(o.from !== undefined ? { from: o.from } : {}), signal: stop.signal },
          print
        ).catch((err: unknown) => {
          if (!stop.signal.aborted) throw err;
        });
      });
    });
}

/** Prints a running build's log from the start, then live; with follow, until the build ends. */
async function streamLog(c: Clients, jobId: string, workerId: string, follow: boolean): Promise<void> {
  const worker = c.rpc;
  const subject = (t: string): string => subjects.worker(workerId, t);
  let offset = 0;
  let ended = false;
  const live: LogChunk[] = [];
  let wake: (() => void) | undefined;
  const sub = subscribeLog(c.nc, jobId, (chunk) => {
    live.push(chunk);
    wake?.();
  });
  try {
    // Catch up from the worker's log file.
    for (;;) {
      const r = await worker.call<{ data: Uint8Array; size: number; done: boolean } | null>(
        subject("log.read"),
        { jobId, offset, length: 256 * 1024 },
        { idempotent: true }
      );
      if (!r) {
        ended = true;
        break;
      }
      if (r.data.length) {
        process.stdout.write(r.data);
        offset += r.data.length;
      }
      if (r.done) ended = true;
      if (offset >= r.size) break;
    }
    while (follow && !ended) {
      while (live.length) {
        const chunk = live.shift()!;
        if (chunk.eof) {
          ended = true;
          break;
        }
        if (chunk.offset + chunk.data.length <= offset) continue;
        const skip = Math.max(0, offset - chunk.offset);
        if (chunk.offset > offset) {
          // A gap (a chunk was missed): fetch it from the worker.
          const r = await worker.call<{ data: Uint8Array } | null>(
            subject("log.read"),
            { jobId, offset, length: chunk.offset - offset },
            { idempotent: true }
          );
          if (r?.data.length) {
            process.stdout.write(r.data);
            offset += r.data.length;
          }
        }
        process.stdout.write(chunk.data.subarray(skip));
        offset = chunk.offset + chunk.data.length;
      }
      if (ended) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 2000);
      });
      wake = undefined;
      // Still running? A worker that died ends the follow.
      const info = await worker
        .call<{ running: string[] }>(subject("worker.info"), {}, { idempotent: true, timeoutMs: 3000 })
        .catch(() => ({ running: [] as string[] }));
      if (!info.running.includes(jobId) && !live.length) ended = true;
    }
  } finally {
    sub.unsubscribe();
  }
}
