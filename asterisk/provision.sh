#!/usr/bin/env bash
# Find or build the Asterisk (>= 22) that yihaotong runs, and print its root.
#
#   stdout: "/" for a system Asterisk, else the path of a chroot root that
#           holds Debian sid's Asterisk (Debian 12 does not package it)
#   stderr: progress and errors
#
# Idempotent: a finished root carries the marker .yihaotong-ready and is
# reused as is. Building one needs root, debootstrap and ~500 MB (~60 s).
# YHT_ASTERISK_ROOT overrides where the root lives.
set -euo pipefail

MIN_MAJOR=22
ROOT="${YHT_ASTERISK_ROOT:-/var/cache/yihaotong/asterisk-root}"
MARKER=.yihaotong-ready

say() { printf 'provision: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# "Asterisk 22.10.1+dfsg..." -> 22
major_of() { sed -n 's/^Asterisk \([0-9][0-9]*\)\..*/\1/p' | head -n1; }

if [[ -x /usr/sbin/asterisk ]]; then
    major="$(/usr/sbin/asterisk -V 2>/dev/null | major_of || true)"
    if [[ -n "$major" && "$major" -ge "$MIN_MAJOR" ]]; then
        say "using the system Asterisk (major version $major)"
        echo /
        exit 0
    fi
    say "system Asterisk is older than $MIN_MAJOR (${major:-unknown}): not used"
fi

if [[ -f "$ROOT/$MARKER" ]]; then
    echo "$ROOT"
    exit 0
fi

[[ "$(id -u)" -eq 0 ]] || die "building $ROOT needs root; run: sudo $0"

# The first Debian mirror the host's apt already uses (one-line or deb822
# sources), so that a proxy or local mirror keeps working.
host_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list
        /etc/apt/sources.list.d/*.sources)
    local f url
    for f in "${files[@]}"; do
        [[ -f "$f" ]] || continue
        url="$(sed -n -E \
            -e 's#^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?(https?://[^[:space:]]+/debian)/?[[:space:]].*#\2#p' \
            -e 's#^[[:space:]]*URIs:[[:space:]]*(https?://[^[:space:]]+/debian)/?([[:space:]].*)?$#\1#p' \
            "$f" | head -n1)"
        if [[ -n "$url" ]]; then
            echo "$url"
            return
        fi
    done
    echo http://deb.debian.org/debian
}

if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get update >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >&2 \
        || die "could not install debootstrap"
fi

MIRROR="$(host_mirror)"
TMP="$ROOT.tmp"
if [[ -e "$TMP" ]]; then
    say "removing the unfinished $TMP"
    rm -rf --one-file-system "$TMP"
fi
mkdir -p "$(dirname "$ROOT")"

say "building $ROOT from $MIRROR (Debian sid, asterisk; ~60 s, 500 MB)"
debootstrap --variant=minbase --include=asterisk,asterisk-modules \
    sid "$TMP" "$MIRROR" >&2 \
    || die "debootstrap failed; see $TMP/debootstrap/debootstrap.log"

version="$(chroot "$TMP" /usr/sbin/asterisk -V 2>&1)" \
    || die "the new root's asterisk does not run: $version"
major="$(major_of <<<"$version")"
[[ -n "$major" && "$major" -ge "$MIN_MAJOR" ]] \
    || die "sid gave '$version', need major version >= $MIN_MAJOR"
say "built: $version"

touch "$TMP/$MARKER"
if [[ -e "$ROOT" ]]; then
    # An unmarked leftover (an older interrupted build): replace it.
    rm -rf --one-file-system "$ROOT"
fi
mv "$TMP" "$ROOT"
echo "$ROOT"
