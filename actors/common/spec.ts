/**
 * The spec file parser: what the scheduler needs to know about an rpm recipe, read the way
 * obs-build's `Build::Rpm::parse` reads it (obs-build 20210120, the reference for
 * `test/integration/spec-oracle.test.ts`).
 *
 * The parser walks the file line by line: it expands macros (see ./rpm-macros.ts), follows
 * `%if`/`%elif`/`%else`/`%endif` and `%ifarch`/`%ifnarch`/`%ifos`/`%ifnos`, and collects `Name`,
 * `Version`, `Release`, the `BuildRequires`/`BuildPreReq` lines (and `BuildConflicts` and
 * `#!BuildIgnore` as `-name` entries), the pre-requires, `%package` subpackages and the arch
 * restrictions. Project config macros (`Macros:` blocks of the prjconf) are defined before the
 * first line. The same walker reads project configs, which obs-build parses as if they were spec
 * files (see ./prjconf.ts).
 */
import { InvalidInputError } from "../../transport/index.ts";
import type { BuildConfig } from "./prjconf.ts";
import {
  MacroContext,
  STD_MACRO_LINES,
  appendRawMacroLines,
  defineFromLines,
  evalExpr,
  exprBoolify,
  expandMacros,
  perlTrue,
  splitWords,
} from "./rpm-macros.ts";
import type { MacroLimits } from "./rpm-macros.ts";

/** The largest recipe or config text kiln parses, in characters. */
export const MAX_RECIPE_CHARS = 8 * 1024 * 1024;

/** What the scheduler needs from a spec file. */
export interface ParsedSpec {
  /** `Name:` of the main package; absent when the spec has none (then {@link ParsedSpec.error} is set). */
  name?: string;
  version?: string;
  release?: string;
  /**
   * `Epoch:` of the main package. obs-build does not read it; kiln does, so that EVRs can be
   * formed without a second parser.
   */
  epoch?: string;
  /** `Disttag:` of the main package, as obs-build reads it. */
  disttag?: string;
  /**
   * The build dependencies exactly as obs-build returns them (its `deps`), in file order:
   * `BuildRequires`/`BuildPreReq`/`#!BuildRequires` entries as `name` or `name op version` with
   * the spacing of the file (`=>`/`=<` normalised to `>=`/`<=`), rich dependencies `(a or b)` as
   * one entry, and `BuildConflicts`/`#!BuildIgnore`/`#!BuildConflicts` entries as `-name`
   * (ignore entries for the dependency expander).
   */
  buildRequires: string[];
  /**
   * `Requires(pre)`, `Requires(post)` and `PreReq` names as the OBS source server reports them:
   * without versions, without file dependencies that no `FileProvides:` covers, without names
   * that are build requirements or subpackages already, and without unexpanded macros.
   */
  prereqs: string[];
  /** The main package, then every `%package` (with `-n`, the name as given). */
  subpacks: string[];
  /** `BuildArch:` of the main package (a kiln addition; obs-build does not report it). */
  buildArch?: string;
  /** `ExclusiveArch:` values of the main package, if the tag is present (even when empty). */
  exclusiveArch?: string[];
  /** `ExcludeArch:` values of the main package, if the tag is present. */
  excludeArch?: string[];
  /** True when ExclusiveArch/ExcludeArch rule the build arch out (scheduler code `excluded`). */
  excluded: boolean;
  /** `#!BuildConstraint:` values in the preamble, in order (as newer obs-build reads them). */
  constraints: string[];
  /** True when the build dependencies depend on the project config (a conditional touched them). */
  configDependent: boolean;
  /** Set when OBS would mark the package broken, e.g. `can not parse name from foo.spec`. */
  error?: string;
}

/** Options of {@link parseSpec}. */
export interface ParseSpecOptions {
  /** The scheduler architecture the spec is read for (`%_target_cpu`, `%ifarch`, exclusion). */
  arch: string;
  /** The project config of the repository (its macros, `FileProvides:`, `Target:`). */
  config: BuildConfig;
  /** The file name, used in error messages. @default "the spec file" */
  filename?: string;
  /** Replacement for `@BUILD_FLAVOR@` (multibuild flavor). @default "" */
  buildFlavor?: string;
  /** Replacement for `@OBS_PACKAGE@`; without it the text stays as it is. */
  obsPackage?: string;
  /** Bounds on macro expansion. */
  limits?: Partial<MacroLimits>;
}

