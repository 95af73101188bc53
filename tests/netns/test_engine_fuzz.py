"""Fuzz a running overlay: mutated overlay.json and files-plugin tables,
applied to a serving two-host files overlay while a guest pings across it.

Contract (from the issue): every rejected input gets a one-line error and a
non-zero exit, never a traceback, and leaves the host exactly as it was
(kernel objects, maps, ledger, and the stream's loss 0); a broken mapping
file of any kind, a FIFO or a directory included, degrades the overlay with
a reason and never blocks the daemon.

Topology: Lab from test_daemon.py (hosts a, b, c on one switch; files
overlay vnetid 42). Hosts a and b run `up -d` (daemons serving); c is idle.
A ping stream from guest a to guest b (`ping -i 0.01`) runs throughout.

overlay.json fuzz (deterministic: random.Random(SEED)): N_OVERLAY_DOCS (400)
documents derived from host a's good file, each applied with `pyovl --netns
A up -d FILE`, which reaches the serving daemon: about 260 named cases (the
checks against the host, clashes, every section, the hard spots: huge
numbers, deep nesting, non-UTF-8, FIFOs and other non-files) and random
tree and text mutations for the rest. Host a also has a CLI-made overlay
and VNIC (cli7 / c0), so the file can clash with objects it does not own.
  - rejected (exit != 0): stdout empty, stderr exactly one line starting
    "pyovl: " (not the daemon's "internal error"), no "Traceback", and
    snapshot(host a) unchanged: links, TC on ul0 (both directions), XDP,
    `dp show` minus counters, every entry of the pinned maps but counters
    and caches, the ledger (control.json) and datapath record, no journal,
    the daemon's pid and the namespace's processes, the suite's namespaces,
    addresses, xfrm, nftables, guest a's links and addresses.
  - accepted (exit 0: the mutation was valid, e.g. a BOM, a new overlay, a
    VNIC moved): the good file is re-applied at once and `pyovl diff GOOD`
    must print nothing; the host must then match the first snapshot again
    in the parts a replace cannot change (names, namespaces, processes,
    ledger as data).
Valid netns values in the mutations always carry the suite's prefix, so an
accepted one never makes a namespace the leak check cannot see.

What is fair for the stream: an accepted mutation may legitimately cut it
(a VNIC replaced, the listen port changed, the guest moved to another
namespace: the ping's namespace may even be gone). So the stream runs in
segments: when an accepted input changed something (either it or the
restore printed an action), the running ping is stopped after the restore
and every echo it sent BEFORE that input was applied must have been
answered; a new ping is started and must get its first answer before the
fuzz goes on. Echoes sent while a changing input and its restore were being
applied are the only ones excused. Everything sent while rejected inputs
(and accepted no-op ones) were applied must be answered: loss 0.

Mapping-file fuzz (about 50 broken tables, 22 valid ones; about 120
writes): the files-plugin table of host a is replaced (atomically, by
rename, where the kind of file allows) by a broken table of one kind after
another: not UTF-8, nested too deeply, a number too long, not an object,
bad MAC keys, entries that are not objects, truncated JSON, a FIFO, a
directory, a dangling symlink, a symlink loop, a character device, a
socket, /proc/self/mem (a regular file that fails to read), a sparse file
over the 64 MiB limit, and the file removed (files.py: each of these is a
whole-file error). Each must turn ov0 DEGRADED within about 2 s, with a
one-line reason naming the table, while `show-overlay -f` keeps answering
(every call has a timeout: the daemon must never block). After each broken
table comes one that is valid as a whole but may hold malformed entries
(illumos answers Drop for those: bad ip or port, bad arp/ndp/dhcp-proxy
fields, MAC keys in another spelling, duplicate keys) or the good one; ov0
must be ONLINE again within about 2 s, which also proves the daemon read
it. Each valid one is also written after a valid one (it must stay ONLINE),
and a mode-000 table once (root reads it anyway: either status is right,
show-overlay must answer). None of them changes guest b's entry, so the
stream must lose nothing during the whole mapping fuzz. Status (the
daemon's status request) and metrics (pyovl_overlay_degraded) are read
while degraded and at the end; then `pyovl down` must succeed.

Both parts check the daemon logs for a traceback, that the daemon process
never changed, and print a summary line (run with -s to see it).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import pytest
from test_cli_helpers import PYOVL
from test_daemon import IP4, IP6, MAC, UL, Lab, table

from pyovl.tools.topo import sh

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]

SEED = 0x0E1F
N_OVERLAY_DOCS = 400
CLI_OVERLAY, CLI_VNETID, CLI_VNIC, CLI_MAC = "cli7", 77, "c0", "02:08:20:00:00:e1"
STATE_DEADLINE_S = 2.5  # a table change shows in show-overlay -f within this
CALL_TIMEOUT_S = 5.0  # any one show-overlay call (it asks the daemon with a 5 s timeout itself)


@pytest.fixture
def lab(topo, tmp_path):
    lab = Lab(topo, tmp_path)
    lab.streams = []
    yield lab
    for st in lab.streams:  # a failed test may leave its ping running (it would keep a namespace alive)
        if st.proc is not None and st.proc.poll() is None:
            st.proc.kill()
            st.proc.wait()
    for h in "abc":
        lab.pyovl(h, "down", check=False)
    for g in lab.guest.values():
        subprocess.run(["ip", "netns", "del", g], capture_output=True)
    # namespaces an accepted mutation made (all carry the prefix) and `down` missed
    for name in our_namespaces(lab):
        if name not in topo.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


# -- running pyovl ---------------------------------------------------------------


@dataclass
class Run:
    argv: tuple
    rc: int | None  # None: timed out
    out: bytes
    err: bytes
    took: float

    def text(self) -> str:
        def cut(b):  # a traceback's end says what raised
            return b if len(b) <= 900 else b[:300] + b" [...] " + b[-600:]
        return "rc=%s stdout=%r stderr=%r" % (self.rc, cut(self.out), cut(self.err))


def cli(lab, h, *args, timeout=60.0) -> Run:
    argv = (PYOVL, "--netns", lab.host[h], *args)
    t = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, env=lab.env, timeout=timeout)
        return Run(argv, p.returncode, p.stdout, p.stderr, time.monotonic() - t)
    except subprocess.TimeoutExpired as e:
        return Run(argv, None, e.stdout or b"", e.stderr or b"", time.monotonic() - t)


def one_line_error(r: Run) -> str | None:
    """None when r is a clean refusal, else what is wrong with it."""
    if r.rc is None:
        return "did not finish within %.0f s (a hang)" % r.took
    if r.rc == 0:
        return "exit 0"
    if b"Traceback" in r.out + r.err:
        return "a traceback"
    if r.out:
        return "printed on stdout"
    try:
        err = r.err.decode("utf-8")
    except UnicodeDecodeError:
        return "stderr is not UTF-8"
    if not (err.startswith("pyovl: ") and err.endswith("\n") and err.count("\n") == 1):
        return "stderr is not one 'pyovl: ' line"
    if not err[:-1].isprintable():
        return "stderr has a control character"
    if "internal error" in err:
        return "an unhandled exception (the daemon's 'internal error')"
    return None


# -- the host, observed -------------------------------------------------------------

SHELL_HOST = ("ip -o link; echo @@; tc filter show dev ul0 ingress; echo @@; tc filter show dev ul0 egress;"
              " echo @@; ip -d link show ul0; echo @@; ip -o addr; echo @@; ip xfrm policy; echo @@;"
              " ip xfrm state; echo @@; nft list ruleset 2>/dev/null; true")
SHELL_GUEST = "ip -o link; echo @@; ip -o addr; true"


def _addr_lines(text: str) -> str:
    # DAD finishes on its own time after a (re)created VNIC: not a change
    return "\n".join(sorted(re.sub(r"\s+tentative", "", ln) for ln in text.splitlines()))


def snapshot(lab, h="a") -> dict:
    """What a rejected input must leave exactly as it was."""
    ns, guest = lab.host[h], lab.guest[h]
    run = lab.tmp / "run" / ns

    def read(name):
        p = run / name
        return p.read_text() if p.exists() else None

    dp = dp_show(lab, h)
    host = sh("sh", "-c", SHELL_HOST, ns=ns).stdout.split("@@\n")
    g = sh("sh", "-c", SHELL_GUEST, ns=guest, check=False)
    gparts = g.stdout.split("@@\n") if g.returncode == 0 else ["<no guest namespace>", ""]
    return {
        "links": sorted(ln.split(":")[1].split("@")[0].strip() for ln in host[0].splitlines()),
        "link_lines": sorted(host[0].splitlines()),
        "tc_ingress": host[1], "tc_egress": host[2], "ul0": host[3],
        "xdp": "xdp" in host[3], "addrs": _addr_lines(host[4]), "xfrm": host[5] + host[6], "nft": host[7],
        "guest_links": sorted(gparts[0].splitlines()), "guest_addrs": _addr_lines(gparts[1]),
        "dp": dp, "maps": maps_dump(lab, h),
        "ledger": read("control.json"), "datapath": read("datapath.json"),
        "journal": (run / "journal.jsonl").exists(), "daemon_pid": read("daemon.pid"),
        "netns": our_namespaces(lab), "stray_netns": stray_namespaces(lab),
        "pids": sorted(sh("ip", "netns", "pids", ns).stdout.split()),
    }


def our_namespaces(lab) -> list:
    """The named namespaces of this test (`ip netns list` prints "name (id: N)";
    other tests on this machine come and go)."""
    names = [ln.split()[0] for ln in sh("ip", "netns", "list").stdout.splitlines() if ln.strip()]
    prefix = lab.host["a"].rsplit("-", 1)[0] + "-"
    return sorted(n for n in names if n.startswith(prefix))


def stray_namespaces(lab) -> list:
    """Namespaces named like an invalid netns value of the fuzz: none may exist."""
    try:
        names = set(os.listdir("/run/netns"))
    except OSError:
        return []
    return sorted(names & {v for v in netns_values(lab) if isinstance(v, str)} - {lab.guest["a"] + "z"})


def dp_show(lab, h="a") -> dict:
    """What `pyovl dp show --json` prints, minus the counters, computed here
    by the same Datapath.show() (a CLI call per snapshot cost a third of the
    fuzz's time)."""
    from pyovl.dataplane.datapath import Datapath

    dp = Datapath(instance=lab.host[h], state_dir=str(lab.tmp / "run" / lab.host[h]))
    try:
        out = dp.show()
    except Exception as e:  # noqa: BLE001 - shown in the snapshot difference
        return {"error": str(e)}
    finally:
        dp.close()
    for ov in out["overlays"]:
        ov.pop("counters", None)
        ov.pop("drops", None)
    return out


LISTEN_PORTS_READ = [*range(0, 2049), *range(4700, 4901), *range(65000, 65536)]
SKIP_MAPS = {"stats", "pending", "misses", "nexthops"}  # counters and caches traffic changes


def maps_dump(lab, h="a") -> dict:
    """Every entry of the instance's pinned maps but counters and caches
    (targets without their expiry time), read from bpffs."""
    from pyovl.dataplane import abi, loader
    from pyovl.dataplane.maps import PinnedMaps

    out = {}
    try:
        m = PinnedMaps(loader.pin_dir(lab.host[h]))
    except Exception as e:  # noqa: BLE001 - shown in the snapshot difference
        return {"error": str(e)}
    with m:
        for name in abi.MAPS:
            if name in SKIP_MAPS:
                continue
            rows = []
            mp = getattr(m, name)
            if name == "listen_ports":  # an array of 65536: read the ports any mutation can name
                items = ((abi.U32(p), mp.get(abi.U32(p))) for p in LISTEN_PORTS_READ)
            else:
                items = mp.items()
            for k, v in items:
                if v is None:
                    continue
                if name == "targets":
                    v = abi.Dest.from_buffer_copy(bytes(v))
                    v.expiry_ns = 0
                rows.append((bytes(k).hex(), bytes(v).hex()))
            out[name] = sorted(rows)
    return out


# parts of the host that an accepted input and the good file's re-apply leave
# as they were (ids, ifindexes and learnt targets may move with a replace)
STABLE = ("links", "xdp", "netns", "stray_netns", "pids", "ledger", "journal", "daemon_pid", "nft", "xfrm", "guest_links_names")


def stable(snap: dict) -> dict:
    s = dict(snap, guest_links_names=sorted(ln.split(":")[1].split("@")[0].strip() for ln in snap["guest_links"]),
             ledger=json.loads(snap["ledger"]) if snap["ledger"] else None)  # a replace may reorder its objects
    return {k: s[k] for k in STABLE}


def delta(a: dict, b: dict) -> str:
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: %r -> %r" % (k, _short(a.get(k)), _short(b.get(k))))
    return "; ".join(out)


def _short(v, n=400):
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= n else s[:n] + "...(%d)" % len(s)


def daemon_log(lab, h) -> str:
    p = lab.tmp / "run" / lab.host[h] / "daemon.log"
    return p.read_text(errors="replace") if p.exists() else ""


# -- the stream -------------------------------------------------------------------

REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) .*time=([\d.]+) ms(?! \(DUP!\))")


