/**
 * {@link sandboxSelfTest}: does this host have what the sandbox needs? Run at `kiln worker`
 * start-up; a worker that fails it must not take jobs.
 */
import { access, chmod, constants, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { createRunCgroups, removeStaleCgroups } from "./cgroup.ts";
import { resolveLimits } from "./limits.ts";
import { runSandboxed } from "./run.ts";

/** Programs the sandbox runs on the host or inside it (from the host's /usr). */
export const REQUIRED_TOOLS = [
  "unshare",
  "setpriv",
  "prlimit",
  "mount",
  "bwrap",
  "rpmbuild",
  "rpm2cpio",
  "bsdtar",
  "find",
  "stat",
  "cp",
  "install",
  "bash",
] as const;

const TOOL_DIRS = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"];

async function findTool(name: string): Promise<string | undefined> {
  for (const d of TOOL_DIRS) {
    const p = path.join(d, name);
    if (
      await access(p, constants.X_OK).then(
        () => true,
        () => false
      )
    ) {
      return p;
    }
  }
  return undefined;
}

/** Options of {@link sandboxSelfTest}. */
export interface SelfTestOptions {
  /** Where the trial run may create a scratch directory. @default "/var/tmp" */
  scratchDir?: string;
}

/**
 * Removes cgroups a crashed worker left, checks the tools, then runs a real sandbox: user namespaces, bwrap, an overlay with a layer on
 * top of /usr, and rpmbuild starting inside it. Logs (warns) when cgroups are not available and
 * limits fall back to rlimits.
 */
export async function sandboxSelfTest(
  log: Logger,
  opts: SelfTestOptions = {}
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const missing: string[] = [];
  for (const t of REQUIRED_TOOLS) if (!(await findTool(t))) missing.push(t);
  if (missing.length > 0) return { ok: false, reason: `missing programs: ${missing.join(", ")}` };

  await removeStaleCgroups(log);
  const cg = createRunCgroups({ memoryBytes: 64 * 1024 * 1024, pids: 64 }, log);
  const cgroupInfo = { memory: cg.memory?.version ?? "rlimit", pids: cg.pids?.version ?? "rlimit" };
  await cg.remove(log);
  if (!cg.memory || !cg.pids) log.warn(cgroupInfo, "sandbox cgroups unavailable, falling back to rlimits");

  const scratch = await mkdtemp(path.join(opts.scratchDir ?? "/var/tmp", "kiln-sandbox-selftest-"));
  try {
    const layer = path.join(scratch, "layer");
    const share = path.join(layer, "usr", "share", "kiln-selftest");
    await mkdir(share, { recursive: true });
    await writeFile(path.join(share, "marker"), "overlay-ok\n");
    // The sandbox reads the layer as "other", whatever the worker's umask.
    for (const d of [layer, path.join(layer, "usr"), path.join(layer, "usr", "share"), share]) await chmod(d, 0o755);
    await chmod(path.join(share, "marker"), 0o644);
    let output = "";
    const result = await runSandboxed({
      dir: path.join(scratch, "run"),
      command: [
        "/bin/sh",
        "-c",
        "cat /usr/share/kiln-selftest/marker && rpmbuild --version >/dev/null && echo rpmbuild-ok",
      ],
      root: { layers: [layer] },
      limits: resolveLimits({
        wallMs: 60_000,
        idleLogMs: 60_000,
        memoryBytes: 256 * 1024 * 1024,
        diskBytes: 16 * 1024 * 1024,
      }),
      onOutput: (c) => {
        if (output.length < 4096) output += c.toString("utf8");
      },
      log,
    });
    if (result.type !== "sandbox.exited" || result.code !== 0) {
      return { ok: false, reason: `trial sandbox run ended with ${result.type}: ${output.trim().slice(-300)}` };
    }
    if (!output.includes("overlay-ok") || !output.includes("rpmbuild-ok")) {
      return { ok: false, reason: `trial sandbox run printed unexpected output: ${output.trim().slice(-300)}` };
    }
    log.info(cgroupInfo, "sandbox self-test passed");
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `trial sandbox run failed: ${(err as Error).message}` };
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}
