"""The engine with a fake kernel: what a failure in the middle of an apply
leaves behind (nothing: it is rolled back), and that a good apply records
exactly the wanted declaration.

The fake stands in for the Datapath (map entries, decap attachments) and
for observe(); no VNICs, so netlink is never reached. The real data path is
tested in tests/netns/test_engine*.py.

  case                                   | expected
  ---------------------------------------+----------------------------------------
  up of 3 overlays                       | 3 in the fake maps, ledger = the file
  up of 4, the 4th's map write refused   | one line "... (rolled back)", exit code
                                         | of the cause, maps and ledger as before
"""

from __future__ import annotations

import json

import pytest

from pyovl.engine import engine as E
from pyovl.engine.declare import UpFile
from pyovl.engine.facts import Facts, OverlayFact
from pyovl.errors import KernelError

LIP = "198.18.0.1"


class FakeDatapath:
    """What the engine asks of a Datapath, over dicts."""

    def __init__(self, refuse_vni=None):
        self.entries: dict[int, OverlayFact] = {}
        self.attached: dict[str, str] = {}
        self.refuse_vni = refuse_vni
        self.pin_dir, self.state_dir = "/nonexistent", "/nonexistent"

    def loaded(self):
        return True

    def load(self):
        pass

    def forget_ids(self):
        pass

    def close(self):
        pass

    def underlays(self):
        return {d: {"role": "underlay", "hook": h} for d, h in self.attached.items()}

    def attach_underlay(self, dev, hook):
        self.attached[dev] = hook

    def detach_underlay(self, dev):
        self.attached.pop(dev, None)

    def add_overlay(self, vni, listen_ip, listen_port, point=None, mtu=1400, point_encrypt=False):
        if vni == self.refuse_vni:
            raise KernelError("map update refused (fake)")
        dest = (point[0], point[1], point_encrypt) if point else None
        self.entries[vni] = OverlayFact(len(self.entries) + 1, point is not None, listen_ip, listen_port, mtu, dest)

    def del_overlay(self, vni):
        del self.entries[vni]

    def overlays(self):
        return self.entries


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("PYOVL_RUN_ROOT", str(tmp_path / "run"))
    monkeypatch.setenv("PYOVL_STATE_ROOT", str(tmp_path / "lib"))
    dp = FakeDatapath()

    def observe(d):
        links = {"ul0": {"ifindex": 2, "kind": "veth", "mtu": 1500, "xdp_prog": 0}}
        f = Facts(links=links, addresses=[(LIP, 2, 0, 2)], loaded=True, overlays=dict(d.entries),
                  attached=dict(d.attached))
        f._tc = {"ul0": "ovl_underlay_tc" if "ul0" in d.attached else None}
        return f

    monkeypatch.setattr(E, "observe", observe)
    monkeypatch.setattr(E.netns, "cookie", lambda: 1)
    return dp


def write(tmp_path, vnis):
    doc = {"overlays": {"ov%d" % v: {"encap": "vxlan", "search": "direct", "vnetid": v,
                                     "props": {"vxlan/listen_ip": LIP, "direct/dest_ip": "198.18.0.2",
                                               "direct/dest_port": 4789}}
                        for v in vnis}}
    p = tmp_path / ("o%d.json" % len(vnis))
    p.write_text(json.dumps(doc))
    return str(p)


def test_a_good_apply_records_the_declaration(fake, tmp_path):
    eng = E.Engine("i1", dp=fake)
    done = eng.submit(UpFile(path=write(tmp_path, (1, 2, 3))))
    assert done[0] == "+ underlay ul0 (tc)" and len(done) == 4
    assert set(fake.entries) == {1, 2, 3}
    assert set(eng.declaration().overlays) == {"ov1", "ov2", "ov3"}
    assert eng.diff(UpFile(path=write(tmp_path, (1, 2, 3)))) == []


def test_a_failure_midway_is_rolled_back(fake, tmp_path):
    eng = E.Engine("i1", dp=fake)
    eng.submit(UpFile(path=write(tmp_path, (1, 2, 3))))
    before = (dict(fake.entries), eng.runtime())
    fake.refuse_vni = 4
    bigger = write(tmp_path, (1, 2, 3, 4, 5))
    with pytest.raises(KernelError) as e:
        eng.submit(UpFile(path=bigger))
    msg = str(e.value)
    assert msg.startswith("applying '+ overlay ov4 (vnetid 4)' failed: map update refused (fake)"), msg
    assert msg.endswith("; nothing was changed (rolled back)") and "\n" not in msg
    assert e.value.exit_code == 3
    assert (fake.entries, eng.runtime()) == before  # ov4 never made, ov5 never reached
    assert eng.diff(UpFile(path=write(tmp_path, (1, 2, 3)))) == []
