#!/usr/bin/env bash
# Benchmarks sync-access against the baselines of issue 5, side by side, in
# one run, on identical copies of each store:
#   raw read  - the five tables' rows selected to /dev/null (the limit for plan)
#   raw SQL   - hand-written set-based INSERT ... SELECT and UPDATE in one
#               transaction (bench/raw-*.sql: the limit for apply)
#   per row   - the same writes, one statement per row (bench/per_row.py)
#   revert    - plan --revert of the applied plan, then apply of that revert
#               (docs/revert.md), on the store the apply left
# and writes BENCHMARKS.md.
#
# Usage: bench/run.sh [--sizes 10000,100000,1000000] [--backends sqlite,postgres,mysql] [--runs 3]
# Sizes count legacy bindings (10 per user, 3 memberships per user). The
# tool and the raw read and raw SQL baselines run --runs times each, every
# run on a fresh copy of the store; the median time is reported, and the
# highest peak memory. The per-row baseline (minutes at 1M) runs once.
# Needs: a release build, /usr/bin/time, python3, psql, mariadb, sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."

COMMAND="bench/run.sh $*"
SIZES=10000,100000,1000000
BACKENDS=sqlite,postgres,mysql
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --backends) BACKENDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--sizes N,N] [--backends sqlite,postgres,mysql] [--runs N]" >&2; exit 1 ;;
  esac
done

cargo build --release --quiet
BIN=$PWD/target/release/sync-access
WORK=$(mktemp -d /tmp/sync-access-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.tsv
: > "$RESULTS"
PG="psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q"
MY="mariadb -h 127.0.0.1 -uroot"
# The scratch databases (DB and DB_pristine) on both servers; set
# SYNC_ACCESS_BENCH_DB to run beside another benchmark.
DB=${SYNC_ACCESS_BENCH_DB:-sa_bench}

# timed LABEL CMD...: runs CMD under /usr/bin/time; sets SECS and RSS_MIB.
timed() {
  local log=$WORK/time.log
  /usr/bin/time -v -o "$log" "$@"
  SECS=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
  RSS_MIB=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$log")
}

# median N...: the middle one (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# highest N...
highest() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# timed_fn FUNCTION ARGS...: a shell function of this script, timed.
timed_fn() {
  local fn=$1; shift
  timed bash -c "$(declare -f "$fn"); WORK='$WORK' PG='$PG' MY='$MY' DB='$DB' $fn \"\$@\"" "$fn" "$@"
}

url_of() {
  case "$1" in
    sqlite) echo "sqlite:$WORK/store.db" ;;
    postgres) echo "postgres://postgres@127.0.0.1:5432/$DB" ;;
    mysql) echo "mysql://root@127.0.0.1:3306/$DB" ;;
  esac
}

# fresh_store BACKEND USERS: a pristine synthetic store, analysed.
fresh_store() {
  local backend=$1 users=$2
  case "$backend" in
    sqlite)
      if [ -f "$WORK/pristine.db" ]; then cp "$WORK/pristine.db" "$WORK/store.db"; return; fi
      rm -f "$WORK/store.db"
      "$BIN" --database-url "$(url_of sqlite)" demo --users "$users" 2>/dev/null
      sqlite3 "$WORK/store.db" "ANALYZE;"
      cp "$WORK/store.db" "$WORK/pristine.db" ;;
    postgres)
      $PG -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
      if $PG -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '${DB}_pristine'" | grep -q 1; then
        $PG -d postgres -c "CREATE DATABASE $DB TEMPLATE ${DB}_pristine"; return
      fi
      $PG -d postgres -c "CREATE DATABASE $DB"
      "$BIN" --database-url "$(url_of postgres)" demo --users "$users" 2>/dev/null
      $PG -d $DB -c "VACUUM ANALYZE"
      $PG -d postgres -c "CREATE DATABASE ${DB}_pristine TEMPLATE $DB" ;;
    mysql)
      $MY -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
      "$BIN" --database-url "$(url_of mysql)" demo --users "$users" 2>/dev/null
      $MY $DB -e "ANALYZE TABLE tenants, users, \`groups\`, roles, bindings" >/dev/null ;;
  esac
}

