/**
 * Published trees on disk, written so that readers never see a half-written repository.
 *
 * ```
 * <root>/<project>/<repository>            → symlink to .kiln/<repository>/<version>
 * <root>/<project>/.kiln/<repository>/<N>/  x86_64/…rpm  noarch/…rpm  src/…rpm  repodata/…
 * ```
 *
 * A new version is assembled aside in `<N>.tmp` (files hard-linked from the publisher's content
 * cache, then `createrepo_c`), renamed to `<N>`, and served by replacing the symlink with
 * rename(2), which is atomic: a reader resolves either the old tree or the new one, each
 * complete. The previous version stays on disk until the next publication, so a client that
 * read the old `repomd.xml` just before the switch can still fetch the files it names.
 */
import { existsSync, lstatSync } from "node:fs";
import { copyFile, link, mkdir, readdir, rename, rm, symlink } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { Logger } from "pino";
import { InternalError } from "../../transport/index.ts";

/** Hidden directory beside the served links that holds the versions. */
const VERSIONS = ".kiln";

/** The served path of a repository. */
export function servedPath(root: string, project: string, repository: string): string {
  return path.join(root, project, repository);
}

function versionsDir(root: string, project: string, repository: string): string {
  return path.join(root, project, VERSIONS, repository);
}

/** The directory of one version of a repository's tree. */
export function versionDir(root: string, project: string, repository: string, version: number): string {
  return path.join(versionsDir(root, project, repository), String(version));
}

export interface WriteTreeOptions {
  root: string;
  project: string;
  repository: string;
  version: number;
  /** Paths in the tree and the files (in the content cache) they are linked from. */
  files: { path: string; source: string }[];
  /** The version served now, whose metadata createrepo_c may reuse. */
  previous?: number;
  /** @default "createrepo_c" */
  createrepo?: string;
  log: Logger;
  signal?: AbortSignal;
}

/**
 * Writes version `version` of a repository aside and switches the served link to it. On failure
 * the served tree is untouched and the partial version is removed.
 */
export async function writeTree(opts: WriteTreeOptions): Promise<string> {
  const { root, project, repository, version } = opts;
  const final = versionDir(root, project, repository, version);
  const tmp = `${final}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const dirs = new Set<string>();
    for (const f of opts.files) {
      const dest = path.join(tmp, f.path);
      const dir = path.dirname(dest);
      if (!dirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        dirs.add(dir);
      }
      await link(f.source, dest).catch(async (err: NodeJS.ErrnoException) => {
        // Across file systems a hard link is impossible; a copy is as good.
        if (err.code !== "EXDEV") throw err;
        await copyFile(f.source, dest);
      });
    }
    const prev = opts.previous === undefined ? undefined : versionDir(root, project, repository, opts.previous);
    const args = ["--quiet", "--no-database", "--workers", "2", "--changelog-limit", "20"];
    if (prev && existsSync(path.join(prev, "repodata", "repomd.xml"))) {
      args.push("--update", "--update-md-path", prev);
    }
    args.push(tmp);
    const r = await execa(opts.createrepo ?? "createrepo_c", args, {
      reject: false,
      timeout: 30 * 60_000,
      ...(opts.signal ? { cancelSignal: opts.signal } : {}),
      all: true,
    });
    if (r.exitCode !== 0) {
      throw new InternalError(
        `createrepo_c failed (exit ${r.exitCode ?? "none"}): ${String(r.all ?? "")
          .trim()
          .split("\n")
          .slice(-3)
          .join(" ")}`
      );
    }
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  await switchLink(servedPath(root, project, repository), path.join(VERSIONS, repository, String(version)), opts.log);
  await prune(root, project, repository, new Set([version, ...(opts.previous !== undefined ? [opts.previous] : [])]));
  return final;
}

/** Points `linkPath` at `target` (relative to its directory) in one rename. */
async function switchLink(linkPath: string, target: string, log: Logger): Promise<void> {
  let st;
  try {
    st = lstatSync(linkPath);
  } catch {
    st = undefined;
  }
  if (st && !st.isSymbolicLink()) {
    // Something that is not kiln's link (a tree copied in by hand): moved aside, never mixed.
    const aside = `${linkPath}.replaced-${Date.now()}`;
    log.warn({ path: linkPath, aside }, "served path was not a link, moved aside");
    await rename(linkPath, aside);
  }
  // rename(2) replaces the old link atomically only within one directory.
  const beside = path.join(path.dirname(linkPath), `.${path.basename(linkPath)}.link`);
  await rm(beside, { force: true });
  await symlink(target, beside);
  await rename(beside, linkPath);
}

/** Removes versions of a repository other than `keep`. */
async function prune(root: string, project: string, repository: string, keep: Set<number>): Promise<void> {
  const dir = versionsDir(root, project, repository);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const n = Number(name.replace(/\.tmp$/, ""));
    if (Number.isInteger(n) && keep.has(n) && !name.endsWith(".tmp")) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
  }
}

/** Removes a repository's served link and all its versions. */
export async function removeTree(root: string, project: string, repository: string): Promise<void> {
  await rm(servedPath(root, project, repository), { force: true, recursive: true });
  await rm(versionsDir(root, project, repository), { recursive: true, force: true });
}

/** Removes everything published of a project. */
export async function removeProjectTrees(root: string, project: string): Promise<void> {
  await rm(path.join(root, project), { recursive: true, force: true });
}
