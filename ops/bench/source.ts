/**
 * Benchmark of the source role, run as a user would: a real nats-server, the source role in its
 * own process (`kiln serve --roles source`), and `kiln` commands as child processes.
 *
 * Measured:
 * - `kiln commit` of a package with 1,000 small files (wall time, the CLI's start included);
 * - the re-commit with one file changed: bytes and files uploaded (osc's protocol: only content
 *   the server lacks);
 * - `project.list` on a server with 1,000 projects (median of several calls, and `kiln ls`);
 * - committing one 1 GiB file: wall time, and the peak RSS (VmHWM) of the source role process
 *   and of the CLI; then the unchanged re-commit, which must upload nothing.
 *
 * Run: `node --import tsx ops/bench/source.ts [--files N] [--projects N] [--big-mib N]`
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execa, type ResultPromise } from "execa";
import pino from "pino";
import type { SourceApi } from "../../actors/index.ts";
import {
  Identity,
  NatsServerProcess,
  Role,
  RoleClient,
  RpcClient,
  connectNats,
  subjects,
} from "../../transport/index.ts";
import { percentile } from "./util.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const KILN = path.join(REPO_ROOT, "cli", "bin", "kiln.js");
const MiB = 1024 * 1024;

export interface SourceBenchOptions {
  /** Files in the many-files package. @default 1000 */
  files?: number;
  /** Projects on the server for the listing. @default 1000 */
  projects?: number;
  /** Size of the large file, MiB. @default 1024 */
  bigMiB?: number;
}

export interface SourceBenchReport {
  manyFiles: { files: number; commitMs: number; uploadedBytes: number };
  recommitOneChanged: { commitMs: number; uploadedFiles: number; uploadedBytes: number };
  listing: { projects: number; rpcMedianMs: number; rpcP90Ms: number; cliMs: number };
  bigFile: {
    bytes: number;
    commitMs: number;
    uploadedBytes: number;
    sourceRolePeakRssMiB: number;
    sourceRoleBaselineRssMiB: number;
    cliPeakRssMiB: number;
    recommitMs: number;
    recommitUploadedBytes: number;
  };
}

/** Peak and current RSS of a process, from /proc (VmHWM is the kernel's high-water mark). */
function rssOf(pid: number): { peak: number; now: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { peak: kb("VmHWM") * 1024, now: kb("VmRSS") * 1024 };
  } catch {
    return undefined;
  }
}

/** Runs a kiln command, sampling its RSS while it runs. */
async function kilnTimed(
  env: Record<string, string>,
  args: string[]
): Promise<{ ms: number; stdout: string; peakRss: number }> {
  const t = performance.now();
  const proc: ResultPromise = execa("node", [KILN, ...args], { env, extendEnv: true, reject: false });
  let peakRss = 0;
  const timer = setInterval(() => {
    const r = proc.pid ? rssOf(proc.pid) : undefined;
    if (r) peakRss = Math.max(peakRss, r.peak, r.now);
  }, 20);
  const r = await proc;
  clearInterval(timer);
  if (r.exitCode !== 0) throw new Error(`kiln ${args.join(" ")} exited ${r.exitCode}: ${String(r.stderr)}`);
  return { ms: performance.now() - t, stdout: String(r.stdout), peakRss };
}

async function writeBigFile(file: string, mib: number): Promise<void> {
  const block = randomBytes(MiB);
  const fh = await open(file, "w");
  try {
    for (let i = 0; i < mib; i++) {
      block.writeUInt32BE(i, 0);
      await fh.write(block, 0, MiB, i * MiB);
    }
  } finally {
    await fh.close();
  }
}

