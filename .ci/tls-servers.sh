#!/usr/bin/env bash
# Throwaway database servers with TLS for the TLS tests, beside (never
# instead of) the machine's own PostgreSQL and MariaDB:
#
#   .ci/tls-servers.sh start    # make certificates, start the servers
#   eval "$(.ci/tls-servers.sh env)"   # export the variables the tests read
#   cargo test --test cli -- tls::
#   .ci/tls-servers.sh stop     # stop them, remove every file
#
# - A CA and a server certificate for localhost and 127.0.0.1 (openssl, made
#   at each start), a second CA that signed nothing here ("the wrong CA"),
#   and a client certificate for PostgreSQL's `cert` authentication.
# - PostgreSQL (initdb from /usr/lib/postgresql/*/bin, run as the `postgres`
#   OS user since initdb refuses root) on 127.0.0.1:$TLS_PG_PORT with
#   ssl = on; pg_hba.conf: the database `plain_only` accepts only plaintext
#   (hostnossl), every other database only TLS (hostssl); the role `kestra`
#   logs in with a password, `certuser` with its client certificate.
# - MariaDB (mariadb-install-db, run as the `mysql` OS user) on
#   127.0.0.1:$TLS_MY_PORT with TLS on; the accounts `admin` and `kestra`
#   are REQUIRE SSL. A second MariaDB on $TLS_MY_PLAIN_PORT has no TLS at
#   all (MariaDB cannot refuse TLS per account).
#
# Everything lives in $SYNC_ACCESS_TLS_DIR (default /tmp/sync-access-tls);
# the ports default to 55432, 53306 and 53307.
set -euo pipefail

DIR=${SYNC_ACCESS_TLS_DIR:-/tmp/sync-access-tls}
PG_PORT=${TLS_PG_PORT:-55432}
MY_PORT=${TLS_MY_PORT:-53306}
MY_PLAIN_PORT=${TLS_MY_PLAIN_PORT:-53307}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
# Passwords of throwaway test accounts on servers that listen on 127.0.0.1
# only and are removed by `stop`.
KESTRA_PW='Kestra-tls-Pw-7f3a'
ADMIN_PW='Admin-tls-Pw-91c2'

log() { echo "tls-servers: $*" >&2; }

