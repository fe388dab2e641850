/**
 * Rich (boolean) dependencies as obs-build's expander understands them: `(a and b)`, `(a or b)`,
 * `(a if b [else c])`, `(a unless b [else c])`, `(a with b)`, `(a without b)`.
 *
 * A rich dependency is turned into a list of clauses over packages. A clause is "open
 * conditions (packages whose installation triggers it) → one of these providers", which the
 * expander then treats like an ordinary requirement once all its conditions are installed.
 */

/** Operator codes in the parse tree (0 is a plain leaf dependency). */
export const RichOp = { Leaf: 0, And: 1, Or: 2, If: 3, Unless: 4, Else: 5, With: 6, Without: 7 } as const;
export type RichOp = (typeof RichOp)[keyof typeof RichOp];

const OPS: Readonly<Record<string, RichOp>> = {
  and: RichOp.And,
  or: RichOp.Or,
  if: RichOp.If,
  unless: RichOp.Unless,
  else: RichOp.Else,
  with: RichOp.With,
  without: RichOp.Without,
};

/** A parsed rich dependency. `c` is the `else` branch of `if`/`unless`. */
export type RichNode =
  | { op: typeof RichOp.Leaf; dep: string }
  | { op: Exclude<RichOp, typeof RichOp.Leaf>; a: RichNode; b: RichNode; c?: RichNode };

/** Whether a dependency string is written as a rich dependency. */
export function isRich(dep: string): boolean {
  return dep.length >= 2 && dep.charCodeAt(0) === 40 && dep.charCodeAt(dep.length - 1) === 41;
}

// A name or version token: stops at a blank, a comma, or a closing parenthesis that has no
// opening partner inside the token (so `perl(Foo::Bar)` stays whole).
function token(d: string): string {
  let depth = 0;
  let i = 0;
  for (; i < d.length; i++) {
    const c = d[i];
    if (c === " " || c === ",") break;
    if (c === "(") depth++;
    else if (c === ")") {
      if (depth === 0) break;
      depth--;
    }
  }
  return d.slice(0, i);
}

type Parsed = [rest: string, node: RichNode | undefined];

