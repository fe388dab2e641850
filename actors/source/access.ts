/**
 * Who may see and change what: the source role's access rules as pure functions of the caller
 * and the project/package metas. Every role asks the source role (verb `access.check`), which
 * decides with these functions, so there is one set of rules.
 *
 * - Admins may do everything. Service users (the identities kiln's own roles sign with) may read
 *   everything and change nothing, except that they deliver the output of source service runs
 *   ({@link mayRunServices}): schedulers and workers must build hidden projects.
 * - A project's maintainers (`<person role="maintainer">`, or a group with that role the user
 *   belongs to) may change its meta, config and packages and delete it; a package's maintainers
 *   may change and delete that package.
 * - Members of a project are the persons and groups with any role in its meta; for a package, the
 *   project's members and the package's own.
 * - `access` disabled (project-wide: entries limited to a repository or arch do not count, as in
 *   OBS) hides the project from everyone but its members: to them it does not exist.
 * - `sourceaccess` disabled hides a package's files (existence and meta stay visible).
 * - `binarydownload` disabled for a repository/arch refuses downloads of its binaries to
 *   non-members.
 * - `lock` enabled ({@link lockedByOwnFlag}) on a project or package refuses every change to it,
 *   to admins too, except the change that only unlocks it (checked in source-state.ts).
 * - A new project may be created by an admin, by the user `U` when it is `home:U` or below, or
 *   by a maintainer of the nearest existing project above it in the `:` hierarchy (OBS lets the
 *   maintainers of `home:U` create `home:U:sub`).
 */
import { evaluateFlag } from "../common/flags.ts";
import type { GroupEntry, PersonEntry, PersonRole } from "./meta-xml.ts";

/** What a caller asks to do with a project or package. */
export const AccessNeed = {
  /** Know it exists: meta, listings, results, events, logs. */
  See: "see",
  /** Read its files: checkout, file lists, history, build info. */
  Sources: "sources",
  /** Download built binaries. */
  Binaries: "binaries",
  /** Change it: meta, config, commits, deletion, rebuilds. */
  Write: "write",
} as const;
export type AccessNeed = (typeof AccessNeed)[keyof typeof AccessNeed];

/** The authenticated caller with the groups they belong to. */
export interface Principal {
  user: string;
  admin: boolean;
  /** A kiln role (scheduler, worker, repo…): reads everything, changes nothing. */
  service: boolean;
  anonymous: boolean;
  groups: ReadonlySet<string>;
}

/** What the rules need of a project or package meta. */
export interface AclMeta {
  persons: readonly PersonEntry[];
  groups: readonly GroupEntry[];
  flags?: Parameters<typeof evaluateFlag>[1]["flags"];
}

export const ANONYMOUS_PRINCIPAL: Principal = Object.freeze({
  user: "anonymous",
  admin: false,
  service: false,
  anonymous: true,
  groups: new Set<string>(),
});

function holds(p: Principal, meta: AclMeta | undefined, role?: PersonRole): boolean {
  if (!meta || p.anonymous) return false;
  if (meta.persons.some((e) => e.userid === p.user && (role === undefined || e.role === role))) return true;
  return meta.groups.some((g) => p.groups.has(g.groupid) && (role === undefined || g.role === role));
}

/** True when the caller has any role in the project (or the package). */
export function isMember(p: Principal, prj: AclMeta, pkg?: AclMeta): boolean {
  return holds(p, prj) || holds(p, pkg);
}

/** `access` as the project-wide flag (no repository, no arch). */
export function isHidden(prj: AclMeta): boolean {
  return !evaluateFlag("access", prj, undefined, undefined, undefined);
}

/** `sourceaccess` of a package (or a project's default for its packages). */
export function sourcesHidden(prj: AclMeta, pkg?: AclMeta): boolean {
  return !evaluateFlag("sourceaccess", prj, pkg, undefined, undefined);
}

/**
 * OBS's `locked?` of a project or package's own meta: any `<enable/>` entry of `lock`, whatever
 * repository or arch it names. A locked project or package changes in nothing (meta, config,
 * sources, deletion), not even for admins, until its maintainers unlock it.
 */
export function lockedByOwnFlag(meta: Pick<AclMeta, "flags">): boolean {
  return (meta.flags?.lock ?? []).some((e) => e.state === "enable");
}

const privileged = (p: Principal): boolean => p.admin || p.service;

export function canSee(p: Principal, prj: AclMeta): boolean {
  return !isHidden(prj) || privileged(p) || isMember(p, prj);
}

export function canReadSources(p: Principal, prj: AclMeta, pkg?: AclMeta): boolean {
  if (!canSee(p, prj)) return false;
  return !sourcesHidden(prj, pkg) || privileged(p) || isMember(p, prj, pkg);
}

export function canDownloadBinaries(
  p: Principal,
  prj: AclMeta,
  pkg: AclMeta | undefined,
  repository: string | undefined,
  arch: string | undefined
): boolean {
  if (!canSee(p, prj)) return false;
  if (evaluateFlag("binarydownload", prj, pkg, repository, arch)) return true;
  return privileged(p) || isMember(p, prj, pkg);
}

/**
 * Delivering the output of a source service run (`package.service-result`) and fetching runs: the
 * one change service users (kiln's roles) may make, besides admins. It is narrow: the source role
 * accepts a result only for the run it asked for, and only as that run's service files.
 */
export function mayRunServices(p: Principal): boolean {
  return !p.anonymous && (p.service || p.admin);
}

export function canWriteProject(p: Principal, prj: AclMeta): boolean {
  return p.admin || holds(p, prj, "maintainer");
}

export function canWritePackage(p: Principal, prj: AclMeta, pkg: AclMeta | undefined): boolean {
  return canWriteProject(p, prj) || holds(p, pkg, "maintainer");
}

/** The projects above `name` in the `:` hierarchy, nearest first (`a:b:c` → `a:b`, `a`). */
export function parentProjects(name: string): string[] {
  const parts = name.split(":");
  const out: string[] = [];
  for (let i = parts.length - 1; i > 0; i--) out.push(parts.slice(0, i).join(":"));
  return out;
}

/**
 * Whether the caller may create project `name`; `lookup` gives an existing project's meta. The
 * answer names the rule that allowed it, or what would be needed.
 */
export function mayCreateProject(
  p: Principal,
  name: string,
  lookup: (project: string) => AclMeta | undefined
): { allowed: true } | { allowed: false; needs: string } {
  if (p.admin) return { allowed: true };
  if (p.anonymous || p.service) return { allowed: false, needs: "an admin" };
  const home = `home:${p.user}`;
  if (name === home || name.startsWith(`${home}:`)) {
    // Below an existing home project its maintainers decide, as for any other parent.
    const parent = parentProjects(name).find((n) => lookup(n) !== undefined);
    if (parent === undefined || parent === "home") return { allowed: true };
    if (canWriteProject(p, lookup(parent)!)) return { allowed: true };
    return { allowed: false, needs: `an admin or a maintainer of '${parent}'` };
  }
  const parent = parentProjects(name).find((n) => lookup(n) !== undefined);
  if (parent !== undefined && canWriteProject(p, lookup(parent)!)) return { allowed: true };
  return {
    allowed: false,
    needs: parent !== undefined ? `an admin or a maintainer of '${parent}'` : `an admin (or it must be '${home}')`,
  };
}
