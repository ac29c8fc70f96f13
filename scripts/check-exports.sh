#!/bin/sh
# check-exports.sh LIB HEADER — the shared library exports exactly the
# functions its public header declares: fails on a dynamic symbol that is
# not in kinfer.h (an internal name leaking, which could clash with another
# library's in the same program) and on a declared function it lacks.
set -eu
lib="$1"
header="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sort -u > "$tmp/exported"
grep -o 'KINFER_API [^(]*\bkinfer_[a-z0-9_]*(' "$header" | grep -o 'kinfer_[a-z0-9_]*($' |
    tr -d '(' | sort -u > "$tmp/declared"
status=0
extra="$(comm -23 "$tmp/exported" "$tmp/declared")"
missing="$(comm -13 "$tmp/exported" "$tmp/declared")"
if [ -n "$extra" ]; then
    echo "check-exports: $lib exports symbols that $header does not declare:"
    echo "$extra" | sed 's/^/  /'
    status=1
fi
if [ -n "$missing" ]; then
    echo "check-exports: $header declares functions that $lib does not export:"
    echo "$missing" | sed 's/^/  /'
    status=1
fi
[ $status -eq 0 ] && echo "check-exports: $(wc -l < "$tmp/exported") symbols, all declared in $header"
exit $status
