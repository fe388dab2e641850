import assert from "node:assert/strict";
import { InvalidInputError, TooLargeError } from "../../../transport/index.ts";
import { FLAG_NAMES } from "../../../actors/common/flags.ts";
import type { FlagEntry, Flags } from "../../../actors/common/flags.ts";
import {
  MAX_META_XML_BYTES,
  expandRepositoryPath,
  findPathLoop,
  normalisePackageMeta,
  normaliseProjectMeta,
  parsePackageMeta,
  parseProjectMeta,
  renderPackageMeta,
  renderProjectMeta,
} from "../../../actors/source/meta-xml.ts";
import type {
  DownloadMeta,
  GroupEntry,
  PackageMeta,
  PersonEntry,
  ProjectMeta,
  RepositoryMeta,
} from "../../../actors/source/meta-xml.ts";
import { mulberry32 } from "../../helpers/rng.ts";

/** Asserts that `fn` throws an error of class `cls` whose message matches every pattern. */
function throwsWith(fn: () => unknown, cls: new (...args: never[]) => Error, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err instanceof Error ? err.stack : String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

const FULL_PROJECT = `<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root -->
<project name="Fedora:Rawhide">
  <title>Fedora &amp; friends</title>
  <description>
    Packages for &lt;Rawhide&gt;.
    Second line &#x263A;
  </description>
  <person userid="alice" role="maintainer"/>
  <person role="bugowner" userid="bob"/>
  <group groupid="fedora-team" role="reviewer"/>
  <build>
    <disable/>
    <enable repository="standard"/>
    <disable arch="i586"/>
    <disable repository="standard" arch="x86_64"/>
  </build>
  <publish><disable/></publish>
  <useforbuild/>
  <repository name="standard" rebuild="direct" block="local" linkedbuild="alldirect_or_localdep">
    <download arch="x86_64" url="http://mirror.example.org/fedora/rawhide/x86_64/os" repotype="rpmmd">
      <master url="https://master.example.org/fedora/rawhide/x86_64/os" sslfingerprint="sha256:0a64..0303"/>
    </download>
    <path project="Fedora:Base" repository="standard"/>
    <path project="Fedora:Tools" repository="standard"/>
    <arch>x86_64</arch>
    <arch> i586 </arch>
  </repository>
  <repository name="ga">
    <download arch="x86_64" url="http://ftp.de.debian.org/debian/jessie/main" repotype="deb">
      <archfilter>x86_64,noarch</archfilter>
      <pubkey>
-----BEGIN PGP PUBLIC KEY BLOCK-----
mQINBFxyz
-----END PGP PUBLIC KEY BLOCK-----
      </pubkey>
    </download>
    <arch>x86_64</arch>
  </repository>
</project>
`;

const FULL_PROJECT_MODEL: ProjectMeta = {
  name: "Fedora:Rawhide",
  title: "Fedora & friends",
  description: "Packages for <Rawhide>.\n    Second line \u263a",
  persons: [
    { userid: "alice", role: "maintainer" },
    { userid: "bob", role: "bugowner" },
  ],
  groups: [{ groupid: "fedora-team", role: "reviewer" }],
  flags: {
    build: [
      { state: "disable" },
      { state: "enable", repository: "standard" },
      { state: "disable", arch: "i586" },
      { state: "disable", repository: "standard", arch: "x86_64" },
    ],
    publish: [{ state: "disable" }],
  },
  repositories: [
    {
      name: "standard",
      rebuild: "direct",
      block: "local",
      linkedbuild: "alldirect_or_localdep",
      downloads: [
        {
          arch: "x86_64",
          url: "http://mirror.example.org/fedora/rawhide/x86_64/os",
          repotype: "rpmmd",
          master: { url: "https://master.example.org/fedora/rawhide/x86_64/os", sslfingerprint: "sha256:0a64..0303" },
        },
      ],
      paths: [
        { project: "Fedora:Base", repository: "standard" },
        { project: "Fedora:Tools", repository: "standard" },
      ],
      archs: ["x86_64", "i586"],
    },
    {
      name: "ga",
      downloads: [
        {
          arch: "x86_64",
          url: "http://ftp.de.debian.org/debian/jessie/main",
          repotype: "deb",
          archfilter: "x86_64,noarch",
          pubkey: "\n-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQINBFxyz\n-----END PGP PUBLIC KEY BLOCK-----\n      ",
        },
      ],
      paths: [],
      archs: ["x86_64"],
    },
  ],
};

const FULL_PROJECT_RENDERED = `<project name="Fedora:Rawhide">
  <title>Fedora &amp; friends</title>
  <description>Packages for &lt;Rawhide&gt;.
    Second line \u263a</description>
  <person userid="alice" role="maintainer"/>
  <person userid="bob" role="bugowner"/>
  <group groupid="fedora-team" role="reviewer"/>
  <build>
    <disable/>
    <enable repository="standard"/>
    <disable arch="i586"/>
    <disable repository="standard" arch="x86_64"/>
  </build>
  <publish>
    <disable/>
  </publish>
  <repository name="standard" rebuild="direct" block="local" linkedbuild="alldirect_or_localdep">
    <download arch="x86_64" url="http://mirror.example.org/fedora/rawhide/x86_64/os" repotype="rpmmd">
      <master url="https://master.example.org/fedora/rawhide/x86_64/os" sslfingerprint="sha256:0a64..0303"/>
    </download>
    <path project="Fedora:Base" repository="standard"/>
    <path project="Fedora:Tools" repository="standard"/>
    <arch>x86_64</arch>
    <arch>i586</arch>
  </repository>
  <repository name="ga">
    <download arch="x86_64" url="http://ftp.de.debian.org/debian/jessie/main" repotype="deb">
      <archfilter>x86_64,noarch</archfilter>
      <pubkey>
-----BEGIN PGP PUBLIC KEY BLOCK-----
mQINBFxyz
-----END PGP PUBLIC KEY BLOCK-----
      </pubkey>
    </download>
    <arch>x86_64</arch>
  </repository>
</project>
`;

// ---------------------------------------------------------------------------------------------
// Random metas for the property tests

/** A small deterministic PRNG (mulberry32), so a failing case can be replayed from its seed. */
function prng(seed: number): { int(n: number): number; bool(p?: number): boolean; pick<T>(xs: readonly T[]): T } {
  const next = mulberry32(seed);
  return {
    int: (n) => Math.floor(next() * n),
    bool: (p = 0.5) => next() < p,
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
  };
}
type Rng = ReturnType<typeof prng>;

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM = LETTERS + "0123456789";
const ARCHS = ["x86_64", "i586", "aarch64", "ppc64le", "s390x", "riscv64", "armv7hl", "noarch", "local"] as const;
const ROLES = ["maintainer", "bugowner", "reviewer", "downloader", "reader"] as const;
const TEXT_BITS = [
  "a",
  "Z",
  " ",
  "  ",
  "\n",
  "\t",
  "\r",
  "<",
  ">",
  "&",
  '"',
  "'",
  "]]>",
  "&amp;",
  "ü",
  "😀",
  "\u263a",
  "x y",
  "-->",
];

function word(r: Rng, first: string, rest: string, max: number): string {
  let s = r.pick([...first]);
  const n = r.int(max);
  for (let i = 0; i < n; i++) s += r.pick([...rest]);
  return s;
}
const projectName = (r: Rng): string =>
  Array.from({ length: 1 + r.int(3) }, (_, i) => word(r, i === 0 ? LETTERS : ALNUM + "+-", ALNUM + "_+.-", 8)).join(
    ":"
  );
const packageName = (r: Rng): string => word(r, LETTERS, ALNUM + "_+.-", 10);
const repoName = (r: Rng): string => word(r, ALNUM + "+-é", ALNUM + "_+.- é&\"'<>", 10);
const userName = (r: Rng): string => word(r, ALNUM + "_", ALNUM + "_ $^-.#*+&'\"", 8) + r.pick([...ALNUM]);
const groupName = (r: Rng): string => word(r, ALNUM, ALNUM + "_.-", 8) + r.pick([...ALNUM]);
const xmlTrim = (s: string): string => s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
function text(r: Rng, max: number): string {
  let s = "";
  const n = r.int(max);
  for (let i = 0; i < n; i++) s += r.pick(TEXT_BITS);
  return xmlTrim(s);
}
function unique<T>(r: Rng, count: number, make: () => T, key: (t: T) => string): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (let i = 0; i < count * 3 && out.length < count; i++) {
    const t = make();
    if (seen.has(key(t))) continue;
    seen.add(key(t));
    out.push(t);
  }
  return out;
}

