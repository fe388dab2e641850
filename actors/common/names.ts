/**
 * Name rules for everything a user can name: projects, packages, repositories, architectures,
 * users, groups and source files.
 *
 * The rules are OBS's. Where OBS checks a name twice — once in the API (Rails models
 * `Project.valid_name?`, `Package.valid_name?`, `Repository`, `User`, `Group`) and once in the
 * backend (`BSVerify::verify_projid`, `verify_packid`, `verify_repoid`, `verify_arch`,
 * `verify_filename`) — kiln accepts only what passes both, so every kiln name is one that OBS
 * itself would store. Lengths are counted in UTF-8 bytes, as the Perl backend does.
 *
 * kiln adds a few refusals on top, none of which OBS would accept through its API either: DEL and
 * C1 control characters, and unpaired UTF-16 surrogates (which have no UTF-8 encoding and so
 * cannot be stored or compared reliably).
 *
 * Every validator throws {@link InvalidInputError} with a message that names the kind of name,
 * quotes the offending value safely ({@link quoteForMessage}) and says what is wrong.
 */
import { InvalidInputError } from "../../transport/index.ts";

/** Longest project, package, repository or architecture name, in UTF-8 bytes (OBS: 200). */
export const MAX_NAME_BYTES = 200;
/** Longest file name, in UTF-8 bytes (the usual file-system limit). */
export const MAX_FILE_NAME_BYTES = 255;
/** Prefix of files written by source services; only the service role may commit them. */
export const SERVICE_FILE_PREFIX = "_service:";

/** Packages whose names start with `_` but which OBS creates and handles specially. */
export const SPECIAL_PACKAGE_NAMES: readonly string[] = Object.freeze([
  "_project",
  "_product",
  "_pattern",
  "_patchinfo",
]);

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// Characters that would let a value re-order or hide the text around it in a terminal.
const BIDI_CONTROLS = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * Quotes an untrusted value for an error message: control, bidirectional-override and unpaired
 * surrogate characters are written as `\u{…}` escapes, quotes and backslashes are escaped, and
 * values longer than `max` characters are cut with an ellipsis, so a hostile name can neither
 * flood a log nor forge lines in it.
 */