@dataclass
class Segment:
    sent: int
    answered: int
    lost: list  # [(seq, estimated send time)]
    bad: list  # lost before the cut
    alive: bool  # ping was still running when stopped
    first_answer_s: float


@dataclass
class Stream:
    """`ping -D -i 0.01` from guest a to guest b, in segments (see the module doc)."""

    lab: object
    n: int = 0
    proc: object = None
    started: float = 0.0
    first_answer_s: float = 0.0
    segments: list = field(default_factory=list)

    def __post_init__(self):
        self.lab.streams.append(self)

    def start(self, timeout=15.0) -> bool:
        self.n += 1
        self.out = self.lab.tmp / ("stream%02d.txt" % self.n)
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.lab.guest["a"], "ping", "-D", "-n", "-i",
                                          "0.01", "-W", "2", IP4["b"]], stdout=f, stderr=subprocess.STDOUT)
        self.started = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " bytes from " in self.out.read_text(errors="replace"):
                self.first_answer_s = time.time() - self.started
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        return False

    def stop(self, cut: float | None = None) -> Segment:
        """Stop ping; every echo sent before cut (wall clock) must have been
        answered (echoes before the first answer are the start-up)."""
        if cut is None:
            cut = time.time() - 0.5  # still in flight at SIGINT: not a loss
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = self.out.read_text(errors="replace")
        sent_t: dict[int, float] = {}
        for ln in text.splitlines():
            m = REPLY.match(ln)
            if m:
                sent_t.setdefault(int(m.group(2)), float(m.group(1)) - float(m.group(3)) / 1e3)
        m = re.search(r"(\d+) packets transmitted", text)
        sent = int(m.group(1)) if m else (max(sent_t) if sent_t else 0)
        lost = []
        if sent_t:
            seqs = sorted(sent_t)
            import bisect

            for s in range(seqs[0], sent + 1):
                if s in sent_t:
                    continue
                i = bisect.bisect(seqs, s)
                lo = seqs[i - 1] if i > 0 else None
                hi = seqs[i] if i < len(seqs) else None
                if lo is not None and hi is not None:
                    t = sent_t[lo] + (s - lo) * (sent_t[hi] - sent_t[lo]) / (hi - lo)
                elif lo is not None:
                    t = sent_t[lo] + (s - lo) * 0.01
                else:
                    t = sent_t[hi] - (hi - s) * 0.01
                lost.append((s, t))
        seg = Segment(sent, len(sent_t), lost, [x for x in lost if x[1] < cut], alive, self.first_answer_s)
        self.segments.append(seg)
        self.proc = None
        return seg


