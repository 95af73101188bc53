"""Prometheus metrics for one pyovl instance.

DatapathCollector reads the data path at scrape time (client_python's
custom-collector pattern): per-CPU counters summed over CPUs, target-table
entries by state, map fill against capacity. Daemon-side numbers (lookups,
their latency) live in DaemonMetrics on the same private registry. Labels are
overlay names, directions, reasons, plugins and results: never a MAC, IP or
VNI (cardinality).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pyovl import __version__
from pyovl.dataplane import abi

DIRECTIONS = {"tx": (abi.Stat.TX_PACKETS, abi.Stat.TX_BYTES), "rx": (abi.Stat.RX_PACKETS, abi.Stat.RX_BYTES),
              "local": (abi.Stat.LOCAL_PACKETS, abi.Stat.LOCAL_BYTES)}


class DaemonMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.lookups = Counter("pyovl_lookups", "Lookups answered by the daemon",
                               ["overlay", "plugin", "result"], registry=registry)
        self.latency = Histogram("pyovl_lookup_latency_seconds", "Time from the data path's miss event "
                                 "to the answer being written and the frame sent", ["overlay"],
                                 buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0),
                                 registry=registry)
        self.slowpath = Counter("pyovl_slowpath_frames", "Frames the daemon sent on (held frames, "
                                "proxy replies, DHCP resends)", ["overlay", "kind"], registry=registry)


class DatapathCollector:
    """Reads the maps of daemon.dp at every scrape."""

    def __init__(self, daemon):
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        overlays = d.overlay_table()  # name -> (spec, data-path id or None)
        degraded = d.degraded_now()
        info = GaugeMetricFamily("pyovl_overlay_info", "An overlay of this instance",
                                 labels=["overlay", "encap", "search", "mode"])
        deg = GaugeMetricFamily("pyovl_overlay_degraded", "1 when the overlay is degraded; reason in the label",
                                labels=["overlay", "reason"])
        pkts = CounterMetricFamily("pyovl_packets", "Packets by overlay and direction", labels=["overlay", "direction"])
        byts = CounterMetricFamily("pyovl_bytes", "Inner frame bytes by overlay and direction",
                                   labels=["overlay", "direction"])
        drops = CounterMetricFamily("pyovl_drops", "Frames dropped by the data path", labels=["overlay", "reason"])
        misses = CounterMetricFamily("pyovl_misses", "Misses reported to the daemon", labels=["overlay"])
        punted = CounterMetricFamily("pyovl_punted_frames", "Frames handed to the daemon", labels=["overlay"])
        targets = GaugeMetricFamily("pyovl_targets", "Target-table entries", labels=["overlay", "state"])
        counts = d.target_counts()
        for name, (spec, ov_id) in sorted(overlays.items()):
            info.add_metric([name, spec.encap, spec.search, spec.mode], 1)
            deg.add_metric([name, degraded.get(name) or ""], 1 if degraded.get(name) else 0)
            if ov_id is None:
                continue
            st = d.dp.maps.overlay_stats(ov_id)
            for direction, (p, b) in DIRECTIONS.items():
                pkts.add_metric([name, direction], st[p])
                byts.add_metric([name, direction], st[b])
            pkts.add_metric([name, "flood"], st[abi.Stat.FLOOD_PACKETS])
            for r in abi.Drop:
                drops.add_metric([name, r.name.lower()], st[abi.Stat.DROP_BASE + r])
            misses.add_metric([name], st[abi.Stat.MISSES])
            punted.add_metric([name], st[abi.Stat.PUNTED])
            valid, dropped = counts.get(spec.vnetid, (0, 0))
            targets.add_metric([name, "valid"], valid)
            targets.add_metric([name, "drop"], dropped)
        yield from (info, deg, pkts, byts, drops, misses, punted, targets)
        fill = GaugeMetricFamily("pyovl_map_entries", "Entries in a data-path map", labels=["map"])
        cap = GaugeMetricFamily("pyovl_map_capacity_entries", "Capacity of a data-path map", labels=["map"])
        for name, n, c in d.map_fill():
            fill.add_metric([name], n)
            cap.add_metric([name], c)
        yield fill
        yield cap
        yield from self._mesh(d)
        build = GaugeMetricFamily("pyovl_build_info", "pyovl version and kernel", labels=["version", "kernel"])
        build.add_metric([__version__, os.uname().release], 1)
        yield build

    @staticmethod
    def _mesh(d):
        """SA state per encrypted peer (node names, not addresses) and the
        plaintext refused by each layer: the data path per peer (inbound)
        and per overlay (outbound, in pyovl_drops{reason="plaintext_tx"}),
        the firewall per direction."""
        mesh = d.mesh
        if mesh is None:
            return
        sa = GaugeMetricFamily("pyovl_ipsec_sa_up", "1 when ESP states to and from the mesh peer exist",
                               labels=["peer"])
        for p in mesh.encrypted_peers():
            sa.add_metric([p.name], 1 if d.sa_up.get(p.name) else 0)
        yield sa
        blocked = CounterMetricFamily("pyovl_plaintext_blocked", "Plaintext overlay packets refused",
                                      labels=["peer", "direction", "layer"])
        by_ip = {p.external: p.name for p in mesh.encrypted_peers()}
        for ip, n in d.dp.mesh()["peers"].items():
            if ip in by_ip:
                blocked.add_metric([by_ip[ip], "in", "datapath"], n)
        try:
            from pyovl.mesh import firewall  # noqa: PLC0415

            for key, n in firewall.counters(d.instance).items():
                blocked.add_metric(["", "in" if key.endswith("_in") else "out", "firewall"], n)
        except Exception:  # noqa: BLE001 - a missing table must not break the scrape
            pass
        yield blocked
