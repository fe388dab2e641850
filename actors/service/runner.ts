/**
 * Runs source services the way OBS's service runner does, each in a sandbox of its own:
 *
 * - the working directory is a host directory with the package's files under their plain names;
 *   each service gets a scratch copy of it as its current directory, a fresh empty `--outdir`,
 *   and its parameters as separate arguments (`<service> --outdir DIR --<param> <value> …`);
 * - after a service exits 0, the regular files at the top of its outdir join the working
 *   directory under their plain names (replacing files of that name) for the services after it,
 *   files it deleted from its copy are deleted, and each output is remembered as
 *   `_service:<service>:<file>` (a later output of the same name replaces the earlier one);
 * - a service that exits non-zero, is killed by a limit, leaves something that is not a regular
 *   file in its outdir, writes beside it, or names an output badly ends the run with a one-line
 *   error naming it; its output (stdout and stderr) is kept for `kiln service status`.
 *
 * The sandbox (sandbox/run.ts) shows the host's `/usr`, kiln's minimal `/etc`, the services
 * directory at `/kiln/services` and the working directory at `/kiln/src`, both read-only; the
 * writable tree is a size-limited tmpfs. kiln's data directory and other hidden paths are never
 * visible. In the service role the network is a namespace of the sandbox's own with outbound
 * connectivity but none of the host's loopback (sandbox/netns.ts), so that a service cannot reach
 * kiln's NATS server or anything else that listens there; at build time there is none.
 * The copy of the sources into the sandbox, the outdir checks and the listing of what is left
 * happen inside the sandbox, by a fixed shell script, as the sandbox user; everything they report
 * is checked again here before a file is taken.
 */
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { describeResult, runSandboxed, type IsolatedNetwork, type SandboxLimits } from "../../sandbox/index.ts";
import { validateFileName } from "../common/names.ts";
import { serviceArgs, serviceFileName, type ServiceParam } from "./service-xml.ts";

/** kiln's own service programs (ops/services). */
export const DEFAULT_SERVICES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../ops/services");

const MiB = 1024 * 1024;

/** Limits of one service in the service role. */
export const DEFAULT_SERVICE_LIMITS: Readonly<SandboxLimits> = Object.freeze({
  wallMs: 30 * 60_000,
  // Downloads and clones can be silent for long; the wall time is the real bound.
  idleLogMs: 30 * 60_000,
  logBytes: 16 * MiB,
  memoryBytes: 1024 * MiB,
  diskBytes: 4096 * MiB,
  pids: 512,
});

/** Most files one service may write. */
export const DEFAULT_MAX_SERVICE_FILES = 1000;
/** CPU time of each process of a service (RLIMIT_CPU), in seconds. */
export const DEFAULT_SERVICE_CPU_SECONDS = 600;
/** Output kept of a whole run (its end, when it is longer); it travels in one NATS message. */
export const MAX_RUN_OUTPUT_BYTES = 256 * 1024;

const SERVICES_AT = "/kiln/services";
const SOURCES_AT = "/kiln/src";
const HOME = "/home/abuild";

/**
 * Inside the sandbox, as the sandbox user: copy the sources into the writable home, run the
 * service there, then record what is left of the sources (`meta/remaining`), outdir entries that
 * are not regular files (`meta/irregular`) and files written beside the outdir (`meta/stray`),
 * NUL-separated. Arguments: the CPU seconds each process may use, the service name, then its
 * arguments. A process over its CPU time gets SIGXCPU (exit status 128 + 24), and SIGKILL 5 s
 * of CPU time later if it ignores that.
 */
const SANDBOX_SCRIPT = `set -u
cpu=$1; name=$2; shift 2
ulimit -S -t "$cpu" && ulimit -H -t $((cpu + 5)) || exit 120
cd "$HOME" && mkdir src out meta || exit 120
if ! cp -R --preserve=mode,timestamps ${SOURCES_AT}/. src/; then
  echo "kiln: copying the sources into the sandbox failed" >&2; exit 120
fi
cd src || exit 120
"${SERVICES_AT}/$name" "$@"
rc=$?
if [ "$rc" = 152 ]; then echo "$name: CPU time limit of $cpu s exceeded" >&2; fi
cd "$HOME" || exit 120
(cd src && for f in * .[!.]* ..?*; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\\0' "$f"; fi; done) > meta/remaining
: > meta/irregular
for f in out/* out/.[!.]* out/..?*; do
  if [ -L "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then printf '%s\\0' "\${f#out/}" >> meta/irregular; fi
done
: > meta/stray
for f in *; do
  case "$f" in src|out|meta) ;; *) if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\\0' "$f" >> meta/stray; fi ;; esac
done
exit $rc
`;

export interface ServiceCall {
  name: string;
  params: readonly ServiceParam[];
}

