import assert from "node:assert/strict";
import {
  ServiceMode,
  ServiceRunKind,
  buildtimeServices,
  expandedNames,
  parseServiceXml,
  runsOnServer,
  serviceArgs,
  servicesFor,
} from "../../../actors/service/service-xml.ts";

/** The seed "OBS Concepts" §22.4.2 example. */
const OBS_SCM = `<services>
  <service name="obs_scm">
    <param name="url">git://example.org/x.git</param>
    <param name="scm">git</param>
  </service>
  <service name="tar" mode="buildtime"/>
  <service name="recompress" mode="buildtime">
    <param name="file">*.tar</param>
    <param name="compression">xz</param>
  </service>
  <service name="set_version" mode="buildtime" />
</services>`;

describe("service/service-xml", () => {
  it("should read services, modes and parameters in document order", () => {
    const list = parseServiceXml(OBS_SCM);
    assert.deepEqual(
      list.map((s) => [s.name, s.mode]),
      [
        ["obs_scm", "default"],
        ["tar", "buildtime"],
        ["recompress", "buildtime"],
        ["set_version", "buildtime"],
      ]
    );
    assert.deepEqual(list[0]!.params, [
      { name: "url", value: "git://example.org/x.git" },
      { name: "scm", value: "git" },
    ]);
    assert.deepEqual(serviceArgs("/out", list[2]!.params), [
      "--outdir",
      "/out",
      "--file",
      "*.tar",
      "--compression",
      "xz",
    ]);
  });

  it("should keep repeated parameters and decode XML's entities in values", () => {
    const [s] = parseServiceXml(
      `<?xml version="1.0"?><services><service name="tar_scm"><param name="exclude">a</param><param name="exclude">b &amp; c</param><param name="versionformat">%ct.&#x25;h</param></service></services>`
    );
    assert.deepEqual(s!.params, [
      { name: "exclude", value: "a" },
      { name: "exclude", value: "b & c" },
      { name: "versionformat", value: "%ct.%h" },
    ]);
  });

  it("should run on the server exactly what OBS runs there", () => {
    const modes = Object.values(ServiceMode);
    assert.deepEqual(
      modes.filter((m) => runsOnServer(m)),
      ["default", "trylocal", "serveronly"]
    );
    const xml = `<services>${modes.map((m) => `<service name="s-${m}"${m === "default" ? "" : ` mode="${m}"`}/>`).join("")}</services>`;
    const all = parseServiceXml(xml);
    assert.deepEqual(
      servicesFor(ServiceRunKind.Server, all).map((s) => s.name),
      ["s-default", "s-trylocal", "s-serveronly"]
    );
    assert.deepEqual(
      servicesFor(ServiceRunKind.Manual, all).map((s) => s.name),
      ["s-manual"]
    );
    assert.deepEqual(
      servicesFor(ServiceRunKind.Disabled, all).map((s) => s.name),
      ["s-disabled"]
    );
    assert.deepEqual(
      buildtimeServices(all).map((s) => s.name),
      ["s-buildtime"]
    );
  });

  it("should accept an empty services element", () => {
    assert.deepEqual(parseServiceXml("<services/>"), []);
    assert.deepEqual(parseServiceXml("<services>\n  <!-- nothing yet -->\n</services>"), []);
  });

  for (const [what, xml, message] of [
    ["a DOCTYPE (entity definitions)", `<!DOCTYPE s [<!ENTITY a "aaaa">]><services/>`, /DOCTYPE/],
    ["an unknown entity", `<services><service name="x"><param name="p">&a;</param></service></services>`, /entity/],
    ["another root element", `<service name="x"/>`, /root element is <service>/],
    [
      "an unknown element",
      `<services><service name="x"><summary>s</summary></service></services>`,
      /unknown element <summary>/,
    ],
    ["an unknown attribute", `<services><service name="x" foo="1"/></services>`, /unknown attribute "foo"/],
    ["an unknown mode", `<services><service name="x" mode="sometimes"/></services>`, /unknown mode "sometimes"/],
    ["a service without a name", `<services><service/></services>`, /has no name/],
    ["a service name with a slash", `<services><service name="../bin/sh"/></services>`, /invalid service name/],
    ["a service name with a colon", `<services><service name="a:b"/></services>`, /invalid service name/],
    [
      "a parameter that would set the outdir",
      `<services><service name="x"><param name="outdir">/</param></service></services>`,
      /outdir/,
    ],
    [
      "a parameter name that looks like an option",
      `<services><service name="x"><param name="-x">1</param></service></services>`,
      /invalid parameter name/,
    ],
    [
      "an element inside a parameter",
      `<services><service name="x"><param name="p"><b/></param></service></services>`,
      /unexpected element <b>/,
    ],
    ["text between services", `<services>hello<service name="x"/></services>`, /unexpected text/],
    ["malformed XML", `<services><service name="x"></services>`, /malformed/],
  ] as const) {
    it(`should refuse ${what} with a clear error`, () => {
      assert.throws(
        () => parseServiceXml(xml),
        (err: Error) => {
          assert.match(err.message, /^_service: /);
          assert.match(err.message, message);
          return true;
        }
      );
    });
  }

  it("should refuse a document over the size limit before parsing it", () => {
    const big = `<services>${"<service name='x'/>".repeat(20_000)}</services>`;
    assert.throws(() => parseServiceXml(big), /larger than/);
  });

  it("should show the build a service file under its plain name, replacing a committed file", () => {
    const names = ["foo.spec", "_service", "_service:set_version:foo.spec", "_service:download_url:x:1.tar"];
    const m = expandedNames(names);
    assert.equal(m.get("foo.spec"), "_service:set_version:foo.spec");
    assert.equal(m.get("x:1.tar"), "_service:download_url:x:1.tar");
    assert.equal(m.get("_service"), "_service");
    assert.equal(m.size, 3);
    // Two services wrote one name: the later in name order wins, as in OBS.
    assert.equal(expandedNames(["_service:b:f", "_service:a:f"]).get("f"), "_service:b:f");
  });
});