function genFlags(r: Rng, repos: string[]): Flags {
  const flags: Flags = {};
  for (const name of FLAG_NAMES) {
    if (!r.bool(0.3)) continue;
    flags[name] = Array.from({ length: 1 + r.int(4) }, () => {
      const e: FlagEntry = { state: r.bool() ? "enable" : "disable" };
      if (r.bool(0.4)) e.repository = repos.length > 0 && r.bool(0.7) ? r.pick(repos) : repoName(r);
      if (r.bool(0.4)) e.arch = r.pick(ARCHS);
      return e;
    });
  }
  return flags;
}

function genRoles(r: Rng): { persons: PersonEntry[]; groups: GroupEntry[] } {
  const persons = unique(
    r,
    r.int(4),
    () => ({ userid: userName(r), role: r.pick(ROLES) }),
    (p) => `${p.userid}/${p.role}`
  );
  const groups = unique(
    r,
    r.int(3),
    () => ({ groupid: groupName(r), role: r.pick(ROLES) }),
    (g) => `${g.groupid}/${g.role}`
  );
  return { persons, groups };
}

function genRepository(r: Rng, name: string): RepositoryMeta {
  const archs = unique(
    r,
    r.int(4),
    () => r.pick(ARCHS) as string,
    (a) => a
  );
  const repo: RepositoryMeta = {
    name,
    downloads: [],
    paths: unique(
      r,
      r.int(4),
      () => ({ project: projectName(r), repository: repoName(r) }),
      (p) => `${p.project}/${p.repository}`
    ),
    archs,
  };
  if (r.bool(0.3)) repo.rebuild = r.pick(["transitive", "direct", "local"] as const);
  if (r.bool(0.3)) repo.block = r.pick(["all", "local", "never"] as const);
  if (r.bool(0.3)) repo.linkedbuild = r.pick(["off", "localdep", "alldirect", "alldirect_or_localdep", "all"] as const);
  for (const arch of archs) {
    if (!r.bool(0.3)) continue;
    const dod: DownloadMeta = {
      arch,
      url: `https://mirror.example.org/${word(r, ALNUM, ALNUM + "/._~%-&?=", 12)}`,
      repotype: r.pick(["rpmmd", "susetags", "deb", "arch", "mdk", "registry", "apk"] as const),
    };
    if (r.bool(0.3)) dod.archfilter = `${arch},noarch`;
    if (r.bool(0.4)) {
      dod.master = { url: `https://master.example.org/${word(r, ALNUM, ALNUM + "/", 8)}` };
      if (r.bool()) dod.master.sslfingerprint = `sha256:${word(r, "0123456789abcdef", "0123456789abcdef:", 16)}`;
    }
    if (r.bool(0.3))
      dod.pubkey = `${r.bool() ? "\n" : ""}-----BEGIN PGP-----\n${text(r, 6) || "k"}\n-----END PGP-----${r.bool() ? "\n  " : ""}`;
    repo.downloads.push(dod);
  }
  return repo;
}

function genProject(r: Rng): ProjectMeta {
  const repoNames = unique(
    r,
    r.int(4),
    () => repoName(r),
    (n) => n
  );
  const meta: ProjectMeta = {
    name: projectName(r),
    title: text(r, 6),
    description: text(r, 12),
    ...genRoles(r),
    flags: genFlags(r, repoNames),
    repositories: repoNames.map((n) => genRepository(r, n)),
  };
  if (r.bool(0.3)) meta.url = text(r, 4) || "https://example.org";
  return meta;
}

function genPackage(r: Rng): PackageMeta {
  const meta: PackageMeta = {
    name: packageName(r),
    project: projectName(r),
    title: text(r, 6),
    description: text(r, 12),
    ...genRoles(r),
    flags: genFlags(r, []),
  };
  if (r.bool(0.3)) meta.url = text(r, 4) || "https://example.org";
  return meta;
}

// ---------------------------------------------------------------------------------------------
// A deliberately untidy writer: same meaning, different bytes.

function messyText(r: Rng, s: string): string {
  if (!s.includes("]]>") && !s.includes("\r") && r.bool(0.2)) return `<![CDATA[${s}]]>`;
  let out = "";
  for (const ch of s) {
    if (ch === "&") out += r.bool() ? "&amp;" : "&#38;";
    else if (ch === "<") out += r.bool() ? "&lt;" : "&#x3C;";
    else if (ch === ">") out += r.pick([">", "&gt;", "&#62;"]);
    else if (ch === "\r") out += "&#13;";
    else if (ch === '"' || ch === "'") out += r.pick([ch, ch === '"' ? "&quot;" : "&apos;"]);
    else if (r.bool(0.05)) out += `&#x${ch.codePointAt(0)!.toString(16)};`;
    else out += ch;
    if (r.bool(0.03)) out += "<!-- c -->";
  }
  return out;
}

function messyAttrs(r: Rng, attrs: [string, string | undefined][]): string {
  const present = attrs.filter((a): a is [string, string] => a[1] !== undefined);
  for (let i = present.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [present[i], present[j]] = [present[j]!, present[i]!];
  }
  return present
    .map(([name, value]) => {
      const q = r.bool() ? '"' : "'";
      let v = "";
      for (const ch of value) {
        if (ch === "&") v += "&amp;";
        else if (ch === "<") v += "&lt;";
        else if (ch === q) v += q === '"' ? "&quot;" : "&apos;";
        else if (r.bool(0.05)) v += `&#${ch.codePointAt(0)};`;
        else v += ch;
      }
      return `${r.pick([" ", "  ", "\n\t"])}${name}${r.pick(["=", " = "])}${q}${v}${q}`;
    })
    .join("");
}

