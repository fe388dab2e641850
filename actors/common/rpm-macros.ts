/**
 * The rpm macro and expression engine that OBS uses to read recipes and project configs.
 *
 * OBS does not run rpm to learn a package's build dependencies: obs-build (`Build::Rpm`) carries
 * its own small macro processor, and the scheduler's view of a spec file is whatever that
 * processor makes of it. kiln therefore reproduces obs-build's behaviour, quirks included, rather
 * than rpm's: `%(…)` turns the rest of the line into `MACRO`, `%[…]` swallows the rest of the line,
 * `%1D` names a macro called `1D`, unknown macros stay in the text (`%undefine` among them: obs-build
 * has none, so `%undefine x` leaves `x` defined, and real specs' build dependencies follow from
 * that), a line that expands more than
 * 1000 macros becomes `MACRO`, numbers print the way Perl prints them, and so on. The reference is
 * obs-build 20210120 (`Build/Rpm.pm`: `expandmacros`, `macroend`, `grabargs`, `expr`), checked
 * against the real Perl code by `test/integration/spec-oracle.test.ts`.
 *
 * On top of obs-build, kiln bounds the work a hostile input can cause: nesting depth, the size of
 * an expanded line and the total scanning work of one parse are limited, and exceeding a limit
 * raises {@link InvalidInputError} instead of hanging.
 */
import { InvalidInputError } from "../../transport/index.ts";
import { rpmvercmp } from "./rpm-version.ts";

/** Limits on macro expansion; the defaults are far above anything a real recipe needs. */
export interface MacroLimits {
  /** Longest line an expansion may produce, in characters. @default 262144 */
  maxLineLength: number;
  /** Deepest nesting of `%global`, `%[…]`, `%{expr:…}` and parenthesised expressions. @default 1200 */
  maxDepth: number;
  /** Scanning work (characters examined) allowed for one whole parse. @default 100000000 */
  maxWork: number;
  /** Macro references expanded in one whole parse. @default 2000000 */
  maxExpansions: number;
}

/** Default {@link MacroLimits}. */
export const DEFAULT_MACRO_LIMITS: Readonly<MacroLimits> = Object.freeze({
  maxLineLength: 256 * 1024,
  maxDepth: 1200,
  maxWork: 100_000_000,
  maxExpansions: 2_000_000,
});

/** obs-build gives up on a line after this many macro expansions and replaces it with `MACRO`. */
const MAX_TRIES = 1000;

/**
 * obs-build's built-in macro definitions (arch families, as of rpm 4.13), in `%define` form.
 * Spacing inside the bodies is kept as obs-build has it, because a body is text and text can be
 * compared.
 */
export const STD_MACRO_LINES: readonly string[] = Object.freeze([
  "%define nil",
  "%define ix86    i386 i486 i586 i686 pentium3 pentium4 athlon geode",
  "%define arm     armv3l armv4b armv4l armv4tl armv5b armv5l armv5teb armv5tel armv5tejl armv6l armv6hl armv7l armv7hl armv7hnl       armv5el armv5eb armv6el armv6eb armv7el armv7eb armv7nhl armv8el",
  "%define arml    armv3l armv4l armv5l armv5tel armv6l armv6hl armv7l armv7hl armv7hnl",
  "%define armb    armv4b armv5b armv5teb",
  "%define arm64   aarch64",
  "%define mips32  mips mipsel mipsr6 mipsr6el",
  "%define mips64  mips64 mips64el mips64r6 mips64r6el",
  "%define mipseb  mips mipsr6 mips64 mips64r6",
  "%define mipsel  mipsel mipsr6el mips64el mips64r6el",
  "%define mips    %{mips32} %{mips64}",
  "%define sparc   sparc sparcv8 sparcv9 sparcv9v sparc64 sparc64v",
  "%define alpha   alpha alphaev56 alphaev6 alphaev67",
  "%define power64 ppc64 ppc64p7 ppc64le",
]);

