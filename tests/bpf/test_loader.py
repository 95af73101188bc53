"""The loader: pins, reuse across runs, the ABI check, failure cleanup."""

from __future__ import annotations

import os
import uuid

import pytest

from pyovl.dataplane import abi, loader, source, syscall
from pyovl.dataplane.maps import PinnedMaps
from pyovl.errors import KernelError, StateError

pytestmark = [pytest.mark.bpf]


@pytest.fixture
def pin_dir(prefix):
    d = loader.pin_dir("%s-ld%s" % (prefix, uuid.uuid4().hex[:4]))
    yield d
    loader.unload(d)


def _prog_id(path: str) -> int:
    fd = syscall.obj_get(path)
    try:
        return int(open("/proc/self/fdinfo/%d" % fd).read().split("prog_id:")[1].split()[0])
    finally:
        os.close(fd)


def test_pins_are_reused_without_recompiling(pin_dir):
    loader.load(pin_dir)
    ids = {p: _prog_id(loader.prog_pin(pin_dir, p)) for p in loader.PROGRAMS}
    with PinnedMaps(pin_dir) as m:
        m.listen_ports.put(abi.U32(4789), abi.U32(1))
    loader.load(pin_dir)  # a second run (a restart) keeps programs and map contents
    assert ids == {p: _prog_id(loader.prog_pin(pin_dir, p)) for p in loader.PROGRAMS}
    with PinnedMaps(pin_dir) as m:
        assert m.listen_ports.get(abi.U32(4789)).value == 1


def test_stale_abi_stamp_is_refused(pin_dir):
    loader.load(pin_dir)
    with PinnedMaps(pin_dir) as m:
        m.abi.put(abi.U32(0), abi.AbiInfo(abi.ABI_MAGIC, 99, 0, 0))
    with pytest.raises(StateError, match="ABI 99"):
        loader.load(pin_dir)


def test_pinned_map_of_another_shape_is_refused(pin_dir):
    os.makedirs(pin_dir)
    fd = syscall.map_create(abi.MAP_HASH, 4, 8, 16)  # overlays with an 8-byte value
    syscall.obj_pin(fd, os.path.join(pin_dir, "overlays"))
    os.close(fd)
    with pytest.raises(StateError, match="pinned map .*overlays has"):
        loader.load(pin_dir)


def test_compile_failure_leaves_nothing(pin_dir, monkeypatch):
    monkeypatch.setattr(source, "flatten", lambda *a, **k: "this is not C;\n")
    with pytest.raises(KernelError, match="compiling ovl_port.c failed"):
        loader.load(pin_dir)
    assert not os.path.exists(pin_dir)