# -- overlay.json mutations ---------------------------------------------------------

RAW = "@@RAW%d@@"


def good_doc(lab) -> dict:
    """Host a's good file, as Lab.up writes it (same objects, same order)."""
    return {"overlays": {"ov0": {"encap": "vxlan", "search": "files", "vnetid": 42,
                                 "props": {"vxlan/listen_ip": UL["a"], "files/config": str(lab.files)}}},
            "vnics": {"g0": {"over": "ov0", "mac": MAC["a"], "netns": lab.guest["a"],
                             "addresses": [IP4["a"] + "/24", IP6["a"] + "/64"]}}}


def rich_doc(lab) -> dict:
    """The good file with every section and default spelt out: the same
    declaration (checked: `diff` of it prints nothing), more to mutate."""
    doc = good_doc(lab)
    doc["overlays"]["ov0"]["props"].update({"mtu": 1400, "vxlan/listen_port": 4789})
    doc["vnics"]["g0"].update({"vlan": 0})
    return {"$schema": "https://example.invalid/overlay.schema.json", "comment": "fuzz base", "rules": {},
            **doc, "daemon": {"metrics": "127.0.0.1:9134"}, "underlay": {"devices": [], "hook": "auto"}}


def rule_doc(lab) -> dict:
    """The same overlay through a Danube rule (a change: the rule is recorded)."""
    doc = good_doc(lab)
    doc["rules"] = {"r1": "-e vxlan -s files -p vxlan/listen_ip=%s -p files/config=%s" % (UL["a"], lab.files)}
    doc["overlays"]["ov0"] = {"rule": "r1", "vnetid": 42, "props": {"mtu": 1400}}
    return doc


WEIRD = ["", " ", ".", "..", "/", "a\nb", "ov0\n", "g0\n", "\u00fc0", "\u202eov0", "\u2028", "\x00", "\ud800",
         "x" * 300, "-1", "0x2a", " 42", "42 ", "1e3", "true", "null", "../etc", "ov0 ", "\t", "\U0001f600"]
VALUES = [None, True, False, 0, -1, 1.5, -0.0, 2 ** 64, 10 ** 20, [], [1], ["ov0"], {}, {"a": 1}, {"ov0": {}}] + WEIRD
RAWS = ["1" + "0" * 5000, "[" * 10000 + "]" * 10000, '{"a":' * 5000 + "1" + "}" * 5000, "[" * 600 + "]" * 600,
        "NaN", "-Infinity", "1e999", "-0", "4.2e1", '"\\ud800"', '"\\u0000"', '"\\udfff\\ud800"', "1" + "0" * 4000,
        "-" + "9" * 4299, "0.1e-99999", "[" * 100 + "42" + "]" * 100]
KEYS = WEIRD + ["ov1", "g1", "ov0", "g0", "lo", "ul0", "eth0", CLI_OVERLAY, CLI_VNIC, "a" * 16, "ov0.", "Ov9",
                "o" + "v" * 30 + "0", "rules", "mesh", "extra", "vnetid", "encap", "props", "over", "mac"]


def netns_values(lab) -> list:
    """Values a VNIC's netns may become: only invalid names, null (the host's
    namespace) or names with the suite's prefix, so that an accepted one
    never makes an unprefixed namespace."""
    g = lab.guest["a"]
    return [None, 1, [], {}, True, "", ".", "..", "a/b", "x\n", g + "\n", "\u00fc", "a" * 65, g + "/..", "\x00",
            g + "z", "%s\u00e9" % g, " %s" % g]


