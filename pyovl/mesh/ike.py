"""IKEv2 for the mesh's encrypted pairs, through strongSwan's vici interface.

Ike(vici_uri) drives a charon, either one pyovl runs itself (ManagedCharon,
in the current network namespace, with its own strongswan.conf, socket and
log under a run directory) or an operator's (any vici URI). apply() makes
the daemon hold exactly one connection per encrypted peer, named
pyovl-<peer>, and that pair's pre-shared key; peers that left lose their
connection, key and SAs. It is idempotent: an unchanged connection is left
alone (strongSwan keeps equal configs and their SAs).

What one connection asks for (connection(), a pure function, builds the
dict sent to vici): IKEv2 between the two external addresses, identities =
node names, PSK, and two transport-mode CHILD_SAs whose traffic selectors
cover UDP to and from the overlay ports, and nothing else:

    child "<conn>-to-peer":  local ext[udp]          remote peer[udp/P...]
    child "<conn>-to-self":  local ext[udp/P...]     remote peer[udp]

strongSwan installs one policy per (local_ts, remote_ts) combination, out
local->remote and in remote->local. The first child gives "any port here to
port P there" out and "P there to any here" in; the second the mirror. One
child with both selector pairs on each side would also produce the cross
combination ext[udp] <-> peer[udp]: all UDP between the hosts, which must
not be encrypted (or dropped when the SA is down). Hence two children; the
peer's "to-self" child is our "to-peer" and vice versa (strongSwan picks
the child whose selectors match exactly). IKE's own UDP 500/4500 is outside
every selector (and ports 500/4500 are refused as overlay ports).

Who starts: both sides at load (start_action trap|start), so whichever
node loads its configuration second brings the SA up at once (the first
one's attempt fails while the peer has no configuration yet). Both keep
trap policies: while charon runs, no plaintext overlay packet leaves before
an SA exists, and traffic (an acquire) brings a missing SA up; xfrm.py's
fallback covers charon being gone. Repairs are one-sided to avoid
simultaneous re-initiation: only the node whose name sorts first re-creates
the SA when the peer closes it (close_action start) or dies (dpd_action
restart); the other just keeps its trap. If both sides initiate at the very
same moment there are two IKE_SAs with the same CHILD_SAs (unique=never:
see connection()); traffic flows through either (the kernel uses the
newest outbound SA, accepts all inbound ones) and tidy(), which the
health check should call now and then, ends the redundant one.

Secrets: the PSK goes into the load-shared message and nowhere else: not in
logs, exceptions, argv or the generated strongswan.conf; charon logs at its
default levels (1), which never include key material. Errors are IkeError
(a KernelError): one line, naming the daemon and the fix.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import time
from typing import Any, Iterable, Mapping

from pyovl.errors import KernelError, UsageError
from pyovl.mesh.xfrm import check_ports

log = logging.getLogger(__name__)

CONN_PREFIX = "pyovl-"
KEY_ID_PREFIX = "pyovl-"  # load-shared id: pyovl-<pair id>
# What the stock Debian charon can do without the openssl plugin: AES, SHA2,
# HMAC and MODP groups (gmp plugin). ESP in AES-GCM (the kernel's
# rfc4106(gcm(aes))), with PFS on every rekey.
IKE_PROPOSAL = "aes256-sha256-modp3072"
ESP_PROPOSAL = "aes256gcm16-modp3072"
CHARON_SYSTEMD = "/usr/sbin/charon-systemd"
# Plugins a PSK-only, transport-mode charon needs (sha1: NAT detection hashes).
CHARON_PLUGINS = "random nonce aes sha1 sha2 hmac kdf gmp kernel-netlink socket-default vici"


# CHILD_SA states whose kernel SAs carry traffic. A rekey moves the old one
# to REKEYING while the new one installs: counting only INSTALLED would
# report "down" for a moment at every rekey.
LIVE_CHILD = frozenset({"INSTALLED", "UPDATING", "REKEYING"})


class IkeError(KernelError):
    """The IKE daemon is unreachable or refused a request."""


def conn_name(peer: str) -> str:
    return CONN_PREFIX + peer


def child_names(peer: str) -> tuple[str, str]:
    """(to-peer, to-self): which side's overlay ports the child covers."""
    c = conn_name(peer)
    return (c + "-to-peer", c + "-to-self")


