"""Run a command inside user-mode-linux, for tests that need a kernel
feature the host lacks (ESP/XFRM here).

A thin wrapper over scripts/uml-run, which holds the whole contract (see
its header): Debian's user-mode-linux kernel (6.1) boots with the host's
filesystem as root, runs argv as root in the caller's working directory
with PATH, PYTHONPATH, VIRTUAL_ENV, PYOVL_* and PYTEST_* passed through,
and powers off. Network namespaces, daemons, bpffs pins and /run, /tmp made
inside die with it; files written elsewhere on the host filesystem stay.

  available()              None when usable, else one line saying why not
                           (for pytest.skip). Cheap: no boot.
  run(argv, timeout, ...)  subprocess.CompletedProcess with text stdout and
                           stderr. returncode is argv's exit status, or
                           124 (timed out), 125 (UML could not run it: its
                           stderr says why and ends with the UML console).

/run, /tmp and /dev/shm are private tmpfs inside: the working directory
must not be under /run or /dev; under /tmp only the checkout, the venv and
the working directory itself stay visible (pytest's tmp_path does not).
Each call boots a fresh kernel: about 2.5 s before argv starts, one CPU, no
BPF JIT.
Nothing is left on the host: uml-run kills UML and removes its private
directories on exit, timeout and SIGTERM (which run() sends when its own
deadline passes).

Example, an inner pytest whose output the outer test reports:

    p = uml.run([sys.executable, "-m", "pytest", "-q", "tests/mesh"], 300)
    assert p.returncode == 0, p.stdout + p.stderr

Requires a source checkout (scripts/ is not in the wheel) and root.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "uml-run"
# Keep in step with scripts/uml-run (PYOVL_UML_KERNEL overrides both).
KERNEL = os.environ.get("PYOVL_UML_KERNEL", "/usr/bin/linux.uml")
# Exit statuses of scripts/uml-run itself.
TIMED_OUT = 124
NOT_RUN = 125
# run() waits this much longer than the timeout it hands uml-run, which
# enforces the timeout itself; this only catches a hung uml-run.
_GRACE = 30.0


def kernel_release() -> str | None:
    """The UML kernel's release (its `uname -r`), or None without one."""
    try:
        p = subprocess.run([KERNEL, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    release = p.stdout.strip()
    return release if p.returncode == 0 and release else None


def available() -> str | None:
    """None when run() can work here, else the reason, in one line."""
    if os.geteuid() != 0:
        return "user-mode-linux tests need root"
    if not SCRIPT.is_file():
        return "no %s (user-mode-linux needs a source checkout)" % SCRIPT
    if not os.access(KERNEL, os.X_OK):
        return "no user-mode-linux kernel %s (apt-get install user-mode-linux, or scripts/setup-host)" % KERNEL
    release = kernel_release()
    if release is None:
        return "%s --version failed" % KERNEL
    tree = Path("/lib/modules") / release
    if not (tree / "modules.dep").exists():
        return "no module tree for user-mode-linux %s at %s: run scripts/setup-host" % (release, tree)
    if not (tree / "build" / "include").exists():
        return "no kernel headers for bcc inside user-mode-linux at %s/build: run scripts/setup-host" % tree
    cwd = os.getcwd() + "/"
    if cwd.startswith(("/run/", "/var/run/", "/dev/")):
        return "the working directory %s is not visible inside user-mode-linux" % os.getcwd()
    return boot_problem()


@functools.lru_cache(maxsize=1)
def boot_problem() -> str | None:
    """Boot UML once with `true` (about 3 s, once per process): None when it
    runs, else why not. Some hosts cannot run this UML at all: on a CPU whose
    FPU state is larger than UML 6.1 handles, ptrace(PTRACE_SETFPREGS) fails
    with EFAULT and init dies at once ("ptrace set fp regs failed, errno =
    14"); that is the host, not pyovl, and the tests skip saying so."""
    try:  # --verbose: the whole console, where the reason is
        p = subprocess.run([str(SCRIPT), "--timeout", "60", "--verbose", "--", "true"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60 + _GRACE)
    except subprocess.TimeoutExpired:
        return "user-mode-linux did not run `true` within 60 s on this host"
    if p.returncode == 0:
        return None
    text = p.stdout + p.stderr
    for marker in ("ptrace set fp regs failed", "Kernel panic", "UML exited"):
        line = next((ln.strip() for ln in text.splitlines() if marker in ln), None)
        if line:
            return "user-mode-linux does not boot on this host (%s)" % line
    return "user-mode-linux does not run `true` on this host (exit %d)" % p.returncode


def run(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    *,
    mem: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside a fresh UML; wait at most about timeout seconds.

    env: extra variables set inside, on top of those uml-run passes through
    from this process. mem: UML's memory, e.g. "512M" (uml-run's default
    otherwise). cwd: the working directory inside (default: ours).
    """
    cmd = [str(SCRIPT), "--timeout", str(max(1, int(timeout)))]
    if mem:
        cmd += ["--mem", mem]
    for name, value in (env or {}).items():
        cmd += ["--env", "%s=%s" % (name, value)]
    cmd += ["--", *argv]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    try:
        out, err = proc.communicate(timeout=timeout + _GRACE)
    except BaseException:
        # Timeout, Ctrl-C, anything: SIGTERM lets uml-run kill UML and
        # remove its directories; SIGKILL would leave those to the next run.
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
