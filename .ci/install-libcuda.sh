#!/usr/bin/env bash
# Installs Debian's NVIDIA driver library (libcuda1, non-free) so that `cust` links on a
# machine without a GPU, and prints the CUDA_LIBRARY_PATH to export (see TOOLCHAIN.md).
# Idempotent: does nothing that is already done.
#
# When no apt source of this release offers non-free yet, it adds the components
# `contrib non-free non-free-firmware` for the archives the machine already uses: each
# Debian source of this release (suite = the codename or codename-*) in
# /etc/apt/sources.list and /etc/apt/sources.list.d/*.list / *.sources is repeated with
# the same URIs, Suites and Signed-By, so no mirror or key is named here.
#
# usage: .ci/install-libcuda.sh             install, then print the link directory
#        .ci/install-libcuda.sh --dry-run   print the sources file it would add, change nothing
set -euo pipefail
link_dir=/opt/cuda-link
added=/etc/apt/sources.list.d/xray-nonfree.sources
components="contrib non-free non-free-firmware"
dry_run=false
case "${1:-}" in
  --dry-run) dry_run=true ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

# The binary (`deb`) sources of the files given, one per URI and suite, tab-separated:
# URI, suite, components (space-separated), Signed-By (may be empty; the line breaks of
# an inline key written as \001). Reads both the one-line format and deb822 stanzas;
# skips deb-src, comments and `Enabled: no`.
apt_entries() {
  local file
  for file in "$@"; do
    [ -r "$file" ] || continue
    case "$file" in
      *.sources)
        awk -v RS= -F'\n' '
          {
            delete f; key = ""
            for (i = 1; i <= NF; i++) {
              line = $i
              if (line ~ /^#/) continue
              # A continuation line; "\001" keeps the line break (an inline Signed-By key).
              if (line ~ /^[ \t]/ && key != "") { f[key] = f[key] "\001" line; continue }
              if (!match(line, /^[A-Za-z0-9-]+:/)) continue
              key = tolower(substr(line, 1, RLENGTH - 1))
              f[key] = substr(line, RLENGTH + 1)
            }
            if (tolower(f["enabled"]) ~ /^[ \t]*no/) next
            types = f["types"]; gsub(/\001/, " ", types)
            if ((" " types " ") !~ /[ \t]deb[ \t]/) next
            signed = f["signed-by"]; gsub(/^[ \t]+|[ \t]+$/, "", signed)
            comps = f["components"]; gsub(/\001/, " ", comps)
            gsub(/^[ \t]+|[ \t]+$/, "", comps); gsub(/[ \t]+/, " ", comps)
            gsub(/\001/, " ", f["uris"]); gsub(/\001/, " ", f["suites"])
            nu = split(f["uris"], uris, /[ \t]+/); ns = split(f["suites"], suites, /[ \t]+/)
            for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++)
              if (uris[u] != "" && suites[s] != "")
                printf "%s\t%s\t%s\t%s\n", uris[u], suites[s], comps, signed
          }' "$file"
        ;;
      *)
        awk '
          { sub(/#.*/, "") }
          $1 != "deb" { next }
          {
            i = 2; signed = ""
            if ($2 ~ /^\[/) {
              opts = ""
              for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
              gsub(/[][]/, " ", opts)
              n = split(opts, o, /[ \t]+/)
              for (k = 1; k <= n; k++) if (o[k] ~ /^signed-by=/) signed = substr(o[k], 11)
            }
            if (i + 1 > NF) next
            uri = $i; suite = $(i + 1); comps = ""
            for (k = i + 2; k <= NF; k++) comps = comps (comps == "" ? "" : " ") $k
            printf "%s\t%s\t%s\t%s\n", uri, suite, comps, signed
          }' "$file"
        ;;
    esac
  done
}

# This release's entries of the machine's apt sources, without the file this script adds.
release_entries() {
  local codename files=() file
  # shellcheck disable=SC1091 # the machine's own file
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [ -z "$codename" ]; then
    echo "install-libcuda: /etc/os-release names no VERSION_CODENAME" >&2
    return 1
  fi
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ "$file" = "$added" ] || files+=("$file")
  done
  apt_entries "${files[@]}" | awk -F'\t' -v c="$codename" '$2 == c || index($2, c "-") == 1'
}

# A deb822 file repeating each source of `release_entries` with the extra components,
# one stanza per URI and Signed-By, its suites in the order the machine lists them.
derived_sources() {
  release_entries | awk -F'\t' -v comps="$components" '
    {
      k = $1 SUBSEP $4
      if (!(k in suites)) { order[++n] = k; uri[k] = $1; signed[k] = $4; suites[k] = "" }
      if (!index(" " suites[k] " ", " " $2 " ")) suites[k] = suites[k] (suites[k] == "" ? "" : " ") $2
    }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]
        if (i > 1) print ""
        print "Types: deb"; print "URIs: " uri[k]; print "Suites: " suites[k]
        print "Components: " comps
        if (signed[k] != "") { s = signed[k]; gsub(/\001/, "\n", s); print "Signed-By: " s }
      }
    }'
}

# Whether a source of this release already has the non-free component.
has_nonfree() {
  release_entries | awk -F'\t' '(" " $3 " ") ~ / non-free / { found = 1 } END { exit !found }'
}

if $dry_run; then
  if has_nonfree; then
    echo "# an apt source of this release already offers non-free: nothing to add"
  else
    derived_sources
  fi
  exit 0
fi

if [ ! -e /usr/lib/x86_64-linux-gnu/libcuda.so ]; then
  if ! has_nonfree; then
    sources=$(derived_sources)
    if [ -z "$sources" ]; then
      echo "install-libcuda: no apt source of this release to add non-free to" >&2
      exit 1
    fi
    printf '%s\n' "$sources" >"$added"
    echo "install-libcuda: added $added:" >&2
    sed 's/^/    /' "$added" >&2
  fi
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libcuda1 >&2
fi
mkdir -p "$link_dir/lib64"
ln -sf /usr/lib/x86_64-linux-gnu/libcuda.so "$link_dir/lib64/libcuda.so"
echo "$link_dir"