export interface RunServicesOptions {
  /** Host directory with the package files; changed in place as the services run. Readable by "other". */
  workDir: string;
  /** Private directory for the sandboxes (one subdirectory per service). */
  scratchDir: string;
  servicesDir: string;
  /**
   * The services' network: a namespace of their own (the service role), `true` for the host's
   * own, `false` for none.
   */
  network: boolean | IsolatedNetwork;
  /** Limits of each service. */
  limits: SandboxLimits;
  /** Most files one service may write. @default {@link DEFAULT_MAX_SERVICE_FILES} */
  maxFiles?: number;
  /** CPU seconds each process of a service may use. @default {@link DEFAULT_SERVICE_CPU_SECONDS} */
  cpuSeconds?: number;
  /** The package the services run for: `OBS_SERVICE_PROJECT` and `OBS_SERVICE_PACKAGE`, as OBS sets them. */
  package?: { project: string; package: string };
  /** Host paths that must not be visible (data directory, caches). */
  hiddenPaths?: readonly string[];
  log: Logger;
  signal?: AbortSignal;
  /** Output of the services as it happens (besides what the outcome keeps). */
  onOutput?: (chunk: Buffer) => void;
}

/** How a run of services ended. */
export type ServicesOutcome =
  | {
      type: "services.succeeded";
      /** What the run made: `_service:<service>:<file>` → the file in the working directory. */
      files: { name: string; plain: string; path: string }[];
      output: string;
    }
  | { type: "services.failed"; service: string; error: string; output: string };

/** Keeps the end of a long text. */
class Tail {
  #parts: Buffer[] = [];
  #size = 0;
  constructor(readonly max: number) {}
  push(b: Buffer): void {
    this.#parts.push(b);
    this.#size += b.length;
    while (this.#size > this.max && this.#parts.length > 1) this.#size -= this.#parts.shift()!.length;
  }
  text(): string {
    const all = Buffer.concat(this.#parts);
    return all.subarray(Math.max(0, all.length - this.max)).toString("utf8");
  }
}

const nulList = async (file: string): Promise<string[] | undefined> => {
  const text = await readFile(file, "utf8").catch(() => undefined);
  return text === undefined ? undefined : text.split("\0").filter((s) => s !== "");
};

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** The last line a service printed, as it may appear in result tables: one line, no control characters. */
function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.replace(CONTROL, "?").trim());
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]) return lines[i]!.slice(0, 2000);
  return "";
}

const shown = (name: string): string => JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);

/** Top-level regular files of a directory. */
async function filesOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out.sort();
}

async function move(from: string, to: string): Promise<void> {
  await rm(to, { force: true });
  try {
    await rename(from, to);
  } catch {
    await copyFile(from, to);
    await rm(from, { force: true });
  }
  await chmod(to, 0o644);
}

/**
 * Renames `_service:<service>:<file>` files of a directory to `<file>`, replacing files of that
 * name, as OBS's build does before build-time services and the build run.
 */
export async function useServiceFileNames(dir: string): Promise<void> {
  for (const name of (await filesOf(dir)).filter((n) => n.startsWith("_service:"))) {
    const sep = name.indexOf(":", "_service:".length);
    if (sep < 0 || sep === name.length - 1) continue;
    await move(path.join(dir, name), path.join(dir, name.slice(sep + 1)));
  }
}

/** Whether a service program is there and the sandbox user may run it. */
async function installed(servicesDir: string, name: string): Promise<boolean> {
  const st = await stat(path.join(servicesDir, name)).catch(() => undefined);
  return st !== undefined && st.isFile() && (st.mode & 0o001) !== 0;
}