export function quoteForMessage(value: string, max = 80): string {
  // Only the part that can be shown is split into characters; values may be megabytes long.
  const chars = Array.from(value.length > 2 * max + 2 ? value.slice(0, 2 * max + 2) : value);
  const cut = chars.length > max;
  let out = "";
  for (const ch of cut ? chars.slice(0, max) : chars) {
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (CONTROL_CHARS.test(ch) || BIDI_CONTROLS.test(ch) || LONE_SURROGATE.test(ch)) {
      out += `\\u{${ch.codePointAt(0)!.toString(16)}}`;
    } else out += ch;
  }
  return `"${out}${cut ? "…" : ""}"`;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function fail(kind: string, name: string, problem: string): never {
  throw new InvalidInputError(`invalid ${kind} ${quoteForMessage(name)}: ${problem}`, {
    data: { kind, problem },
  });
}

/** Type, emptiness, encoding and length checks every kind of name shares. */
function checkCommon(kind: string, name: unknown, maxBytes: number): asserts name is string {
  if (typeof name !== "string") throw new InvalidInputError(`invalid ${kind}: must be a string, not ${typeName(name)}`);
  if (name === "") throw new InvalidInputError(`invalid ${kind}: must not be empty`);
  if (LONE_SURROGATE.test(name)) fail(kind, name, "contains an unpaired UTF-16 surrogate");
  if (CONTROL_CHARS.test(name)) fail(kind, name, "contains a control character");
  const bytes = utf8Length(name);
  if (bytes > maxBytes) fail(kind, name, `is ${bytes} bytes long, the limit is ${maxBytes}`);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : typeof v;
}

function firstBadChar(name: string, allowed: RegExp): string | undefined {
  for (const ch of name) if (!allowed.test(ch)) return ch;
  return undefined;
}

function badCharProblem(ch: string, allowedText: string): string {
  return `character ${quoteForMessage(ch)} is not allowed (allowed: ${allowedText})`;
}

const PROJECT_CHAR = /^[A-Za-z0-9_+.:-]$/;
const PACKAGE_CHAR = /^[A-Za-z0-9_+.-]$/;
const ALNUM = /^[A-Za-z0-9]$/;

/**
 * Checks a project name: `:`-separated parts of ASCII letters, digits and `_ - + .`; the name
 * starts with a letter or digit, no part is empty or starts with `_` or `.`, not `0`, at most
 * 200 bytes.
 */
export function validateProjectName(name: unknown): asserts name is string {
  const kind = "project name";
  checkCommon(kind, name, MAX_NAME_BYTES);
  const bad = firstBadChar(name, PROJECT_CHAR);
  if (bad !== undefined) fail(kind, name, badCharProblem(bad, "letters, digits, '_', '-', '+', '.', ':'"));
  if (name === "0") fail(kind, name, "'0' is reserved");
  if (!ALNUM.test(name[0]!)) fail(kind, name, "must start with a letter or digit");
  for (const part of name.split(":")) {
    if (part === "") fail(kind, name, "has an empty ':'-separated part (leading, trailing or doubled ':')");
    if (part[0] === "_" || part[0] === ".") fail(kind, name, `part ${quoteForMessage(part)} starts with '${part[0]}'`);
  }
}

/** Options of {@link validatePackageName}. */
export interface PackageNameOptions {
  /**
   * Accept `package:flavor`, the name of one flavor of a multibuild package (build results,
   * build requests). A package's own `_meta` never has one.
   * @default false
   */
  allowMultibuild?: boolean;
}

// `_product:<name>` and `_patchinfo:<name>` are packages OBS generates from a product or a
// maintenance update; the part after the colon follows the flavor rule.
const GENERATED_PREFIXES = ["_product:", "_patchinfo:"] as const;
const FLAVOR_FIRST = /^[A-Za-z0-9+-]$/;

/**
 * Checks a package name: ASCII letters, digits and `_ - + .`, starting with a letter or digit,
 * not `0`, at most 200 bytes; or one of OBS's special packages ({@link SPECIAL_PACKAGE_NAMES},
 * `_product:<name>`, `_patchinfo:<name>`); with `allowMultibuild`, also `<package>:<flavor>`.
 */
export function validatePackageName(name: unknown, opts: PackageNameOptions = {}): asserts name is string {
  const kind = opts.allowMultibuild ? "package or multibuild flavor name" : "package name";
  checkCommon(kind, name, MAX_NAME_BYTES);
  if (SPECIAL_PACKAGE_NAMES.includes(name)) return;
  const generated = GENERATED_PREFIXES.find((p) => name.startsWith(p));
  if (generated !== undefined) {
    checkFlavorLike(kind, name, name.slice(generated.length), `the part after '${generated}'`, ALNUM);
    return;
  }
  const colon = name.indexOf(":");
  if (colon >= 0) {
    if (!opts.allowMultibuild) fail(kind, name, "':' is not allowed (only in a multibuild flavor 'package:flavor')");
    if (name.indexOf(":", colon + 1) >= 0) fail(kind, name, "a multibuild name has exactly one ':'");
    const base = name.slice(0, colon);
    if (base === "_project" || base === "_pattern") fail(kind, name, `${base} has no multibuild flavors`);
    if (base === "") fail(kind, name, "the package part before ':' is empty");
    checkPlainPackage(kind, name, base);
    checkFlavorLike(kind, name, name.slice(colon + 1), "the flavor after ':'", FLAVOR_FIRST);
    return;
  }
  checkPlainPackage(kind, name, name);
}

function checkPlainPackage(kind: string, name: string, part: string): void {
  const bad = firstBadChar(part, PACKAGE_CHAR);
  if (bad !== undefined) fail(kind, name, badCharProblem(bad, "letters, digits, '_', '-', '+', '.'"));
  if (part === "0") fail(kind, name, "'0' is reserved");
  if (part[0] === "_") fail(kind, name, "must not start with '_' (reserved for OBS's special packages)");
  if (!ALNUM.test(part[0]!)) fail(kind, name, "must start with a letter or digit");
}

function checkFlavorLike(kind: string, name: string, part: string, what: string, first: RegExp): void {
  if (part === "") fail(kind, name, `${what} is empty`);
  const bad = firstBadChar(part, PACKAGE_CHAR);
  if (bad !== undefined) fail(kind, name, badCharProblem(bad, "letters, digits, '_', '-', '+', '.'"));
  if (!first.test(part[0]!)) fail(kind, name, `${what} must not start with ${quoteForMessage(part[0]!)}`);
}

/**
 * Checks a repository name: any characters except `/`, `:` and control characters, not starting
 * with `_` or `.`, at most 200 bytes.
 */
export function validateRepositoryName(name: unknown): asserts name is string {
  const kind = "repository name";
  checkCommon(kind, name, MAX_NAME_BYTES);
  if (name.includes("/")) fail(kind, name, "'/' is not allowed");
  if (name.includes(":")) fail(kind, name, "':' is not allowed");
  if (name[0] === "_" || name[0] === ".") fail(kind, name, `must not start with '${name[0]}'`);
}

// BSVerify::verify_simple plus verify_arch's ban on '.' and ':'; non-ASCII passes, as it does in OBS.
const ARCH_CHAR = /^[-+=,0-9%{}@#A-Z_a-z~\u0080-\u{10ffff}]$/u;

/**
 * Checks an architecture name (`x86_64`, `aarch64`, `local`, …): ASCII letters, digits and
 * `_ - + = , % { } @ # ~` (no `.`, `:` or `/`), at most 200 bytes. Whether kiln knows the
 * architecture is not checked here.
 */
export function validateArch(name: unknown): asserts name is string {
  const kind = "architecture name";
  checkCommon(kind, name, MAX_NAME_BYTES);
  const bad = firstBadChar(name, ARCH_CHAR);
  if (bad !== undefined) fail(kind, name, badCharProblem(bad, "letters, digits and '_-+=,%{}@#~'"));
}

/** Options of {@link validateFileName}. */
export interface FileNameOptions {
  /**
   * Accept names starting with `_service:`; only the service role, which commits the output of
   * source services, sets this.
   * @default false
   */
  allowServicePrefix?: boolean;
}

/**
 * Checks the name of a file in a package: no `/`, no control characters (NUL included), not
 * starting with `.` (so neither `.` nor `..`, as OBS's `verify_filename`), at most 255 UTF-8
 * bytes, and not starting with `_service:` unless `allowServicePrefix` is set.
 */
export function validateFileName(name: unknown, opts: FileNameOptions = {}): asserts name is string {
  const kind = "file name";
  checkCommon(kind, name, MAX_FILE_NAME_BYTES);
  if (name.includes("/")) fail(kind, name, "'/' is not allowed");
  if (name === "." || name === "..") fail(kind, name, "'.' and '..' are not file names");
  if (name[0] === ".") fail(kind, name, "must not start with '.'");
  if (!opts.allowServicePrefix && name.startsWith(SERVICE_FILE_PREFIX)) {
    fail(kind, name, `the prefix '${SERVICE_FILE_PREFIX}' is reserved for the output of source services`);
  }
}

const USER_CHAR = /^[A-Za-z0-9_ $^\-.#*+&'"]$/;
const GROUP_CHAR = /^[A-Za-z0-9_.-]$/;

/** Checks a user name (login): 2 to 100 of ASCII letters, digits, space and `_ $ ^ - . # * + & ' "`. */
export function validateUserName(name: unknown): asserts name is string {
  checkLogin("user name", name, USER_CHAR, "letters, digits, space and '_$^-.#*+&'\"'");
}

/** Checks a group name: 2 to 100 of ASCII letters, digits and `_ . -`. */
export function validateGroupName(name: unknown): asserts name is string {
  checkLogin("group name", name, GROUP_CHAR, "letters, digits, '_', '.', '-'");
}

function checkLogin(kind: string, name: unknown, allowed: RegExp, allowedText: string): asserts name is string {
  checkCommon(kind, name, 100);
  const bad = firstBadChar(name, allowed);
  if (bad !== undefined) fail(kind, name, badCharProblem(bad, allowedText));
  if (name.length < 2) fail(kind, name, "must be at least 2 characters long");
}