def key_id(self_name: str, peer: str) -> str:
    return KEY_ID_PREFIX + "+".join(sorted((self_name, peer)))


def _host(addr: str) -> tuple[str, int]:
    ip = ipaddress.ip_address(addr)
    return str(ip), ip.max_prefixlen


def _ts(addr: str, ports: list[int] | None) -> list[str]:
    ip, plen = _host(addr)
    if ports is None:
        return ["%s/%d[udp]" % (ip, plen)]
    return ["%s/%d[udp/%d]" % (ip, plen, p) for p in ports]


def _secs(n: int) -> str:
    return "%ds" % n


def connection(self_node: Any, peer: Any, ports: Iterable[int], *, rekey_time: int = 3600,
               dpd_delay: int = 30) -> dict[str, Any]:
    """The load-conn message for one peer (pure; no key material in it).

    self_node, peer: objects with .name and .external. rekey_time: seconds
    between CHILD_SA rekeys (the IKE_SA rekeys every 4 x rekey_time; no
    reauthentication, which would tear the SAs down and rebuild them).
    """
    plist = check_ports(ports)
    if rekey_time < 2:
        raise UsageError("rekey_time must be at least 2 seconds")
    me, them = self_node.external, peer.external
    if ipaddress.ip_address(me).version != ipaddress.ip_address(them).version:
        raise UsageError("nodes %s and %s have external addresses of different IP versions"
                         % (self_node.name, peer.name))
    initiator = self_node.name < peer.name
    margin = max(rekey_time // 10, 1)
    child_common = {
        "mode": "transport",
        "esp_proposals": [ESP_PROPOSAL],
        "rekey_time": _secs(rekey_time),
        "life_time": _secs(rekey_time + 2 * margin),
        "rand_time": _secs(margin),
        "start_action": "trap|start",
        "close_action": "start" if initiator else "none",
        "dpd_action": "restart" if initiator else "clear",
    }
    to_peer, to_self = child_names(peer.name)
    return {conn_name(peer.name): {
        "version": "2",
        "local_addrs": [_host(me)[0]],
        "remote_addrs": [_host(them)[0]],
        "proposals": [IKE_PROPOSAL],
        "encap": "no",
        "mobike": "no",
        "keyingtries": "0",
        # Simultaneous initiation (both ends start at load, or one side's
        # trap fires while the other starts) must stay harmless. With
        # strongSwan's default (unique=no) each end destroys, silently, the
        # IKE_SA it already has when the other's IKE_AUTH carries
        # INITIAL_CONTACT, which both do here: the ends can keep different
        # IKE_SAs and black-hole traffic until the next rekey. "never" keeps
        # both; tidy() ends the redundant one, DPD the stale one after a
        # peer crashed (the kernel sends on the newest SA meanwhile).
        "unique": "never",
        "dpd_delay": _secs(dpd_delay),
        "rekey_time": _secs(4 * rekey_time),
        "reauth_time": "0",
        "local": {"auth": "psk", "id": self_node.name},
        "remote": {"auth": "psk", "id": peer.name},
        "children": {
            to_peer: dict(child_common, local_ts=_ts(me, None), remote_ts=_ts(them, plist)),
            to_self: dict(child_common, local_ts=_ts(me, plist), remote_ts=_ts(them, None)),
        },
    }}


def shared_key(self_name: str, peer: str, secret: Any) -> dict[str, Any]:
    """The load-shared message for one pair. The only place a key is revealed."""
    return {"id": key_id(self_name, peer), "type": "IKE", "data": secret.reveal(),
            "owners": [self_name, peer]}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Ike:
    """A vici session to one charon. Not thread-safe: one caller at a time."""

    def __init__(self, vici_uri: str, timeout: float = 15.0):
        self.uri = vici_uri
        self.timeout = timeout
        self._session: Any = None

    # -- connection -------------------------------------------------------

    def _connect(self) -> Any:
        if self._session is not None:
            return self._session
        try:
            import vici  # noqa: PLC0415  (lazy: pyovl runs without IPsec too)
        except ImportError:
            raise IkeError("the Python 'vici' package is missing (pip install vici)") from None
        try:
            if self.uri.startswith("unix://"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.uri[len("unix://"):])
            elif self.uri.startswith("tcp://"):
                host, _, port = self.uri[len("tcp://"):].rpartition(":")
                sock = socket.create_connection((host.strip("[]"), int(port)), timeout=self.timeout)
            else:
                raise UsageError("vici URI %r: use unix:///path or tcp://host:port" % self.uri)
        except OSError as e:
            raise IkeError("cannot reach charon's vici at %s: %s; is charon running with the vici plugin?"
                           % (self.uri, e.strerror or e)) from None
        self._session = vici.Session(sock)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            try:
                self._session.transport.close()
            except OSError:
                pass
            self._session = None

    def __enter__(self) -> "Ike":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, what: str, fn: str, *args: Any, stream: bool = False) -> Any:
        """One vici request; failures become IkeError naming the request only."""
        s = self._connect()
        try:
            r = getattr(s, fn)(*args)
            return list(r) if stream else r
        except Exception as e:  # vici raises its own and socket errors
            if type(e).__name__ in ("CommandException",):
                # charon's errmsg (never echoes key data); say which request
                raise IkeError("charon refused %s: %s" % (what, str(e).replace("Command failed: ", ""))) from None
            self.close()
            raise IkeError("vici session to %s failed during %s: %s" % (self.uri, what, type(e).__name__)) from None

    def version(self) -> dict[str, str]:
        return {k: _s(v) for k, v in self._call("version", "version").items()}

    # -- configuration ----------------------------------------------------

    def loaded(self) -> tuple[list[str], list[str]]:
        """(connection names, shared key ids) pyovl has loaded (by prefix)."""
        conns = [_s(c) for c in self._call("get-conns", "get_conns").get("conns", [])]
        keys = [_s(k) for k in self._call("get-shared", "get_shared").get("keys", [])]
        return ([c for c in conns if c.startswith(CONN_PREFIX)],
                [k for k in keys if k.startswith(KEY_ID_PREFIX)])

    def apply(self, self_node: Any, peers: Iterable[Any], keys: Mapping[str, Any], ports: Iterable[int],
              rekey_time: int = 3600, dpd_delay: int = 30) -> dict[str, int]:
        """Make charon hold exactly peers' connections and keys.

        keys: peer name -> Secret (keys.load()). Loads keys before
        connections (a start_action needs the key), then unloads what is
        no longer wanted: connection first (so no trap re-initiates), then
        its SAs, then its key. Returns counts.
        """
        peers = sorted(peers, key=lambda p: p.name)
        plist = check_ports(ports) if peers else []  # removing everything needs no ports
        for p in peers:
            if p.name == self_node.name:
                raise UsageError("node %s cannot be its own IPsec peer" % p.name)
            if p.name not in keys:
                raise UsageError("no pre-shared key for pair %s; regenerate the key files"
                                 % "+".join(sorted((self_node.name, p.name))))
        have_conns, have_keys = self.loaded()
        for p in peers:
            self._call("load-shared for pair %s" % key_id(self_node.name, p.name)[len(KEY_ID_PREFIX):],
                       "load_shared", shared_key(self_node.name, p.name, keys[p.name]))
        for p in peers:
            self._call("load-conn %s" % conn_name(p.name), "load_conn",
                       connection(self_node, p, plist, rekey_time=rekey_time, dpd_delay=dpd_delay))
        want_conns = {conn_name(p.name) for p in peers}
        want_keys = {key_id(self_node.name, p.name) for p in peers}
        gone = sorted(set(have_conns) - want_conns)
        for c in gone:
            self._call("unload-conn %s" % c, "unload_conn", {"name": c})
            self._terminate(c)
        stale_keys = sorted(set(have_keys) - want_keys)
        for k in stale_keys:
            self._call("unload-shared %s" % k, "unload_shared", {"id": k})
        log.info("IKE: %d peer connection(s) loaded, %d removed, %d key(s) removed",
                 len(peers), len(gone), len(stale_keys))
        return {"loaded": len(peers), "removed": len(gone), "keys_removed": len(stale_keys)}

    def _terminate(self, conn: str) -> None:
        try:
            self._call("terminate %s" % conn, "terminate",
                       {"ike": conn, "force": "yes", "timeout": "-1"}, stream=True)
        except IkeError as e:
            if "no matching" not in str(e):  # nothing established: fine
                raise

    def remove(self, peer: str) -> None:
        """Unload one peer's connection, SAs and key (whoever loaded it)."""
        c = conn_name(peer)
        conns, keys = self.loaded()
        if c in conns:
            self._call("unload-conn %s" % c, "unload_conn", {"name": c})
        self._terminate(c)
        for k in keys:
            if peer in k[len(KEY_ID_PREFIX):].split("+"):
                self._call("unload-shared %s" % k, "unload_shared", {"id": k})

    # -- state ------------------------------------------------------------

    def list_sas(self) -> list[dict[str, Any]]:
        """vici list-sas events (IKE_SA name -> details), pyovl's only."""
        out = []
        for ev in self._call("list-sas", "list_sas", {"noblock": "yes"}, stream=True):
            for name, sa in ev.items():
                if name.startswith(CONN_PREFIX):
                    out.append({name: sa})
        return out

    def installed_children(self) -> dict[str, set[str]]:
        """peer -> names of its CHILD_SAs that carry traffic (INSTALLED, or
        being rekeyed or updated: their kernel SAs still work) under an
        ESTABLISHED IKE_SA."""
        out: dict[str, set[str]] = {}
        for ev in self.list_sas():
            for name, sa in ev.items():
                peer = name[len(CONN_PREFIX):]
                kids = out.setdefault(peer, set())
                if _s(sa.get("state", b"")) != "ESTABLISHED":
                    continue
                for child in (sa.get("child-sas") or {}).values():
                    if _s(child.get("state", b"")) in LIVE_CHILD and _s(child.get("mode", b"")) == "TRANSPORT":
                        kids.add(_s(child.get("name", b"")))
        return out

    def sa_state(self) -> dict[str, bool]:
        """peer -> True iff both its CHILD_SAs (both directions of overlay
        traffic) are installed. Every loaded pyovl connection is listed."""
        conns, _ = self.loaded()
        kids = self.installed_children()
        out = {}
        for c in conns:
            peer = c[len(CONN_PREFIX):]
            out[peer] = set(child_names(peer)) <= kids.get(peer, set())
        return out

    def initiate(self, peer: str) -> list[str]:
        """Ask charon to bring up the peer's missing CHILD_SAs; returns at once
        (the outcome shows in sa_state()). Children already installed are
        not initiated again (that would make duplicates)."""
        have = self.installed_children().get(peer, set())
        started = []
        for child in child_names(peer):
            if child in have:
                continue
            self._call("initiate %s" % child, "initiate",
                       {"child": child, "ike": conn_name(peer), "timeout": "-1", "init-limits": "no"},
                       stream=True)
            started.append(child)
        return started

    def tidy(self, self_name: str) -> int:
        """End redundant IKE_SAs (from simultaneous initiation) per peer.

        Both ends must pick the same IKE_SA to keep without talking, from
        facts both see alike: one carrying both CHILD_SAs first (strongSwan
        refuses a CHILD_SA that duplicates one in another IKE_SA, so after a
        race the two IKE_SAs can hold one child each, or one holds both),
        then the one initiated by the node whose name sorts first, then the
        lowest initiator SPI. Nothing is ended unless the kept one carries
        both CHILD_SAs. Returns how many IKE_SAs it ended.
        """
        by_peer: dict[str, list[tuple[tuple[int, int, str], str]]] = {}
        for ev in self.list_sas():
            for name, sa in ev.items():
                if _s(sa.get("state", b"")) != "ESTABLISHED":
                    continue
                peer = name[len(CONN_PREFIX):]
                we_initiated = _s(sa.get("initiator", b"no")) == "yes"
                preferred = we_initiated == (self_name < peer)
                kids = {_s(c.get("name", b"")) for c in (sa.get("child-sas") or {}).values()
                        if _s(c.get("state", b"")) in LIVE_CHILD}
                complete = set(child_names(peer)) <= kids
                rank = (0 if complete else 1, 0 if preferred else 1, _s(sa.get("initiator-spi", b"")))
                by_peer.setdefault(peer, []).append((rank, _s(sa.get("uniqueid", b""))))
        ended = 0
        for peer, sas in sorted(by_peer.items()):
            sas.sort()
            if len(sas) < 2 or sas[0][0][0] != 0:
                continue
            for _, uid in sas[1:]:
                self._call("terminate redundant IKE_SA of %s" % conn_name(peer), "terminate",
                           {"ike-id": uid, "timeout": "-1"}, stream=True)
                ended += 1
        if ended:
            log.info("IKE: ended %d redundant IKE_SA(s)", ended)
        return ended

    def rekey(self, peer: str) -> None:
        """Rekey the peer's CHILD_SAs now (make-before-break, as scheduled rekeys)."""
        for child in child_names(peer):
            self._call("rekey %s" % child, "rekey", {"child": child})