function parseRec(dep: string, chainop: number): Parsed {
  let d = dep;
  const open = /^\(\s*/.exec(d);
  if (!open) return [d, undefined];
  d = d.slice(open[0].length);
  let r: RichNode | undefined;
  if (d.startsWith("(")) {
    [d, r] = parseRec(d, 0);
    if (!r) return [d, undefined];
  } else {
    if (d.startsWith(")")) return [d, undefined];
    let n = token(d);
    d = d.slice(n.length).replace(/^ +/, "");
    const op = /^[<=>]+/.exec(d);
    if (op) {
      n += ` ${op[0]} `;
      d = d.replace(/^[<=>]+ +/, "");
      const evr = token(d);
      d = d.slice(evr.length);
      n += evr;
    }
    r = { op: RichOp.Leaf, dep: n };
  }
  d = d.replace(/^\s+/, "");
  if (d === "") return [d, undefined];
  if (d.startsWith(")")) return [d.slice(1), r];
  // obs-build looks for the operator word anywhere in the rest, not only at its start.
  const word = /([a-z]+)\s+/.exec(d);
  if (!word) return [d, undefined];
  d = d.slice(0, word.index) + d.slice(word.index + word[0].length);
  let op = OPS[word[1]!];
  if (!op) return [d, undefined];
  if (op === RichOp.Else && chainop !== RichOp.If && chainop !== RichOp.Unless) return [d, undefined];
  if (op === RichOp.Else) chainop = 0;
  if (chainop && ((chainop !== RichOp.And && chainop !== RichOp.Or && chainop !== RichOp.With) || op !== chainop)) {
    return [d, undefined];
  }
  const [rest, r2] = parseRec(`(${d}`, op);
  d = rest;
  if (!r2) return [d, undefined];
  if ((op === RichOp.If || op === RichOp.Unless) && r2.op === RichOp.Else) {
    return [d, { op, a: r, b: r2.a, c: r2.b }];
  }
  op = op as Exclude<RichOp, typeof RichOp.Leaf>;
  return [d, { op, a: r, b: r2 }];
}

/** Parses a rich dependency; `undefined` when it is malformed. */
export function parseRichDep(dep: string): RichNode | undefined {
  const [rest, node] = parseRec(dep, 0);
  return node && rest === "" ? node : undefined;
}

/**
 * What normalisation needs from its caller: providers of a leaf (package ids ≥ 0) and whether a
 * leaf is ignored for the requiring package.
 */
export interface RichContext {
  providers(dep: string): readonly number[];
  /** Whether the leaf with ignore key `key` is ignored (only asked for requirements). */
  ignored(key: string): boolean;
}

// Literals are package ids shifted by one so that negation is a sign flip.
type Clause = number[];
// [n, clauses]: n is 1 (always true), 0 (never true) or -1 (the clauses say).
type Norm = [n: number, clauses: Clause[]];

function mix(q1: Clause[], q2: Clause[], todnf: boolean): Norm {
  const out: Clause[] = [];
  for (const a of q1) {
    for (const b of q2) {
      const merged = Array.from(new Set([...a, ...b])).sort((x, y) => x - y);
      const set = new Set(merged);
      if (!merged.some((l) => set.has(-l))) out.push(merged);
    }
  }
  if (out.length === 0) return [todnf ? 0 : 1, []];
  return [-1, out];
}

function invert([n, q]: Norm): Norm {
  if (n === 0 || n === 1) return [1 - n, []];
  return [-1, q.map((c) => c.map((l) => -l))];
}

function normRec(ctx: RichContext, r: RichNode, todnf: boolean): Norm {
  if (r.op === RichOp.Leaf) {
    if (!todnf) {
      const cut = /[ <=>]/.exec(r.dep);
      if (ctx.ignored(cut ? r.dep.slice(0, cut.index) : r.dep)) return [1, []];
    }
    const q = ctx.providers(r.dep);
    if (q.length === 0) return [0, []];
    return todnf ? [-1, q.map((p) => [p + 1])] : [-1, [q.map((p) => p + 1)]];
  }
  if (r.op === RichOp.If && r.c) {
    // A IF (B ELSE C) → (A OR ~B) AND (C OR B)
    const [n1, q1] = normRec(ctx, { op: RichOp.If, a: r.a, b: r.b }, todnf);
    const [n2, q2] = normRec(ctx, { op: RichOp.Or, a: r.b, b: r.c }, todnf);
    if (n1 === 0 || n2 === 0) return [0, []];
    if (n1 === 1) return [n2, q2];
    if (n2 === 1) return [n1, q1];
    return todnf ? mix(q1, q2, todnf) : [-1, [...q1, ...q2]];
  }
  if (r.op === RichOp.Unless && r.c) {
    // A UNLESS (B ELSE C) → (A AND ~B) OR (C AND B)
    const [n1, q1] = normRec(ctx, { op: RichOp.Unless, a: r.a, b: r.b }, todnf);
    const [n2, q2] = normRec(ctx, { op: RichOp.And, a: r.b, b: r.c }, todnf);
    if (n1 === 1 || n2 === 1) return [1, []];
    if (n1 === 0) return [n2, q2];
    if (n2 === 0) return [n1, q1];
    return todnf ? [-1, [...q1, ...q2]] : mix(q1, q2, todnf);
  }
  if (r.op === RichOp.And || r.op === RichOp.Unless) {
    const [n1, q1] = normRec(ctx, r.a, todnf);
    // obs-build normalises the second operand of `unless` with the same polarity as the first
    // (its flipped polarity is computed but unused); kept for identical results.
    let [n2, q2] = normRec(ctx, r.b, todnf);
    if (r.op === RichOp.Unless) [n2, q2] = invert([n2, q2]);
    if (n1 === 0 || n2 === 0) return [0, []];
    if (n1 === 1) return [n2, q2];
    if (n2 === 1) return [n1, q1];
    return todnf ? mix(q1, q2, todnf) : [-1, [...q1, ...q2]];
  }
  if (r.op === RichOp.Or || r.op === RichOp.If) {
    const [n1, q1] = normRec(ctx, r.a, todnf);
    let [n2, q2] = normRec(ctx, r.b, r.op === RichOp.If ? !todnf : todnf);
    if (r.op === RichOp.If) [n2, q2] = invert([n2, q2]);
    if (n1 === 1 || n2 === 1) return [1, []];
    if (n1 === 0) return [n2, q2];
    if (n2 === 0) return [n1, q1];
    return todnf ? [-1, [...q1, ...q2]] : mix(q1, q2, todnf);
  }
  if (r.op === RichOp.With || r.op === RichOp.Without) {
    const [n1, q1] = normRec(ctx, r.a, false);
    let [n2, q2] = normRec(ctx, r.b, false);
    if (n2 === 0 && r.op === RichOp.Without) [n2, q2] = [-1, [[]]];
    if (n1 !== -1 || n2 !== -1) return [0, []];
    if (q1.length !== 1 || q2.length !== 1) return [0, []];
    const a = q1[0]!;
    const b = q2[0]!;
    if (a.some((l) => l < 0) || b.some((l) => l < 0)) return [0, []];
    const inB = new Set(b);
    const q = r.op === RichOp.With ? a.filter((l) => inB.has(l)) : a.filter((l) => !inB.has(l));
    if (q.length === 0) return [0, []];
    return todnf ? [-1, q.map((l) => [l])] : [-1, [q]];
  }
  return [0, []];
}

/** Kind of a rich dependency: a requirement or a conflict. */
export const RichKind = { Requires: 0, Conflicts: 1 } as const;
export type RichKind = (typeof RichKind)[keyof typeof RichKind];

/**
 * One clause of a normalised rich dependency. `cond` are the packages whose installation makes
 * the clause apply (set to `undefined` once the clause has been acted on), `q` the packages
 * that satisfy it.
 */
export interface CondClause {
  dep: string;
  kind: RichKind;
  cond: number[] | undefined;
  q: number[];
}

/** Result of {@link normalizeRich}: the clauses, or the error obs-build reports. */
export interface NormalizedRich {
  clauses: CondClause[];
  error?: string;
}

/**
 * Normalises a rich dependency of package `p` (-1 for a dependency given directly) into
 * clauses; `pName` is used in messages.
 */
export function normalizeRich(
  ctx: RichContext,
  tree: RichNode | undefined,
  dep: string,
  kind: RichKind,
  p: number,
  pName: string | undefined
): NormalizedRich {
  if (!tree) {
    return {
      clauses: [],
      error: pName !== undefined ? `cannot parse dependency ${dep} from ${pName}` : `cannot parse dependency ${dep}`,
    };
  }
  let n: number;
  let q: Clause[];
  let error: string | undefined;
  if (kind === RichKind.Requires) {
    [n, q] = normRec(ctx, tree, false);
    if (n === 1) return { clauses: [] };
    if (n === 0) {
      return {
        clauses: [],
        error: pName !== undefined ? `nothing provides ${dep} needed by ${pName}` : `nothing provides ${dep}`,
      };
    }
  } else {
    [n, q] = invert(normRec(ctx, tree, true));
    if (n === 0)
      error = pName !== undefined ? `${pName} conflicts with always true ${dep}` : `conflict with always true ${dep}`;
  }
  const clauses = q.map((c): CondClause => {
    const cond: number[] = [];
    const pos: number[] = [];
    for (const l of c) {
      if (l < 0) {
        if (-l - 1 !== p) cond.push(-l - 1);
      } else pos.push(l - 1);
    }
    return { dep, kind, cond, q: pos };
  });
  return error !== undefined ? { clauses, error } : { clauses };
}
