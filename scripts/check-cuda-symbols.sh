#!/usr/bin/env bash
# Checks that a CUDA driver library defines every driver symbol that the given
# executables import: they are linked with BIND_NOW, so one missing symbol stops them
# from loading. Also checks that each executable asks for libcuda.so.1 by that name.
#
# usage: scripts/check-cuda-symbols.sh LIBCUDA EXECUTABLE...
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 LIBCUDA EXECUTABLE..." >&2
  exit 2
fi
lib=$1; shift
defined=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort -u)
status=0
for exe in "$@"; do
  if ! readelf -d "$exe" | grep -q 'Shared library: \[libcuda.so.1\]'; then
    echo "FAIL $exe: does not need libcuda.so.1"; status=1; continue
  fi
  wanted=$(nm -D --undefined-only "$exe" | awk '{print $NF}' | grep '^cu' | sed 's/@.*//' | sort -u)
  missing=$(comm -23 <(echo "$wanted") <(echo "$defined"))
  if [ -n "$missing" ]; then
    echo "FAIL $exe: $(echo "$missing" | wc -l) driver symbol(s) missing from $lib:"
    echo "$missing" | sed 's/^/    /'
    status=1
  else
    echo "ok   $exe: all $(echo "$wanted" | wc -l) driver symbols it imports are defined"
  fi
done
exit $status
