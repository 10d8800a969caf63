#!/usr/bin/env bash
# Installs Debian's NVIDIA driver library (libcuda1, non-free) so that `cust` links on a
# machine without a GPU, and prints the CUDA_LIBRARY_PATH to export (see TOOLCHAIN.md).
# Idempotent: with libcuda.so already there it changes nothing but the link directory.
#
# Whether apt can install libcuda1 is apt's to say: after `apt-get update`,
# `apt-cache policy libcuda1` names a candidate or not. Only when it does not does this
# add the components `contrib non-free non-free-firmware` to the archives the machine
# already uses. Every Debian source of this release in apt's source list and parts
# directory (a `deb` line or a deb822 stanza of type deb, with component main and a
# suite that is the codename or codename-*) is copied as it stands, with its URIs,
# suites and options (Signed-By, Trusted, Architectures, ... and their one-line forms
# `[signed-by=... trusted=yes arch=...]`), and only its components replaced by those it
# lacks; lines go to xray-nonfree.list, stanzas to xray-nonfree.sources. So no mirror or
# key is named here, and apt sees the same options for the same archive (it refuses
# conflicting ones).
#
# usage: .ci/install-libcuda.sh             install if needed, then print the link directory
#        .ci/install-libcuda.sh --dry-run   say what it would do from apt's lists as they
#                                           are (no `apt-get update`), change nothing
# Paths come from apt's configuration (apt-config), so APT_CONFIG can point it elsewhere.
set -euo pipefail
export LC_ALL=C # apt-cache's labels, untranslated
link_dir=/opt/cuda-link
lib_dir=/usr/lib/x86_64-linux-gnu
components="contrib non-free non-free-firmware"
dry_run=false
case "${1:-}" in
  --dry-run) dry_run=true ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

source_list=/etc/apt/sources.list
source_parts=/etc/apt/sources.list.d
eval "$(apt-config shell source_list Dir::Etc::sourcelist/f source_parts Dir::Etc::sourceparts/d)"
source_parts=${source_parts%/}
added=$source_parts/xray-nonfree # .list and .sources

# shellcheck disable=SC1091 # the machine's own file
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ -z "$codename" ]; then
  echo "install-libcuda: /etc/os-release names no VERSION_CODENAME" >&2
  exit 1
fi

# The machine's source files of one format (list or sources), without the ones this
# script adds.
source_files() {
  local file
  if [ "$1" = list ] && [ -f "$source_list" ]; then echo "$source_list"; fi
  for file in "$source_parts"/*."$1"; do
    [ -f "$file" ] && [ "$file" != "$added.$1" ] && echo "$file"
  done
  return 0
}

# The `deb` lines of this release (one-line format) with main, each as it stands up to
# its suite (type, options, URI, suite), followed by the components it lacks.
derived_lines() {
  local files
  mapfile -t files < <(source_files list)
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v c="$codename" -v want="$components" '
    {
      line = $0; sub(/#.*/, "", line)
      if (!match(line, /^[ \t]*deb[ \t]+(\[[^]]*\][ \t]+)?[^[ \t][^ \t]*[ \t]+[^ \t]+/)) next
      head = substr(line, RSTART, RLENGTH); rest = substr(line, RSTART + RLENGTH)
      n = split(head, t, /[ \t]+/); suite = t[n]
      if (suite != c && index(suite, c "-") != 1) next
      have = " " rest " "; gsub(/[ \t]+/, " ", have)
      if (have !~ / main /) next
      m = split(want, w, " "); missing = ""
      for (k = 1; k <= m; k++) if (index(have, " " w[k] " ") == 0) missing = missing " " w[k]
      if (missing == "") next
      sub(/^[ \t]+/, "", head)
      out = head missing
      if (!seen[out]++) print out
    }' "${files[@]}"
}