# -- a charon of pyovl's own -----------------------------------------------

def render_conf(run_dir: str, *, log_level: int = 1) -> str:
    """strongswan.conf for a ManagedCharon (pure). charon-systemd reads the
    "charon-systemd" section (falling back to "charon"); nothing from
    /etc/strongswan.d is included, so the operator's settings do not leak in."""
    if not 0 <= log_level <= 2:
        raise UsageError("charon log level %d: pyovl allows 0-2 (3 and up may log key material)" % log_level)
    q = lambda p: '"%s"' % os.path.join(run_dir, p)  # noqa: E731
    return """# Generated by pyovl (pyovl.mesh.ike.ManagedCharon). Do not edit: rewritten at start.
charon-systemd {
    load = %(plugins)s
    load_modular = no
    install_routes = no
    install_virtual_ip = no
    # Come back quickly after the peer restarts: 1 s, 1.5 s, 2.25 s ... 5 tries.
    retransmit_timeout = 1.0
    retransmit_base = 1.5
    retransmit_tries = 5
    plugins {
        vici {
            socket = unix://%(sock)s
        }
    }
    journal {
        default = -1
    }
    filelog {
        pyovl {
            path = %(log)s
            default = %(level)d
            append = yes
            flush_line = yes
            time_format = %%Y-%%m-%%d %%T
            ike_name = yes
        }
    }
}
""" % {"plugins": CHARON_PLUGINS, "sock": os.path.join(run_dir, "charon.vici"), "log": q("charon.log"),
       "level": log_level}


