# SPDX-License-Identifier: Apache-2.0
# Shared shell helpers for scripts/: self-elevation and repo paths.
# Sourced, never executed. Callers have already set -euo pipefail.

PYOVL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYOVL_VENV="${PYOVL_VENV:-$PYOVL_ROOT/.venv}"

# Re-run the calling script as root through sudo when we are not root.
pyovl_elevate() {
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			exec sudo -E -- "$0" "$@"
		fi
		echo "$(basename "$0"): needs root (run as root or install sudo)" >&2
		exit 1
	fi
}

# True when setup-host has already produced a usable venv.
pyovl_ready() {
	[ -x "$PYOVL_VENV/bin/pyovl" ] &&
		[ -e "/lib/modules/$(uname -r)/build" ] &&
		"$PYOVL_VENV/bin/python" -c 'import bcc, pyroute2, click, prometheus_client, pytest, scapy, matplotlib' 2>/dev/null
}