drop_pristine() {
  rm -f "$WORK/pristine.db"
  $PG -d postgres -c "DROP DATABASE IF EXISTS ${DB}_pristine WITH (FORCE)" 2>/dev/null || true
}

raw_read() {
  case "$1" in
    sqlite) for t in tenants users groups roles bindings; do sqlite3 "$WORK/store.db" "SELECT key, value FROM \"$t\""; done ;;
    postgres) for t in tenants users groups roles bindings; do $PG -d $DB -c "COPY (SELECT key, value FROM \"$t\") TO STDOUT"; done ;;
    mysql) for t in tenants users groups roles bindings; do $MY --quick $DB -e "SELECT \`key\`, \`value\` FROM \`$t\`"; done ;;
  esac > /dev/null
}

run_sql_file() { # BACKEND FILE
  case "$1" in
    sqlite) sqlite3 "$WORK/store.db" < "$2" ;;
    postgres) $PG -d $DB -f "$2" > /dev/null ;;
    mysql) $MY $DB < "$2" ;;
  esac
}

IFS=, read -ra size_list <<< "$SIZES"
IFS=, read -ra backend_list <<< "$BACKENDS"
for backend in "${backend_list[@]}"; do
  for bindings in "${size_list[@]}"; do
    users=$((bindings / 10))
    echo "== $backend, $bindings legacy bindings ($users users)" >&2
    drop_pristine
    export DATABASE_URL
    DATABASE_URL=$(url_of "$backend")
    reads=() plans=() plan_rsss=() shows=() show_rsss=() approves=() approve_rsss=() applies=() apply_rsss=() raws=()
    revert_plans=() revert_applies=() revert_apply_rsss=()
    for run in $(seq 1 "$RUNS"); do
      echo "   run $run of $RUNS ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
      fresh_store "$backend" "$users"
      timed_fn raw_read "$backend"
      reads+=("$SECS")

      rm -f "$WORK/plan.json"
      timed "$BIN" plan --skip-conflicts -o "$WORK/plan.json"
      plans+=("$SECS") plan_rsss+=("$RSS_MIB")

      timed "$BIN" show "$WORK/plan.json" > /dev/null
      shows+=("$SECS") show_rsss+=("$RSS_MIB")

      timed "$BIN" approve --yes --by bench@example.com "$WORK/plan.json" 2>/dev/null
      approves+=("$SECS") approve_rsss+=("$RSS_MIB")

      timed "$BIN" apply "$WORK/plan.json" > /dev/null
      applies+=("$SECS") apply_rsss+=("$RSS_MIB")

      timed "$BIN" plan --revert "$WORK/plan.json" --skip-conflicts -o "$WORK/revert.json"
      revert_plans+=("$SECS")
      "$BIN" approve --yes --by bench@example.com "$WORK/revert.json" 2>/dev/null
      timed "$BIN" apply "$WORK/revert.json" > /dev/null
      revert_applies+=("$SECS") revert_apply_rsss+=("$RSS_MIB")
      rm -f "$WORK/revert.json"

      fresh_store "$backend" "$users"
      timed_fn run_sql_file "$backend" "bench/raw-$backend.sql"
      raws+=("$SECS")
    done
    plan_mib=$(awk -v b="$(stat -c %s "$WORK/plan.json")" 'BEGIN {printf "%.0f", b/1048576}')
    # The summary is before the changes: read without loading the plan.
    changes=$(sed -n '/^  "summary": {/,/^  }/p' "$WORK/plan.json" \
      | awk -F'[":, ]+' '$2 ~ /^(add_|create_)/ {n += $3} END {print n + 0}')

    python3 bench/per_row.py "$WORK/plan.json" "$backend" > "$WORK/per-row.sql"
    rm -f "$WORK/plan.json"
    fresh_store "$backend" "$users"
    timed_fn run_sql_file "$backend" "$WORK/per-row.sql"
    per_row_s=$SECS
    rm -f "$WORK/per-row.sql"

    printf '%s\t' "$backend" "$bindings" "$changes" "$(median "${reads[@]}")" "$(median "${plans[@]}")" \
      "$(highest "${plan_rsss[@]}")" "$plan_mib" "$(median "${shows[@]}")" "$(highest "${show_rsss[@]}")" \
      "$(median "${approves[@]}")" "$(highest "${approve_rsss[@]}")" "$(median "${applies[@]}")" \
      "$(highest "${apply_rsss[@]}")" "$(median "${raws[@]}")" "$per_row_s" "$RUNS" "$users" \
      "$(median "${revert_plans[@]}")" "$(median "${revert_applies[@]}")" >> "$RESULTS"
    printf '%s\n' "$(highest "${revert_apply_rsss[@]}")" >> "$RESULTS"
    # Every run, for the record.
    echo "$backend $bindings: read ${reads[*]}; plan ${plans[*]} (${plan_rsss[*]} MiB); show ${shows[*]} (${show_rsss[*]} MiB); approve ${approves[*]} (${approve_rsss[*]} MiB); apply ${applies[*]} (${apply_rsss[*]} MiB); revert plan ${revert_plans[*]}; revert apply ${revert_applies[*]} (${revert_apply_rsss[*]} MiB); raw SQL ${raws[*]}; per row $per_row_s" >> "$WORK/runs.txt"
  done
  drop_pristine