as_user() { # as_user USER COMMAND...: run unprivileged when we are root
  local user=$1; shift
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

wait_for() { # wait_for NAME COMMAND...: up to 180 s (a busy 2-core machine)
  local name=$1; shift
  for _ in $(seq 1 360); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not start within 180 s"
  return 1
}

certificates() {
  local c=$DIR/certs
  mkdir -p "$c"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sync-access test CA" \
    -keyout "$c/ca.key" -out "$c/ca.crt" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sync-access wrong CA" \
    -keyout "$c/wrong-ca.key" -out "$c/wrong-ca.crt" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$c/server.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$c/server.key" -out "$c/server.csr" 2>/dev/null
  openssl x509 -req -in "$c/server.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
    -days 2 -extfile "$c/server.ext" -out "$c/server.crt" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >"$c/client.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=certuser" \
    -keyout "$c/client.key" -out "$c/client.csr" 2>/dev/null
  openssl x509 -req -in "$c/client.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
    -days 2 -extfile "$c/client.ext" -out "$c/client.crt" 2>/dev/null
  # rustls reads PKCS#8 or PKCS#1 keys; openssl 3 writes PKCS#8.
  chmod 755 "$c"
  chmod 644 "$c"/*.crt "$c/client.key"
  # Each server reads its own copy of the key, owned by it, mode 0600.
  mkdir -p "$DIR/pg-certs" "$DIR/my-certs"
  cp "$c/server.crt" "$c/server.key" "$c/ca.crt" "$DIR/pg-certs/"
  cp "$c/server.crt" "$c/server.key" "$c/ca.crt" "$DIR/my-certs/"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$DIR/pg-certs"
    chown -R mysql: "$DIR/my-certs"
  fi
  chmod 600 "$DIR/pg-certs/server.key" "$DIR/my-certs/server.key"
}

start_postgres() {
  [ -x "$PG_BIN/initdb" ] || { log "no initdb under /usr/lib/postgresql/*/bin"; return 1; }
  mkdir -p "$DIR/pg" "$DIR/pg-run"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR/pg" "$DIR/pg-run"; fi
  as_user postgres "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres --auth=trust -E UTF8 >"$DIR/pg/initdb.log" 2>&1
  cat >>"$DIR/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DIR/pg-run'
ssl = on
ssl_cert_file = '$DIR/pg-certs/server.crt'
ssl_key_file = '$DIR/pg-certs/server.key'
ssl_ca_file = '$DIR/pg-certs/ca.crt'
fsync = off
log_connections = on
shared_buffers = 32MB
max_connections = 60
EOF
  cat >"$DIR/pg/data/pg_hba.conf" <<EOF
local     all         all      trust
hostssl   plain_only  all      127.0.0.1/32  reject
hostnossl plain_only  all      127.0.0.1/32  trust
hostssl   all         kestra   127.0.0.1/32  scram-sha-256
hostssl   all         certuser 127.0.0.1/32  cert
hostssl   all         all      127.0.0.1/32  trust
hostnossl all         all      127.0.0.1/32  reject
EOF
  if ! as_user postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/server.log" -w -t 180 start >/dev/null; then
    tail -n 30 "$DIR/pg/server.log" >&2 || true
    return 1
  fi
  local psql=("$PG_BIN/psql" -h "$DIR/pg-run" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q)
  as_user postgres "${psql[@]}" -c "CREATE DATABASE plain_only" \
    -c "CREATE ROLE kestra LOGIN SUPERUSER PASSWORD '$KESTRA_PW'" \
    -c "CREATE ROLE certuser LOGIN SUPERUSER"
}

start_mariadb() { # start_mariadb NAME PORT TLS(yes|no)
  local name=$1 port=$2 tls=$3 d=$DIR/$1
  mkdir -p "$d"
  if [ "$(id -u)" = 0 ]; then chown mysql: "$d"; fi
  as_user mysql mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$d/install.log" 2>&1
  local tls_args=(--skip-ssl)
  if [ "$tls" = yes ]; then
    # performance_schema: the tests read another session's Ssl_cipher.
    tls_args=(--ssl-ca="$DIR/my-certs/ca.crt" --ssl-cert="$DIR/my-certs/server.crt" --ssl-key="$DIR/my-certs/server.key"
      --performance-schema=ON)
  fi
  as_user mysql mariadbd --no-defaults --datadir="$d/data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$d/mysqld.sock" --pid-file="$d/mysqld.pid" --log-error="$d/error.log" \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_bin "${tls_args[@]}" \
    </dev/null >/dev/null 2>&1 &
  if ! wait_for "MariaDB ($name)" mariadb-admin --no-defaults --socket="$d/mysqld.sock" -uroot ping; then
    tail -n 30 "$d/error.log" "$d/install.log" >&2 || true
    return 1
  fi
  local require=""
  if [ "$tls" = yes ]; then require="REQUIRE SSL"; fi
  mariadb --no-defaults --socket="$d/mysqld.sock" -uroot -e "
    CREATE USER 'admin'@'127.0.0.1' IDENTIFIED BY '$ADMIN_PW' $require;
    GRANT ALL ON *.* TO 'admin'@'127.0.0.1' WITH GRANT OPTION;
    CREATE USER 'kestra'@'127.0.0.1' IDENTIFIED BY '$KESTRA_PW' $require;
    GRANT ALL ON *.* TO 'kestra'@'127.0.0.1';"
}

env_file() {
  cat <<EOF
export SYNC_ACCESS_TEST_TLS_CA='$DIR/certs/ca.crt'
export SYNC_ACCESS_TEST_TLS_WRONG_CA='$DIR/certs/wrong-ca.crt'
export SYNC_ACCESS_TEST_TLS_CLIENT_CERT='$DIR/certs/client.crt'
export SYNC_ACCESS_TEST_TLS_CLIENT_KEY='$DIR/certs/client.key'
export SYNC_ACCESS_TEST_TLS_PASSWORD='$KESTRA_PW'
export SYNC_ACCESS_TEST_POSTGRES_TLS='postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=require'
export SYNC_ACCESS_TEST_MYSQL_TLS='mysql://admin:$ADMIN_PW@127.0.0.1:$MY_PORT/mysql?ssl-mode=REQUIRED'
export SYNC_ACCESS_TEST_MYSQL_PLAIN='mysql://admin:$ADMIN_PW@127.0.0.1:$MY_PLAIN_PORT/mysql?ssl-mode=DISABLED'
EOF
}

stop() {
  if [ -f "$DIR/pg/data/postmaster.pid" ]; then
    as_user postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  for name in mariadb mariadb-plain; do
    if [ -f "$DIR/$name/mysqld.pid" ]; then
      local pid
      pid=$(cat "$DIR/$name/mysqld.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$DIR"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-}" in
  start)
    stop
    for port in "$PG_PORT" "$MY_PORT" "$MY_PLAIN_PORT"; do
      port_free "$port" || { log "port $port is in use (set TLS_PG_PORT, TLS_MY_PORT, TLS_MY_PLAIN_PORT)"; exit 1; }
    done
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    certificates
    start_postgres
    start_mariadb mariadb "$MY_PORT" yes
    start_mariadb mariadb-plain "$MY_PLAIN_PORT" no
    env_file >"$DIR/env"
    log "started PostgreSQL on $PG_PORT, MariaDB with TLS on $MY_PORT, MariaDB without TLS on $MY_PLAIN_PORT"
    ;;
  env)
    cat "$DIR/env"
    ;;
  stop)
    stop
    ;;
  *)
    echo "usage: $0 start|env|stop" >&2
    exit 2
    ;;
esac
