/**
 * OBS flags (`build`, `publish`, `useforbuild`, …) and how they are evaluated for one
 * repository/architecture.
 *
 * A flag is a list of `enable`/`disable` entries, each optionally limited to one repository and/or
 * one architecture. {@link flagEnabled} is OBS's `BSUtil::enabled` (reference/obs-backend.md §5):
 * of the entries that match, the most specific wins, and at equal specificity a disable beats an
 * enable. {@link evaluateFlag} combines a project's flag with a package's the way OBS does: the
 * project's result is the package's default, so any matching package entry, however general,
 * overrides the project.
 *
 * The entry types live here rather than beside the `_meta` parser so that schedulers and the
 * publisher can evaluate flags without depending on the XML code.
 */

/** The flags OBS knows, in the order OBS writes them in `_meta`. */
export const FlagName = {
  Lock: "lock",
  Build: "build",
  Publish: "publish",
  Debuginfo: "debuginfo",
  Useforbuild: "useforbuild",
  Binarydownload: "binarydownload",
  Sourceaccess: "sourceaccess",
  Access: "access",
} as const;
export type FlagName = (typeof FlagName)[keyof typeof FlagName];

/** Every flag name, in `_meta` order. */
export const FLAG_NAMES: readonly FlagName[] = Object.freeze(Object.values(FlagName));

/** The two kinds of flag entry. */
export const FlagState = {
  Enable: "enable",
  Disable: "disable",
} as const;
export type FlagState = (typeof FlagState)[keyof typeof FlagState];

/** One `<enable/>` or `<disable/>` entry of a flag. */
export interface FlagEntry {
  state: FlagState;
  /** Limits the entry to this repository; absent means every repository. */
  repository?: string;
  /** Limits the entry to this architecture; absent means every architecture. */
  arch?: string;
}

/** The flags of a project or package; a flag that is absent has no entries. */
export type Flags = Partial<Record<FlagName, FlagEntry[]>>;

/**
 * A flag's value when neither project nor package has a matching entry (OBS
 * `flag_helper.rb`): only `lock` and `debuginfo` are off.
 */
export const FLAG_DEFAULTS: Readonly<Record<FlagName, boolean>> = Object.freeze({
  lock: false,
  build: true,
  publish: true,
  debuginfo: false,
  useforbuild: true,
  binarydownload: true,
  sourceaccess: true,
  access: true,
});

const SCORE_ARCH = 2;
const SCORE_REPOSITORY = 4;
const SCORE_DISABLE = 1;

/**
 * Evaluates one flag's entries for a repository and architecture, exactly as OBS's
 * `BSUtil::enabled`: an entry matches when each attribute it has equals the query (an entry with
 * `arch` never matches a query without one; likewise for `repository`). No match gives `dflt`;
 * only disables give false; only enables give true; with both, each entry scores +2 for `arch`,
 * +4 for `repository` and +1 for being a disable, and the highest score wins — so at equal
 * specificity the disable wins and the enable never ties.
 */
export function flagEnabled(
  entries: readonly FlagEntry[] | undefined,
  repository: string | undefined,
  arch: string | undefined,
  dflt: boolean
): boolean {
  if (!entries || entries.length === 0) return dflt;
  let bestDisable = -1;
  let bestEnable = -1;
  for (const entry of entries) {
    if (entry.arch !== undefined && entry.arch !== arch) continue;
    if (entry.repository !== undefined && entry.repository !== repository) continue;
    let score = 0;
    if (entry.arch !== undefined) score += SCORE_ARCH;
    if (entry.repository !== undefined) score += SCORE_REPOSITORY;
    if (entry.state === FlagState.Disable) {
      score += SCORE_DISABLE;
      if (score > bestDisable) bestDisable = score;
    } else if (score > bestEnable) {
      bestEnable = score;
    }
  }
  if (bestDisable < 0 && bestEnable < 0) return dflt;
  if (bestEnable < 0) return false;
  if (bestDisable < 0) return true;
  return bestEnable > bestDisable;
}

/**
 * Evaluates a flag for a repository/architecture of a project, or of a package in it: the
 * project's entries against the built-in default ({@link FLAG_DEFAULTS}), then the package's
 * entries against the project's result.
 */
export function evaluateFlag(
  name: FlagName,
  project: { flags?: Flags },
  pkg: { flags?: Flags } | undefined,
  repository: string | undefined,
  arch: string | undefined
): boolean {
  const projectValue = flagEnabled(project.flags?.[name], repository, arch, FLAG_DEFAULTS[name]);
  if (pkg === undefined) return projectValue;
  return flagEnabled(pkg.flags?.[name], repository, arch, projectValue);
}