const ws = (r: Rng): string => r.pick(["", " ", "\n", "\n  ", "\t", "\n\n    "]) + (r.bool(0.1) ? "<!-- x -->" : "");
const leaf = (r: Rng, name: string, attrs: [string, string | undefined][]): string =>
  r.bool() ? `<${name}${messyAttrs(r, attrs)}/>` : `<${name}${messyAttrs(r, attrs)}></${name}>`;
function textEl(r: Rng, name: string, value: string, pad = true): string {
  if (value === "" && r.bool()) return `<${name}/>`;
  const p = pad ? ws(r).replace(/<!--.*-->/, "") : "";
  return `<${name}>${p}${messyText(r, value)}${pad ? ws(r).replace(/<!--.*-->/, "") : ""}</${name}>`;
}

/** Interleaves the groups randomly, keeping the order inside each group. */
function interleave(r: Rng, groups: string[][]): string[] {
  const queues = groups.map((g) => [...g]).filter((g) => g.length > 0);
  const out: string[] = [];
  while (queues.length > 0) {
    const i = r.int(queues.length);
    out.push(queues[i]!.shift()!);
    if (queues[i]!.length === 0) queues.splice(i, 1);
  }
  return out;
}

function messyFlags(r: Rng, flags: Flags, skipBuild = 0): string[] {
  const out: string[] = [];
  for (const name of FLAG_NAMES) {
    const entries = (flags[name] ?? []).slice(name === "build" ? skipBuild : 0);
    if (entries.length === 0) {
      if (r.bool(0.1) && !(name === "build" && skipBuild > 0)) out.push(leaf(r, name, []));
      continue;
    }
    out.push(
      `<${name}>${entries
        .map(
          (e) =>
            ws(r) +
            leaf(r, e.state, [
              ["repository", e.repository],
              ["arch", e.arch],
            ])
        )
        .join("")}${ws(r)}</${name}>`
    );
  }
  return out;
}

function messyCommon(r: Rng, m: ProjectMeta | PackageMeta, skipBuild = 0): string[][] {
  const singles: string[] = [];
  if (m.title !== "" || r.bool()) singles.push(textEl(r, "title", m.title));
  if (m.description !== "" || r.bool()) singles.push(textEl(r, "description", m.description));
  if (m.url !== undefined) singles.push(textEl(r, "url", m.url));
  else if (r.bool(0.1)) singles.push("<url/>");
  return [
    ...singles.map((s) => [s]),
    m.persons.map((p) =>
      leaf(r, "person", [
        ["userid", p.userid],
        ["role", p.role],
      ])
    ),
    m.groups.map((g) =>
      leaf(r, "group", [
        ["groupid", g.groupid],
        ["role", g.role],
      ])
    ),
    ...messyFlags(r, m.flags, skipBuild).map((f) => [f]),
  ];
}

function messyRepository(r: Rng, repo: RepositoryMeta): string {
  const downloads = repo.downloads.map((d) => {
    const inner: string[] = [];
    if (d.archfilter !== undefined) inner.push(textEl(r, "archfilter", d.archfilter));
    if (d.master !== undefined)
      inner.push(
        leaf(r, "master", [
          ["url", d.master.url],
          ["sslfingerprint", d.master.sslfingerprint],
        ])
      );
    if (d.pubkey !== undefined) inner.push(textEl(r, "pubkey", d.pubkey, false));
    const attrs = messyAttrs(r, [
      ["arch", d.arch],
      ["url", d.url],
      ["repotype", d.repotype],
    ]);
    if (inner.length === 0 && r.bool()) return `<download${attrs}/>`;
    return `<download${attrs}>${interleave(
      r,
      inner.map((i) => [i])
    )
      .map((i) => ws(r) + i)
      .join("")}${ws(r)}</download>`;
  });
  const paths = repo.paths.map((p) =>
    leaf(r, "path", [
      ["project", p.project],
      ["repository", p.repository],
    ])
  );
  const archs = repo.archs.map((a) => `<arch>${r.pick(["", " ", "\n"])}${a}${r.pick(["", " ", "\n"])}</arch>`);
  const attrs = messyAttrs(r, [
    ["name", repo.name],
    ["rebuild", repo.rebuild],
    ["block", repo.block],
    ["linkedbuild", repo.linkedbuild],
  ]);
  const body = interleave(r, [downloads, paths, archs]);
  if (body.length === 0 && r.bool()) return `<repository${attrs}/>`;
  return `<repository${attrs}>${body.map((b) => ws(r) + b).join("")}${ws(r)}</repository>`;
}

function declaration(r: Rng): string {
  return r.pick([
    "",
    '<?xml version="1.0"?>\n',
    "<?xml version='1.0' encoding='UTF-8'?>",
    '\ufeff<?xml version="1.0" encoding="utf-8" standalone="yes"?>\r\n',
  ]);
}

function messyProject(r: Rng, m: ProjectMeta): string {
  const body = interleave(r, [...messyCommon(r, m), m.repositories.map((repo) => messyRepository(r, repo))]);
  return `${declaration(r)}${ws(r)}<project${messyAttrs(r, [["name", m.name]])}>${body.map((b) => ws(r) + b).join("")}${ws(r)}</project>${ws(r)}`;
}

function messyPackage(r: Rng, m: PackageMeta, withProject: boolean): string {
  // Leading build entries may be written the old way, as top-level <enable/>/<disable/>.
  const legacyCount = r.bool(0.3) ? r.int((m.flags.build?.length ?? 0) + 1) : 0;
  const legacy = (m.flags.build ?? []).slice(0, legacyCount).map((e) =>
    leaf(r, e.state, [
      ["repository", e.repository],
      ["arch", e.arch],
    ])
  );
  const body = interleave(r, [...messyCommon(r, m, legacyCount), legacy]);
  const attrs = messyAttrs(r, [
    ["name", m.name],
    ["project", withProject ? m.project : undefined],
  ]);
  return `${declaration(r)}<package${attrs}>${body.map((b) => ws(r) + b).join("")}${ws(r)}</package>\n`;
}

// ---------------------------------------------------------------------------------------------

