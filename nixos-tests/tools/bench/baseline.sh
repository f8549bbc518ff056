#!/bin/sh
# The usual shell approach portclaim replaces, timed as the baseline by
# nixos-tests/tools/bench: for every mapped service, `systemctl is-active` on its
# system unit, then `ss -tlnp | grep :PORT` for its port.
# Usage: baseline.sh MAPFILE   (lines: "<system unit> <port>")
conflicts=0
while read -r unit port; do
	if systemctl is-active --quiet "$unit"; then
		if ss -tlnp | grep -q ":$port "; then
			conflicts=$((conflicts + 1))
		fi
	fi
done < "$1"
echo "$conflicts conflicts"
