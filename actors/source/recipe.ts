/**
 * A package's build information for one repository/arch, as the schedulers receive it (OBS's
 * getprojpack): which recipe, what it says once parsed with that repository's build config, and
 * the package's evaluated flags. Parsing happens here, in the source role, once per revision and
 * config; schedulers never parse recipes.
 */
import { evaluateFlag } from "../common/flags.ts";
import { parseBuildConfig, type BuildConfig } from "../common/prjconf.ts";
import { parseSpec } from "../common/spec.ts";
import type { PackageBuildInfo, PackageRecord, ProjectRecord, Revision } from "./protocol.ts";
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

export async function packageBuildInfo(
  state: SourceState,
  configs: ConfigCache,
  prj: ProjectRecord,
  pkg: PackageRecord,
  repository: string,
  arch: string
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
  const specFile = chooseSpec(pkg.name, rev.files);
  if (!specFile) {
    info.error = "no recipe file";
    info.errorCode = "broken";
    return info;
  }
  info.specFile = specFile;
  const cf = rev.files.find((f) => f.name === "_constraints");
  if (cf) info.constraintsFile = await state.readText(cf, 256 * 1024);
  const config = configs.get(state.buildConfig(prj.name, repository).layers, arch);
  let parsed;
  try {
    parsed = parseSpec(await state.readText(rev.files.find((f) => f.name === specFile)!), { arch, config });
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
