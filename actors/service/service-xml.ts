/**
 * `_service` files: which source services a package runs, in which order, with which parameters
 * and in which mode, read as OBS writes them:
 *
 * ```xml
 * <services>
 *   <service name="download_url"><param name="url">https://example.org/x-1.0.tar.gz</param></service>
 *   <service name="tar" mode="buildtime"/>
 * </services>
 * ```
 *
 * The document comes from users, so it is read with the same hostile-input rules as `_meta`
 * (actors/source/meta-xml.ts: no DOCTYPE, no entities beyond XML's five, no processing
 * instructions) and a smaller size limit. Anything OBS's schema has no place for is refused by
 * name, and so are names that would be unsafe on a command line or in a `_service:<name>:<file>`
 * file name.
 *
 * Modes are OBS's (`obs.rng` service-modes). What each means on a kiln server:
 * - default, `trylocal`, `serveronly`: run by the service role after every commit;
 * - `buildtime`: recorded in the build job and run by the worker before the build;
 * - `manual`, `disabled`: only on an explicit `kiln service run --mode manual|disabled`, whose
 *   output becomes ordinary files of a new revision (what `osc service manualrun` + commit does);
 * - `localonly`: never on the server (it is for `osc service localrun`).
 */
import { InvalidInputError, TooLargeError } from "../../transport/index.ts";
import { quoteForMessage } from "../common/names.ts";
import { isElement, readXml, type XmlElement } from "../source/meta-xml.ts";

export const ServiceMode = {
  Default: "default",
  TryLocal: "trylocal",
  LocalOnly: "localonly",
  ServerOnly: "serveronly",
  BuildTime: "buildtime",
  Manual: "manual",
  Disabled: "disabled",
} as const;
export type ServiceMode = (typeof ServiceMode)[keyof typeof ServiceMode];

/** What an explicit or automatic run runs: the server's services, or the manual or disabled ones. */
export const ServiceRunKind = {
  Server: "server",
  Manual: "manual",
  Disabled: "disabled",
} as const;
export type ServiceRunKind = (typeof ServiceRunKind)[keyof typeof ServiceRunKind];

export interface ServiceParam {
  name: string;
  value: string;
}

/** One `<service>` of a `_service` file. */
export interface ServiceSpec {
  name: string;
  mode: ServiceMode;
  params: ServiceParam[];
}

/** Largest `_service` document accepted, in UTF-8 bytes. */
export const MAX_SERVICE_XML_BYTES = 256 * 1024;
/** Most services in one `_service` file. */
export const MAX_SERVICES = 64;
/** Most parameters of one service. */
export const MAX_SERVICE_PARAMS = 256;
const MAX_NAME = 100;

// No ':' (it separates the parts of `_service:<name>:<file>`), no '/', nothing that starts like
// an option or a hidden file.
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
const PARAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const MODES: readonly string[] = Object.values(ServiceMode).filter((m) => m !== ServiceMode.Default);

/** Checks a service name (also a program name in the services directory). */
export function validateServiceName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME || !SERVICE_NAME.test(name)) {
    throw new InvalidInputError(
      `invalid service name ${quoteForMessage(name)}: letters, digits, '_', '.', '+', '-', starting with a letter or digit, at most ${MAX_NAME}`
    );
  }
}

function fail(problem: string): never {
  throw new InvalidInputError(`_service: ${problem}`);
}

function attrs(el: XmlElement, where: string, allowed: readonly string[]): void {
  for (const name of el.attrs.keys()) {
    if (!allowed.includes(name)) fail(`unknown attribute ${quoteForMessage(name, 40)} of <${el.name}> in ${where}`);
  }
}

function elements(el: XmlElement, where: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const node of el.children) {
    if (isElement(node)) out.push(node);
    else if (node.text.trim() !== "") fail(`unexpected text ${quoteForMessage(node.text.trim(), 40)} in ${where}`);
  }
  return out;
}

function readParam(el: XmlElement, where: string): ServiceParam {
  if (el.name !== "param") fail(`unknown element <${el.name}> in ${where} (a service holds <param> elements)`);
  attrs(el, where, ["name"]);
  const name = el.attrs.get("name");
  if (name === undefined) fail(`<param> without a name in ${where}`);
  if (name.length > MAX_NAME || !PARAM_NAME.test(name)) {
    fail(`invalid parameter name ${quoteForMessage(name)} in ${where}`);
  }
  // The runner passes the output directory itself; a parameter must not point it elsewhere.
  if (name === "outdir") fail(`parameter 'outdir' in ${where} is set by the service runner`);
  let value = "";
  for (const node of el.children) {
    if (isElement(node)) fail(`unexpected element <${node.name}> inside <param name="${name}"> in ${where}`);
    value += node.text;
  }
  return { name, value };
}

