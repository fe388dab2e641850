/**
 * The build "meta" (obs-backend.md §2.2, §4.5): the list of `<md5>  <path>` lines that says what a
 * build was made from. The first line is `<srcmd5>  <package>`; each build dependency adds
 * `<md5>  <dep>`, and, when the dependency's own build meta is known, that meta's lines below it
 * as `<md5>  <dep>/<path>`. Comparing the meta a package would get now with the meta of its last
 * build tells whether anything it was built from changed, transitively, without storing a graph.
 *
 * The worker writes it after a build; the scheduler regenerates the expected one and compares.
 * Both use these functions, so they agree by construction.
 */

const LINE = /^([^ ]+ {2})((?:.*\/)?([^/]*))$/;

/**
 * Lines contributed by one build dependency. With the producing build's meta, its first line
 * (`<srcmd5>  <package>`) is renamed to the dependency and the rest is nested under it; lines that
 * lead back into the package being built are left out. Without a meta, the header md5 stands in.
 */
export function depMetaLines(
  dep: string,
  hdrmd5: string,
  producerMeta: readonly string[] | undefined,
  self: string
): string[] {
  if (!producerMeta || producerMeta.length === 0) return [`${hdrmd5}  ${dep}`];
  const out: string[] = [];
  const first = producerMeta[0]!;
  const sp = first.indexOf("  ");
  out.push(`${sp > 0 ? first.slice(0, sp) : hdrmd5}  ${dep}`);
  for (let i = 1; i < producerMeta.length; i++) {
    const l = producerMeta[i]!;
    const m = l.indexOf("  ");
    if (m <= 0) continue;
    const path = l.slice(m + 2);
    if (path === self || path.startsWith(`${self}/`)) continue;
    out.push(`${l.slice(0, m)}  ${dep}/${path}`);
  }
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * OBS's gen_meta: sort dependency lines by depth, then path, then text; keep the shallowest line
 * for each `md5  lastcomponent`; drop paths that pass through one of the package's own
 * subpackages (a build cycle), and in that case also every line that uses the cycle's entry
 * package below the top level.
 */
export function genMeta(myself: string | undefined, subpacks: readonly string[], deps: readonly string[]): string[] {
  const depth = new Map<string, number>();
  const pathOf = new Map<string, string>();
  const lastKey = new Map<string, string>();
  const subRe = subpacks.length ? new RegExp(subpacks.map((s) => `/${escapeRe(s)}/`).join("|")) : undefined;
  const cycle = new Set<string>();
  for (const d of deps) {
    const m = LINE.exec(d);
    if (!m) throw new RangeError(`bad dependency line: ${d}`);
    depth.set(d, (d.match(/\//g) ?? []).length);
    pathOf.set(d, m[2]!);
    lastKey.set(d, `${m[1]}${m[3]}`);
    if (subRe && subRe.test(`/${m[2]}/`)) {
      const first = / {2}([^/]+)/.exec(d);
      if (first) cycle.add(first[1]!);
    }
  }
  let list = [...deps];
  if (cycle.size) {
    const cycleRe = new RegExp(
      [...cycle]
        .sort()
        .map((c) => escapeRe(`/${c}/`))
        .join("|")
    );
    list = list.filter((d) => !cycleRe.test(`${d}/`));
  }
  list.sort((a, b) => {
    const da = depth.get(a)! - depth.get(b)!;
    if (da !== 0) return da;
    const pa = pathOf.get(a)!;
    const pb = pathOf.get(b)!;
    if (pa !== pb) return pa < pb ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
  const meta: string[] = [];
  if (myself) meta.push(myself);
  const seen = new Set<string>();
  for (const d of list) {
    const k = lastKey.get(d)!;
    if (seen.has(k)) continue;
    if (subRe && subRe.test(`/${pathOf.get(d)}/`)) continue;
    seen.add(k);
    meta.push(d);
  }
  return meta;
}

/** Parses a stored meta text into lines. */
export function parseMeta(text: string): string[] {
  return text.split("\n").filter((l) => l.length > 0);
}

/** Renders meta lines as stored (one per line, trailing newline). */
export function renderMeta(lines: readonly string[]): string {
  return lines.length ? `${lines.join("\n")}\n` : "";
}
