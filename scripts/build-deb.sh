#!/usr/bin/env bash
# Builds the Debian package of bibgate: the binary, bibgate.service (hardened), the
# configuration file /etc/bibgate/bibgate.toml (a conffile) and the maintainer scripts of
# packaging/deb/, with dpkg-deb directly.
#
#   scripts/build-deb.sh                  release build of the CLI (9-20 min on 2 cores), xz
#   scripts/build-deb.sh --debug          the debug build (CI: the test of the package)
#   scripts/build-deb.sh --binary PATH    package this binary as it is (no cargo build)
#   scripts/build-deb.sh --out DIR        where the .deb goes (default: target/deb)
#
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
binary=
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --binary) binary=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: scripts/build-deb.sh [--debug] [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

target_dir=${CARGO_TARGET_DIR:-target}
out=${out:-$target_dir/deb}
if [ -z "$binary" ]; then
  if [ "$profile" = release ]; then
    cargo build --release -p bibgate-cli --bin bibgate >&2
  else
    cargo build -p bibgate-cli --bin bibgate >&2
  fi
  binary=$target_dir/$profile/bibgate
fi
[ -x "$binary" ] || { echo "no executable at $binary" >&2; exit 2; }

version=$("$binary" --version | awk '{print $2}')
[ -n "$version" ] || { echo "$binary --version printed no version" >&2; exit 2; }
arch=$(dpkg --print-architecture)
# The newest glibc symbol version the binary needs.
glibc=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/bibgate" "$root/usr/share/doc/bibgate"
# Debug information stays out of the package (the release profile keeps line tables for
# backtraces; they are in the build's own binary).
strip --strip-debug -o "$root/usr/bin/bibgate" "$binary"
chmod 0755 "$root/usr/bin/bibgate"
install -m 0644 packaging/deb/bibgate.service "$root/lib/systemd/system/bibgate.service"
install -m 0644 packaging/deb/bibgate.toml "$root/etc/bibgate/bibgate.toml"
install -m 0644 README.md "$root/usr/share/doc/bibgate/README.md"
cat >"$root/usr/share/doc/bibgate/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bibgate

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
for script in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
done
echo /etc/bibgate/bibgate.toml >"$root/DEBIAN/conffiles"
installed_kib=$(du -sk --exclude=DEBIAN "$root" | awk '{print $1}')
cat >"$root/DEBIAN/control" <<CONTROL
Package: bibgate
Version: $version
Architecture: $arch
Maintainer: Bibgate maintainers <bibgate@localhost>
Installed-Size: $installed_kib
Depends: libc6 (>= $glibc), libgcc-s1, passwd
Section: net
Priority: optional
Description: import processor for MARC 21 records exported from OCLC Connexion
 Bibgate receives Connexion Gateway Exports and files dropped by staff, matches
 them on OCLC numbers, adds or merges them like Alma, keeps every prior version
 and answers the sender. This package runs it on one machine as the service
 bibgate.service, with the embedded store in /var/lib/bibgate.
CONTROL

mkdir -p "$out"
deb=$out/bibgate_${version}_${arch}.deb
if [ "$profile" = release ]; then
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
else
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$root" "$deb" >&2
fi
echo "$deb"