export async function runSourceBench(opts: SourceBenchOptions = {}): Promise<SourceBenchReport> {
  const nFiles = opts.files ?? 1000;
  const nProjects = opts.projects ?? 1000;
  const bigMiB = opts.bigMiB ?? 1024;
  const log = pino({ level: "warn" });
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-bench-source-"));
  const server = await NatsServerProcess.start(
    { jetstream: { store_dir: path.join(dir, "js") }, max_payload: MiB },
    { dir: path.join(dir, "nats") }
  );
  const dataDir = path.join(dir, "data");
  mkdirSync(dataDir);
  const role = execa("node", [KILN, "--data", dataDir, "--nats", server.url, "serve", "--roles", "source"], {
    env: { KILN_LOG_LEVEL: "warn" },
    extendEnv: true,
    reject: false,
  });
  const nc = await connectNats({ servers: server.url, name: "bench-source", log });
  try {
    // The first admin may register itself (no admin exists yet on this fresh server).
    const admin = Identity.create();
    const idFile = path.join(dir, "admin.identity");
    writeFileSync(idFile, `${admin.seed()}\n`, { mode: 0o600 });
    const src = new RoleClient<SourceApi>(new RpcClient(nc, { signer: admin }), (t) => subjects.rpc(Role.Source, t));
    for (let attempt = 0; ; attempt++) {
      try {
        await src.call("user.add", { name: "admin", pubkey: admin.publicKey, admin: true });
        break;
      } catch (err) {
        // The role process is still starting.
        if ((err as { code?: string }).code !== "ERR_NO_RESPONDERS" || attempt > 60) throw err;
      }
    }
    const env = { KILN_NATS_URL: server.url, KILN_IDENTITY: idFile, KILN_LOG_LEVEL: "warn", KILN_DATA: dataDir };
    await src.call("project.put-meta", {
      project: "bench",
      xml: `<project name="bench"><title/><description/></project>`,
    });

    // 1,000 small files.
    const many = path.join(dir, "many");
    mkdirSync(many);
    for (let i = 0; i < nFiles; i++) {
      writeFileSync(
        path.join(many, `file-${String(i).padStart(4, "0")}.txt`),
        `small file ${i}\n${"x".repeat(i % 200)}\n`
      );
    }
    const c1 = await kilnTimed(env, ["--json", "commit", "bench", "many", many, "-m", "many"]);
    const r1 = JSON.parse(c1.stdout) as { uploadedBytes: number };
    writeFileSync(path.join(many, "file-0500.txt"), "changed\n");
    const c2 = await kilnTimed(env, ["--json", "commit", "bench", "many", many, "-m", "one changed"]);
    const r2 = JSON.parse(c2.stdout) as { uploadedBytes: number; uploadedFiles: number };

    // 1,000 projects.
    for (let i = 0; i < nProjects; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, nProjects - i) }, (_, j) => {
          const name = `bench:p${String(i + j).padStart(4, "0")}`;
          return src.call("project.put-meta", {
            project: name,
            xml: `<project name="${name}"><title>project ${i + j}</title><description/></project>`,
          });
        })
      );
    }
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const list = await src.call("project.list", {});
      times.push(performance.now() - t);
      if (list.length < nProjects) throw new Error(`listed ${list.length} projects`);
    }
    const ls = await kilnTimed(env, ["ls"]);

    // One large file.
    const big = path.join(dir, "big");
    mkdirSync(big);
    await writeBigFile(path.join(big, "big.tar"), bigMiB);
    const rolePid = role.pid!;
    const baseline = rssOf(rolePid)?.now ?? 0;
    // VmHWM covers the role's whole life; its start-up and the small commits stay far below.
    const c3 = await kilnTimed(env, ["--json", "commit", "bench", "big", big, "-m", "big"]);
    const rolePeak = rssOf(rolePid)?.peak ?? 0;
    const r3 = JSON.parse(c3.stdout) as { uploadedBytes: number };
    const c4 = await kilnTimed(env, ["--json", "commit", "bench", "big", big, "-m", "again"]);
    const r4 = JSON.parse(c4.stdout) as { uploadedBytes: number };

    return {
      manyFiles: { files: nFiles, commitMs: c1.ms, uploadedBytes: r1.uploadedBytes },
      recommitOneChanged: { commitMs: c2.ms, uploadedFiles: r2.uploadedFiles, uploadedBytes: r2.uploadedBytes },
      listing: {
        projects: nProjects + 1,
        rpcMedianMs: percentile(times, 50),
        rpcP90Ms: percentile(times, 90),
        cliMs: ls.ms,
      },
      bigFile: {
        bytes: bigMiB * MiB,
        commitMs: c3.ms,
        uploadedBytes: r3.uploadedBytes,
        sourceRolePeakRssMiB: rolePeak / MiB,
        sourceRoleBaselineRssMiB: baseline / MiB,
        cliPeakRssMiB: c3.peakRss / MiB,
        recommitMs: c4.ms,
        recommitUploadedBytes: r4.uploadedBytes,
      },
    };
  } finally {
    await nc.close().catch(() => undefined);
    role.kill("SIGTERM");
    await role;
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rep = await runSourceBench({ files: arg("--files"), projects: arg("--projects"), bigMiB: arg("--big-mib") });
  process.stdout.write(`${JSON.stringify(rep, null, 2)}\n`);
  const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  const b = rep.bigFile;
  process.stdout.write(
    [
      `commit of ${rep.manyFiles.files} small files: ${s(rep.manyFiles.commitMs)} (kiln commit, ${rep.manyFiles.uploadedBytes} bytes uploaded)`,
      `re-commit with one file changed: ${rep.recommitOneChanged.uploadedFiles} file, ${rep.recommitOneChanged.uploadedBytes} bytes uploaded, ${s(rep.recommitOneChanged.commitMs)}`,
      `listing ${rep.listing.projects} projects: project.list median ${rep.listing.rpcMedianMs.toFixed(1)} ms (p90 ${rep.listing.rpcP90Ms.toFixed(1)} ms); kiln ls ${s(rep.listing.cliMs)}`,
      `commit of a ${(b.bytes / MiB).toFixed(0)} MiB file: ${s(b.commitMs)} (${(b.bytes / MiB / (b.commitMs / 1000)).toFixed(0)} MiB/s); peak RSS source role ${b.sourceRolePeakRssMiB.toFixed(0)} MiB (${b.sourceRoleBaselineRssMiB.toFixed(0)} MiB before), kiln commit ${b.cliPeakRssMiB.toFixed(0)} MiB; unchanged re-commit ${s(b.recommitMs)}, ${b.recommitUploadedBytes} bytes uploaded`,
    ].join("\n") + "\n"
  );
}