/** Perl's `\s` on byte strings; JavaScript's `\s` also matches Unicode spaces, which Perl does not. */
export const WS = "[ \\t\\n\\r\\f\\v]";

/** Perl's `split(' ', s)`: split on runs of whitespace, ignoring leading whitespace. */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  const re = /[^ \t\n\r\f\v]+/g;
  for (let m = re.exec(s); m; m = re.exec(s)) out.push(m[0]);
  return out;
}

/** True when `s` is true in Perl: defined, not empty and not `"0"`. */
export function perlTrue(s: string | undefined): s is string {
  return s !== undefined && s !== "" && s !== "0";
}

/**
 * The macro table of one parse: macro bodies, the getopt strings of parametric macros, and the
 * work counter that bounds the parse.
 */
export class MacroContext {
  /** Macro name → body. */
  readonly macros = new Map<string, string>();
  /** Parametric macro name → its getopt string (the `(…)` of `%define name(…)`). */
  readonly args = new Map<string, string>();
  readonly limits: MacroLimits;
  private work = 0;
  private expansions = 0;

  constructor(limits: Partial<MacroLimits> = {}) {
    this.limits = { ...DEFAULT_MACRO_LIMITS, ...limits };
  }

  /** Defines (or redefines) a macro; `argSpec` makes it parametric. */
  define(name: string, body: string, argSpec?: string): void {
    if (argSpec !== undefined) this.args.set(name, argSpec);
    else this.args.delete(name);
    this.macros.set(name, body);
  }

  /** Charges `n` units of scanning work against the parse's budget. */
  charge(n: number): void {
    this.work += n + 1;
    if (this.work > this.limits.maxWork) {
      throw new InvalidInputError("macro expansion exceeds the work limit", {
        data: { limit: this.limits.maxWork },
      });
    }
  }

  /** Counts one macro reference against the parse's budget. */
  countExpansion(): void {
    if (++this.expansions > this.limits.maxExpansions) {
      throw new InvalidInputError("macro expansion exceeds the expansion limit", {
        data: { limit: this.limits.maxExpansions },
      });
    }
  }

  /** Throws when an expansion result would exceed the line length limit. */
  checkLength(n: number): void {
    if (n > this.limits.maxLineLength) {
      throw new InvalidInputError("macro expansion exceeds the line length limit", {
        data: { limit: this.limits.maxLineLength },
      });
    }
  }

  /** Throws when nesting goes deeper than the limit. */
  checkDepth(depth: number): void {
    if (depth > this.limits.maxDepth) {
      throw new InvalidInputError("macros or expressions nested too deeply", {
        data: { limit: this.limits.maxDepth },
      });
    }
  }
}

const DEFINE_LINE_RE = /^%define[ \t\n\r\f\v]*([0-9a-zA-Z_]+)(?:\(([^)\n]*)\))?[ \t\n\r\f\v]*([^\n]*?)$/;

/**
 * Loads `%define name[(opts)] body` lines into `ctx` (obs-build `initmacros`); other lines are
 * ignored.
 */
export function defineFromLines(ctx: MacroContext, lines: readonly string[]): void {
  for (const line of lines) {
    const m = DEFINE_LINE_RE.exec(line);
    if (m) ctx.define(m[1]!, m[3]!, m[2]);
  }
}

/**
 * Appends the lines of an rpm macro file (a project config's `Macros:` text) to a `%define` line
 * list the way obs-build does: `%name body` becomes `%define name body`, other lines are kept as
 * they are (and so ignored), and a continuation line after a trailing backslash becomes `...`,
 * so a multi-line macro keeps only its first line (ending in a backslash).
 */
export function appendRawMacroLines(lines: string[], rawMacros: string): void {
  if (rawMacros === "") return;
  for (const rm of perlSplitLines(rawMacros)) {
    if (lines.length > 0 && lines[lines.length - 1]!.endsWith("\\")) {
      lines.push(rm.endsWith("\\") ? "...\\" : "...");
    } else if (!rm.startsWith("%")) {
      lines.push(rm);
    } else {
      lines.push(`%define ${rm.slice(1)}`);
    }
  }
}

