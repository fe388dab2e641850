/**
 * Copying a run's results out of its work tree, by the worker itself, through the wrapper's view
 * (`/proc/<wrapper>/root`) while the wrapper waits for it at the end of its script.
 *
 * By then bwrap has exited, so no process of the build is left to change the tree while it is
 * read: what is checked stays true. Nothing is followed that the build could have turned into a
 * symlink: the searched directories and everything below them are taken from `lstat` and
 * directory entries, so only real directories are entered and only regular files copied.
 * Doing it here rather than with `find … -exec cp` in the wrapper saves two programs per run.
 */
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import type { Dirent } from "node:fs";
import { posix } from "node:path";
import { InvalidInputError } from "../transport/index.ts";

/** Files to copy out of the work tree once the command has exited and nothing of the build runs. */
export interface CollectPlan {
  /** Directory inside the sandbox home, relative ("rpmbuild"). */
  dir: string;
  /** Directories directly in `dir` to search (plain names). */
  paths: readonly string[];
  /** How deep below each path, as find's -maxdepth (1: only files directly in it). */
  maxDepth: number;
  /** A file name pattern with `*` and `?`, as find's -name (`*` matches a leading dot too). */
  name: string;
}

/** What {@link collectResults} copied, and whether it could look everywhere it should. */
export interface Collected {
  ok: boolean;
  /** Host paths of the copies, sorted. */
  files: string[];
}

/**
 * A `find -name` pattern with `*` and `?` as a regular expression (other shell pattern syntax is
 * refused: no plan needs it). Unlike a shell glob, `*` matches a leading dot, as find's does.
 */
export function namePattern(name: string): RegExp {
  if (name === "" || /[[\]\\/]/.test(name)) {
    throw new InvalidInputError(`collect name pattern "${name}" must be a file name with only * and ? wildcards`, {
      data: { name },
    });
  }
  const body = name
    .replace(/[.+^${}()|]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "s");
}

/** Checks a plan before a run: relative paths without `..`, a usable name pattern, a sane depth. */
export function validateCollectPlan(plan: CollectPlan): void {
  const rel = (p: string): boolean => !p.startsWith("/") && !p.split("/").includes("..") && !p.includes("\0");
  if (!rel(plan.dir)) {
    throw new InvalidInputError("collect.dir must be relative to the sandbox home", { data: { dir: plan.dir } });
  }
  for (const p of plan.paths) {
    if (!rel(p) || p === "" || p === "." || p.includes("/")) {
      throw new InvalidInputError(`collect path "${p}" must be a directory name`, { data: { path: p } });
    }
  }
  if (!Number.isInteger(plan.maxDepth) || plan.maxDepth < 1 || plan.maxDepth > 16) {
    throw new InvalidInputError(`collect.maxDepth must be 1..16, got ${plan.maxDepth}`);
  }
  namePattern(plan.name);
}

/**
 * Copies the regular files matching `plan` from `<root>/<home>/<plan.dir>/<path>` (at most
 * `maxDepth` levels below each path) to `<outDir>/<path>/…`, as `find <paths> -maxdepth N -type f
 * -name NAME -exec cp -P --parents` would. `root` is the wrapper's `/proc/<pid>/root`, `home` the
 * sandbox home as the wrapper sees it. A top directory that is not a real directory (missing, or a
 * symlink the build made) is skipped; one that should exist but cannot be read makes `ok` false.
 */
export function collectResults(root: string, home: string, plan: CollectPlan, outDir: string): Collected {
  const match = namePattern(plan.name);
  const files: string[] = [];
  let ok = true;
  // Every directory from the home down to the searched ones must be a real one: `cd -P` and the
  // PWD check did this in the shell.
  const base = posix.normalize(posix.join(home, plan.dir));
  const baseParts = posix
    .relative(home, base)
    .split("/")
    .filter((p) => p !== "" && p !== ".");
  let at = `${root}${home}`;
  for (const part of baseParts) {
    at = `${at}/${part}`;
    const st = lstatSync(at, { throwIfNoEntry: false });
    if (!st) return { ok: true, files };
    if (!st.isDirectory()) return { ok: false, files };
  }
  const walk = (hostDir: string, rel: string, depth: number): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(hostDir, { withFileTypes: true });
    } catch {
      ok = false;
      return;
    }
    for (const e of entries) {
      const from = `${hostDir}/${e.name}`;
      const to = posix.join(rel, e.name);
      if (e.isDirectory()) {
        if (depth < plan.maxDepth) walk(from, to, depth + 1);
      } else if (e.isFile() && match.test(e.name)) {
        const dest = posix.join(outDir, to);
        try {
          mkdirSync(posix.dirname(dest), { recursive: true, mode: 0o755 });
          copyFileSync(from, dest);
          // Whatever modes the build gave it: a plain readable file on the host.
          chmodSync(dest, 0o644);
          files.push(dest);
        } catch {
          ok = false;
        }
      }
    }
  };
  for (const p of plan.paths) {
    const top = `${at}/${p}`;
    const st = lstatSync(top, { throwIfNoEntry: false });
    if (!st || !st.isDirectory()) continue;
    walk(top, p, 1);
  }
  return { ok, files: files.sort() };
}