/**
 * Parses a spec file for one repository and architecture.
 *
 * @throws InvalidInputError when the text is too large or macro expansion exceeds its limits
 */
export function parseSpec(text: string, opts: ParseSpecOptions): ParsedSpec {
  if (text.length > MAX_RECIPE_CHARS) {
    throw new InvalidInputError("spec file too large", { data: { limit: MAX_RECIPE_CHARS } });
  }
  const { config } = opts;
  const targetCpu = targetCpuOf(config);
  const ctx = new MacroContext(opts.limits);
  defineFromLines(ctx, configMacroLines(opts.arch, config));
  const raw = parseRecipeLines(splitFileLines(text), ctx, {
    fileProvides: config.fileProvides,
    buildFlavor: opts.buildFlavor ?? "",
    obsPackage: opts.obsPackage ?? "@OBS_PACKAGE@",
    readConstraints: true,
    record: false,
  });
  const myArch = targetCpu ?? opts.arch;
  let excluded = false;
  if (raw.exclarch && !raw.exclarch.includes(myArch)) excluded = true;
  if (raw.badarch && raw.badarch.includes(myArch)) excluded = true;
  const notPrereq = new Set([...raw.deps, ...raw.subpacks]);
  const spec: ParsedSpec = {
    buildRequires: raw.deps,
    prereqs: raw.prereqs.filter((p) => !notPrereq.has(p) && !p.startsWith("%")),
    subpacks: raw.subpacks,
    excluded,
    constraints: raw.constraints,
    configDependent: raw.configDependent,
  };
  if (raw.name !== undefined) spec.name = raw.name;
  if (raw.version !== undefined) spec.version = raw.version;
  if (raw.release !== undefined) spec.release = raw.release;
  if (raw.epoch !== undefined) spec.epoch = raw.epoch;
  if (raw.disttag !== undefined) spec.disttag = raw.disttag;
  if (raw.buildArch !== undefined) spec.buildArch = raw.buildArch;
  if (raw.exclarch) spec.exclusiveArch = raw.exclarch;
  if (raw.badarch) spec.excludeArch = raw.badarch;
  if (raw.name === undefined) spec.error = `can not parse name from ${opts.filename ?? "the spec file"}`;
  return spec;
}

/** The cpu that `Target:`/`ChangeTarget:` of the config switches to, if any. */
function targetCpuOf(config: BuildConfig): string | undefined {
  return perlTrue(config.target) ? config.target.split("-")[0] : undefined;
}

/**
 * The `%define` lines a spec parse starts from, as obs-build's `read_config` leaves them in the
 * config: built-in arch macros, `%_target_cpu`/`%_target_os`, then the config's `Macros:` text.
 */
export function configMacroLines(arch: string, config: BuildConfig): string[] {
  const lines = [...STD_MACRO_LINES, `%define _target_cpu ${arch}`, "%define _target_os linux"];
  const targetCpu = targetCpuOf(config);
  if (targetCpu !== undefined) lines.push(`%define _target_cpu ${targetCpu}`);
  appendRawMacroLines(lines, config.macros);
  return lines;
}

/** Lines of a file as Perl reads them with `<FH>` and `chomp`. */
export function splitFileLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** A line given to {@link parseRecipeLines}: text, or a verbatim block that is not expanded. */
export type RecipeLine = string | { verbatim: string };

/** Options of {@link parseRecipeLines}. */
export interface RecipeParseOptions {
  fileProvides: Record<string, string[]>;
  buildFlavor: string;
  obsPackage: string;
  /** Read `#!BuildConstraint:` lines (newer obs-build; project configs don't). */
  readConstraints: boolean;
  /** Record, per input line, what obs-build's `read_config` sees of it (see {@link RawRecipe.lines}). */
  record: boolean;
}

/** The raw result of {@link parseRecipeLines}, shaped like obs-build's hash. */
export interface RawRecipe {
  name?: string;
  version?: string;
  release?: string;
  disttag?: string;
  epoch?: string;
  buildArch?: string;
  subpacks: string[];
  exclarch?: string[];
  badarch?: string[];
  deps: string[];
  prereqs: string[];
  constraints: string[];
  configDependent: boolean;
  /**
   * With `record`: for each input line, the text obs-build's `read_config` interprets — the
   * expanded line, the original line for lines the parser set aside early (comments,
   * conditionals, dependency lines), or null for lines in a false conditional.
   */
  lines: (string | null)[];
}