/** Perl's `split("\n", s)`: trailing empty fields are dropped. */
export function perlSplitLines(s: string): string[] {
  const parts = s.split("\n");
  while (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

/**
 * Finds where a macro starting at `s[0] === "%"` ends (obs-build `macroend`): the matching close
 * of `%{`, `%(` or `%[` (backslash escapes the next character; an unclosed macro runs to the end),
 * or the plain `%name` form.
 */
export function macroEnd(s: string): string {
  const o = s[1];
  if (s[0] === "%" && (o === "{" || o === "(" || o === "[")) {
    if (o === "[") return macroEndBracket(s);
    const c = o === "(" ? ")" : "}";
    let cnt = 1;
    for (let i = 2; i < s.length; i++) {
      const ch = s[i];
      if (ch === "\\") {
        i++;
      } else if (ch === o) {
        cnt++;
      } else if (ch === c) {
        if (--cnt === 0) return s.slice(0, i + 1);
      }
    }
    return s;
  }
  const m = /^%[?!]*-?[a-zA-Z0-9_]*(?:\*|\*\*|#)?/.exec(s);
  return m ? m[0] : "";
}

/**
 * obs-build builds the bracket search as the character class `[[]` followed by a literal
 * backslash and `]`, so for `%[` nothing ever counts as the closing bracket: `%[…]` always runs to
 * the end of the text.
 */
function macroEndBracket(s: string): string {
  return s;
}

function isWordChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

type MacroToken = { prefix: string; tok: string; brace?: string; rest: string };

/** Finds the next macro reference the way obs-build's expansion loop does, or undefined. */
function nextMacro(line: string, ctx: MacroContext): MacroToken | undefined {
  let from = 0;
  for (;;) {
    const idx = line.indexOf("%", from);
    ctx.charge(idx < 0 ? line.length - from : idx - from);
    if (idx < 0) return undefined;
    const c = line[idx + 1];
    let end = -1;
    let brace: string | undefined;
    if (c === "{") {
      const close = line.indexOf("}", idx + 2);
      if (close > idx + 2) {
        end = close + 1;
        brace = line.slice(idx + 2, close);
      }
    } else if (c === "%" || c === "#" || c === "(" || c === "[") {
      end = idx + 2;
    } else if (c === "*") {
      end = line[idx + 2] === "*" ? idx + 3 : idx + 2;
    } else if (c !== undefined) {
      let j = idx + 1;
      while (line[j] === "?" || line[j] === "!") j++;
      let k = j;
      while (k < line.length && isWordChar(line.charCodeAt(k))) k++;
      if (k > j) end = k;
    }
    if (end < 0) {
      from = idx + 1;
      continue;
    }
    let rest = line.slice(end);
    // Perl's `(.*?)$` stops before a final newline, which is thereby dropped.
    if (rest.endsWith("\n")) rest = rest.slice(0, -1);
    return { prefix: line.slice(0, idx), tok: line.slice(idx + 1, end), brace, rest };
  }
}

/** Arguments of a parametric macro call (obs-build `grabargs`). */
export function grabArgs(name: string, getopt: string | undefined, argsIn: string[]): Map<string, string> {
  const m = new Map<string, string>();
  const args = [...argsIn];
  m.set("0", name);
  m.set("**", args.join(" "));
  const takesArg = new Map<string, boolean>();
  if (getopt !== undefined) {
    const re = /([\s\S])(:*)/g;
    for (let g = re.exec(getopt); g; g = re.exec(getopt)) takesArg.set(g[1]!, g[2] !== "");
  }
  while (args.length > 0 && args[0]!.startsWith("-")) {
    let o = args.shift()!.slice(1);
    if (o === "-") break;
    while (o.length > 0) {
      const ch = o[0]!;
      const after = o.slice(1);
      if (takesArg.get(ch)) {
        let arg = after;
        if (args.length > 0 && arg === "") arg = args.shift()!;
        m.set(`-${ch}`, `-${ch} ${arg}`);
        m.set(`-${ch}*`, arg);
        break;
      }
      m.set(`-${ch}`, `-${ch}`);
      o = after;
    }
  }
  m.set("#", String(args.length));
  args.forEach((a, i) => m.set(String(i + 1), a));
  m.set("*", args.join(" "));
  return m;
}

/** Replaces the argument macros of one call level with those of another (obs-build `adaptmacros`). */
function adaptMacros(
  ctx: MacroContext,
  oldArgs: Map<string, string>,
  newArgs: Map<string, string>
): Map<string, string> {
  for (const k of oldArgs.keys()) ctx.macros.delete(k);
  for (const [k, v] of newArgs) ctx.macros.set(k, v);
  return newArgs;
}

/** What a pushed frame restores when its expansion is done (obs-build's three stack marks). */
type Frame =
  | { kind: "expand"; saved: string; todo: string }
  | { kind: "text"; saved: string; todo: string }
  | { kind: "args"; saved: string; todo: string; args: Map<string, string> };

/**
 * Expands the macros in one line (obs-build `expandmacros`). Defines made by `%define`/`%global`
 * in the line are stored in `ctx`, and the text from the define onward is consumed.
 *
 * @param tries expansions already spent on this line (obs-build hands it to nested expansions)
 */
export function expandMacros(ctx: MacroContext, lineIn: string, tries = 0, depth = 0): string {
  ctx.checkDepth(depth);
  let line = lineIn;
  let expanded = "";
  const stack: Frame[] = [];
  // Characters held by pushed frames, so that the whole pending text stays within the limit.
  let held = 0;
  const push = (f: Frame): void => {
    held += f.saved.length + f.todo.length;
    stack.push(f);
  };
  let argMacros = new Map<string, string>();
  for (;;) {
    for (;;) {
      ctx.checkLength(held + expanded.length + line.length);
      const t = nextMacro(line, ctx);
      if (!t) break;
      ctx.countExpansion();
      if (tries++ > MAX_TRIES) {
        line = "MACRO";
        break;
      }
      expanded += t.prefix;
      line = t.rest;
      if (t.tok === "%") {
        expanded += "%";
        continue;
      }
      let name = t.brace ?? t.tok;
      let orig = t.tok;
      let data: string | undefined;
      let alt: string | undefined;
      if (t.brace !== undefined) {
        if (/[{\\]/.test(name)) {
          const whole = `%${orig}${line}`;
          const m = macroEnd(whole);
          line = whole.slice(m.length);
          orig = m.slice(1);
          name = m.replace(/^%\{/, "").replace(/\}$/, "");
        }
        data = "";
        const sp = /^([^ \t\n\r\f\v:]+)([ \t\n\r\f\v:])([^\n]*)$/.exec(name);
        if (sp) {
          name = sp[1]!;
          if (sp[2] === ":") alt = sp[3];
          else data = sp[3];
        }
      }
      let test = 0;
      if (name.startsWith("!?") || name.startsWith("?!")) test = -1;
      else if (name.startsWith("?")) test = 1;
      name = name.replace(/^[!?]+/, "");

      if (name === "(") {
        line = "MACRO";
        break;
      } else if (name === "[") {
        const whole = macroEnd(`%[${line}`);
        line = line.slice(whole.length - 2);
        const body = whole.replace(/^%\[/, "").replace(/\]$/, "");
        const xp = (s: string): string => expandMacros(ctx, s, tries, depth + 1);
        const r = evalExpr(body, ctx, xp, depth + 1);
        expanded += r === undefined ? "" : exprToString(r[0]);
      } else if (name === "define" || name === "global") {
        const m = /^[ \t\n\r\f\v]*([0-9a-zA-Z_]+)(?:\(([^)]*)\))?[ \t\n\r\f\v]*([^\n]*?)$/.exec(line);
        if (m) {
          let body = m[3]!;
          if (name === "global") body = expandMacros(ctx, body, tries, depth + 1);
          ctx.define(m[1]!, body, m[2]);
        }
        line = "";
        break;
      } else if (
        name === "defined" ||
        name === "with" ||
        name === "undefined" ||
        name === "without" ||
        name === "bcond_with" ||
        name === "bcond_without"
      ) {
        let args: string[];
        const braced = /^\{([^\n]*)\}$/.exec(orig);
        if (braced) {
          args = splitWords(braced[1]!);
          args.shift();
        } else {
          args = splitWords(line);
          line = "";
        }
        if (args.length === 0) continue;
        if (name === "bcond_with") {
          if (ctx.macros.has(`_with_${args[0]}`)) ctx.macros.set(`with_${args[0]}`, "1");
          continue;
        }
        if (name === "bcond_without") {
          if (!ctx.macros.has(`_without_${args[0]}`)) ctx.macros.set(`with_${args[0]}`, "1");
          continue;
        }
        const key = name === "with" || name === "without" ? `with_${args[0]}` : args[0]!;
        const negate = name === "undefined" || name === "without";
        line = String(Number(ctx.macros.has(key)) ^ Number(negate)) + line;
      } else if (name === "expand") {
        let body = alt ?? ctx.macros.get("expand") ?? "";
        if (test === -1) body = "";
        push({ kind: "expand", saved: expanded, todo: line });
        line = body;
        expanded = "";
      } else if (name === "expr") {
        let body = alt ?? ctx.macros.get("expr") ?? "";
        if (test === -1) body = "";
        body = expandMacros(ctx, body, tries, depth + 1);
        const r = evalExpr(body, ctx, undefined, depth + 1);
        expanded += r === undefined ? "" : exprToString(r[0]);
      } else if (ctx.macros.has(name)) {
        const getopt = ctx.args.get(name);
        if (getopt !== undefined) {
          if (data === undefined) {
            data = /^[ \t\n\r\f\v]*([^\n]*)/.exec(line)![1]!;
            line = "";
          }
          push({ kind: "args", saved: expanded, todo: line, args: argMacros });
          argMacros = adaptMacros(ctx, argMacros, grabArgs(name, getopt, splitWords(data)));
          line = ctx.macros.get(name) ?? "";
          expanded = "";
          continue;
        }
        let body = alt ?? ctx.macros.get(name)!;
        if (test === -1) body = "";
        if (body.includes("%")) {
          if (line !== "") push({ kind: "text", saved: "", todo: line });
          line = body;
        } else {
          expanded += body;
        }
      } else if (test !== 0) {
        const body = alt === undefined || test === 1 ? "" : alt;
        if (body.includes("%")) {
          if (line !== "") push({ kind: "text", saved: "", todo: line });
          line = body;
        } else {
          expanded += body;
        }
      } else if (!name.startsWith("-")) {
        expanded += `%${orig}`;
      }
    }
    line = expanded + line;
    ctx.checkLength(line.length);
    const f = stack.pop();
    if (!f) return line;
    held -= f.saved.length + f.todo.length;
    if (f.kind === "expand") {
      expanded = f.saved;
      if (f.todo !== "") push({ kind: "text", saved: "", todo: f.todo });
    } else {
      if (f.kind === "args") argMacros = adaptMacros(ctx, argMacros, f.args);
      expanded = f.saved + line;
      line = f.todo;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Expressions (`%if`, `%[…]`, `%{expr:…}`), with Perl's loose typing: a value is a number, a
// string marked by a leading `"`, or a version marked by a leading `v`.

/** A value of obs-build's expression evaluator. */
export type ExprValue = number | string;

/** obs-build `expr_boolify`: false for undefined, `""`, zero-like text and any version. */
export function exprBoolify(v: ExprValue | undefined): boolean {
  if (v === undefined) return false;
  const s = typeof v === "number" ? perlNumberToString(v) : v;
  return !(s === '"' || /^0*$/.test(s) || s.startsWith("v"));
}

/** `%[…]` output: the value as text, without its string or version mark. */
export function exprToString(v: ExprValue): string {
  const s = typeof v === "number" ? perlNumberToString(v) : v;
  return s.replace(/^[v"]/, "");
}

/** Perl's numification of a string (leading number, else 0). */
export function perlNumify(v: ExprValue): number {
  if (typeof v === "number") return v;
  const m = /^[ \t\n\r\f\v]*([+-]?)(\d+(?:\.\d*)?|\.\d+)([eE][+-]?\d+)?/.exec(v);
  if (m) return Number(`${m[1]}${m[2]}${m[3] ?? ""}`);
  const inf = /^[ \t\n\r\f\v]*([+-]?)(inf(?:inity)?|nan)/i.exec(v);
  if (inf) {
    if (inf[2]!.toLowerCase() === "nan") return NaN;
    return inf[1] === "-" ? -Infinity : Infinity;
  }
  return 0;
}

/** Perl's stringification of a number: integers in full, others as `%.15g`. */
export function perlNumberToString(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (!Number.isFinite(n)) return n > 0 ? "Inf" : "-Inf";
  if (Object.is(n, -0)) return "0";
  // Perl keeps integers as integers (IV) and prints them in full.
  if (Number.isInteger(n) && Math.abs(n) < 2 ** 63) {
    return Math.abs(n) <= Number.MAX_SAFE_INTEGER ? String(n) : BigInt(n).toString();
  }
  const exp = Number(n.toExponential(14).split("e")[1]);
  if (exp < -4 || exp >= 15) {
    const [mant, e] = n.toExponential(14).split("e") as [string, string];
    const m = mant.includes(".") ? mant.replace(/0+$/, "").replace(/\.$/, "") : mant;
    const en = Number(e);
    return `${m}e${en < 0 ? "-" : "+"}${String(Math.abs(en)).padStart(2, "0")}`;
  }
  const fixed = n.toFixed(Math.max(0, 14 - exp));
  return fixed.includes(".") ? fixed.replace(/0+$/, "").replace(/\.$/, "") : fixed;
}

function perlNegate(v: ExprValue): ExprValue {
  if (typeof v === "number") return -v;
  if (/^[A-Za-z_]/.test(v)) return `-${v}`;
  return -perlNumify(v);
}

function perlStr(v: ExprValue): string {
  return typeof v === "number" ? perlNumberToString(v) : v;
}

function isVersionValue(v: ExprValue): boolean {
  return typeof v === "string" && v.startsWith("v");
}

function isStringValue(v: ExprValue): boolean {
  return typeof v === "string" && v.startsWith('"');
}

/** obs-build `verscmp` for `[epoch:]version[-release]` strings. */
function verscmp(a: string, b: string): number {
  if (a === b) return 0;
  const split = (s: string): [string, string, string] => {
    const m = /^(?:(\d+):)?([\s\S]*?)(?:-([^-]*))?$/.exec(s)!;
    return [m[1] ?? "0", m[2]!, m[3] ?? ""];
  };
  const [e1, v1, r1] = split(a);
  const [e2, v2, r2] = split(b);
  if (e1 !== e2) {
    const r = rpmvercmp(e1, e2);
    if (r) return r;
  }
  if (v1 !== v2) {
    const r = rpmvercmp(v1, v2);
    if (r) return r;
  }
  return r1 !== r2 ? rpmvercmp(r1, r2) : 0;
}

/** Version comparison with a mask of accepted outcomes: 1 = less, 2 = equal, 4 = greater. */
function exprVcmp(v1: ExprValue, v2: ExprValue, mask: number): number {
  const r = verscmp(perlStr(v1).slice(1), perlStr(v2).slice(1));
  return (r < 0 ? 1 : r > 0 ? 4 : 2) & mask ? 1 : 0;
}

type Expander = (s: string) => string;
const DUMMY_EXPANDER: Expander = () => "";

/** Collects a literal that may contain macros, then expands it (obs-build `expr_expand`). */
function exprExpand(v: string, expr: string, xp: Expander, r: RegExp): [string, string] {
  for (;;) {
    if (expr.startsWith("%%")) {
      v += expr.slice(0, 2);
      expr = expr.slice(2);
    } else if (expr.startsWith("%")) {
      const m = macroEnd(expr);
      v += m;
      expr = expr.slice(m.length);
    } else {
      const m = r.exec(expr);
      if (!m) return [xp(v), expr];
      v += m[1]!;
      expr = expr.slice(m[1]!.length);
    }
  }
}

/**
 * Evaluates an rpm expression as obs-build does (`Build::Rpm::expr`): returns the value and the
 * unparsed rest, or undefined when the expression is malformed. `xp`, when given, expands macros
 * met inside the expression (for `%[…]`); `%if` lines are expanded before evaluation instead.
 */
export function evalExpr(
  exprIn: string,
  ctx: MacroContext,
  xp?: Expander,
  depth = 0,
  lev = 0
): [ExprValue, string] | undefined {
  ctx.checkDepth(depth);
  ctx.charge(exprIn.length);
  let expr = exprIn.replace(/^[ \t\n\r\f\v]+/, "");
  let v: ExprValue;
  const t = expr[0];
  if (t === "(") {
    const r = evalExpr(expr.slice(1), ctx, xp, depth + 1, 0);
    if (!r) return undefined;
    [v, expr] = r;
    if (!expr.startsWith(")")) return undefined;
    expr = expr.slice(1);
  } else if (t === "!") {
    const r = evalExpr(expr.slice(1), ctx, xp, depth + 1, 6);
    if (!r) return undefined;
    v = exprBoolify(r[0]) ? 0 : 1;
    expr = r[1];
  } else if (t === "-") {
    const r = evalExpr(expr.slice(1), ctx, xp, depth + 1, 6);
    if (!r) return undefined;
    v = perlNegate(r[0]);
    expr = r[1];
  } else if (/^[0-9]/.test(expr) || (xp && expr.startsWith("%"))) {
    if (xp) {
      const [s, rest] = exprExpand("0", expr, xp, /^([0-9]+)/);
      v = perlNumify(s);
      expr = rest;
    } else {
      const m = /^[0-9]+/.exec(expr)!;
      v = perlNumify(m[0]);
      expr = expr.slice(m[0].length);
    }
  } else if (/^v"[\s\S]*?"/.test(expr)) {
    const close = expr.indexOf('"', 2);
    if (xp) {
      // obs-build re-joins the literal without its `v"` and then cuts two more characters,
      // so with macro expansion on, the first two characters of a version are lost.
      const [s, rest] = exprExpand("v", (expr.slice(2, close) + expr.slice(close)).slice(2), xp, /^([^%"]+)/);
      v = s;
      expr = rest;
    } else {
      v = `v${expr.slice(2, close)}`;
      expr = expr.slice(close);
    }
    expr = expr.replace(/^"/, "");
  } else if (/^"[\s\S]*?"/.test(expr)) {
    if (xp) {
      const [s, rest] = exprExpand('"', expr.slice(1), xp, /^([^%"]+)/);
      v = s;
      expr = rest;
    } else {
      const close = expr.indexOf('"', 1);
      v = expr.slice(0, close);
      expr = expr.slice(close);
    }
    expr = expr.replace(/^"/, "");
  } else if (/^[a-zA-Z]/.test(expr)) {
    // Bare words are strings (rpm no longer accepts them, obs-build still does).
    const m = /^[a-zA-Z][a-zA-Z_0-9]*/.exec(expr)!;
    v = `"${m[0]}`;
    expr = expr.slice(m[0].length);
  } else {
    return undefined;
  }
  if (lev >= 6) return [v, expr];
  for (;;) {
    expr = expr.replace(/^[ \t\n\r\f\v]+/, "");
    const op2 = expr.slice(0, 2);
    const op1 = expr[0];
    if (op2 === "&&" || op2 === "||") {
      if (lev >= 2) return [v, expr];
      const b = exprBoolify(v);
      const skipRhs = op2 === "&&" ? !b : b;
      const r = evalExpr(expr.slice(2), ctx, xp && skipRhs ? DUMMY_EXPANDER : xp, depth + 1, 2);
      if (!r) return undefined;
      if (op2 === "&&" ? b : !b) v = r[0];
      expr = r[1];
    } else if (op2 === ">=" || op2 === "<=" || op2 === "==" || op2 === "!=" || op1 === ">" || op1 === "<") {
      if (lev >= 3) return [v, expr];
      const op = op2 === ">=" || op2 === "<=" || op2 === "==" || op2 === "!=" ? op2 : op1!;
      const r = evalExpr(expr.slice(op.length), ctx, xp, depth + 1, 3);
      if (!r) return undefined;
      v = compareValues(op, v, r[0]) ? 1 : 0;
      expr = r[1];
    } else if (op1 === "+" || op1 === "-") {
      if (lev >= 4) return [v, expr];
      const r = evalExpr(expr.slice(1), ctx, xp, depth + 1, 4);
      if (!r) return undefined;
      let v2 = r[0];
      if (op1 === "+" && isStringValue(v) && isStringValue(v2)) {
        v2 = (v2 as string).slice(1);
        v = (v as string) + v2;
      } else {
        v = op1 === "+" ? perlNumify(v) + perlNumify(v2) : perlNumify(v) - perlNumify(v2);
      }
      expr = r[1];
    } else if (op1 === "*" || op1 === "/") {
      const r = evalExpr(expr.slice(1), ctx, xp, depth + 1, 5);
      if (!r) return undefined;
      if (op1 === "*") {
        v = perlNumify(v) * perlNumify(r[0]);
      } else {
        const d = perlNumify(r[0]);
        if (!d) return undefined;
        v = perlNumify(v) / d;
      }
      expr = r[1];
    } else if (op1 === "?") {
      if (lev > 1) return [v, expr];
      const b = exprBoolify(v);
      const r1 = evalExpr(expr.slice(1), ctx, xp && !b ? DUMMY_EXPANDER : xp, depth + 1, 1);
      if (!r1) return undefined;
      // obs-build only warns about a missing ':' and parses on.
      const rest = r1[1].startsWith(":") ? r1[1].slice(1) : r1[1];
      const r2 = evalExpr(rest, ctx, xp && b ? DUMMY_EXPANDER : xp, depth + 1, 1);
      if (!r2) return undefined;
      v = b ? r1[0] : r2[0];
      expr = r2[1];
    } else {
      return [v, expr];
    }
  }
}

function compareValues(op: string, v: ExprValue, v2: ExprValue): boolean {
  if (isVersionValue(v)) {
    const mask = { ">=": 6, ">": 4, "<=": 3, "<": 1, "==": 2, "!=": 5 }[op]!;
    return exprVcmp(v, v2, mask) === 1;
  }
  if (isStringValue(v)) {
    const a = v as string;
    const b = perlStr(v2);
    switch (op) {
      case ">=":
        return a >= b;
      case ">":
        return a > b;
      case "<=":
        return a <= b;
      case "<":
        return a < b;
      case "==":
        return a === b;
      default:
        return a !== b;
    }
  }
  const a = perlNumify(v);
  const b = perlNumify(v2);
  switch (op) {
    case ">=":
      return a >= b;
    case ">":
      return a > b;
    case "<=":
      return a <= b;
    case "<":
      return a < b;
    case "==":
      return a === b;
    default:
      return a !== b;
  }
}
