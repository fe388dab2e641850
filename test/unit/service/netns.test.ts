/**
 * The pure parts of the services' own network (sandbox/netns.ts): pasta's options, the routes
 * that keep the host's addresses out, and the resolv.conf a run gets.
 */
import assert from "node:assert/strict";
import type os from "node:os";
import {
  DNS_FORWARD_ADDRESS,
  hostAddresses,
  isolatedResolvConf,
  nameservers,
  pastaArgs,
  unreachableRoutes,
  validatePorts,
} from "../../../sandbox/netns.ts";

const iface = (address: string, internal = false): os.NetworkInterfaceInfo =>
  ({
    address,
    internal,
    family: address.includes(":") ? "IPv6" : "IPv4",
    netmask: "",
    mac: "",
    cidr: null,
    ...(address.includes(":") ? { scopeid: 0 } : {}),
  }) as os.NetworkInterfaceInfo;

describe("sandbox/netns: the services' own network", () => {
  it("should forward no port but the named host loopback ports, and not map the gateway to the host", () => {
    const args = pastaArgs({ type: "isolated", hostLoopbackPorts: [8080, 3128, 8080] }, false);
    const opt = (name: string): string | undefined => args[args.indexOf(name) + 1];
    assert.equal(opt("--tcp-ports"), "none");
    assert.equal(opt("--udp-ports"), "none");
    assert.equal(opt("--udp-ns"), "none");
    assert.equal(opt("--tcp-ns"), "3128,8080");
    assert.ok(args.includes("--no-map-gw"));
    assert.ok(args.includes("--config-net"));
    assert.ok(!args.includes("--dns-forward"));
    const none = pastaArgs({ type: "isolated", hostLoopbackPorts: [] }, true);
    assert.equal(none[none.indexOf("--tcp-ns") + 1], "none", "pasta's default would forward every bound port");
    assert.equal(none[none.indexOf("--dns-forward") + 1], DNS_FORWARD_ADDRESS);
  });

  it("should refuse port numbers that are not ports", () => {
    for (const bad of [0, 65536, 1.5, -1, Number.NaN, "80"]) {
      assert.throws(() => validatePorts([bad]), /a host loopback port must be a whole number from 1 to 65535/);
    }
    assert.deepEqual(validatePorts([443, 80, 443]), [80, 443]);
  });

  it("should make every address of the host but loopback unreachable, each once", () => {
    const addrs = hostAddresses({
      lo: [iface("127.0.0.1", true), iface("::1", true)],
      eth0: [iface("192.0.2.2"), iface("fd00::2"), iface("fe80::1%eth0")],
      docker0: [iface("172.17.0.1")],
      alias: [iface("192.0.2.2")],
    });
    assert.deepEqual(addrs, ["172.17.0.1", "192.0.2.2", "fd00::2", "fe80::1"]);
    assert.equal(
      unreachableRoutes(addrs),
      "route add unreachable 172.17.0.1/32\n" +
        "route add unreachable 192.0.2.2/32\n" +
        "route add unreachable fd00::2/128\n" +
        "route add unreachable fe80::1/128\n"
    );
    assert.equal(unreachableRoutes([]), "");
  });

  it("should point a run's DNS at pasta's forward only for resolvers on the host's loopback", () => {
    const plain = "search example.org\nnameserver 192.0.2.53\noptions edns0\n";
    assert.equal(isolatedResolvConf(plain), plain);
    const stub = "nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.53\nsearch lan\n";
    assert.equal(isolatedResolvConf(stub), `nameserver ${DNS_FORWARD_ADDRESS}\nnameserver 192.0.2.53\nsearch lan\n`);
    assert.deepEqual(nameservers(stub), ["127.0.0.53", "::1", "192.0.2.53"]);
  });
});
