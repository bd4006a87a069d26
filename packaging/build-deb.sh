#!/usr/bin/env bash
# Build the Debian package: target/debian/postern_<version>_<arch>.deb
#
#   packaging/build-deb.sh
#
# Installs cargo-deb (CARGO_DEB_VERSION, a version that builds on the project's rustc)
# when it is missing, builds the release binary, generates the man pages from the
# binary's --help and config/postern.toml (packaging/gen-man.py), then packages.
# Needs: cargo, python3, dpkg-dev (dpkg-shlibdeps, for the $auto dependencies).
# Prints the path of the .deb as its last line.
set -euo pipefail

REPO_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
CARGO_DEB_VERSION=${CARGO_DEB_VERSION:-3.8.0}
cd "$REPO_ROOT"

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb: installing cargo-deb $CARGO_DEB_VERSION ..." >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2
fi

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

echo "build-deb: building the release binary ..." >&2
cargo build --release --locked --bin postern >&2

EXTRA="$REPO_ROOT/target/deb-extra"   # the asset paths in Cargo.toml point here
mkdir -p "$EXTRA"
echo "build-deb: generating man pages and changelogs ..." >&2
python3 packaging/gen-man.py "$TARGET_DIR/release/postern" "$EXTRA"
gzip -9nc CHANGELOG.md >"$EXTRA/changelog.gz"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat >"$EXTRA/changelog.Debian" <<EOT
postern ($version-1) unstable; urgency=medium

  * Postern $version. The changes are in /usr/share/doc/postern/changelog.gz.

 -- The Postern developers <postern@example.invalid>  $when
EOT

echo "build-deb: packaging ..." >&2
# --strip: the release profile keeps line tables for backtraces; the package does not.
deb=$(cargo deb --no-build --strip --locked -p postern 2>&2 | tail -n 1)
echo "$deb"
