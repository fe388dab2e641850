/**
 * Installing from a published repository with the real dnf (Debian's), into a scratch install
 * root, with no configured repositories but the one given by path or URL, and no network.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

export interface DnfInstall {
  /** The install root; remove `path.dirname(root)` when done. */
  root: string;
  /** Names of the installed packages, sorted. */
  installed: string[];
}

export async function dnfInstall(repo: string, what: string[]): Promise<DnfInstall> {
  const work = mkdtempSync(path.join(os.tmpdir(), "kiln-dnf-"));
  const root = path.join(work, "root");
  const conf = path.join(work, "dnf.conf");
  mkdirSync(path.join(work, "repos.d"), { recursive: true });
  writeFileSync(conf, "[main]\n");
  await execa(
    "dnf",
    [
      "-y",
      "-q",
      `--installroot=${root}`,
      `--config=${conf}`,
      `--setopt=reposdir=${path.join(work, "repos.d")}`,
      `--setopt=cachedir=${path.join(work, "cache")}`,
      "--setopt=install_weak_deps=False",
      "--disablerepo=*",
      `--repofrompath=kiln,${repo}`,
      "--enablerepo=kiln",
      "--nogpgcheck",
      "--releasever=1",
      "install",
      ...what,
    ],
    { timeout: 120_000 }
  );
  const q = await execa("rpm", ["--root", root, "-qa", "--queryformat", "%{NAME}\\n"]);
  return { root, installed: q.stdout.split("\n").filter(Boolean).sort() };
}