# The deb822 stanzas of this release with main, copied field by field but for
# Components (the ones the stanza lacks) and Types (deb only: no source packages).
# Comment lines are left out; stanzas with `Enabled: no` are skipped.
derived_stanzas() {
  local files
  mapfile -t files < <(source_files sources)
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v RS= -F'\n' -v c="$codename" -v want="$components" '
    {
      n = 0; key = ""; delete f
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^#/) continue
        if ($i ~ /^[ \t]/ && key != "") { line[n] = line[n] "\n" $i; f[key] = f[key] " " $i; continue }
        if (!match($i, /^[A-Za-z0-9-]+:/)) continue
        key = tolower(substr($i, 1, RLENGTH - 1))
        line[++n] = $i; name[n] = key; f[key] = substr($i, RLENGTH + 1)
      }
      if (tolower(f["enabled"]) ~ /^[ \t]*no/) next
      if ((" " f["types"] " ") !~ /[ \t]deb[ \t]/) next
      ns = split(f["suites"], s, /[ \t]+/); ours = 0
      for (k = 1; k <= ns; k++) if (s[k] == c || index(s[k], c "-") == 1) ours = 1
      if (!ours) next
      have = " " f["components"] " "; gsub(/[ \t]+/, " ", have)
      if (have !~ / main /) next
      m = split(want, w, " "); missing = ""
      for (k = 1; k <= m; k++) if (index(have, " " w[k] " ") == 0) missing = missing " " w[k]
      if (missing == "") next
      out = ""
      for (k = 1; k <= n; k++) {
        if (name[k] == "components") out = out "Components:" missing "\n"
        else if (name[k] == "types") out = out "Types: deb\n"
        else out = out line[k] "\n"
      }
      if (seen[out]++) next
      printf "%s%s", (printed++ ? "\n" : ""), out
    }' "${files[@]}"
}

# Whether apt, from its lists as they are, has a version of libcuda1 to install.
has_candidate() {
  apt-cache policy libcuda1 2>/dev/null |
    awk '$1 == "Candidate:" { found = ($2 != "(none)") } END { exit !found }'
}

# The libcuda.so to link against, if installed.
installed_lib() {
  local lib
  for lib in "$lib_dir/libcuda.so" "$lib_dir/libcuda.so.1"; do
    [ -e "$lib" ] && { echo "$lib"; return 0; }
  done
  return 1
}

if $dry_run; then
  if lib=$(installed_lib); then
    echo "# $lib is installed: nothing to install; would link $link_dir/lib64/libcuda.so to it"
    exit 0
  fi
  if has_candidate; then
    echo "# apt's lists offer libcuda1 already: would install it, adding no source"
  else
    echo "# apt's lists (as they are, not updated) offer no libcuda1. Would run apt-get update,"
    echo "# and if that gives no candidate either, add these sources, update again and install:"
    lines=$(derived_lines)
    stanzas=$(derived_stanzas)
    [ -z "$lines" ] || printf '# --- %s.list\n%s\n' "$added" "$lines"
    [ -z "$stanzas" ] || printf '# --- %s.sources\n%s\n' "$added" "$stanzas"
    [ -n "$lines$stanzas" ] || echo "# (none: no apt source of $codename with main to add non-free to)"
  fi
  exit 0
fi

if ! lib=$(installed_lib); then
  apt-get update -q >&2
  if ! has_candidate; then
    lines=$(derived_lines)
    stanzas=$(derived_stanzas)
    if [ -z "$lines$stanzas" ]; then
      echo "install-libcuda: apt offers no libcuda1, and no apt source of $codename with main" \
        "is there to add non-free to" >&2
      exit 1
    fi
    [ -z "$lines" ] || printf '%s\n' "$lines" >"$added.list"
    [ -z "$stanzas" ] || printf '%s\n' "$stanzas" >"$added.sources"
    for file in "$added.list" "$added.sources"; do
      [ -f "$file" ] || continue
      echo "install-libcuda: added $file:" >&2
      sed 's/^/    /' "$file" >&2
    done
    apt-get update -q >&2
    if ! has_candidate; then
      echo "install-libcuda: apt offers no libcuda1 even with $components added" >&2
      exit 1
    fi
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libcuda1 >&2
  if ! lib=$(installed_lib); then
    echo "install-libcuda: libcuda1 is installed but $lib_dir has no libcuda.so" >&2
    exit 1
  fi
fi
mkdir -p "$link_dir/lib64"
ln -sf "$lib" "$link_dir/lib64/libcuda.so"
echo "$link_dir"
