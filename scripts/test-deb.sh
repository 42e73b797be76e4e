#!/usr/bin/env bash
# The Debian package's test (issue 19), run by scripts/test.sh: packages the debug binary
# with scripts/build-deb.sh, checks the package's contents and control fields, verifies
# bibgate.service with systemd-analyze (any warning fails), installs the package with dpkg
# into a throw-away root (maintainer scripts run with DPKG_ROOT set, so they touch no user
# or service of this machine), runs the installed `bibgate --version`, starts the installed
# binary on the installed configuration file (addresses overridden to loopback port 0) and
# stops it with SIGTERM, then removes the package.
#
#   scripts/test-deb.sh [BINARY]    (default: target/debug/bibgate, built by the caller)
set -euo pipefail
cd "$(dirname "$0")/.."

binary=${1:-${CARGO_TARGET_DIR:-target}/debug/bibgate}
work=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-deb: $*" >&2; exit 1; }

started=$(date +%s)
deb=$(bash scripts/build-deb.sh --debug --binary "$binary" --out "$work/out" | tail -n 1)
[ -f "$deb" ] || fail "no package built"
echo "test-deb: built $deb ($(du -h "$deb" | cut -f1)) in $(( $(date +%s) - started )) s"

# Contents: exactly these files.
contents=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | sort)
expected=$(printf '%s\n' ./etc/bibgate/bibgate.toml ./lib/systemd/system/bibgate.service \
  ./usr/bin/bibgate ./usr/share/doc/bibgate/README.md ./usr/share/doc/bibgate/copyright | sort)
[ "$contents" = "$expected" ] || fail "unexpected contents:"$'\n'"$contents"
dpkg-deb --fsys-tarfile "$deb" | tar -tv ./usr/bin/bibgate | grep -q '^-rwxr-xr-x root/root' \
  || fail "/usr/bin/bibgate is not root-owned 0755"
[ "$(dpkg-deb --field "$deb" Package)" = bibgate ] || fail "Package field"
[ "$(dpkg-deb --field "$deb" Version)" = "$("$binary" --version | awk '{print $2}')" ] \
  || fail "Version field differs from bibgate --version"
dpkg-deb --field "$deb" Depends | grep -q 'libc6 (>= ' || fail "Depends field"
[ "$(dpkg-deb --info "$deb" conffiles)" = /etc/bibgate/bibgate.toml ] || fail "conffiles"
for script in postinst prerm postrm; do
  dpkg-deb --info "$deb" "$script" | sh -n || fail "$script is not valid sh"
done

# The unit: the settings the service relies on, then systemd's own check.
extracted=$work/extracted
dpkg-deb -x "$deb" "$extracted"
unit=$extracted/lib/systemd/system/bibgate.service
for line in 'User=bibgate' 'ProtectSystem=strict' 'StateDirectory=bibgate' 'Restart=on-failure' \
  'KillSignal=SIGTERM' 'NoNewPrivileges=true' 'CapabilityBoundingSet=' \
  'ExecStart=/usr/bin/bibgate serve --config /etc/bibgate/bibgate.toml'; do
  grep -qx "$line" "$unit" || fail "bibgate.service lacks $line"
done
# systemd-analyze needs the units the service is ordered against, from this machine.
cp -a /usr/lib/systemd/system/. "$extracted/lib/systemd/system/"
verify=$(systemd-analyze verify --root="$extracted" /lib/systemd/system/bibgate.service 2>&1) \
  || fail "systemd-analyze verify failed: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warned: $verify"
echo "test-deb: systemd-analyze verify: clean; $(systemd-analyze security --offline=true \
  --root="$extracted" bibgate.service 2>/dev/null | grep 'Overall exposure' || true)"

# Install into a throw-away root.
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg_root=(dpkg --root="$root" --log=/dev/null --force-script-chrootless --force-depends)
"${dpkg_root[@]}" -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -i failed"; }
[ "$(dpkg --root="$root" -s bibgate | sed -n 's/^Status: //p')" = "install ok installed" ] \
  || fail "not installed"
version=$("$root/usr/bin/bibgate" --version)
echo "test-deb: installed; $version"
[ "$(stat -c %a "$root/var/lib/bibgate")" = 700 ] || fail "/var/lib/bibgate is not 0700"

# The installed binary starts on the installed configuration, and stops on SIGTERM.
"$root/usr/bin/bibgate" serve --config "$root/etc/bibgate/bibgate.toml" \
  --data-dir "$work/data" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 \
  >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 300); do
  grep -q 'press ctrl-c to stop' "$work/serve.out" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.err" >&2; fail "serve exited"; }
  sleep 0.1
done
grep -q 'bibgate metrics on http://127.0.0.1:' "$work/serve.out" || fail "serve did not start: $(cat "$work/serve.out")"
kill -TERM "$serve_pid"
wait "$serve_pid" || fail "serve did not stop cleanly on SIGTERM"
serve_pid=

"${dpkg_root[@]}" -r bibgate >>"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -r failed"; }
[ ! -e "$root/usr/bin/bibgate" ] || fail "the binary stayed after dpkg -r"
echo "test-deb: package built, checked, installed, started, stopped and removed in $(( $(date +%s) - started )) s"