const BUILD_DEP_RE =
  /^(BuildRequires|BuildPrereq|BuildConflicts|#!BuildIgnore|#!BuildConflicts|#!BuildRequires)[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^ \t\n\r\f\v][^\n]*)$/i;
const PREREQ_RE = /^(?:Requires\(pre\)|Requires\(post\)|PreReq)[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^ \t\n\r\f\v][^\n]*)$/i;
const SECTION_RE =
  /^[ \t\n\r\f\v]*%(prep|build|install|check|clean|preun|postun|pretrans|posttrans|pre|post|files|changelog|description|triggerpostun|triggerun|triggerin|trigger|verifyscript)/;
const DEP_TOKEN_RE =
  /([^ \t\n\r\f\v[,]+)([ \t\n\r\f\v]+[<=>]+[ \t\n\r\f\v]+[^ \t\n\r\f\v[,]+)?([ \t\n\r\f\v]+\[[^\]]+\])?[ \t\n\r\f\v,]*/;

/** One dependency as split from a line: name, optional ` op version`, optional ` [qualifier]`. */
export type DepTriple = [string, string | undefined, string | undefined];

/**
 * Splits a dependency list the way obs-build does: comma or whitespace separated entries of
 * `name`, `name op version` (whitespace around the operator required) and an optional
 * `[arch or project]` qualifier; with a `(` after a separator, rich dependencies are kept whole.
 */
export function splitDeps(deps: string): DepTriple[] {
  if (/[ \t\n\r\f\v,]\(/.test(` ${deps}`)) return splitRichDeps(deps);
  const out: DepTriple[] = [];
  const re = new RegExp(DEP_TOKEN_RE.source, "g");
  for (let m = re.exec(deps); m; m = re.exec(deps)) {
    out.push([m[1]!, m[2], m[3]]);
    if (m[0] === "") re.lastIndex++;
  }
  return out;
}

function splitRichDeps(input: string): DepTriple[] {
  const out: DepTriple[] = [];
  let d = input.replace(/^[ \t\n\r\f\v,]+/, "");
  while (d !== "") {
    if (d.startsWith("(")) {
      const words = splitWords(d);
      let dep = words.shift()!;
      const count = (s: string, c: string): number => s.split(c).length - 1;
      while (words.length > 0 && count(dep, "(") > count(dep, ")")) dep += ` ${words.shift()!}`;
      out.push([dep, undefined, undefined]);
      d = words.join(" ");
    } else {
      const m = DEP_TOKEN_RE.exec(d);
      if (!m) break;
      out.push([m[1]!, m[2], m[3]]);
      // obs-build removes only the matched text; anything skipped before it stays.
      d = d.slice(0, m.index) + d.slice(m.index + m[0].length);
    }
  }
  return out;
}

/** Whether a `[…]` qualifier on a build dependency drops it for this arch/project. */
function qualifierDrops(qualIn: string, arch: string, proj: string): boolean {
  const qual = qualIn.replace(/^[ \t\n\r\f\v]*\[/, "").replace(/\]$/, "");
  let isNeg = false;
  let bad: boolean | undefined;
  // Perl's split keeps empty fields between separators; they compare equal to an empty project.
  const parts = qual.split(/[ \t\n\r\f\v,]/);
  while (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  for (let q of parts) {
    if (q.startsWith("!")) {
      isNeg = true;
      q = q.slice(1);
    }
    if (bad === undefined && !isNeg) bad = true;
    if (isNeg) {
      if (q === arch || q === proj) {
        bad = true;
        break;
      }
    } else if (q === arch || q === proj) {
      bad = false;
    }
  }
  return bad === true;
}

const NFB_TRIGGERS = new Set(["glibc", "rpm", "gcc", "bash"]);

/**
 * obs-build's `Build::Rpm::parse` over a list of lines, with the macro table already loaded.
 * Exported for the project config reader; use {@link parseSpec} for spec files.
 *
 * @internal
 */
export function parseRecipeLines(input: readonly RecipeLine[], ctx: MacroContext, opts: RecipeParseOptions): RawRecipe {
  const ret: RawRecipe = { subpacks: [], deps: [], prereqs: [], constraints: [], configDependent: false, lines: [] };
  const rec = ret.lines;
  const setRec = (v: string | null): void => {
    if (opts.record) rec[rec.length - 1] = v;
  };
  const expand = (l: string): string => expandMacros(ctx, l);
  let skip = 0;
  let mainPreamble = true;
  let preamble = true;
  let hasIf = false;
  let nfb: string | undefined;
  let nfbIndex = -1;
  const autonum: Record<string, number> = { patch: 0, source: 0 };
  const subpacks: string[] = [];

  for (const entry of input) {
    if (typeof entry !== "string") {
      // Macro blocks of a project config are kept verbatim, or dropped inside a false %if.
      if (opts.record) rec.push(skip ? null : entry.verbatim);
      continue;
    }
    let line = entry;
    if (opts.record) rec.push(line);
    ctx.charge(line.length);

    const nfbMatch = /^#[ \t\n\r\f\v]*neededforbuild[ \t\n\r\f\v]*([^ \t\n\r\f\v][^\n]*)$/.exec(line);
    if (nfbMatch) {
      if (nfb !== undefined) {
        setRec(null);
        continue;
      }
      nfb = nfbMatch[1]!;
      nfbIndex = rec.length - 1;
      continue;
    }
    if (/^[ \t\n\r\f\v]*#/.test(line)) {
      const keep =
        /^#!Build(?:Ignore|Conflicts|Requires)[ \t\n\r\f\v]*:/i.test(line) ||
        (opts.readConstraints && /^#!BuildConstraint[ \t\n\r\f\v]*:/i.test(line));
      if (!keep) continue;
    }
    if (!skip && line.includes("%")) line = expand(line);
    if (/^[ \t\n\r\f\v]*%(?:elif|elifarch|elifos)\b/.test(line)) {
      if (!skip) skip = 1;
      if (skip <= 2) skip = 2 - skip;
      if (skip) continue;
      line = expand(line.replace(/^([ \t\n\r\f\v]*%)el/, "$1"));
    }
    if (/^[ \t\n\r\f\v]*%else\b/.test(line)) {
      if (skip <= 2) skip = 2 - skip;
      continue;
    }
    if (/^[ \t\n\r\f\v]*%endif\b/.test(line)) {
      skip = skip > 2 ? skip - 2 : 0;
      continue;
    }
    if (skip) {
      if (/^[ \t\n\r\f\v]*%if/.test(line)) skip += 2;
      setRec(null);
      if (BUILD_DEP_RE.test(line)) ret.configDependent = true;
      continue;
    }
    if (line.includes("@")) {
      line = line.replaceAll("@BUILD_FLAVOR@", opts.buildFlavor).replaceAll("@OBS_PACKAGE@", opts.obsPackage);
    }

    const ifArch = /^[ \t\n\r\f\v]*%if(n?)(arch|os)([^\n]*)$/.exec(line);
    if (ifArch) {
      const key = ifArch[2] === "arch" ? "_target_cpu" : "_target_os";
      const cur = ctx.macros.get(key);
      const value = perlTrue(cur) ? cur : "unknown";
      const hit = ifArch[3]!.split(/[ \t\n\r\f\v]+/).includes(value);
      if (ifArch[1] === "n" ? hit : !hit) skip = 2;
      hasIf = true;
      continue;
    }
    const ifExpr = /^[ \t\n\r\f\v]*%if([^\n]*)$/.exec(line);
    if (ifExpr) {
      const r = evalExpr(ifExpr[1]!, ctx);
      if (!exprBoolify(r?.[0])) skip = 2;
      hasIf = true;
      continue;
    }

    if (mainPreamble) {
      const tag = /^(Name|Version|Disttag|Release)[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^ \t\n\r\f\v]+)/i.exec(line);
      const excl = /^(ExclusiveArch|ExcludeArch)[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^\n]*)/i.exec(line);
      if (tag) {
        const key = tag[1]!.toLowerCase() as "name" | "version" | "disttag" | "release";
        ret[key] = tag[2]!;
        ctx.macros.set(key, tag[2]!);
      } else if (excl) {
        const list = excl[1]!.toLowerCase() === "exclusivearch" ? (ret.exclarch ??= []) : (ret.badarch ??= []);
        list.push(...splitWords(excl[2]!));
      } else {
        const extra = /^(Epoch|BuildArch(?:itectures)?)[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^ \t\n\r\f\v]+)/i.exec(line);
        if (extra) {
          if (extra[1]!.toLowerCase() === "epoch") ret.epoch = extra[2]!;
          else ret.buildArch = extra[2]!;
        }
      }
    }

    const prereq = PREREQ_RE.exec(line);
    if (prereq) {
      for (const [pack] of splitDeps(prereq[1]!)) {
        if (pack === "MACRO") continue;
        if (pack.startsWith("/")) {
          ret.configDependent = true;
          if (!Object.hasOwn(opts.fileProvides, pack)) continue;
        }
        if (!ret.prereqs.includes(pack)) ret.prereqs.push(pack);
      }
      continue;
    }

    if (preamble && opts.readConstraints) {
      const constraint = /^#!BuildConstraint[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^ \t\n\r\f\v][^\n]*)$/i.exec(line);
      if (constraint) {
        ret.constraints.push(constraint[1]!);
        continue;
      }
    }

    const dep = preamble ? BUILD_DEP_RE.exec(line) : null;
    if (dep) {
      const what = dep[1]!;
      if (hasIf) ret.configDependent = true;
      let replace = false;
      const ndeps: string[] = [];
      for (const [pack, versIn, qual] of splitDeps(dep[2]!)) {
        if (qual !== undefined) {
          replace = true;
          const arch = ctx.macros.get("_target_cpu") || "";
          const proj = ctx.macros.get("_target_project") || "";
          if (qualifierDrops(qual, arch, proj)) continue;
        }
        const vers = (versIn ?? "").replace(/=(>|<)/, "$1=");
        ndeps.push(`${pack}${vers}`);
      }
      if (ndeps.some((d) => d.startsWith("-"))) replace = true;
      const lcWhat = what.toLowerCase();
      if (lcWhat !== "buildrequires" && lcWhat !== "buildprereq" && lcWhat !== "#!buildrequires") {
        ret.deps.push(...ndeps.map((d) => `-${d}`));
        continue;
      }
      if (nfb !== undefined && ndeps.filter((d) => NFB_TRIGGERS.has(d)).length > 2) {
        // Old generated BuildRequires lines next to a `# neededforbuild` line are ignored.
        setRec(null);
        continue;
      }
      ret.deps.push(...ndeps);
      if (replace) {
        const positive = ndeps.filter((d) => !d.startsWith("-"));
        setRec(positive.length > 0 ? `${what}:  ${positive.join(" ")}` : "");
      }
      continue;
    } else if (preamble) {
      const src = /^(Source\d*|Patch\d*|Url|Icon)[ \t\n\r\f\v]*:[ \t\n\r\f\v]*([^ \t\n\r\f\v]+)/i.exec(line);
      if (src) {
        const tag = src[1]!.toLowerCase();
        const val = src[2]!;
        if (tag === "url") ctx.macros.set("url", val);
        const sp = /^(source|patch)(\d+)?$/.exec(tag);
        if (sp) {
          const kind = sp[1]!;
          const num = sp[2] !== undefined ? Number(sp[2]) : autonum[kind]!;
          if (num >= autonum[kind]!) autonum[kind] = num + 1;
          ctx.macros.set(`${kind.toUpperCase()}URL${num}`, val);
        }
      }
    }

    const pkg = /^[ \t\n\r\f\v]*%package[ \t\n\r\f\v]+(-n[ \t\n\r\f\v]+)?([^ \t\n\r\f\v]+)/.exec(line);
    if (pkg) {
      if (pkg[1] !== undefined) subpacks.push(pkg[2]!);
      else if (ret.name !== undefined) subpacks.push(`${ret.name}-${pkg[2]}`);
      preamble = true;
      mainPreamble = false;
    }
    if (SECTION_RE.test(line)) {
      mainPreamble = false;
      preamble = false;
    }
    setRec(line);
  }

  if (nfb !== undefined) {
    if (ret.deps.length === 0) ret.deps = splitWords(nfb);
    else if (opts.record && nfbIndex >= 0) rec[nfbIndex] = null;
  }
  if (ret.name !== undefined) subpacks.unshift(ret.name);
  ret.subpacks = subpacks;
  return ret;
}
