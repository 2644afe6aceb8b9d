#!/usr/bin/env bash
# deps.sh -- install the Debian packages listed in a deps file (default tests/deps.txt).
#
# Sourced by tests/run.sh and deploy/local/run.sh (then call `importer_install_deps
# [FILE]`), or run directly: `deploy/local/deps.sh [FILE]`.
# As root, missing packages are installed with apt-get (running `apt-get update`
# only when the package lists are missing or an install from them fails). As a
# normal user, the missing packages are named and the function returns 1.
# The file has one package per line; `#` starts a comment. A line starting
# with "# ==== tests only" ends the list for a caller that passes "runtime"
# (deploy/local/run.sh: a laptop needs no browser or test tools).

# Prints the packages of FILE that are not installed, one per line; with
# PART "runtime", only those above the "tests only" line.
importer_missing_deps() {
	local file=$1 part=${2:-all} line pkg status
	[ -r "$file" ] || {
		printf 'deps: cannot read %s\n' "$file" >&2
		return 1
	}
	while IFS= read -r line || [ -n "$line" ]; do
		[ "$part" = runtime ] && [[ $line == "# ==== tests only"* ]] && break
		line=${line%%#*}
		for pkg in $line; do
			status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
			[ "$status" = installed ] || printf '%s\n' "$pkg"
		done
	done <"$file"
}

# True when apt knows no installable version of one of the given packages.
importer_apt_lists_stale() {
	local pkg cand
	for pkg in "$@"; do
		cand=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
		if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
			return 0
		fi
	done
	return 1
}

importer_install_deps() {
	local file=${1:-tests/deps.txt} part=${2:-all} missing
	local -a pkgs
	missing=$(importer_missing_deps "$file" "$part") || return 1
	[ -n "$missing" ] || return 0
	mapfile -t pkgs <<<"$missing"
	if [ "$(id -u)" -ne 0 ]; then
		printf 'deps: missing Debian packages (listed in %s):\n' "$file" >&2
		printf '  %s\n' "${pkgs[@]}" >&2
		printf 'deps: install them as root: apt-get install -y %s\n' "${pkgs[*]}" >&2
		return 1
	fi
	printf 'deps: installing %s\n' "${pkgs[*]}" >&2
	local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	if importer_apt_lists_stale "${pkgs[@]}"; then
		"${apt[@]}" update >&2 || return 1
	fi
	if ! "${apt[@]}" install --no-install-recommends "${pkgs[@]}" </dev/null >&2; then
		# Lists may point at versions the mirror no longer has: refresh once and retry.
		"${apt[@]}" update >&2 || return 1
		"${apt[@]}" install --no-install-recommends "${pkgs[@]}" </dev/null >&2 || return 1
	fi
	missing=$(importer_missing_deps "$file" "$part") || return 1
	if [ -n "$missing" ]; then
		printf 'deps: still missing after apt-get install: %s\n' "$(printf '%s ' "$missing")" >&2
		return 1
	fi
}

# Run directly: install from the given file (or tests/deps.txt of this checkout).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	importer_install_deps "${1:-$(cd "$(dirname "$0")/../.." && pwd)/tests/deps.txt}"
fi
