# Sourced by scripts/test and scripts/soak: a throwaway PostgreSQL on a free port, stopped and
# removed when the calling script exits. PostgreSQL refuses to run as root, so as root it runs
# as the `postgres` user the package creates. Sets PG_URL and PG_CTL (the command that controls
# it, for the soak's store outages).
pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)" 2>/dev/null || true)
[ -x "$pg_bin/initdb" ] || pg_bin=$(dirname "$(command -v initdb)")
pg_dir=$(mktemp -d /tmp/containerpub-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$pg_dir"
    as_pg=(runuser -u postgres --)
fi
pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop_postgres() {
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >"$pg_dir/initdb.log" 2>&1 ||
    { cat "$pg_dir/initdb.log" >&2; exit 2; }
# The settings go into its configuration file, so `pg_ctl start` alone starts it again.
printf '%s\n' "port = $pg_port" "unix_socket_directories = '$pg_dir'" "listen_addresses = '127.0.0.1'" \
    "fsync = off" "max_connections = 200" >>"$pg_dir/data/postgresql.conf"
PG_CTL="${as_pg[*]} $pg_bin/pg_ctl -D $pg_dir/data -l $pg_dir/server.log"
$PG_CTL -w start >/dev/null || { cat "$pg_dir/server.log" >&2; exit 2; }
PG_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
PG_VERSION=$("$pg_bin/postgres" --version | awk '{print $3}')
