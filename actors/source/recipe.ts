/**
 * A package's build information for one repository/arch, as the schedulers receive it (OBS's
 * getprojpack): which recipe, what it says once parsed with that repository's build config, and
 * the package's evaluated flags. Parsing happens here, in the source role, once per revision and
 * config; schedulers never parse recipes.
 */
import { evaluateFlag } from "../common/flags.ts";
import { parseBuildConfig, type BuildConfig } from "../common/prjconf.ts";
import { parseSpec } from "../common/spec.ts";
import { buildtimeServices, expandedNames } from "../service/service-xml.ts";
import {
  ServiceState,
  type PackageBuildInfo,
  type PackageRecord,
  type ProjectRecord,
  type Revision,
} from "./protocol.ts";
import type { SourceServices } from "./source-services.ts";
import type { SourceState } from "./source-state.ts";

/** OBS's choice of recipe: `<package>.spec` when present, else the only (first) `.spec` file. */
export function chooseSpec(pkg: string, files: { name: string }[]): string | undefined {
  const specs = files.map((f) => f.name).filter((n) => n.endsWith(".spec") && !n.startsWith("_"));
  if (specs.includes(`${pkg}.spec`)) return `${pkg}.spec`;
  return specs.sort()[0];
}

/** Parsed build configs, cached by the text they were made from. */
export class ConfigCache {
  readonly #cache = new Map<string, BuildConfig>();

  get(layers: { project: string; repository: string; text: string }[], arch: string): BuildConfig {
    const key = `${arch}\u0000${JSON.stringify(layers)}`;
    let c = this.#cache.get(key);
    if (!c) {
      c = parseBuildConfig(layers, { arch });
      if (this.#cache.size > 256) this.#cache.clear();
      this.#cache.set(key, c);
    }
    return c;
  }
}

/**
 * With source services, the sources are the revision's files plus its services' files, whose
 * srcmd5 together (OBS's xsrcmd5) is the build's srcmd5 and verifymd5; while the services run the
 * package is blocked, and when they failed it is broken with their error (OBS getprojpack).
 */
export async function packageBuildInfo(
  state: SourceState,
  configs: ConfigCache,
  prj: ProjectRecord,
  pkg: PackageRecord,
  repository: string,
  arch: string,
  services?: SourceServices
): Promise<PackageBuildInfo> {
  const rev: Revision = state.revision(prj.name, pkg.name);
  const flags = {
    build: evaluateFlag("build", prj.meta, pkg.meta, repository, arch),
    lock: evaluateFlag("lock", prj.meta, pkg.meta, repository, arch),
    useforbuild: evaluateFlag("useforbuild", prj.meta, pkg.meta, repository, arch),
    debuginfo: evaluateFlag("debuginfo", prj.meta, pkg.meta, repository, arch),
    publish: evaluateFlag("publish", prj.meta, pkg.meta, repository, arch),
  };
  const info: PackageBuildInfo = {
    project: prj.name,
    package: pkg.name,
    repository,
    arch,
    rev: rev.rev,
    srcmd5: rev.srcmd5,
    verifymd5: rev.srcmd5,
    revTime: rev.time,
    files: rev.files,
    buildRequires: [],
    subpacks: [],
    constraints: [],
    flags,
  };
  if (rev.rev === 0 || rev.files.length === 0) {
    info.error = "no source uploaded";
    info.errorCode = "broken";
    return info;
  }
  const expansion = services?.expansion(prj.name, pkg.name, rev.rev);
  if (expansion?.state === ServiceState.Running) {
    info.error = "service in progress";
    info.errorCode = "blocked";
    return info;
  }
  if (expansion?.state === ServiceState.Failed) {
    info.error = `service error: ${expansion.error ?? "failed"}`;
    info.errorCode = "broken";
    return info;
  }
  if (expansion?.xsrcmd5) {
    info.files = [...rev.files, ...expansion.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    info.srcmd5 = expansion.xsrcmd5;
    info.verifymd5 = expansion.xsrcmd5;
  }
  if (services) {
    const bt = buildtimeServices(await services.servicesOf(prj.name, pkg.name, rev.files));
    if (bt.length > 0) info.buildtimeServices = bt;
  }
  // The names the build sees: a service's `_service:<name>:<file>` is `<file>` there.
  const visible = expandedNames(info.files.map((f) => f.name));
  const byVisible = (name: string) => info.files.find((f) => f.name === visible.get(name));
  const specFile = chooseSpec(
    pkg.name,
    [...visible.keys()].map((name) => ({ name }))
  );
  if (!specFile) {
    info.error = "no recipe file";
    info.errorCode = "broken";
    return info;
  }
  info.specFile = specFile;
  const cf = byVisible("_constraints");
  if (cf) info.constraintsFile = await state.readText(cf, 256 * 1024);
  const config = configs.get(state.buildConfig(prj.name, repository).layers, arch);
  let parsed;
  try {
    parsed = parseSpec(await state.readText(byVisible(specFile)!), { arch, config });
  } catch (err) {
    info.error = `bad recipe: ${(err as Error).message}`;
    info.errorCode = "broken";
    return info;
  }
  info.name = parsed.name;
  info.version = parsed.version;
  info.release = parsed.release;
  if (parsed.epoch !== undefined && parsed.epoch !== null) info.epoch = Number(parsed.epoch);
  info.buildRequires = parsed.buildRequires;
  info.subpacks = parsed.subpacks;
  info.constraints = parsed.constraints ?? [];
  if (parsed.error) {
    info.error = parsed.error;
    info.errorCode = "broken";
  } else if (parsed.excluded) {
    info.error = "excluded";
    info.errorCode = "excluded";
  }
  return info;
}