def paths(node, prefix=()):
    """Every (path) to a value in the tree, dict keys and list items alike."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out += paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out += paths(v, prefix + (i,))
    return out


def _parent(doc, path):
    node = doc
    for k in path[:-1]:
        node = node[k]
    return node


def render(doc, raws=()) -> bytes:
    text = json.dumps(doc, indent=1)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(RAW % i), raw, 1)
    return text.encode("utf-8", "surrogatepass")


class Mutator:
    def __init__(self, lab, rng: random.Random):
        self.lab, self.rng = lab, rng
        self.netns = netns_values(lab)

    def value(self, path):
        """(value, raws) for the value at path."""
        rng = self.rng
        if path and path[-1] == "netns":
            return rng.choice(self.netns), ()
        if rng.random() < 0.25:
            return RAW % 0, (rng.choice(RAWS),)
        return copy.deepcopy(rng.choice(VALUES)), ()

    def tree(self, base) -> tuple[str, bytes]:
        rng = self.rng
        doc = copy.deepcopy(base)
        n_ops = 1 if rng.random() < 0.75 else rng.randint(2, 3)
        labels, raws = [], []
        for _ in range(n_ops):
            ps = paths(doc)
            op = rng.choice(["replace", "replace", "replace", "delete", "add", "rename", "wrap"])
            if not ps:
                op = "add"
            if op in ("replace", "delete", "rename", "wrap"):
                path = rng.choice(ps)
                parent = _parent(doc, path)
                if op == "replace":
                    v, r = self.value(path)
                    if r:
                        v = RAW % len(raws)
                        raws.append(r[0])
                    parent[path[-1]] = v
                elif op == "delete":
                    del parent[path[-1]]
                elif op == "wrap":
                    parent[path[-1]] = rng.choice([[parent[path[-1]]], {"v": parent[path[-1]]}])
                elif isinstance(parent, dict):
                    new = rng.choice(KEYS)
                    parent[new] = parent.pop(path[-1])
                else:
                    parent.append(parent[path[-1]])  # a list item: duplicate it
                labels.append("%s %s" % (op, "/".join(map(str, path))))
            else:
                objs = [()] + [p for p in ps if isinstance(_get(doc, p), dict)]
                where = rng.choice(objs)
                node = _get(doc, where)
                key = rng.choice(KEYS + ["vlan", "mtu", "hook", "devices", "metrics", "nodes"])
                if key in ("netns",):
                    key = "netns_"
                v, r = self.value((key,))
                if r:
                    v = RAW % len(raws)
                    raws.append(r[0])
                if key == "vlan":
                    v = rng.choice([7, 4095, "7"])
                elif key == "mtu":
                    v = rng.choice([1300, 1500, 575, 9001])
                node[key] = v
                labels.append("add %s/%s" % ("/".join(map(str, where)), show_key(key)))
        return "tree: " + "; ".join(labels), render(doc, raws)

    def text(self, base) -> tuple[str, bytes]:
        rng = self.rng
        data = render(base)
        op = rng.choice(["truncate", "truncate", "delete", "byte", "byte", "insert", "bom", "crlf", "comma",
                         "comment", "quote", "dupkey", "garbage", "nul"])
        i = rng.randrange(1, len(data))
        if op == "truncate":
            out = data[:i]
        elif op == "delete":
            out = data[:i] + data[i + 1:]
        elif op == "byte":
            out = data[:i] + bytes([rng.randrange(0x80, 0x100)]) + data[i:]
        elif op == "insert":
            out = data[:i] + bytes([rng.choice(b"{}[],:\"\\0aZ \n\t")]) + data[i:]
        elif op == "bom":
            out = b"\xef\xbb\xbf" + data
        elif op == "crlf":
            out = data.replace(b"\n", b"\r\n")
        elif op == "comma":
            out = data.replace(b"}", b",}", 1)
        elif op == "comment":
            out = b"// overlay\n" + data
        elif op == "quote":
            out = data.replace(b'"', b"'", 2)
        elif op == "dupkey":
            out = data.replace(b'"vnetid": 42', b'"vnetid": 42, "vnetid": 42', 1)
        elif op == "garbage":
            out = data + rng.choice([b"x", b"{}", b"\x00", b"\xff", b" ]"])
        else:
            out = data[:i] + b"\x00" + data[i:]
        return "text: %s at %d" % (op, i), out


def show_key(k) -> str:
    return repr(k) if not (isinstance(k, str) and k.isprintable() and k) else k


def _get(doc, path):
    node = doc
    for k in path:
        node = node[k]
    return node


def targeted(lab) -> list[tuple[str, object]]:
    """Named cases for the checks against the host and the known hard spots.
    Each is (label, doc | bytes | callable(path) -> None that makes the file)."""
    g = lab.guest["a"]
    out: list[tuple[str, object]] = []

    def with_(label, fn):
        doc = good_doc(lab)
        fn(doc)
        out.append((label, doc))

    def props(doc):
        return doc["overlays"]["ov0"]["props"]

    def vnic(doc):
        return doc["vnics"]["g0"]

    for ip in ["1.2.3.4", "255.255.255.255", "fe80::1%x", "fe80::1", UL["b"], UL["a"] + "/24", "::ffff:" + UL["a"],
               "198.018.0.1", " " + UL["a"], UL["a"] + "\n", "0.0.0.0", "::", "127.0.0.1", "", None, 3232235521,
               ["198.18.0.1"], "224.0.0.1", UL["a"] + "%ul0"]:
        with_("listen_ip %r" % (ip,), lambda d, ip=ip: props(d).__setitem__("vxlan/listen_ip", ip))
    for port in [0, 65536, -1, "4789", 4789.0, True, 4790, 10 ** 30, None]:
        with_("listen_port %r" % (port,), lambda d, port=port: props(d).__setitem__("vxlan/listen_port", port))
    for v in [0, 16777215, 16777216, -1, 42.0, "42", True, CLI_VNETID, 10 ** 30, 4.2e1, [42], None]:
        with_("vnetid %r" % (v,), lambda d, v=v: d["overlays"]["ov0"].__setitem__("vnetid", v))
    for mtu in [575, 576, 1300, 8900, 8901, 1400.0, "1400", True]:
        with_("overlay mtu %r" % (mtu,), lambda d, mtu=mtu: props(d).__setitem__("mtu", mtu))
    for path in ["relative.json", "/", "/dev/null", "", 5, "/nonexistent/ov0.json", str(lab.files) + "\n",
                 str(lab.files) + "\x00", str(lab.tmp / "fifo-files")]:
        with_("files/config %r" % (path,), lambda d, path=path: props(d).__setitem__("files/config", path))
    with_("unknown prop", lambda d: props(d).__setitem__("direct/dest_ip", UL["b"]))
    with_("prop vnetid", lambda d: props(d).__setitem__("vnetid", 42))
    # clashes: inside the file, and with the CLI-made overlay and VNIC
    with_("two overlays, one vnetid", lambda d: d["overlays"].__setitem__("ov1", copy.deepcopy(d["overlays"]["ov0"])))
    with_("second overlay vnetid 43", lambda d: d["overlays"].__setitem__(
        "ov1", dict(copy.deepcopy(d["overlays"]["ov0"]), vnetid=43)))
    with_("overlay named like the CLI overlay", lambda d: d["overlays"].__setitem__(
        CLI_OVERLAY, dict(copy.deepcopy(d["overlays"]["ov0"]), vnetid=44)))
    with_("overlay on the CLI overlay's vnetid", lambda d: d["overlays"].__setitem__(
        "ov1", dict(copy.deepcopy(d["overlays"]["ov0"]), vnetid=CLI_VNETID)))
    with_("VNIC named like the CLI VNIC", lambda d: d["vnics"].__setitem__(
        CLI_VNIC, {"over": "ov0", "mac": "02:08:20:00:00:a2", "netns": g + "y"}))
    with_("two VNICs, one MAC", lambda d: d["vnics"].__setitem__("g1", dict(vnic(d), netns=g + "y", addresses=[])))
    with_("two VNICs, one MAC spelt differently", lambda d: d["vnics"].__setitem__(
        "g1", {"over": "ov0", "mac": MAC["a"].upper().replace(":", "-"), "netns": g + "y"}))
    with_("VNIC lo in the guest (taken)", lambda d: d["vnics"].__setitem__("lo", {"over": "ov0", "netns": g}))
    with_("VNIC ul0 in the host (taken)", lambda d: d["vnics"].__setitem__("ul0", {"over": "ov0"}))
    with_("second VNIC in a new namespace", lambda d: d["vnics"].__setitem__(
        "g1", {"over": "ov0", "mac": "02:08:20:00:00:a2", "netns": g + "y"}))
    with_("VNIC mtu above the overlay", lambda d: vnic(d).__setitem__("mtu", 1500))
    for mac in ["01:00:5e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "02:08:20:00:00", "2:8:20:0:0:a1",
                " 02:08:20:00:00:a1", "02:08:20:00:00:a1\n", "0208.2000.00a1", "+2:08:20:00:00:a1", 5, [], "",
                "\u0662:08:20:00:00:a1"]:
        with_("mac %r" % (mac,), lambda d, mac=mac: vnic(d).__setitem__("mac", mac))
    for vlan in [-1, 4095, "7", 1.0, True, None, 10 ** 20]:
        with_("vlan %r" % (vlan,), lambda d, vlan=vlan: vnic(d).__setitem__("vlan", vlan))
    for addrs in [[IP4["a"] + "/24", IP4["a"] + "/24"], [IP4["a"] + "/24", IP4["a"] + "/16"], [IP4["a"]],
                  [IP4["a"] + "/33"], IP4["a"] + "/24", ["0.0.0.0/0"], ["224.0.0.1/4"], ["fe80::1%g0/64"], [None],
                  [[IP4["a"] + "/24"]], [IP4["a"] + "/255.255.255.0", IP6["a"] + "/64"], ["10.42.0.1 /24"],
                  [IP4["a"] + "/24\n"], ["::/0"], {"a": IP4["a"] + "/24"}]:
        with_("addresses %r" % (addrs,), lambda d, a=addrs: vnic(d).__setitem__("addresses", a))
    for over in [{}, [], None, "", "ov1", "OV0", "ov0\n", CLI_OVERLAY]:
        with_("over %r" % (over,), lambda d, o=over: vnic(d).__setitem__("over", o))
    with_("no over", lambda d: vnic(d).pop("over"))
    for ns in netns_values(lab):
        with_("netns %r" % (ns,), lambda d, ns=ns: vnic(d).__setitem__("netns", ns))
    # names
    for name in ["ov0\n", "0ov", "ov", "ov0.", "o" * 31 + "0", "\u00f6v0", "", "ov 0"]:
        with_("overlay name %r" % name, lambda d, n=name: (d["overlays"].__setitem__(n, d["overlays"].pop("ov0")),
                                                           vnic(d).__setitem__("over", n)))
    for name in ["g0\n", ".", "..", "g" * 16, "", "g/0", "g0 ", "\u00e90", "lo", "ovh" + "0" * 8]:
        with_("VNIC name %r" % name, lambda d, n=name: d["vnics"].__setitem__(n, d["vnics"].pop("g0")))
    for k in ["encap", "search", "vnetid", "props"]:
        with_("overlay without %s" % k, lambda d, k=k: d["overlays"]["ov0"].pop(k))
    with_("overlay without listen_ip", lambda d: props(d).pop("vxlan/listen_ip"))
    with_("overlay without files/config", lambda d: props(d).pop("files/config"))
    for enc, srch in [("geneve", "files"), ("vxlan", "direct"), ("vxlan", "Files"), (None, "files"), ("vxlan", [])]:
        with_("encap %r search %r" % (enc, srch), lambda d, e=enc, s=srch: d["overlays"]["ov0"].update(encap=e, search=s))
    # rules
    rules = {"r1": "-e vxlan -s files -p vxlan/listen_ip=%s -p files/config=%s" % (UL["a"], lab.files)}
    for label, rs, o in [
        ('"rule": []', rules, {"rule": [], "vnetid": 42}),
        ("rule undefined", rules, {"rule": "r2", "vnetid": 42}),
        ("rule and encap", rules, {"rule": "r1", "vnetid": 42, "encap": "vxlan"}),
        ("rule with -v", {"r1": rules["r1"] + " -v 42"}, {"rule": "r1", "vnetid": 42}),
        ("rule unbalanced quote", {"r1": "-e 'vxlan -s files"}, {"rule": "r1", "vnetid": 42}),
        ("rule unknown option", {"r1": rules["r1"] + " -x"}, {"rule": "r1", "vnetid": 42}),
        ("rule option without value", {"r1": "-e vxlan -s files -p"}, {"rule": "r1", "vnetid": 42}),
        ("rule prop twice", {"r1": rules["r1"] + " -p mtu=1300,mtu=1200"}, {"rule": "r1", "vnetid": 42}),
        ("rule name with newline", {"r1\n": rules["r1"]}, {"rule": "r1\n", "vnetid": 42}),
        ("rules a list", [rules["r1"]], {"rule": "r1", "vnetid": 42}),
        ("rule not a string", {"r1": ["-e", "vxlan"]}, {"rule": "r1", "vnetid": 42}),
        ("rule without vnetid", rules, {"rule": "r1"}),
    ]:
        def fn(d, rs=rs, o=o):
            d["rules"] = rs
            d["overlays"]["ov0"] = o
        with_(label, fn)
    # daemon, underlay
    for m in ["127.0.0.1:0", "127.0.0.1:99999", "localhost:9134", 9134, "[::1]", "127.0.0.1:9134\n", "",
              "127.0.0.1:09134", "::1:9134"]:
        with_("metrics %r" % (m,), lambda d, m=m: d.__setitem__("daemon", {"metrics": m}))
    with_("daemon unknown key", lambda d: d.__setitem__("daemon", {"metric": "127.0.0.1:9134"}))
    for u in [{"devices": ["eth9"]}, {"devices": ["ul0", "ul0"]}, {"devices": "ul0"}, {"devices": [""]},
              {"devices": ["ul0\n"]}, {"hook": "XDP"}, {"hook": None}, {"devices": ["ul0"], "hook": "tc"},
              {"hook": "xdp"}, {"devices": [".."]}, {"devices": [["ul0"]]}, {"device": ["ul0"]}, []]:
        with_("underlay %r" % (u,), lambda d, u=u: d.__setitem__("underlay", u))
    # mesh
    node = {"pdc": "dc1", "admin": UL["a"], "external": UL["a"]}
    peer = {"pdc": "dc2", "admin": UL["b"], "external": UL["b"]}
    fifo = str(lab.tmp / "fifo-mesh")
    for label, mesh in [
        ("mesh {}", {}), ("mesh []", []), ("mesh null", None), ("mesh path missing", "/nonexistent/mesh.json"),
        ("mesh path relative", "mesh.json"), ("mesh path a FIFO", fifo), ("mesh path a directory", str(lab.tmp)),
        ("mesh nodes empty", {"self": "n1", "nodes": {}}),
        ("mesh self missing", {"nodes": {"n1": node}}),
        ("mesh self not a node", {"self": "n2", "nodes": {"n1": node}}),
        ("mesh self a list", {"self": ["n1"], "nodes": {"n1": node}}),
        ("mesh node name with newline", {"self": "n1\n", "nodes": {"n1\n": node}}),
        ("mesh node missing pdc", {"self": "n1", "nodes": {"n1": {"admin": UL["a"], "external": UL["a"]}}}),
        ("mesh node bad address", {"self": "n1", "nodes": {"n1": dict(node, admin="1.2.3")}}),
        ("mesh two nodes one address", {"self": "n1", "nodes": {"n1": node, "n2": dict(peer, external=UL["a"])}}),
        ("mesh peer without keys", {"self": "n1", "nodes": {"n1": node, "n2": peer}}),
        ("mesh keys relative", {"self": "n1", "keys": "keys.json", "nodes": {"n1": node, "n2": peer}}),
        ("mesh keys missing", {"self": "n1", "keys": str(lab.tmp / "nokeys.json"), "nodes": {"n1": node, "n2": peer}}),
        ("mesh keys a FIFO", {"self": "n1", "keys": fifo, "nodes": {"n1": node, "n2": peer}}),
        ("mesh keys a directory", {"self": "n1", "keys": str(lab.tmp), "nodes": {"n1": node, "n2": peer}}),
        ("mesh ike bad", {"self": "n1", "ike": {"rekey_time": "soon"}, "nodes": {"n1": node}}),
        ("mesh ike repair_after 0", {"self": "n1", "ike": {"repair_after": 0}, "nodes": {"n1": node}}),
        ("mesh ike vici bad", {"self": "n1", "ike": {"vici": "http://x"}, "nodes": {"n1": node}}),
        ("mesh external_device missing", {"self": "n1", "external_device": "eth9", "nodes": {"n1": node, "n2": peer},
                                          "keys": str(lab.tmp / "nokeys.json")}),
        ("mesh external not on this host", {"self": "n1", "nodes": {"n1": dict(node, external="198.19.9.9")}}),
        ("mesh mixed families", {"self": "n1", "nodes": {"n1": node, "n2": dict(peer, external="2001:db8::2")}}),
        ("mesh unknown key", {"self": "n1", "nodes": {"n1": node}, "extra": 1}),
        ("mesh valid, no encrypted peer", {"self": "n1", "nodes": {"n1": node, "n2": dict(peer, pdc="dc1")}}),
    ]:
        with_(label, lambda d, m=mesh: d.__setitem__("mesh", m))
    # whole documents
    for label, doc in [("top level a list", [good_doc(lab)]), ("top level null", None), ("top level a string", "x"),
                       ("top level 10**5000", RAW % 0), ("empty object", {}),
                       ("overlays a list", {"overlays": [good_doc(lab)["overlays"]["ov0"]]}),
                       ("vnics without overlays", {"vnics": good_doc(lab)["vnics"]}),
                       ("unknown top-level key", dict(good_doc(lab), overlay={})),
                       ("vnics null", dict(good_doc(lab), vnics=None))]:
        out.append((label, render(doc, ["1" + "0" * 5000]) if doc == RAW % 0 else doc))
    nest = "[" * 10000 + "]" * 10000
    for where in ["vnetid", "props", "comment"]:
        d = good_doc(lab)
        if where == "comment":
            d["comment"] = RAW % 0
        elif where == "props":
            d["overlays"]["ov0"]["props"]["mtu"] = RAW % 0
        else:
            d["overlays"]["ov0"]["vnetid"] = RAW % 0
        out.append(("10000 nested lists at %s" % where, render(d, [nest])))
        out.append(("10**5000 at %s" % where, render(d, ["1" + "0" * 5000])))
        out.append(("800 nested lists at %s" % where, render(d, ["[" * 800 + "]" * 800])))
    good = render(good_doc(lab))
    out += [("empty file", b""), ("whitespace", b" \n\t "), ("not UTF-8 (latin-1)", good.replace(b"ov0", b"ov\xe90")),
            ("not UTF-8 (lone byte)", b"\xff" + good), ("UTF-16", good.decode().encode("utf-16")),
            ("BOM", b"\xef\xbb\xbf" + good), ("truncated", good[: len(good) // 2]), ("NUL", b"\x00" * 16),
            ("encoded surrogate", good.replace(b'"ov0"', b'"ov\xed\xa0\x800"', 1))]
    # the file itself of another kind
    out += [("FIFO", "fifo"), ("directory", "dir"), ("dangling symlink", "dangling"), ("symlink loop", "loop"),
            ("/dev/null", "/dev/null"), ("/dev/zero", "/dev/zero"), ("missing file", "missing"),
            ("file over 64 MiB (sparse)", "sparse"), ("/proc/self/mem", "/proc/self/mem"), ("socket", "socket")]
    return out


def make_special(kind: str, path) -> str:
    """Make path the special file kind; returns the path to give `up`."""
    if kind.startswith("/"):
        return kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.mkdir(path)
    elif kind == "dangling":
        os.symlink(str(path) + ".nowhere", path)
    elif kind == "loop":
        os.symlink(path, path)
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate((64 << 20) + 1)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.close()
    return str(path)


# -- the tests ---------------------------------------------------------------------


def _prepare(lab):
    """Hosts a and b up with daemons; the CLI overlay and VNIC on a; the
    FIFOs the mutations name. Returns the good file of host a."""
    lab.up("b")
    lab.up("a")
    good = lab.tmp / "ha.json"
    assert json.loads(good.read_text()) == good_doc(lab)
    lab.pyovl("a", "create-overlay", "-t", "-e", "vxlan", "-s", "files", "-v", str(CLI_VNETID), "-p",
              "vxlan/listen_ip=%s,files/config=%s" % (UL["a"], lab.files), CLI_OVERLAY)
    lab.pyovl("a", "create-vnic", "-t", "-l", CLI_OVERLAY, "-m", CLI_MAC, "--netns", lab.guest["a"] + "c", CLI_VNIC)
    for name in ("fifo-files", "fifo-mesh"):
        os.mkfifo(lab.tmp / name)
    return good


def _finish(lab, failures, pid0):
    for h in "ab":
        log = daemon_log(lab, h)
        if "Traceback" in log:
            at = log.index("Traceback")
            failures.append("daemon log of host %s has a traceback:\n%s" % (h, log[max(0, at - 300):at + 3000]))
    st = lab.status("a")
    if str(st["pid"]) != pid0.strip():
        failures.append("the daemon of host a changed: pid %s -> %s" % (pid0.strip(), st["pid"]))


def test_overlay_json_fuzz_against_a_running_overlay(lab):
    good = _prepare(lab)
    rich = lab.tmp / "rich.json"
    rich.write_bytes(render(rich_doc(lab)))
    assert lab.pyovl("a", "diff", str(rich)).stdout == "", "the rich base is not the good declaration"

    rng = random.Random(SEED)
    mut = Mutator(lab, rng)
    cases = targeted(lab)
    bases = [good_doc(lab)] * 4 + [rich_doc(lab)] * 5 + [rule_doc(lab)]
    while len(cases) < N_OVERLAY_DOCS:
        base = rng.choice(bases)
        cases.append(mut.text(base) if rng.random() < 0.2 else mut.tree(base))
    order = list(range(len(cases)))
    rng.shuffle(order)

    stream = Stream(lab)
    assert stream.start(), "the stream did not start"
    base = snapshot(lab)
    first = stable(base)
    pid0 = base["daemon_pid"]
    failures: list[str] = []
    windows: list[tuple[float, float, str]] = []  # (begin, end, label) of every apply
    counts = {"rejected": 0, "accepted": 0, "accepted_changing": 0}
    accepted: list[str] = []
    codes: dict = {}
    spent = {"up": 0.0, "snapshot": 0.0}
    t_start = time.monotonic()

    def check_segment(seg, why):
        if not seg.alive:
            failures.append("the ping stream had stopped by itself (%s)" % why)
        if seg.bad:
            who = sorted({lbl for s, t in seg.bad for b, e, lbl in windows if b - 0.05 <= t <= e + 0.05})
            failures.append("the stream lost %d echo(es) while only rejected/no-op inputs were applied (%s), "
                            "seq %s..%s, during: %s" % (len(seg.bad), why, seg.bad[0][0], seg.bad[-1][0], who[:10]))

    done = 0
    for idx in order:
        done += 1
        label, what = cases[idx]
        path = lab.tmp / ("m%03d.json" % idx)
        if isinstance(what, str):
            target = make_special(what, path)
            data = None
        else:
            data = what if isinstance(what, bytes) else render(what)
            path.write_bytes(data)
            target = str(path)
        t0 = time.time()
        r = cli(lab, "a", "up", "-d", target)
        windows.append((t0, time.time(), label))
        spent["up"] += r.took
        desc = "#%d %s (file %s, %s)" % (idx, label, target, "%d bytes" % len(data) if data is not None else what)
        if r.rc != 0:
            counts["rejected"] += 1
            codes[r.rc] = codes.get(r.rc, 0) + 1
            bad = one_line_error(r)
            if bad:
                failures.append("%s: %s: %s" % (desc, bad, r.text()))
            ts = time.monotonic()
            now = snapshot(lab)
            spent["snapshot"] += time.monotonic() - ts
            if now != base:
                failures.append("%s: refused (%s) but host a changed: %s" % (desc, r.err.decode(errors="replace").strip(),
                                                                          delta(base, now)))
                cli(lab, "a", "up", "-d", str(good))
                base = snapshot(lab)
            continue
        counts["accepted"] += 1
        accepted.append(label)
        if b"Traceback" in r.out + r.err:
            failures.append("%s: accepted with a traceback: %s" % (desc, r.text()))
        back = cli(lab, "a", "up", "-d", str(good))
        windows.append((t0, time.time(), label + " (restore)"))
        if back.rc != 0:
            failures.append("%s: accepted (%s), then the good file failed: %s" % (desc, r.out.decode(errors="replace"),
                                                                                back.text()))
        d = cli(lab, "a", "diff", str(good))
        if d.rc != 0 or d.out or d.err:
            failures.append("%s: accepted (%s); after the good file, diff is not empty: %s"
                            % (desc, r.out.decode(errors="replace").strip(), d.text()))
        changed = bool(r.out.strip() or back.out.strip())
        if changed:
            counts["accepted_changing"] += 1
            check_segment(stream.stop(cut=t0), "before accepted input %s" % desc)
            if not stream.start():
                failures.append("%s: after the good file was re-applied the stream did not come back" % desc)
                break
        now = snapshot(lab)
        if stable(now) != first:
            failures.append("%s: accepted (%s); the good file did not bring host a back: %s"
                            % (desc, r.out.decode(errors="replace").strip(), delta(first, stable(now))))
        base = now
        if len(failures) > 40:
            break
    took = time.monotonic() - t_start
    check_segment(stream.stop(), "at the end")
    _finish(lab, failures, pid0)
    sent = sum(s.sent for s in stream.segments)
    answered = sum(s.answered for s in stream.segments)
    print("\noverlay.json fuzz: %d files, %d rejected (exit codes %s), %d accepted (%d changed something); "
          "%.0f s (%.2f s a file; up %.0f s, snapshots of rejections %.0f s); stream: %d segments, %d echoes sent, %d answered, %d excused"
          % (done, counts["rejected"], codes, counts["accepted"], counts["accepted_changing"], took,
             took / done, spent["up"], spent["snapshot"], len(stream.segments), sent, answered,
             sum(len(s.lost) - len(s.bad) for s in stream.segments)))
    print("accepted: %s" % "; ".join(sorted(accepted)))
    r = cli(lab, "a", "down")
    if r.rc != 0 or r.err:
        failures.append("pyovl down after the fuzz: %s" % r.text())
    assert not failures, "%d failure(s):\n" % len(failures) + "\n".join(failures)


# -- mapping files ----------------------------------------------------------------


def mapping_cases(lab, rng) -> tuple[list, list]:
    """(broken, valid): broken tables (the whole file refused: DEGRADED) and
    tables valid as a whole (ONLINE; malformed entries answer Drop). None
    touches guest b's entry."""
    t = table()
    c = MAC["c"]
    good = json.dumps(t).encode()

    def with_c(entry):
        d = copy.deepcopy(t)
        d[c] = entry
        return json.dumps(d).encode()

    def with_key(key, entry=None):
        d = copy.deepcopy(t)
        d[key] = entry if entry is not None else {"ip": UL["c"], "port": 4789}
        return json.dumps(d).encode()

    broken: list[tuple[str, object]] = [
        ("not UTF-8: 0xff", b"\xff" + good), ("not UTF-8: latin-1", good.replace(b"4789", b"4789 \xe9", 1)),
        ("not UTF-8: overlong", b'{"\xc0\xae": {}}'), ("UTF-16", good.decode().encode("utf-16")),
        ("empty", b""), ("whitespace", b"  \n"), ("NUL bytes", b"\x00" * 64), ("trailing garbage", good + b"x"),
        ("10000 nested lists", b"[" * 10000 + b"]" * 10000),
        ("5000 nested objects at c", good[:-1] + b', "02:08:20:00:00:d1": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001),
        ("10**5000 as port", good[:-1] + b', "02:08:20:00:00:d1": {"ip": "198.18.0.3", "port": 1' + b"0" * 5000 + b"}}"),
        ("10**5000 top level", b"1" + b"0" * 5000), ("NaN port", with_c({"ip": UL["c"]})[:-2] + b', "port": NaN}}'),
        ("a list", json.dumps(list(t.values())).encode()), ("null", b"null"), ("a number", b"42"),
        ("a string", b'"02:08:20:00:00:c1"'), ("true", b"true"),
        ("key not a MAC", with_key("zz:zz:zz:zz:zz:zz")), ("key empty", with_key("")),
        ("key five octets", with_key("02:08:20:00:00")), ("key with newline", with_key(c + "\n")),
        ("key with a space", with_key(" " + c)), ("key +2", with_key("+2:08:20:00:00:c1")),
        ("key Arabic-Indic digit", with_key("\u0662:08:20:00:00:c1")), ("key seven octets", with_key(c + ":00")),
        ("key dotted", with_key("0208.2000.00c1")), ("key a lone surrogate", with_key("\ud800")),
        ("entry a list", with_c([UL["c"], 4789])), ("entry a string", with_c(UL["c"] + ":4789")),
        ("entry null", with_c(None)), ("entry a number", with_c(4789)), ("entry true", with_c(True)),
        ("FIFO", "fifo"), ("directory", "dir"), ("dangling symlink", "dangling"), ("symlink loop", "loop"),
        ("symlink to /dev/null", "/dev/null"), ("symlink to /dev/zero", "/dev/zero"),
        ("symlink to /proc/self/mem", "/proc/self/mem"), ("over 64 MiB (sparse)", "sparse"), ("socket", "socket"),
        ("removed", "missing"), ("symlink to a directory", "/"),
    ]
    for cut in sorted(rng.sample(range(1, len(good) - 1), 4)):
        broken.append(("truncated at %d" % cut, good[:cut]))
    for i in range(3):
        at = rng.randrange(1, len(good) - 1)
        broken.append(("byte 0x%02x inserted at %d" % (0x80 + i * 37, at), good[:at] + bytes([0x80 + i * 37]) + good[at:]))
    big = copy.deepcopy(t)
    for i in range(10000):
        big["02:08:21:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255)] = {"ip": "198.18.1.%d" % (i % 250 + 1),
                                                                               "port": 4789}
    valid: list[tuple[str, bytes]] = [
        ("good", good), ("c: ip a list", with_c({"ip": [UL["c"]], "port": 4789})),
        ("c: ip with prefix", with_c({"ip": UL["c"] + "/24", "port": 4789})),
        ("c: ip with zone", with_c({"ip": "fe80::1%ul0", "port": 4789})), ("c: ip a number", with_c({"ip": 5, "port": 4789})),
        ("c: port 0", with_c({"ip": UL["c"], "port": 0})), ("c: port 70000", with_c({"ip": UL["c"], "port": 70000})),
        ("c: port text", with_c({"ip": UL["c"], "port": "4789"})), ("c: port true", with_c({"ip": UL["c"], "port": True})),
        ("c: port 1.5", with_c({"ip": UL["c"], "port": 1.5})), ("c: port 10**30", with_c({"ip": UL["c"], "port": 10 ** 30})),
        ("c: port -1", with_c({"ip": UL["c"], "port": -1})), ("c: empty entry", with_c({})),
        ("c: bad arp/ndp/dhcp-proxy", with_c({"ip": UL["c"], "port": 4789, "arp": "300.1.1.1", "ndp": "10.0.0.1",
                                              "dhcp-proxy": "zz"})),
        ("c: nested values", with_c({"ip": {"v": UL["c"]}, "port": [4789], "arp": [], "ndp": {}, "dhcp-proxy": [1]})),
        ("c: unknown fields", with_c({"ip": UL["c"], "port": 4789, "extra": [1, {"a": None}]})),
        ("c: key upper case", json.dumps({**{k: v for k, v in t.items() if k != c}, c.upper(): t[c]}).encode()),
        ("c: key with dashes", json.dumps({**{k: v for k, v in t.items() if k != c}, c.replace(":", "-"): t[c]}).encode()),
        ("c: key twice", good[:-1] + b', "%s": {"ip": "198.18.0.3", "port": 0}}' % c.encode()),
        ("BOM", b"\xef\xbb\xbf" + good), ("10000 more entries", json.dumps(big).encode()),
        ("ip ::ffff:198.18.0.3 for c", with_c({"ip": "::ffff:" + UL["c"], "port": 4789})),
    ]
    return broken, valid


def _place(lab, what) -> str:
    """Put table content or a special file at lab.files (atomically where the
    kind allows: a rename); returns a description."""
    path = lab.files
    tmp = lab.tmp / "files.next"
    for p in (tmp,):
        if os.path.lexists(p):
            os.unlink(p)
    if isinstance(what, bytes):
        tmp.write_bytes(what)
        _replace(tmp, path)
        return "%d bytes" % len(what)
    if what == "missing":
        _remove(path)
        return "removed"
    if what == "dir":
        _remove(path)
        os.mkdir(path)
        return "a directory"
    if what.startswith("/"):
        os.symlink(what, tmp)
    elif what == "dangling":
        os.symlink(str(path) + ".nowhere", tmp)
    elif what == "loop":
        os.symlink(path, tmp)  # after the rename: path -> path
    else:
        make_special(what, tmp)
    _replace(tmp, path)
    return what


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _replace(tmp, path):
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)
    os.replace(tmp, path)


