#!/usr/bin/env bash
# test/citus/build.sh — build Citus 13.2.2 from the vendored release source and
# install it into the PostgreSQL 15 tree of PG_CONFIG (default: pg_config on
# PATH), optionally under DESTDIR (a private copy of the tree, as
# test/citus/cluster.sh uses with CITUS_PREFIX).  Run as root.  Skips the build
# when citus.so is already installed there.
#
#   PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config bash test/citus/build.sh
#   DESTDIR=/opt/pg-citus bash test/citus/build.sh
#
# Facts behind each step: ../shared/vendor/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-pg_config}
DESTDIR=${DESTDIR:-}
tarball=${CITUS_TARBALL:-../shared/vendor/citus-13.2.2.tar.gz}
[[ -f $tarball ]] || tarball=/work/shared/vendor/citus-13.2.2.tar.gz

pkglibdir=$($PG_CONFIG --pkglibdir)
if [[ -f $DESTDIR$pkglibdir/citus.so ]]; then
    echo "== citus already installed in $DESTDIR$pkglibdir"
    exit 0
fi

# 1. Build dependencies (only those missing).
packages=(gcc make libc6-dev postgresql-server-dev-15 libpq-dev libssl-dev liblz4-dev libzstd-dev libkrb5-dev)
source test/packages.sh
install_missing /tmp/citus-apt.log "${packages[@]}"

# 2. Extract into a scratch directory.
src=$(mktemp -d /tmp/citus-build.XXXX)
trap 'rm -rf "$src"' EXIT
tar -xzf "$tarball" -C "$src" --strip-components=1

# 3. PostgreSQL 15.20 declares have_createdb_privilege() itself; Citus' static
#    fallback of the same name then fails to compile.  Rename the fallback (a
#    #define before the header's own text), which is right on every 15.x minor.
hdr=$src/src/include/pg_version_compat.h
grep -q 'have_createdb_privilege' "$hdr" &&
    sed -i '0,/^#define PG_VERSION_COMPAT_H/s//&\n#define have_createdb_privilege citus_have_createdb_privilege/' "$hdr"
grep -q 'citus_have_createdb_privilege' "$hdr" || { echo "build.sh: could not patch $hdr" >&2; exit 1; }

# 4. Configure, build, install.
echo "== building citus ($(nproc) cores)"
start=$SECONDS
(
    cd "$src"
    ./configure -q --without-libcurl PG_CONFIG="$PG_CONFIG" >/tmp/citus-configure.log 2>&1 ||
        { tail -20 /tmp/citus-configure.log >&2; exit 1; }
    make -s -j"$(nproc)" >/tmp/citus-make.log 2>&1 || { grep -m20 -E 'error|Error' /tmp/citus-make.log >&2; exit 1; }
    make -s install DESTDIR="$DESTDIR" >/tmp/citus-install.log 2>&1 || { tail -20 /tmp/citus-install.log >&2; exit 1; }
)
echo "== citus built and installed in $((SECONDS - start)) s"
