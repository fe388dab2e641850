/**
 * Real RPMs for repo and publisher tests, built with rpmbuild from generated specs: one spec per
 * call, its first package the main one and the others subpackages, each installing a marker file
 * `/usr/share/<name>/marker` so that an installation can be checked.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";

export interface TestRpm {
  name: string;
  version?: string;
  release?: string;
  epoch?: number;
  requires?: string[];
  provides?: string[];
  /** A `-debuginfo`-like package with no files. */
  empty?: boolean;
}

export interface BuiltRpms {
  /** Binary package name → file. */
  rpms: Map<string, string>;
  srpm: string;
}

function tags(p: TestRpm): string {
  const out: string[] = [];
  if (p.version) out.push(`Version: ${p.version}`);
  if (p.release) out.push(`Release: ${p.release}`);
  if (p.epoch !== undefined) out.push(`Epoch: ${p.epoch}`);
  for (const r of p.requires ?? []) out.push(`Requires: ${r}`);
  for (const r of p.provides ?? []) out.push(`Provides: ${r}`);
  return out.join("\n");
}

/**
 * Builds the packages for `arch` (`noarch` builds with `BuildArch: noarch`, any other arch with
 * `--target`) into `dir`, with the source package too.
 */
export async function buildTestRpms(dir: string, arch: string, packages: TestRpm[]): Promise<BuiltRpms> {
  const [main, ...subs] = packages;
  if (!main) throw new Error("no packages");
  const top = path.join(dir, `top-${main.name}-${arch}`);
  await mkdir(top, { recursive: true });
  const file = (p: TestRpm): string => (p.empty ? "" : `/usr/share/${p.name}/marker`);
  const spec = [
    `Name: ${main.name}`,
    `Version: ${main.version ?? "1.0"}`,
    `Release: ${main.release ?? "1"}`,
    main.epoch !== undefined ? `Epoch: ${main.epoch}` : "",
    `Summary: ${main.name} for kiln tests`,
    "License: MIT",
    arch === "noarch" ? "BuildArch: noarch" : "",
    ...(main.requires ?? []).map((r) => `Requires: ${r}`),
    ...(main.provides ?? []).map((r) => `Provides: ${r}`),
    "%description",
    `${main.name}, built by kiln's tests.`,
    ...subs.flatMap((p) => [
      `%package -n ${p.name}`,
      `Summary: ${p.name} for kiln tests`,
      tags(p),
      `%description -n ${p.name}`,
      `${p.name}, built by kiln's tests.`,
    ]),
    "%install",
    ...packages
      .filter((p) => !p.empty)
      .map(
        (p) => `mkdir -p %{buildroot}/usr/share/${p.name} && echo ${p.name} > %{buildroot}/usr/share/${p.name}/marker`
      ),
    "%files",
    file(main),
    ...subs.flatMap((p) => [`%files -n ${p.name}`, file(p)]),
    "",
  ].join("\n");
  const specFile = path.join(top, `${main.name}.spec`);
  await writeFile(specFile, spec);
  await execa(
    "rpmbuild",
    [
      "-ba",
      "--quiet",
      "--define",
      `_topdir ${top}`,
      "--define",
      "debug_package %{nil}",
      "--define",
      "_build_id_links none",
      ...(arch === "noarch" ? [] : ["--target", arch]),
      specFile,
    ],
    { timeout: 600_000 }
  );
  const rpms = new Map<string, string>();
  const rpmDir = path.join(top, "RPMS", arch);
  for (const f of await readdir(rpmDir)) {
    const m = /^(.+)-[^-]+-[^-]+\.[^.]+\.rpm$/.exec(f);
    if (m) rpms.set(m[1]!, path.join(rpmDir, f));
  }
  const srpms = await readdir(path.join(top, "SRPMS"));
  return { rpms, srpm: path.join(top, "SRPMS", srpms[0]!) };
}