done
$PG -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" 2>/dev/null || true
$MY -e "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true

python3 - "$RESULTS" "$COMMAND" "$WORK/runs.txt" <<'PY' > "$WORK/BENCHMARKS.md"
import os, platform, subprocess, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
def f(x): return float(x)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
print("# Benchmarks\n")
print("Produced by `bench/run.sh` (`%s`), in one run, on %s with %d cores and %.0f GiB;" % (
    sys.argv[2].strip(), cpu, os.cpu_count(), int(mem) / 1048576))
print("PostgreSQL, MariaDB and SQLite on this machine, over loopback. Every store is generated by")
print("`sync-access demo --users N` (seed 42: 10 legacy bindings and 3 memberships per user) and")
print("analysed; each baseline runs on an identical fresh copy.\n")
print("- raw read: the five tables' rows selected to /dev/null (COPY on PostgreSQL): the limit for `plan`")
print("- raw SQL: `bench/raw-<backend>.sql`, set-based INSERT ... SELECT and UPDATE in one transaction: the limit for `apply`")
print("- per row: the same writes, one statement per row (`bench/per_row.py`), as a per-entity API tool sends them")
print("- revert: `plan --revert` of the applied plan, then `apply` of that revert plan, on the store the apply left (docs/revert.md)\n")
print("| backend | legacy bindings | changes | raw read s | plan s | plan / raw read | plan peak MiB | plan file MiB | show s | show / raw read | show peak MiB | approve s | approve peak MiB | apply s | apply / raw SQL | apply peak MiB | raw SQL s | per row s | per row / apply | revert plan s | revert apply s | revert apply peak MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for b, n, ch, rd, pl, prss, pmib, sh, srss, apv, avrss, ap, arss, raw, per, runs, users, rpl, rap, rrss in rows:
    print("| %s | %s | %s | %.2f | %.2f | %.1f× | %s | %s | %.2f | %.1f× | %s | %.2f | %s | %.2f | %.2f× | %s | %.2f | %.2f | %.1f× | %.2f | %.2f | %s |" % (
        b, n, ch, f(rd), f(pl), f(pl) / max(f(rd), 0.01), prss, pmib, f(sh), f(sh) / max(f(rd), 0.01), srss,
        f(apv), avrss, f(ap), f(ap) / max(f(raw), 0.01), arss, f(raw), f(per), f(per) / max(f(ap), 0.01),
        f(rpl), f(rap), rrss))
print("\nTimes are the median of %s runs (per row: one run); peak memory is the highest of the runs." % rows[0][15] if rows else "")
print("\nThe runs:\n")
for line in open(sys.argv[3]):
    print("- " + line.rstrip("\n"))
PY
# The file's own sections (from its first `## ` heading on) are kept
# below the new table: they say what earlier runs found.
{
  cat "$WORK/BENCHMARKS.md"
  if [ -f BENCHMARKS.md ]; then echo; sed -n '/^## /,$p' BENCHMARKS.md; fi
} > "$WORK/BENCHMARKS.new"
mv "$WORK/BENCHMARKS.new" BENCHMARKS.md
cat BENCHMARKS.md
