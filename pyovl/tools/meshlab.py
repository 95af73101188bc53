"""The mesh lab: three pyovl nodes in two PDCs, as network namespaces.

      [g1]                 [g2]                        [g3]
        |                    |                           |
  [ <p>-n1 ]           [ <p>-n2 ]                  [ <p>-n3 ]
  PDC dc1              PDC dc1                     PDC dc2
  ul0 198.18.1.1       ul0 198.18.1.2              ul0 198.18.2.3
  ex0 198.19.0.1       ex0 198.19.0.2              ex0 198.19.0.3
      \\___________________/                           |
       [ <p>-adm1: br0 ]  admin network of dc1    [ <p>-adm2: br0 ]
      ex0s of all three nodes: [ <p>-inet: br0 ]  the "internet"

One files overlay, mesh0 (vnetid 300, guests 10.30.0.N/24, MTU 1400). Its
files table names every node by its admin address; the mesh resolves n1<->n2
to plain VXLAN over the dc1 admin network and n1/n2<->n3 to IPsec (IKEv2,
one key per pair from `pyovl mesh keygen`) between external addresses.
Each node is its own pyovl instance running `pyovl up -d` (with pyovl's own
charon). Needs a kernel with ESP (this one, or user-mode-linux: see
scripts/uml-run); up() says why when it cannot.
"""

from __future__ import annotations

import json
import os

from pyovl.tools.lab import HostsLab
from pyovl.tools.topo import Topo, sh

NODES = {1: "dc1", 2: "dc1", 3: "dc2"}
VNI = 300
PORT = 4789


def admin_ip(n: int) -> str:
    return "198.18.%d.%d" % (1 if NODES[n] == "dc1" else 2, n)


def external_ip(n: int) -> str:
    return "198.19.0.%d" % n


def guest_ip(n: int) -> str:
    return "10.30.0.%d" % n


def guest_mac(n: int) -> str:
    return "02:08:20:30:00:%02x" % n


def inventory(self_n: int, keys: str, repair_after: float = 3.0) -> dict:
    return {"self": "n%d" % self_n, "keys": keys, "ike": {"repair_after": repair_after},
            "nodes": {"n%d" % n: {"pdc": pdc, "admin": admin_ip(n), "external": external_ip(n)}
                      for n, pdc in NODES.items()}}


def files_table() -> dict:
    return {guest_mac(n): {"ip": admin_ip(n), "port": PORT, "arp": guest_ip(n)} for n in NODES}


class MeshLab(HostsLab):
    hosts = tuple(NODES)
    host_letter = "n"

    def __init__(self, prefix: str = "mlab", directory: str | None = None, repair_after: float = 3.0):
        super().__init__(prefix, directory)
        self.repair_after = repair_after

    def node(self, n: int) -> str:
        return self.host(n)

    def guest(self, n: int) -> str:
        return "%s-g%d" % (self.prefix, n)

    def switch(self, name: str) -> str:
        return "%s-%s" % (self.prefix, name)

    def config_path(self, n: int) -> str:
        return os.path.join(self.dir, "n%d.json" % n)

    def key_path(self, n: int) -> str:
        return os.path.join(self.dir, "keys", "n%d.json" % n)

    def host_config(self, n: int) -> dict:
        files = os.path.join(self.dir, "mesh0.json")
        return {"overlays": {"mesh0": {"encap": "vxlan", "search": "files", "vnetid": VNI,
                                       "props": {"vxlan/listen_ip": admin_ip(n), "vxlan/listen_port": PORT,
                                                 "files/config": files, "mtu": 1400}}},
                "vnics": {"g%d" % n: {"over": "mesh0", "mac": guest_mac(n), "netns": self.guest(n),
                                      "addresses": [guest_ip(n) + "/24"]}},
                "mesh": inventory(n, self.key_path(n), self.repair_after),
                "daemon": {"metrics": "127.0.0.1:%d" % (9140 + n)}}

    def build(self) -> None:
        """Namespaces, switches and the config files (no pyovl yet)."""
        self.down()
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.dir, "mesh0.json"), "w") as f:
            json.dump(files_table(), f, indent=1)
        t = Topo(self.prefix)
        switches = {"dc1": t.switch("adm1"), "dc2": t.switch("adm2"), "inet": t.switch("inet")}
        for n, pdc in NODES.items():
            h = t.ns("n%d" % n)
            t.attach(h, switches[pdc], admin_ip(n), ifname="ul0")
            t.attach(h, switches["inet"], external_ip(n), ifname="ex0")
        from pyovl.mesh import keys, parse_mesh  # noqa: PLC0415

        keys.generate(parse_mesh(inventory(1, self.key_path(1))).nodes.values(), os.path.dirname(self.key_path(1)))
        for n in NODES:
            with open(self.config_path(n), "w") as f:
                json.dump(self.host_config(n), f, indent=1)

    def up(self) -> list[str]:
        self.build()
        return ["%s: %s" % (self.node(n), self.run(n, "up", "-d", self.config_path(n)).stdout.strip()
                            .replace("\n", "; ")) for n in NODES]

    def ping(self, src: int, dst: int, count: int = 2, wait: float = 2) -> bool:
        return sh("ping", "-c", str(count), "-i", "0.2", "-W", str(wait), guest_ip(dst), ns=self.guest(src),
                  check=False).returncode == 0