function readService(el: XmlElement, index: number): ServiceSpec {
  if (el.name !== "service") fail(`unknown element <${el.name}> in <services> (expected <service>)`);
  attrs(el, `<service> #${index + 1}`, ["name", "mode"]);
  const name = el.attrs.get("name");
  if (name === undefined) fail(`<service> #${index + 1} has no name`);
  try {
    validateServiceName(name);
  } catch (err) {
    fail((err as Error).message);
  }
  const where = `<service name="${name}">`;
  const rawMode = el.attrs.get("mode");
  if (rawMode !== undefined && !MODES.includes(rawMode)) {
    fail(`unknown mode ${quoteForMessage(rawMode, 40)} of ${where} (known: ${MODES.join(", ")})`);
  }
  const children = elements(el, where);
  if (children.length > MAX_SERVICE_PARAMS) fail(`${where} has more than ${MAX_SERVICE_PARAMS} parameters`);
  return {
    name,
    mode: (rawMode ?? ServiceMode.Default) as ServiceMode,
    params: children.map((c) => readParam(c, where)),
  };
}

/** Parses a `_service` document; throws InvalidInputError (or TooLargeError) naming what is wrong. */
export function parseServiceXml(xml: string): ServiceSpec[] {
  if (xml.length > MAX_SERVICE_XML_BYTES || Buffer.byteLength(xml, "utf8") > MAX_SERVICE_XML_BYTES) {
    throw new TooLargeError(`_service: the document is larger than ${MAX_SERVICE_XML_BYTES} bytes`, {
      data: { limit: "service-xml-bytes", max: MAX_SERVICE_XML_BYTES },
    });
  }
  const root = readXml(xml, "_service");
  if (root.name !== "services") fail(`the root element is <${root.name}>, expected <services>`);
  attrs(root, "<services>", []);
  const list = elements(root, "<services>");
  if (list.length > MAX_SERVICES) fail(`more than ${MAX_SERVICES} services`);
  return list.map(readService);
}

/** OBS: the server runs every service whose mode is not localonly, disabled, manual or buildtime. */
export function runsOnServer(mode: ServiceMode): boolean {
  return (
    mode !== ServiceMode.LocalOnly &&
    mode !== ServiceMode.Disabled &&
    mode !== ServiceMode.Manual &&
    mode !== ServiceMode.BuildTime
  );
}

/** The services a run of this kind runs, in order. */
export function servicesFor<T extends ServiceSpec>(kind: ServiceRunKind, all: readonly T[]): T[] {
  switch (kind) {
    case ServiceRunKind.Server:
      return all.filter((s) => runsOnServer(s.mode));
    case ServiceRunKind.Manual:
      return all.filter((s) => s.mode === ServiceMode.Manual);
    case ServiceRunKind.Disabled:
      return all.filter((s) => s.mode === ServiceMode.Disabled);
    default: {
      const never: never = kind;
      throw new InvalidInputError(`unknown service run kind ${String(never)}`);
    }
  }
}

/** The services the worker runs before the build. */
export function buildtimeServices(all: readonly ServiceSpec[]): { name: string; params: ServiceParam[] }[] {
  return all.filter((s) => s.mode === ServiceMode.BuildTime).map((s) => ({ name: s.name, params: s.params }));
}

/**
 * The command-line arguments of a service, as OBS's service runner passes them: `--outdir DIR`,
 * then each parameter as `--<name>` and its value, separate arguments, in document order.
 */
export function serviceArgs(outdir: string, params: readonly ServiceParam[]): string[] {
  return ["--outdir", outdir, ...params.flatMap((p) => [`--${p.name}`, p.value])];
}

/** `_service:<service>:<file>`: how a file a service produced is stored. */
export function serviceFileName(service: string, file: string): string {
  return `_service:${service}:${file}`;
}

/**
 * The file names a build sees: `_service:<svc>:<file>` becomes `<file>`, replacing a committed
 * file of that name (OBS's build script and recipe lookup do the same). Returns plain name →
 * stored name; for two service files of one plain name the later in name order wins, as in OBS.
 */
export function expandedNames(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of names) if (!n.startsWith("_service:")) out.set(n, n);
  for (const n of [...names].filter((x) => x.startsWith("_service:")).sort()) {
    const plain = n.slice(n.indexOf(":", "_service:".length) + 1);
    if (plain !== "" && n.indexOf(":", "_service:".length) > 0) out.set(plain, n);
  }
  return out;
}