class ManagedCharon:
    """charon-systemd run by pyovl in the current network namespace.

    run_dir (pyovl's own, mode 0700) holds strongswan.conf, charon.vici (the
    socket), charon.log, charon.stderr and charon.pid. charon-systemd
    writes no pid file itself (/usr/lib/ipsec/charon does, at a fixed
    /var/run/charon.pid), so several can run, one per namespace; pyovl
    writes its own so that any process (the CLI, a restarted daemon) can
    tell whether that charon runs and stop it. A pid counts only while
    /proc/<pid> is this binary started with this run_dir's strongswan.conf,
    so a stale file or a reused pid is never signalled.
    """

    def __init__(self, run_dir: str, binary: str = CHARON_SYSTEMD, start_timeout: float = 20.0,
                 log_level: int = 1):
        self.run_dir = os.path.abspath(run_dir)
        self.binary = binary
        self.start_timeout = start_timeout
        self.log_level = log_level
        self._proc: subprocess.Popen | None = None

    @property
    def socket_path(self) -> str:
        return os.path.join(self.run_dir, "charon.vici")

    @property
    def vici_uri(self) -> str:
        return "unix://" + self.socket_path

    uri = vici_uri

    @property
    def conf_path(self) -> str:
        return os.path.join(self.run_dir, "strongswan.conf")

    @property
    def log_path(self) -> str:
        return os.path.join(self.run_dir, "charon.log")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.run_dir, "charon.pid")

    @property
    def pid(self) -> int | None:
        """The running charon's pid (ours or found through the pid file)."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        return self._pid_from_file()

    def running(self) -> bool:
        return self.pid is not None

    def _pid_from_file(self) -> int | None:
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        try:
            if os.path.realpath("/proc/%d/exe" % pid) != os.path.realpath(self.binary):
                return False
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and ("STRONGSWAN_CONF=" + self.conf_path).encode() in env

    def start(self) -> "ManagedCharon":
        """Start charon unless it runs already; returns once vici answers."""
        if self.running():
            return self
        if not os.access(self.binary, os.X_OK):
            raise IkeError("%s not found; install strongSwan's charon-systemd (apt install charon-systemd)"
                           % self.binary)
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        if os.stat(self.run_dir).st_mode & 0o077:
            raise UsageError("charon run directory %s is open to group/other; run: chmod 700 %s"
                             % (self.run_dir, self.run_dir))
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(render_conf(self.run_dir, log_level=self.log_level))
        for stale in (self.socket_path, self.pid_path):
            try:
                os.unlink(stale)  # from a charon that was killed
            except FileNotFoundError:
                pass
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "STRONGSWAN_CONF": self.conf_path}
        with open(os.path.join(self.run_dir, "charon.stderr"), "ab") as err:
            self._proc = subprocess.Popen([self.binary], env=env, stdin=subprocess.DEVNULL, stdout=err,
                                          stderr=err, close_fds=True, start_new_session=True)
        tmp = self.pid_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % self._proc.pid)
        os.replace(tmp, self.pid_path)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self._proc = None
                raise IkeError("charon-systemd exited (status %s) while starting; see %s"
                               % (rc, os.path.join(self.run_dir, "charon.stderr")))
            if self._answers():
                log.info("charon-systemd %d up, vici at %s", self._proc.pid, self.vici_uri)
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise IkeError("charon-systemd did not answer on %s within %.0f s; see %s"
                               % (self.socket_path, self.start_timeout, self.log_path))
            time.sleep(0.05)

    def _answers(self) -> bool:
        if not os.path.exists(self.socket_path):
            return False
        ike = Ike(self.vici_uri, timeout=2.0)
        try:
            ike.version()
            return True
        except IkeError:
            return False
        finally:
            ike.close()

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM (charon deletes its SAs and policies and tells the peers),
        wait, then SIGKILL. Works from any process through the pid file.
        Returns whether a charon was running."""
        proc, self._proc = self._proc, None
        pid = proc.pid if proc is not None and proc.poll() is None else self._pid_from_file()
        if pid is not None:
            self._signal_and_wait(pid, proc, timeout)
        for path in (self.socket_path, self.pid_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return pid is not None

    def _signal_and_wait(self, pid: int, proc: subprocess.Popen | None, timeout: float) -> None:
        def gone() -> bool:
            if proc is not None:
                return proc.poll() is not None
            return not self._is_ours(pid)  # not our child: watch /proc (zombie = gone)

        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if sig == signal.SIGKILL:
                log.warning("charon-systemd %d ignored SIGTERM for %.0f s: killing it", pid, timeout)
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if gone():
                    return
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL at once: charon leaves its SAs and policies in the kernel
        (a crash, for tests). The pid and socket files stay, as after one."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            if self._proc is not None:
                self._proc.wait()
            else:
                end = time.monotonic() + 5
                while self._is_ours(pid) and time.monotonic() < end:
                    time.sleep(0.02)
        self._proc = None

    def __enter__(self) -> "ManagedCharon":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