def fma(lab) -> tuple[Run, dict | None]:
    r = cli(lab, "a", "show-overlay", "-f", "--json", timeout=CALL_TIMEOUT_S)
    if r.rc != 0:
        return r, None
    return r, {row["link"]: row for row in json.loads(r.out)}


def wait_status(lab, status: str, failures: list, desc: str) -> tuple[dict | None, float]:
    """Poll show-overlay -f until ov0 has status; every call must answer."""
    t0 = time.monotonic()
    row = None
    while True:
        r, rows = fma(lab)
        took = time.monotonic() - t0
        if rows is None:
            failures.append("%s: show-overlay -f did not answer: %s" % (desc, r.text()))
            return None, took
        row = rows["ov0"]
        if row["status"] == status:
            return row, took
        if took > STATE_DEADLINE_S:
            failures.append("%s: ov0 not %s within %.1f s: %s" % (desc, status, STATE_DEADLINE_S, row))
            return row, took
        time.sleep(0.05)


def degraded_metric(lab) -> dict:
    return {dict(k[1]).get("reason", ""): v for k, v in lab.metrics("a").items()
            if k[0] == "pyovl_overlay_degraded" and dict(k[1]).get("overlay") == "ov0"}


def test_broken_mapping_files_degrade_and_never_block_the_daemon(lab):
    _prepare(lab)
    rng = random.Random(SEED + 1)
    broken, valid = mapping_cases(lab, rng)
    rng.shuffle(broken)
    stream = Stream(lab)
    assert stream.start(), "the stream did not start"
    pid0 = snapshot(lab)["daemon_pid"]
    failures: list[str] = []
    worst = {"DEGRADED": 0.0, "ONLINE": 0.0}
    seen_metric = False
    t_start = time.monotonic()
    n_files = 0
    for i, (label, what) in enumerate(broken):
        desc = "broken table %r" % label
        how = _place(lab, what)
        n_files += 1
        row, took = wait_status(lab, "DEGRADED", failures, "%s (%s)" % (desc, how))
        worst["DEGRADED"] = max(worst["DEGRADED"], took)
        if row is not None and row["status"] == "DEGRADED":
            d = row["details"]
            if not (isinstance(d, str) and d.isprintable() and str(lab.files) in d and "Traceback" not in d):
                failures.append("%s: the reason is not one line naming the table: %r" % (desc, d))
            if what in ("fifo", "dir", "sparse") or (i % 10 == 0):
                st = lab.status("a")  # the daemon answers its status request while degraded
                if st["degraded"].get("ov0") != d:
                    failures.append("%s: status says %r, show-overlay %r" % (desc, st["degraded"], d))
                if not seen_metric or what == "fifo":
                    m = degraded_metric(lab)
                    if m.get(d) != 1:
                        failures.append("%s: pyovl_overlay_degraded does not say so: %s" % (desc, m))
                    seen_metric = True
        vlabel, vdata = valid[i % len(valid)] if i % 3 else valid[0]
        how = _place(lab, vdata)
        n_files += 1
        row, took = wait_status(lab, "ONLINE", failures, "valid table %r after %r" % (vlabel, label))
        worst["ONLINE"] = max(worst["ONLINE"], took)
        if len(failures) > 40:
            break
    # every valid one is also applied straight after a good table (no state change to see:
    # it must simply stay ONLINE and answer)
    for vlabel, vdata in valid[1:]:
        _place(lab, vdata)
        n_files += 1
        time.sleep(0.25)
        r, rows = fma(lab)
        if rows is None or rows["ov0"]["status"] != "ONLINE":
            failures.append("valid table %r: ov0 is not ONLINE: %s" % (vlabel, rows or r.text()))
    # unreadable by mode: root reads it anyway, so either status is right; it must answer
    _place(lab, json.dumps(table()).encode())
    os.chmod(lab.files, 0)
    time.sleep(0.5)
    r, rows = fma(lab)
    if rows is None:
        failures.append("mode 000 table: show-overlay -f did not answer: %s" % r.text())
    os.chmod(lab.files, 0o644)
    _place(lab, json.dumps(table()).encode())
    wait_status(lab, "ONLINE", failures, "the good table at the end")
    took = time.monotonic() - t_start
    m = degraded_metric(lab)
    if m.get("") != 0 or any(v for v in m.values()):
        failures.append("pyovl_overlay_degraded after the good table: %s" % m)
    seg = stream.stop()
    if seg.bad or not seg.alive:
        failures.append("the stream lost %d of %d echoes during the mapping fuzz (alive: %s), first at seq %s"
                        % (len(seg.bad), seg.sent, seg.alive, seg.bad[0][0] if seg.bad else "-"))
    _finish(lab, failures, pid0)
    print("\nmapping fuzz: %d files (%d broken, %d valid), %.0f s; DEGRADED seen within %.2f s, ONLINE within "
          "%.2f s at worst; stream: %d sent, %d answered"
          % (n_files, len(broken), n_files - len(broken), took, worst["DEGRADED"], worst["ONLINE"], seg.sent,
             seg.answered))
    # pyovl down must still work with the daemon having seen all that
    r = cli(lab, "a", "down")
    assert r.rc == 0 and b"Traceback" not in r.err, r.text()
    assert not failures, "%d failure(s):\n" % len(failures) + "\n".join(failures)
