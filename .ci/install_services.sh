#!/usr/bin/env bash
# What the `spark` and `postgres` tests need beyond pip: Java 17 (Spark 4's JVM) and the PostgreSQL
# server binaries (tests start a throwaway cluster with them). `make install` / `make test` run this.
# Idempotent: does nothing when both are present. Uses apt-get (sudo when not root, if sudo exists);
# where it cannot install, it says how and carries on: those tests then skip, saying why.
set -uo pipefail

have_java() { command -v java >/dev/null 2>&1 && java -version >/dev/null 2>&1; }
have_postgres() {
    command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 ||
        { command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ]; }
}

packages=()
have_java || packages+=(openjdk-17-jre-headless)
have_postgres || packages+=(postgresql)
[ ${#packages[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "not installed: ${packages[*]} (no apt-get here); install Java 17 and PostgreSQL with your package manager" >&2
    echo "or the spark/postgres tests will be skipped." >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "not installed: ${packages[*]}; as root run 'apt-get install -y ${packages[*]}', or the spark/postgres tests will be skipped." >&2
    exit 0
fi
echo "== Installing ${packages[*]} (apt-get) for the Spark and PostgreSQL tests =="
"${as_root[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null ||
    echo "apt-get could not install ${packages[*]}: the spark/postgres tests will be skipped" >&2
exit 0
