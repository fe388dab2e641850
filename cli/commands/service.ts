/**
 * Source service commands: `service run`, `service status`, `service wait` (osc's `service
 * remoterun` and the service info of a package listing).
 */
import type { Command } from "commander";
import { ServiceRunKind, ServiceState, type ServiceRunRecord, type ServiceStatusView } from "../../actors/index.ts";
import { InvalidInputError, delay } from "../../transport/index.ts";
import type { Clients } from "../client.ts";
import { EXIT, type CommandEnv } from "../main.ts";
import { formatBytes, print, printJson, table } from "../output.ts";
import { withClients } from "./source.ts";

const KINDS: readonly string[] = Object.values(ServiceRunKind);

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** Service output is untrusted: no terminal control sequences reach the terminal. */
const safe = (text: string): string =>
  text.replace(CONTROL, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`);

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function describeRun(r: ServiceRunRecord, now = Date.now()): string {
  const how =
    r.state === ServiceState.Running
      ? `running for ${seconds(now - r.requested)}`
      : `${r.state} after ${seconds((r.ended ?? now) - r.requested)}`;
  const made = r.committedRev !== undefined ? `, committed as revision ${r.committedRev}` : "";
  return `run ${r.runId} (${r.kind}) of revision ${r.rev}: ${how}${made}; caused by ${r.user}`;
}

function render(v: ServiceStatusView, withOutput: boolean): string {
  const lines: string[] = [`${v.project}/${v.package}, revision ${v.rev}`];
  if (v.services.length === 0) lines.push("services: none");
  else {
    lines.push("services:");
    lines.push(
      table(
        ["  NAME", "MODE", "FROM", "PARAMETERS"],
        v.services.map((s) => [
          `  ${s.name}`,
          s.mode,
          s.origin,
          s.params.map((p) => `${p.name}=${p.value.length > 40 ? `${p.value.slice(0, 40)}…` : p.value}`).join(" "),
        ])
      ).trimEnd()
    );
  }
  if (v.run) lines.push(describeRun(v.run));
  if (v.run?.error) lines.push(`error: ${v.run.error}`);
  const e = v.expansion;
  if (e?.state === ServiceState.Succeeded) {
    lines.push(`sources with the service files: srcmd5 ${e.xsrcmd5}`);
    lines.push(
      table(
        ["  FILE", "SIZE", "MD5"],
        e.files.map((f) => [`  ${f.name}`, formatBytes(f.size), f.md5])
      ).trimEnd()
    );
  } else if (e?.state === ServiceState.Failed && e.error !== v.run?.error) {
    lines.push(`revision ${e.rev}: service error: ${e.error}`);
  }
  if (withOutput && v.run?.output) lines.push("output:", v.run.output.trimEnd());
  return safe(lines.join("\n"));
}

/** Polls until the package's latest run has ended; returns it (undefined: no run at all). */
async function waitForRun(
  c: Clients,
  project: string,
  pkg: string,
  timeoutMs: number | undefined
): Promise<ServiceRunRecord | undefined> {
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  for (;;) {
    const v = await c.source.call("package.service-status", { project, package: pkg }, { idempotent: true });
    if (!v.run || v.run.state !== ServiceState.Running) return v.run;
    if (Date.now() > deadline) {
      throw new Error(`service run ${v.run.runId} of ${project}/${pkg} is still running after ${seconds(timeoutMs!)}`);
    }
    await delay(500);
  }
}

function ended(cenv: CommandEnv, project: string, pkg: string, run: ServiceRunRecord | undefined): void {
  if (cenv.json()) printJson(run ?? null);
  else if (!run) print(`${project}/${pkg} has no service runs`);
  else print(safe(describeRun(run) + (run.error ? `\nerror: ${run.error}` : "")));
  if (run?.state === ServiceState.Failed) process.exitCode = EXIT.failure;
}

/** `--timeout <seconds>` of the commands that wait, in milliseconds. */
export const timeout = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidInputError(`--timeout must be a number of seconds, got '${v}'`);
  return n * 1000;
};

export function registerServiceCommands(program: Command, cenv: CommandEnv): void {
  const service = program
    .command("service")
    .description("source services of a package: run them again, see how they went, wait for them");

  service
    .command("run <project> <package>")
    .description(
      "run the package's services again on the server (OBS runservice); --mode manual|disabled runs those " +
        "services instead and commits their output as files of a new revision"
    )
    .option("--mode <kind>", `which services: ${KINDS.join(", ")}`, ServiceRunKind.Server)
    .option("-w, --wait", "wait until the run has ended (exit 1 when it failed)")
    .action(async (project: string, pkg: string, o: { mode: string; wait?: boolean }) => {
      if (!KINDS.includes(o.mode)) throw new InvalidInputError(`--mode must be one of ${KINDS.join(", ")}`);
      await withClients(cenv, async (c) => {
        const r = await c.source.call("package.service-run", {
          project,
          package: pkg,
          kind: o.mode as ServiceRunKind,
        });
        if (!o.wait) {
          if (cenv.json()) printJson(r);
          else print(`service run ${r.runId} of ${project}/${pkg} (revision ${r.rev}) started`);
          return;
        }
        ended(cenv, project, pkg, await waitForRun(c, project, pkg, undefined));
      });
    });

  service
    .command("status <project> <package>")
    .description("the package's services, its last run with its whole output, and the files it made")
    .option("--no-output", "leave the services' output out")
    .action(async (project: string, pkg: string, o: { output: boolean }) => {
      await withClients(cenv, async (c) => {
        const v = await c.source.call("package.service-status", { project, package: pkg }, { idempotent: true });
        if (cenv.json()) return printJson(v);
        print(render(v, o.output));
      });
    });

  service
    .command("wait <project> <package>")
    .description("wait until the package's service run has ended; exit 1 when it failed")
    .option("--timeout <seconds>", "give up after this long (exit 1)", timeout)
    .action(async (project: string, pkg: string, o: { timeout?: number }) => {
      await withClients(cenv, async (c) => {
        ended(cenv, project, pkg, await waitForRun(c, project, pkg, o.timeout));
      });
    });
}
