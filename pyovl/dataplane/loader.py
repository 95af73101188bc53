"""Compile the BPF programs with bcc, pin them and their maps, reopen pins.

load(pin_dir) compiles bpf/ovl_port.c and bpf/ovl_underlay.c (one flattened
translation unit each, see source.py) with -DOVL_PIN_DIR so that the maps are
created in, or reused from, pin_dir; then pins the programs there as
prog_<name>. Pinned programs and maps outlive pyovl: attached programs keep
forwarding while pyovl restarts, and later commands attach new ports from the
pins without compiling. Before reusing existing pins the maps are checked
against the ABI (bcc itself does not check).
"""

from __future__ import annotations

import os

from pyovl.dataplane import source, syscall
from pyovl.dataplane.abi import ABI_VERSION
from pyovl.dataplane.maps import PinnedMaps
from pyovl.errors import KernelError

# pin name -> (source file, function, bcc program type name)
PROGRAMS = {
    "port": ("ovl_port.c", "ovl_port", "SCHED_CLS"),
    "underlay_tc": ("ovl_underlay.c", "ovl_underlay_tc", "SCHED_CLS"),
    "underlay_xdp": ("ovl_underlay.c", "ovl_underlay_xdp", "XDP"),
    "mesh_rx": ("ovl_underlay.c", "ovl_mesh_rx", "SCHED_CLS"),
}


def pin_dir(instance: str) -> str:
    """Where an instance's programs and maps are pinned: versioned by the
    ABI, so a pyovl of another ABI never opens these maps."""
    from pyovl import netns  # noqa: PLC0415 - finding bpffs may join the host's mount namespace

    return os.path.join(netns.bpffs_root(), "pyovl", "v%d" % ABI_VERSION, instance)


def prog_pin(pin_dir: str, name: str) -> str:
    return os.path.join(pin_dir, "prog_" + name)


def is_loaded(pin_dir: str) -> bool:
    return all(os.path.exists(prog_pin(pin_dir, n)) for n in PROGRAMS)


def _import_bcc():
    try:
        import bcc  # noqa: PLC0415 - heavy, and absent on hosts that only read state
    except ImportError:
        raise KernelError("bcc's Python module is missing: run scripts/setup-host") from None
    return bcc


def load(pin_dir: str, trace: bool = False, force: bool = False) -> None:
    """Compile and pin the programs (maps are created or reused). Idempotent
    unless force: with every program already pinned it only checks the ABI."""
    if os.path.isdir(pin_dir):
        if any(os.path.exists(os.path.join(pin_dir, m)) for m in ("overlays", "abi")):
            with PinnedMaps(pin_dir, trace=trace) as maps:
                maps.check_abi_stamp()
        if is_loaded(pin_dir) and not force:
            return
    created = not os.path.isdir(pin_dir)
    os.makedirs(pin_dir, exist_ok=True)
    try:
        _compile_and_pin(pin_dir, trace)
    except BaseException:
        if created:  # leave nothing half-made behind
            unload(pin_dir)
        raise


def _compile_and_pin(pin_dir: str, trace: bool) -> None:
    bcc = _import_bcc()
    cflags = ['-DOVL_PIN_DIR="%s"' % pin_dir, "-Wno-macro-redefined"]
    if trace:
        cflags.append("-DOVL_TRACE")
    root = source.bpf_dir()
    by_file: dict[str, list[tuple[str, str, str]]] = {}
    for pin, (src, fn, ptype) in PROGRAMS.items():
        by_file.setdefault(src, []).append((pin, fn, ptype))
    for src, progs in by_file.items():
        text = source.flatten(root / src, root)
        try:
            b = bcc.BPF(text=text.encode(), cflags=cflags)
        except Exception as e:  # bcc raises bare Exception; the log went to stderr
            raise KernelError("compiling %s failed: %s" % (src, e)) from None
        try:
            for pin, fn, ptype in progs:
                try:
                    f = b.load_func(fn.encode(), getattr(bcc.BPF, ptype))
                except Exception as e:
                    raise KernelError("the kernel refused %s: %s" % (fn, e)) from None
                path = prog_pin(pin_dir, pin)
                if os.path.exists(path):
                    os.unlink(path)
                syscall.obj_pin(f.fd, path)
        finally:
            b.cleanup()
    with PinnedMaps(pin_dir, trace=trace) as maps:
        maps.check_abi_stamp()


def open_prog(pin_dir: str, name: str) -> int:
    try:
        return syscall.obj_get(prog_pin(pin_dir, name))
    except OSError as e:
        raise KernelError("program %s is not loaded (%s): run 'pyovl dp init'" % (name, e.strerror)) from None


def unload(pin_dir: str) -> None:
    """Remove the instance's pins (attached programs stay until detached),
    and the pyovl/v<N> parents once no instance is left in them."""
    if os.path.isdir(pin_dir):
        for name in os.listdir(pin_dir):
            os.unlink(os.path.join(pin_dir, name))
        os.rmdir(pin_dir)
    parent = os.path.dirname(pin_dir)
    for _ in range(2):  # .../pyovl/v<ABI>, then .../pyovl
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)
