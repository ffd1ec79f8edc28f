# The PostgreSQL major the scripts build and test against: the one place it is chosen.
# Source it; do not run it.
#   PG=NN              the major (default 15, the host's: Debian 12 ships postgresql-15)
#   DF_PG              the major chosen, after validation
#   DF_PG_CONFIG       /usr/lib/postgresql/NN/bin/pg_config
#   DF_PG_PACKAGES     the Debian packages of that major (server, server headers)
#   df_pg_suite NN     the Debian suite that ships postgresql-NN from deb.debian.org
#   df_pg_host_suite   this machine's suite (VERSION_CODENAME of /etc/os-release)
#   df_pg_local        true when the major is tested right here, not in a chroot
# Majors reachable from deb.debian.org: 15 (bookworm), 17 (trixie), 18 (forky, sid).
# No suite ships 16 (apt.postgresql.org is not used).

DF_PG=${PG:-15}
case $DF_PG in
    15|17|18) ;;
    *) echo "PG=$DF_PG: supported majors are 15, 17 and 18" >&2; return 1 2>/dev/null || exit 1 ;;
esac
DF_PG_CONFIG=/usr/lib/postgresql/$DF_PG/bin/pg_config
DF_PG_PACKAGES=("postgresql-$DF_PG" "postgresql-server-dev-$DF_PG")

df_pg_suite() {
    case $1 in
        15) echo bookworm ;;
        17) echo trixie ;;
        18) echo forky ;;
        *) return 1 ;;
    esac
}

df_pg_host_suite() {
    (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-unknown}")
}

# The major a suite ships (the inverse of df_pg_suite; sid has 18 as forky does).
df_pg_suite_major() {
    case $1 in
        bookworm) echo 15 ;;
        trixie) echo 17 ;;
        forky|sid) echo 18 ;;
        *) return 1 ;;
    esac
}

df_pg_local() {
    [ -n "${DF_IN_CHROOT:-}" ] && return 0
    [ "$(df_pg_suite_major "$(df_pg_host_suite)" 2>/dev/null)" = "$DF_PG" ]
}