describe("actors/source/meta-xml", () => {
  describe("project meta", () => {
    it("should parse every supported element into the model", () => {
      assert.deepEqual(parseProjectMeta(FULL_PROJECT, "Fedora:Rawhide"), FULL_PROJECT_MODEL);
    });

    it("should render the normalised form with fixed order and indentation", () => {
      assert.equal(renderProjectMeta(parseProjectMeta(FULL_PROJECT)), FULL_PROJECT_RENDERED);
      assert.equal(renderProjectMeta(FULL_PROJECT_MODEL), FULL_PROJECT_RENDERED);
    });

    it("should write elements in the canonical order whatever the input order", () => {
      const xml = `<project name="p"><repository name="r"><arch>x86_64</arch><path project="q" repository="r"/></repository>
        <build><disable/></build><lock><enable/></lock><group groupid="gg" role="reader"/><person userid="uu" role="reader"/>
        <url>https://x</url><description>d</description><title>t</title></project>`;
      assert.equal(
        renderProjectMeta(parseProjectMeta(xml)),
        `<project name="p">
  <title>t</title>
  <description>d</description>
  <url>https://x</url>
  <person userid="uu" role="reader"/>
  <group groupid="gg" role="reader"/>
  <lock>
    <enable/>
  </lock>
  <build>
    <disable/>
  </build>
  <repository name="r">
    <path project="q" repository="r"/>
    <arch>x86_64</arch>
  </repository>
</project>
`
      );
    });

    it("should treat a minimal project as empty title, description and lists", () => {
      assert.deepEqual(parseProjectMeta(`<project name="home:foo"/>`), {
        name: "home:foo",
        title: "",
        description: "",
        persons: [],
        groups: [],
        flags: {},
        repositories: [],
      });
      assert.equal(
        renderProjectMeta(parseProjectMeta(`<project name="home:foo"/>`)),
        `<project name="home:foo">\n  <title/>\n  <description/>\n</project>\n`
      );
    });

    it("should escape markup characters in text and attributes", () => {
      const meta = parseProjectMeta(
        `<project name="p"><title>a &lt;b&gt; &amp; "c" 'd' ]]&gt;</title><person userid="o&apos;b &quot;x&quot; &amp;y" role="reader"/></project>`
      );
      assert.equal(meta.title, `a <b> & "c" 'd' ]]>`);
      assert.equal(meta.persons[0]!.userid, `o'b "x" &y`);
      const xml = renderProjectMeta(meta);
      assert.match(xml, /<title>a &lt;b&gt; &amp; "c" 'd' \]\]&gt;<\/title>/);
      assert.match(xml, /<person userid="o'b &quot;x&quot; &amp;y" role="reader"\/>/);
      assert.deepEqual(parseProjectMeta(xml), meta);
    });

    it("should keep carriage returns written as character references", () => {
      const meta = parseProjectMeta(`<project name="p"><description>a&#13;\r\nb\rc</description></project>`);
      assert.equal(meta.description, "a\r\nb\nc");
      const xml = renderProjectMeta(meta);
      assert.match(xml, /<description>a&#13;\nb\nc<\/description>/);
      assert.deepEqual(parseProjectMeta(xml), meta);
    });

    it("should take text from CDATA sections literally", () => {
      const meta = parseProjectMeta(
        `<project name="p"><description><![CDATA[<b>&amp;</b>]]> x</description></project>`
      );
      assert.equal(meta.description, "<b>&amp;</b> x");
    });

    it("should accept comments anywhere and ignore them", () => {
      const meta = parseProjectMeta(
        `<!-- head --><project name="p"><!-- c --><title>a<!-- in text -->b</title><build><!-- c --><disable/></build></project><!-- tail -->`
      );
      assert.equal(meta.title, "ab");
      assert.deepEqual(meta.flags, { build: [{ state: "disable" }] });
    });

    it("should drop empty flags and an empty url", () => {
      const meta = parseProjectMeta(
        `<project name="p"><url>  </url><build/><publish></publish><lock> </lock></project>`
      );
      assert.deepEqual(meta.flags, {});
      assert.equal("url" in meta, false);
    });

    it("should check the project name against the expected one", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="home:foo"/>`, "home:bar"),
        InvalidInputError,
        /<project name="home:foo"> does not match the project "home:bar"/
      );
      assert.equal(parseProjectMeta(`<project name="home:foo"/>`, "home:foo").name, "home:foo");
    });

    const refused: [string, string, RegExp[]][] = [
      [
        "an unknown element",
        `<project name="p"><maintainer/></project>`,
        [/unknown element <maintainer> in <project name="p">/],
      ],
      ["an unknown attribute", `<project name="p" kind="maintenance"/>`, [/unknown attribute "kind" of <project>/]],
      [
        "an unknown repository element",
        `<project name="p"><repository name="r"><releasetarget project="a" repository="b"/></repository></project>`,
        [/unknown element <releasetarget> in <project name="p">\/<repository name="r">/],
      ],
      [
        "an unknown repository attribute",
        `<project name="p"><repository name="r" foo="1"/></project>`,
        [/unknown attribute "foo" of <repository>/],
      ],
      [
        "an unknown flag child",
        `<project name="p"><build><maybe/></build></project>`,
        [/unknown element <maybe>/, /<build>/],
      ],
      [
        "an unknown flag entry attribute",
        `<project name="p"><build><disable package="x"/></build></project>`,
        [/unknown attribute "package" of <disable>/],
      ],
      [
        "an unknown person attribute",
        `<project name="p"><person userid="u1" role="maintainer" email="x"/></project>`,
        [/unknown attribute "email" of <person>/],
      ],
      [
        "an unknown download child",
        `<project name="p"><repository name="r"><download arch="x86_64" url="http://x" repotype="rpmmd"><mirror/></download><arch>x86_64</arch></repository></project>`,
        [/unknown element <mirror>/, /<download arch="x86_64">/],
      ],
      [
        "a bad rebuild mode",
        `<project name="p"><repository name="r" rebuild="sometimes"/></project>`,
        [/attribute rebuild="sometimes" is not one of transitive, direct, local/, /<repository name="r">/],
      ],
      [
        "a bad block mode",
        `<project name="p"><repository name="r" block="maybe"/></project>`,
        [/attribute block="maybe" is not one of all, local, never/],
      ],
      [
        "a bad linkedbuild mode",
        `<project name="p"><repository name="r" linkedbuild="on"/></project>`,
        [/attribute linkedbuild="on" is not one of off, localdep, alldirect, alldirect_or_localdep, all/],
      ],
      [
        "a bad role",
        `<project name="p"><person userid="u1" role="boss"/></project>`,
        [/attribute role="boss" is not one of maintainer/],
      ],
      [
        "a bad repotype",
        `<project name="p"><repository name="r"><download arch="x86_64" url="http://x" repotype="yum"/><arch>x86_64</arch></repository></project>`,
        [/attribute repotype="yum" is not one of rpmmd/],
      ],
      [
        "a bad project name",
        `<project name="home::foo"/>`,
        [/attribute name in <project>: invalid project name "home::foo"/],
      ],
      [
        "a bad repository name",
        `<project name="p"><repository name="_r"/></project>`,
        [/invalid repository name "_r"/],
      ],
      [
        "a bad arch",
        `<project name="p"><repository name="r"><arch>x86.64</arch></repository></project>`,
        [/invalid architecture name "x86\.64"/, /<repository name="r">\/<arch>/],
      ],
      [
        "a bad flag arch",
        `<project name="p"><build><disable arch="i 586"/></build></project>`,
        [/attribute arch in <project name="p">\/<build>\/<disable>: invalid architecture name "i 586"/],
      ],
      [
        "a bad flag repository",
        `<project name="p"><build><disable repository="a:b"/></build></project>`,
        [/invalid repository name "a:b"/],
      ],
      [
        "an empty flag repository",
        `<project name="p"><build><disable repository=""/></build></project>`,
        [/invalid repository name: must not be empty/],
      ],
      [
        "a bad path project",
        `<project name="p"><repository name="r"><path project="_x" repository="r"/></repository></project>`,
        [/attribute project in .*<path>: invalid project name "_x"/],
      ],
      ["a bad user", `<project name="p"><person userid="a/b" role="reader"/></project>`, [/invalid user name "a\/b"/]],
      ["a bad group", `<project name="p"><group groupid="a b" role="reader"/></project>`, [/invalid group name "a b"/]],
      ["a missing name", `<project/>`, [/<project> lacks the required attribute name/]],
      [
        "a missing path repository",
        `<project name="p"><repository name="r"><path project="q"/></repository></project>`,
        [/<path> lacks the required attribute repository/],
      ],
      [
        "a missing role",
        `<project name="p"><person userid="u1"/></project>`,
        [/<person> lacks the required attribute role/],
      ],
      [
        "a missing download url",
        `<project name="p"><repository name="r"><download arch="x86_64" repotype="rpmmd"/></repository></project>`,
        [/<download> lacks the required attribute url/],
      ],
      [
        "a duplicate repository",
        `<project name="p"><repository name="r"/><repository name="s"/><repository name="r"/></project>`,
        [/repository "r" is listed more than once/],
      ],
      [
        "a duplicate arch",
        `<project name="p"><repository name="r"><arch>x86_64</arch><arch>x86_64</arch></repository></project>`,
        [/arch "x86_64" is listed more than once in <project name="p">\/<repository name="r">/],
      ],
      [
        "a duplicate path",
        `<project name="p"><repository name="r"><path project="q" repository="s"/><path project="q" repository="s"/></repository></project>`,
        [/path "q\/s" is listed more than once/],
      ],
      [
        "a duplicate person role",
        `<project name="p"><person userid="u1" role="maintainer"/><person userid="u1" role="maintainer"/></project>`,
        [/person "u1" has the role maintainer more than once/],
      ],
      [
        "a duplicate title",
        `<project name="p"><title>a</title><title>b</title></project>`,
        [/element <title> appears more than once in <project name="p">/],
      ],
      [
        "a duplicate flag element",
        `<project name="p"><build><enable/></build><build><disable/></build></project>`,
        [/element <build> appears more than once/],
      ],
      [
        "a download for an arch the repository lacks",
        `<project name="p"><repository name="r"><download arch="i586" url="http://x" repotype="rpmmd"/><arch>x86_64</arch></repository></project>`,
        [/<download arch="i586"> is for an arch the repository does not build/],
      ],
      [
        "two downloads for one arch",
        `<project name="p"><repository name="r"><download arch="x86_64" url="http://x" repotype="rpmmd"/><download arch="x86_64" url="http://y" repotype="rpmmd"/><arch>x86_64</arch></repository></project>`,
        [/more than one <download> for arch "x86_64"/],
      ],
      [
        "a download url without a scheme",
        `<project name="p"><repository name="r"><download arch="x86_64" url="mirror/x" repotype="rpmmd"/><arch>x86_64</arch></repository></project>`,
        [/attribute url="mirror\/x" does not start with a scheme/],
      ],
      [
        "a download url with a space",
        `<project name="p"><repository name="r"><download arch="x86_64" url="http://a b" repotype="rpmmd"/><arch>x86_64</arch></repository></project>`,
        [/contains white space/],
      ],
      [
        "a bad ssl fingerprint",
        `<project name="p"><repository name="r"><download arch="x86_64" url="http://x" repotype="rpmmd"><master url="https://m" sslfingerprint="a b"/></download><arch>x86_64</arch></repository></project>`,
        [/attribute sslfingerprint="a b" contains characters/],
      ],
      [
        "text directly in <project>",
        `<project name="p">hello<title/></project>`,
        [/unexpected text "hello" in <project name="p">/],
      ],
      [
        "an element inside <title>",
        `<project name="p"><title>a<b>c</b></title></project>`,
        [/unexpected element <b> inside <title>/],
      ],
      [
        "content inside <person>",
        `<project name="p"><person userid="u1" role="reader">x</person></project>`,
        [/unexpected text "x"/],
      ],
      [
        "a child of a flag entry",
        `<project name="p"><build><disable><arch/></disable></build></project>`,
        [/<disable> must be empty, found <arch>/],
      ],
      [
        "an attribute on <title>",
        `<project name="p"><title lang="en">x</title></project>`,
        [/unknown attribute "lang" of <title>/],
      ],
      ["a package document", `<package name="p" project="q"/>`, [/the root element is <package>, expected <project>/]],
      [
        "old-style top-level flags in a project",
        `<project name="p"><disable/></project>`,
        [/unknown element <disable>/],
      ],
      ["a namespaced attribute", `<project name="p" xmlns:x="urn:x"/>`, [/unknown attribute "xmlns:x"/]],
    ];
    for (const [label, xml, patterns] of refused) {
      it(`should refuse ${label}, naming the problem`, () => {
        throwsWith(() => parseProjectMeta(xml), InvalidInputError, /^project meta: /, ...patterns);
      });
    }
  });

  describe("package meta", () => {
    it("should parse and render a package meta", () => {
      const xml = `<package name="hello" project="home:foo">
        <title>Hello</title>
        <description>Says hello.</description>
        <url>https://example.org/hello</url>
        <person userid="alice" role="maintainer"/>
        <group groupid="team" role="bugowner"/>
        <build><disable repository="SLE_15"/></build>
        <debuginfo><enable/></debuginfo>
      </package>`;
      const meta = parsePackageMeta(xml, { project: "home:foo", name: "hello" });
      assert.deepEqual(meta, {
        name: "hello",
        project: "home:foo",
        title: "Hello",
        description: "Says hello.",
        url: "https://example.org/hello",
        persons: [{ userid: "alice", role: "maintainer" }],
        groups: [{ groupid: "team", role: "bugowner" }],
        flags: { build: [{ state: "disable", repository: "SLE_15" }], debuginfo: [{ state: "enable" }] },
      });
      assert.equal(
        renderPackageMeta(meta),
        `<package name="hello" project="home:foo">
  <title>Hello</title>
  <description>Says hello.</description>
  <url>https://example.org/hello</url>
  <person userid="alice" role="maintainer"/>
  <group groupid="team" role="bugowner"/>
  <build>
    <disable repository="SLE_15"/>
  </build>
  <debuginfo>
    <enable/>
  </debuginfo>
</package>
`
      );
    });

    it("should turn old top-level <enable/>/<disable/> into build-flag entries", () => {
      const meta = parsePackageMeta(
        `<package name="k" project="p"><disable arch="x86_64"/><build><enable repository="r"/></build><enable/></package>`
      );
      assert.deepEqual(meta.flags, {
        build: [{ state: "disable", arch: "x86_64" }, { state: "enable" }, { state: "enable", repository: "r" }],
      });
      assert.match(
        renderPackageMeta(meta),
        /<build>\n {4}<disable arch="x86_64"\/>\n {4}<enable\/>\n {4}<enable repository="r"\/>\n {2}<\/build>/
      );
    });

    it("should take the project from the caller when the document has none, as osc's template", () => {
      const meta = parsePackageMeta(`<package name="k"><title/><description/></package>`, { project: "home:foo" });
      assert.equal(meta.project, "home:foo");
      assert.match(renderPackageMeta(meta), /^<package name="k" project="home:foo">/);
    });

    it("should check name and project against the expected ones", () => {
      throwsWith(
        () => parsePackageMeta(`<package name="k" project="p"/>`, { name: "j" }),
        InvalidInputError,
        /<package name="k"> does not match the package "j"/
      );
      throwsWith(
        () => parsePackageMeta(`<package name="k" project="p"/>`, { project: "q" }),
        InvalidInputError,
        /<package project="p"> does not match the project "q"/
      );
      throwsWith(
        () => parsePackageMeta(`<package name="k"/>`),
        InvalidInputError,
        /<package> lacks the required attribute project/
      );
      assert.equal(parsePackageMeta(`<package name="k" project="p"/>`, { name: "k", project: "p" }).name, "k");
    });

    const refused: [string, string, RegExp[]][] = [
      [
        "a multibuild flavor as the name",
        `<package name="k:flavor" project="p"/>`,
        [/invalid package name "k:flavor": ':' is not allowed/],
      ],
      ["a name starting with _", `<package name="_k" project="p"/>`, [/invalid package name "_k"/]],
      [
        "a bad project attribute",
        `<package name="k" project="p/q"/>`,
        [/attribute project in <package>: invalid project name "p\/q"/],
      ],
      [
        "a repository element",
        `<package name="k" project="p"><repository name="r"/></package>`,
        [/unknown element <repository> in <package name="k">/],
      ],
      [
        "an unknown element",
        `<package name="k" project="p"><devel project="q"/></package>`,
        [/unknown element <devel>/],
      ],
      [
        "an unknown attribute",
        `<package name="k" project="p" created="now"/>`,
        [/unknown attribute "created" of <package>/],
      ],
      [
        "a bad legacy entry",
        `<package name="k" project="p"><disable arch="a.b"/></package>`,
        [/invalid architecture name "a\.b"/],
      ],
      ["a project document", `<project name="p"/>`, [/the root element is <project>, expected <package>/]],
    ];
    for (const [label, xml, patterns] of refused) {
      it(`should refuse ${label}, naming the problem`, () => {
        throwsWith(() => parsePackageMeta(xml), InvalidInputError, /^package meta: /, ...patterns);
      });
    }

    it("should accept the special packages", () => {
      for (const name of ["_project", "_product", "_pattern", "_patchinfo", "_product:sles-release"]) {
        assert.equal(parsePackageMeta(`<package name="${name}" project="p"/>`).name, name);
      }
    });
  });

  describe("untrusted XML", () => {
    it("should refuse an entity-expansion bomb before expanding anything", () => {
      const lol = ['<!ENTITY lol0 "lol">'];
      for (let i = 1; i < 10; i++) lol.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
      const bomb = `<?xml version="1.0"?>\n<!DOCTYPE project [\n${lol.join("\n")}\n]>\n<project name="p"><title>&lol9;</title></project>`;
      const before = process.memoryUsage().heapUsed;
      throwsWith(
        () => parseProjectMeta(bomb),
        InvalidInputError,
        /DOCTYPE at line 2, column 1 is not allowed \(no DTDs, no entity definitions\)/
      );
      // Expanded, the title would be 3 GB; refusing it must not come close to that.
      assert.ok(process.memoryUsage().heapUsed - before < 64 * 1024 * 1024);
    });

    it("should refuse external entities and any DOCTYPE, whatever its case", () => {
      throwsWith(
        () =>
          parseProjectMeta(
            `<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><project name="p"><title>&xxe;</title></project>`
          ),
        InvalidInputError,
        /DOCTYPE/
      );
      throwsWith(() => parseProjectMeta(`<!doctype project><project name="p"/>`), InvalidInputError, /DOCTYPE/);
      throwsWith(() => parseProjectMeta(`<project name="p"/><!DOCTYPE x>`), InvalidInputError, /DOCTYPE/);
      throwsWith(
        () => parseProjectMeta(`<project name="p"><!ENTITY x "y"></project>`),
        InvalidInputError,
        /markup declaration '<!' at line 1, column 19/
      );
    });

    it("should refuse entity references other than XML's predefined ones", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="p"><title>&lol9;</title></project>`),
        InvalidInputError,
        /entity reference "&lol9;" in the text of <title> is not allowed/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"><title>&nbsp;</title></project>`),
        InvalidInputError,
        /"&nbsp;"/
      );
      for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
        throwsWith(
          () => parseProjectMeta(`<project name="p"><title>&${name};</title></project>`),
          InvalidInputError,
          /entity reference/
        );
      }
      throwsWith(
        () => parseProjectMeta(`<project name="&foo;"/>`),
        InvalidInputError,
        /entity reference "&foo;" in attribute name of <project>/
      );
      throwsWith(() => parseProjectMeta(`<project name="p"><title>a & b</title></project>`), InvalidInputError, /'&'/);
      throwsWith(
        () => parseProjectMeta(`<project name="a&b"/>`),
        InvalidInputError,
        /bare '&' in attribute name of <project>/
      );
    });

    it("should refuse character references to characters XML does not allow", () => {
      for (const ref of ["&#0;", "&#x1;", "&#xD800;", "&#xFFFE;", "&#x110000;", "&#99999999;"]) {
        throwsWith(
          () => parseProjectMeta(`<project name="p"><title>${ref}</title></project>`),
          InvalidInputError,
          /is not an XML character|not allowed/
        );
      }
    });

    it("should refuse raw characters XML does not allow", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="p">\n<title>a\u0000b</title></project>`),
        InvalidInputError,
        /character U\+0000 at line 2, column 9 is not allowed in XML/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"><title>\u001b[31m</title></project>`),
        InvalidInputError,
        /U\+001B/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"><title>\ud800</title></project>`),
        InvalidInputError,
        /U\+D800/
      );
    });

    it("should refuse documents over the size limit", () => {
      const big = `<project name="p"><description>${"x".repeat(MAX_META_XML_BYTES)}</description></project>`;
      throwsWith(() => parseProjectMeta(big), TooLargeError, /larger than 1048576 bytes/);
      // Counted in UTF-8 bytes: half as many three-byte characters are just as large.
      const wide = `<project name="p"><description>${"\u263a".repeat(MAX_META_XML_BYTES / 2)}</description></project>`;
      throwsWith(() => parseProjectMeta(wide), TooLargeError, /larger than/);
      assert.equal(
        parseProjectMeta(
          `<project name="p"><description>${"x".repeat(MAX_META_XML_BYTES - 100)}</description></project>`
        ).description.length,
        MAX_META_XML_BYTES - 100
      );
    });

    it("should refuse malformed XML with its position", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="p"><title></project>`),
        InvalidInputError,
        /malformed XML at line 1/
      );
      throwsWith(() => parseProjectMeta(`<project name="p" name="q"/>`), InvalidInputError, /malformed XML.*repeated/);
      throwsWith(() => parseProjectMeta(`<project name=p/>`), InvalidInputError, /malformed XML/);
      throwsWith(() => parseProjectMeta(`<project name="p" flag/>`), InvalidInputError, /malformed XML/);
      throwsWith(() => parseProjectMeta(``), InvalidInputError, /malformed XML/);
      throwsWith(() => parseProjectMeta(`just text`), InvalidInputError, /malformed XML/);
    });

    it("should refuse anything but one root element", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="p"/>trailing`),
        InvalidInputError,
        /text outside the root element/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"/><project name="q"/>`),
        InvalidInputError,
        /more than one root element/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"/></kiln-document><kiln-document>`),
        InvalidInputError,
        /malformed XML/
      );
      throwsWith(() => parseProjectMeta(`<kiln-document/>`), InvalidInputError, /root element is <kiln-document>/);
    });

    it("should refuse processing instructions and unsupported declarations", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="p"><?php echo 1; ?></project>`),
        InvalidInputError,
        /processing instruction <\?php\?> in <project> is not allowed/
      );
      throwsWith(
        () => parseProjectMeta(`<?xml-stylesheet href="x"?><project name="p"/>`),
        InvalidInputError,
        /processing instruction/
      );
      throwsWith(
        () => parseProjectMeta(`<?xml version="1.0" encoding="ISO-8859-1"?><project name="p"/>`),
        InvalidInputError,
        /encoding="ISO-8859-1" is not supported/
      );
      throwsWith(
        () => parseProjectMeta(`<?xml version="1.1"?><project name="p"/>`),
        InvalidInputError,
        /version="1.1" is not supported/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"/><?xml version="1.0"?>`),
        InvalidInputError,
        /XML declaration is only allowed at the very start, found one in the document/
      );
      throwsWith(
        () => parseProjectMeta(`<project name="p"><?xml version="1.0"?></project>`),
        InvalidInputError,
        /XML declaration .* in <project>/
      );
    });

    it("should trim long runs of white space without quadratic backtracking", () => {
      // A regex trim (/\s+$/) takes minutes on this; the mocha timeout would catch a regression.
      const spaces = " \t\n".repeat(150000);
      const meta = parseProjectMeta(`<project name="p"><description>a${spaces}b${spaces}</description></project>`);
      assert.equal(meta.description.length, 2 + spaces.length);
      throwsWith(
        () => parseProjectMeta(`<?xml ${'version="1.0" '.repeat(2)}?><project name="p"/>`),
        InvalidInputError,
        /XML declaration repeats version/
      );
    });

    it("should keep messages short when names are huge", () => {
      const long = "x".repeat(100000);
      for (const xml of [
        `<project name="p"><${long}/></project>`,
        `<project name="p" ${long}="1"/>`,
        `<project name="${long}"/>`,
        `<project name="p"><title>${long}<b/></title></project>`,
        `<project name="p">${long}</project>`,
      ]) {
        assert.throws(
          () => parseProjectMeta(xml),
          (err: Error) => err instanceof InvalidInputError && err.message.length < 400
        );
      }
    });

    it("should refuse '<' in attribute values", () => {
      throwsWith(
        () => parseProjectMeta(`<project name="p<q"/>`),
        InvalidInputError,
        /'<' in attribute name of <project>/
      );
    });

    it("should refuse prototype-polluting names without polluting anything", () => {
      for (const xml of [
        `<project name="p"><__proto__ polluted="yes"/></project>`,
        `<project name="p"><constructor/></project>`,
        `<project name="p" __proto__="x"/>`,
        `<project name="p"><person userid="u1" role="reader" constructor="x"/></project>`,
        `<project name="p"><toString/></project>`,
      ]) {
        throwsWith(() => parseProjectMeta(xml), InvalidInputError, /^project meta: /);
      }
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it("should refuse deeply nested documents", () => {
      const deep = `<project name="p">${"<a>".repeat(500)}${"</a>".repeat(500)}</project>`;
      throwsWith(() => parseProjectMeta(deep), InvalidInputError, /^project meta: /);
    });

    it("should refuse a document that is not a string", () => {
      throwsWith(() => parseProjectMeta(42 as unknown as string), InvalidInputError, /the document must be a string/);
      throwsWith(
        () => parsePackageMeta(Buffer.from("<package/>") as unknown as string),
        InvalidInputError,
        /must be a string/
      );
    });

    it("should accept a byte-order mark and CRLF line ends", () => {
      const meta = parseProjectMeta(
        `\ufeff<?xml version="1.0"?>\r\n<project name="p">\r\n<description>a\r\nb</description>\r\n</project>\r\n`
      );
      assert.equal(meta.description, "a\nb");
    });
  });

  describe("normalisation", () => {
    it("should trim text, drop empty flags and keep the rest", () => {
      const meta = normaliseProjectMeta({
        name: "p",
        title: "  t \n",
        description: "\n d \t",
        url: " ",
        persons: [],
        groups: [],
        flags: { build: [], publish: [{ state: "disable" }] },
        repositories: [{ name: "r", downloads: [], paths: [], archs: [" x86_64 "] }],
      });
      assert.deepEqual(meta, {
        name: "p",
        title: "t",
        description: "d",
        persons: [],
        groups: [],
        flags: { publish: [{ state: "disable" }] },
        repositories: [{ name: "r", downloads: [], paths: [], archs: ["x86_64"] }],
      });
    });

    it("should refuse to render an invalid model", () => {
      const base: ProjectMeta = {
        name: "p",
        title: "",
        description: "",
        persons: [],
        groups: [],
        flags: {},
        repositories: [],
      };
      throwsWith(() => renderProjectMeta({ ...base, name: "_p" }), InvalidInputError, /invalid project name "_p"/);
      throwsWith(
        () => renderProjectMeta({ ...base, title: "bell\u0007" }),
        InvalidInputError,
        /<title> contains a character that XML cannot represent/
      );
      throwsWith(
        () => renderProjectMeta({ ...base, persons: [{ userid: "u1", role: "boss" as "reader" }] }),
        InvalidInputError,
        /role="boss"/
      );
      throwsWith(
        () => renderProjectMeta({ ...base, flags: { bogus: [] } as Flags }),
        InvalidInputError,
        /unknown flag "bogus"/
      );
      throwsWith(
        () => renderProjectMeta({ ...base, flags: { build: [{ state: "on" as "enable" }] } }),
        InvalidInputError,
        /attribute state="on"/
      );
      throwsWith(
        () =>
          renderPackageMeta({
            name: "k",
            project: "p",
            title: "",
            description: "",
            persons: [],
            groups: [],
            flags: { build: {} as FlagEntry[] },
          }),
        InvalidInputError,
        /flag build must be a list/
      );
    });

    it("should be idempotent on the normalised form of the examples", () => {
      const once = parseProjectMeta(FULL_PROJECT);
      assert.deepEqual(normaliseProjectMeta(once), once);
      const pkg = parsePackageMeta(`<package name="k" project="p"><enable/></package>`);
      assert.deepEqual(normalisePackageMeta(pkg), pkg);
    });
  });

  describe("round trips (property tests)", () => {
    const RUNS = 400;

    it(`should round-trip ${RUNS} generated project metas through the normalised XML`, () => {
      for (let seed = 1; seed <= RUNS; seed++) {
        const r = prng(seed);
        const meta = genProject(r);
        const context = `seed ${seed}`;
        assert.deepEqual(normaliseProjectMeta(meta), meta, context);
        const xml = renderProjectMeta(meta);
        assert.deepEqual(parseProjectMeta(xml, meta.name), meta, context);
        assert.equal(renderProjectMeta(parseProjectMeta(xml)), xml, context);
        // The same meaning written untidily normalises to the same bytes.
        const messy = messyProject(r, meta);
        let parsed: ProjectMeta;
        try {
          parsed = parseProjectMeta(messy);
        } catch (err) {
          assert.fail(`${context}: ${(err as Error).message}\n${messy}`);
        }
        assert.deepEqual(parsed, meta, `${context}\n${messy}`);
        assert.equal(renderProjectMeta(parsed), xml, context);
      }
    });

    it(`should round-trip ${RUNS} generated package metas through the normalised XML`, () => {
      for (let seed = 1; seed <= RUNS; seed++) {
        const r = prng(seed * 7919);
        const meta = genPackage(r);
        const context = `seed ${seed}`;
        assert.deepEqual(normalisePackageMeta(meta), meta, context);
        const xml = renderPackageMeta(meta);
        assert.deepEqual(parsePackageMeta(xml, { name: meta.name, project: meta.project }), meta, context);
        assert.equal(renderPackageMeta(parsePackageMeta(xml)), xml, context);
        const withProject = r.bool();
        const messy = messyPackage(r, meta, withProject);
        let parsed: PackageMeta;
        try {
          parsed = parsePackageMeta(messy, withProject ? {} : { project: meta.project });
        } catch (err) {
          assert.fail(`${context}: ${(err as Error).message}\n${messy}`);
        }
        assert.deepEqual(parsed, meta, `${context}\n${messy}`);
        assert.equal(renderPackageMeta(parsed), xml, context);
      }
    });
  });

  /** A repository whose path is `paths` ("project/repository" each). */
  const repo = (name: string, ...paths: string[]): RepositoryMeta => ({
    name,
    downloads: [],
    archs: [],
    paths: paths.map((p) => {
      const [project, repository] = p.split("/");
      return { project: project!, repository: repository! };
    }),
  });
  /** The repositories of each project, as the path functions look them up. */
  const world = (projects: Record<string, RepositoryMeta[]>) => (p: string) => projects[p];

  describe("findPathLoop", () => {
    it("should accept a repository without paths", () => {
      assert.equal(findPathLoop(world({ a: [repo("r")] }), "a", "r"), undefined);
    });

    it("should accept chains and diamonds", () => {
      const w = world({
        a: [repo("r", "b/s", "c/t")],
        b: [repo("s", "d/u")],
        c: [repo("t", "d/u")],
        d: [repo("u")],
      });
      assert.equal(findPathLoop(w, "a", "r"), undefined);
    });

    it("should accept paths between repositories of the same project", () => {
      assert.equal(findPathLoop(world({ a: [repo("r", "a/s"), repo("s")] }), "a", "r"), undefined);
    });

    it("should find a repository that builds against itself", () => {
      assert.equal(findPathLoop(world({ a: [repo("r", "a/r")] }), "a", "r"), "repository path loop: a/r -> a/r");
    });

    it("should find a loop through other projects and name every step", () => {
      const w = world({ a: [repo("r", "b/s")], b: [repo("s", "c/t")], c: [repo("t", "a/r")] });
      assert.equal(findPathLoop(w, "a", "r"), "repository path loop: a/r -> b/s -> c/t -> a/r");
    });

    it("should find a loop further down the path", () => {
      const w = world({ a: [repo("r", "x/y", "b/s")], x: [repo("y")], b: [repo("s", "c/t")], c: [repo("t", "b/s")] });
      assert.equal(findPathLoop(w, "a", "r"), "repository path loop: b/s -> c/t -> b/s");
    });

    it("should report a missing project", () => {
      assert.equal(
        findPathLoop(world({ a: [repo("r", "b/s")] }), "a", "r"),
        'project "b" does not exist (path of a/r)'
      );
    });

    it("should report a missing repository", () => {
      assert.equal(
        findPathLoop(world({ a: [repo("r", "b/x")], b: [repo("s")] }), "a", "r"),
        'project "b" has no repository "x" (path of a/r)'
      );
    });

    it("should report when the starting repository itself is missing", () => {
      assert.equal(findPathLoop(world({ a: [repo("r")] }), "a", "zz"), 'project "a" has no repository "zz"');
      assert.equal(findPathLoop(world({}), "a", "r"), 'project "a" does not exist');
    });

    it("should handle very long paths without exhausting the stack", () => {
      const projects: Record<string, RepositoryMeta[]> = {};
      const n = 50000;
      for (let i = 0; i < n; i++) projects[`p${i}`] = [repo("r", ...(i + 1 < n ? [`p${i + 1}/r`] : []))];
      assert.equal(findPathLoop(world(projects), "p0", "r"), undefined);
      projects[`p${n - 1}`] = [repo("r", "p0/r")];
      assert.match(
        findPathLoop(world(projects), "p0", "r") ?? "",
        /^repository path loop: p0\/r -> p1\/r -> .* -> p49999\/r -> p0\/r$/
      );
    });

    it("should check the meta that is about to be stored, via getRepos", () => {
      const stored = { a: [repo("r")], b: [repo("s", "a/r")] };
      const proposedA = parseProjectMeta(
        `<project name="a"><repository name="r"><path project="b" repository="s"/></repository></project>`
      );
      const getRepos = (p: string) => (p === "a" ? proposedA.repositories : stored[p as keyof typeof stored]);
      assert.equal(findPathLoop(getRepos, "a", "r"), "repository path loop: a/r -> b/s -> a/r");
    });
  });

  describe("expandRepositoryPath (OBS expandsearchpath)", () => {
    const expand = (w: ReturnType<typeof world>, p: string, r: string): string =>
      expandRepositoryPath(w, p, r)
        .map((e) => `${e.project}/${e.repository}`)
        .join(" ");

    it("should follow only the last entry's path, not the paths of earlier entries", () => {
      const w = world({
        top: [repo("t", "a/x", "b/y")],
        a: [repo("x", "c/z")],
        b: [repo("y", "d/w")],
        c: [repo("z")],
        d: [repo("w")],
      });
      assert.equal(expand(w, "top", "t"), "top/t a/x b/y d/w");
    });

    it("should follow a chain of single entries to its end", () => {
      const w = world({ top: [repo("t", "mid/m")], mid: [repo("m", "base/std")], base: [repo("std")] });
      assert.equal(expand(w, "top", "t"), "top/t mid/m base/std");
    });

    it("should list a repository once, and still expand a last entry that was listed before", () => {
      // b/y's path names a/x again: a/x is not listed twice, but being last it is expanded.
      const w = world({ top: [repo("t", "a/x", "b/y")], a: [repo("x", "c/z")], b: [repo("y", "a/x")], c: [repo("z")] });
      assert.equal(expand(w, "top", "t"), "top/t a/x b/y c/z");
    });

    it("should end on a loop and keep repositories it does not know", () => {
      const w = world({ a: [repo("r", "b/s")], b: [repo("s", "a/r")] });
      assert.equal(expand(w, "a", "r"), "a/r b/s");
      assert.equal(expand(world({ a: [repo("r", "gone/x")] }), "a", "r"), "a/r gone/x");
      assert.equal(expand(world({}), "a", "r"), "a/r");
    });
  });
});