/** Runs `services` in order on the working directory; never throws for what a service does. */
export async function runServices(
  services: readonly ServiceCall[],
  opts: RunServicesOptions
): Promise<ServicesOutcome> {
  const maxFiles = opts.maxFiles ?? DEFAULT_MAX_SERVICE_FILES;
  const cpuSeconds = Math.max(1, Math.ceil(opts.cpuSeconds ?? DEFAULT_SERVICE_CPU_SECONDS));
  const output = new Tail(MAX_RUN_OUTPUT_BYTES);
  const say = (text: string): void => {
    const b = Buffer.from(text);
    output.push(b);
    opts.onOutput?.(b);
  };
  /** plain name in the working directory → the service that made it */
  const produced = new Map<string, string>();
  const failed = (service: string, error: string): ServicesOutcome => {
    say(`[kiln] service ${service} failed: ${error}\n`);
    return { type: "services.failed", service, error, output: output.text() };
  };
  await mkdir(opts.scratchDir, { recursive: true, mode: 0o700 });

  for (const [i, svc] of services.entries()) {
    if (opts.signal?.aborted) return failed(svc.name, "aborted");
    if (!(await installed(opts.servicesDir, svc.name))) {
      return failed(
        svc.name,
        `service '${svc.name}' is not available (no program '${svc.name}' in the services directory)`
      );
    }
    say(`[kiln] running service ${svc.name}\n`);
    const dir = path.join(opts.scratchDir, String(i + 1));
    let serviceOutput = "";
    const result = await runSandboxed({
      dir,
      command: [
        "/bin/sh",
        "-c",
        SANDBOX_SCRIPT,
        "kiln-service",
        String(cpuSeconds),
        svc.name,
        ...serviceArgs(`${HOME}/out`, svc.params),
      ],
      cwd: HOME,
      ...(opts.package
        ? { env: { OBS_SERVICE_PROJECT: opts.package.project, OBS_SERVICE_PACKAGE: opts.package.package } }
        : {}),
      network: opts.network,
      binds: [
        { source: opts.servicesDir, target: SERVICES_AT },
        { source: opts.workDir, target: SOURCES_AT },
      ],
      collect: { dir: ".", paths: ["out", "meta"], maxDepth: 1, name: "*" },
      limits: opts.limits,
      onOutput: (chunk) => {
        if (serviceOutput.length < 64 * 1024) serviceOutput += chunk.toString("utf8");
        else serviceOutput = serviceOutput.slice(-32 * 1024) + chunk.toString("utf8");
        output.push(chunk);
        opts.onOutput?.(chunk);
      },
      log: opts.log,
      hostname: "kiln-service",
      ...(opts.hiddenPaths ? { hiddenPaths: opts.hiddenPaths } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    // A full disk may have cut an output short even when the service says it succeeded.
    if (result.type === "sandbox.exited" && result.code === 0 && result.stats.diskFull) {
      return failed(svc.name, `${svc.name}: disk limit of ${opts.limits.diskBytes} bytes reached`);
    }
    if (result.type !== "sandbox.exited" || result.code !== 0) {
      if (result.type === "sandbox.exited" && !result.stats.diskFull) {
        const line = lastLine(serviceOutput);
        if (line === "") return failed(svc.name, `${svc.name} exited with ${result.code}`);
        return failed(svc.name, line.startsWith(`${svc.name}:`) ? line : `${svc.name}: ${line}`);
      }
      return failed(svc.name, `${svc.name}: ${describeResult(result, opts.limits, svc.name).reason}`);
    }
    if (!result.collectOk) return failed(svc.name, `${svc.name}: copying its output out of the sandbox failed`);
    const meta = path.join(dir, "out", "meta");
    const irregular = await nulList(path.join(meta, "irregular"));
    const stray = await nulList(path.join(meta, "stray"));
    const remaining = await nulList(path.join(meta, "remaining"));
    if (!irregular || !stray || !remaining) {
      return failed(svc.name, `${svc.name}: the sandbox did not report what the service left`);
    }
    if (irregular.length > 0) {
      return failed(svc.name, `${svc.name} wrote ${shown(irregular[0]!)}, which is not a regular file`);
    }
    if (stray.length > 0) {
      return failed(
        svc.name,
        `${svc.name} wrote outside its output directory (${stray.slice(0, 3).map(shown).join(", ")}); only files in --outdir are kept`
      );
    }
    const outDir = path.join(dir, "out", "out");
    const outputs = await filesOf(outDir).catch(() => [] as string[]);
    if (outputs.length > maxFiles) {
      return failed(svc.name, `${svc.name} wrote ${outputs.length} files, more than the limit of ${maxFiles}`);
    }
    for (const name of outputs) {
      // Later services get outputs by patterns (`*.tar`) and pass them on to tools as arguments.
      if (name.startsWith("-")) {
        return failed(svc.name, `${svc.name} wrote a file it may not: ${shown(name)} starts with '-'`);
      }
      try {
        validateFileName(name);
      } catch (err) {
        return failed(svc.name, `${svc.name} wrote a file it may not: ${(err as Error).message}`);
      }
    }
    // What the service deleted from its copy is gone for the services after it, too.
    const left = new Set(remaining);
    for (const name of await filesOf(opts.workDir)) {
      if (left.has(name)) continue;
      await rm(path.join(opts.workDir, name), { force: true });
      produced.delete(name);
    }
    for (const name of outputs) {
      await move(path.join(outDir, name), path.join(opts.workDir, name));
      produced.set(name, svc.name);
    }
    await rm(dir, { recursive: true, force: true });
    say(
      `[kiln] service ${svc.name} wrote ${outputs.length} file${outputs.length === 1 ? "" : "s"}${outputs.length ? `: ${outputs.join(", ")}` : ""}\n`
    );
  }
  const files = [...produced.entries()]
    .map(([plain, service]) => ({ name: serviceFileName(service, plain), plain, path: path.join(opts.workDir, plain) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { type: "services.succeeded", files, output: output.text() };
}
