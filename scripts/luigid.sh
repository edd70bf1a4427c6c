#!/usr/bin/env bash
# Start, stop or query cvas's central Luigi scheduler and visualiser (luigid), on 127.0.0.1 only.
#
#   scripts/luigid.sh start|stop|restart|status
#
# Everything luigid writes lives under one var directory:
#   LUIGID_DIR   default var/luigid (relative to the repository root)
#                luigid.pid, state.pickle, history.db (task history, SQLite), logs/
#   LUIGID_PORT  default [core] scheduler_port of the luigi config, else 8082
#   LUIGID_DB    task-history SQLAlchemy URL, default sqlite:///$LUIGID_DIR/history.db
# The luigi config is ./luigi.cfg plus $LUIGI_CONFIG_PATH (default: the repository's luigi.cfg), read
# from the repository root, so relative paths in it resolve there. start and stop are
# idempotent; status exits 0 when running, 3 when not (LSB).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PY=${CVAS_PYTHON:-$REPO/.venv/bin/python}
export LUIGI_CONFIG_PATH=${LUIGI_CONFIG_PATH:-$REPO/luigi.cfg}

case "${1:-}" in
    start | stop | restart | status) ;;
    *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac

DIR=${LUIGID_DIR:-var/luigid}
case $DIR in /*) ;; *) DIR=$REPO/$DIR ;; esac
PIDFILE=$DIR/luigid.pid
STATE=$DIR/state.pickle
LOGDIR=$DIR/logs
DB=${LUIGID_DB:-sqlite:///$DIR/history.db}
ADDRESS=127.0.0.1  # luigid has no authentication: never listen beyond loopback (use ssh -L)
WAIT_SECS=${LUIGID_WAIT_SECS:-20}
KEEP_LOG_DAYS=15

config_port() {
    "$PY" -c 'import luigi.configuration as c; print(c.get_config().getint("core", "scheduler_port", 8082))'
}
PORT=${LUIGID_PORT:-$(config_port)}
URL=http://$ADDRESS:$PORT/

# The pid in the pid file, if that process is alive and is our luigid (not a reused pid).
running_pid() {
    [ -s "$PIDFILE" ] || return 1
    local pid
    pid=$(tr -dc '0-9' <"$PIDFILE")
    [ -n "$pid" ] && alive "$pid" || return 1
    ps -p "$pid" -o command= 2>/dev/null | grep -qF -- "$PIDFILE" || return 1
    echo "$pid"
}

# Alive and not a zombie waiting for init to reap it.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
}

port_open() { (exec 3<>"/dev/tcp/$ADDRESS/$PORT") 2>/dev/null; }

show_errors() {
    local f
    for f in "$LOGDIR"/luigi-server-*.err "$LOGDIR"/luigi-server.log; do
        [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
    done
    return 0
}

# luigid itself, with the state file and history database under $DIR whatever the config says.
launch() {
    LUIGID_DB=$DB "$PY" -c '
import os, sys
import daemon
import luigi.configuration
from luigi.cmdline import luigid
# python-daemon defaults to umask 0, which would leave the pickled state world-writable.
_init = daemon.DaemonContext.__init__
daemon.DaemonContext.__init__ = lambda self, *a, **kw: _init(self, *a, **{"umask": 0o027, **kw})
cfg = luigi.configuration.get_config()
if not cfg.has_section("task_history"):
    cfg.add_section("task_history")
cfg.set("task_history", "db_connection", os.environ["LUIGID_DB"].replace("%", "%%"))
# History is written inside every add_task call; an fsync per event cost ~30 ms each (measured).
# WAL with synchronous=NORMAL never corrupts the file, a power cut loses the last events at most.
import sqlite3
import sqlalchemy.event
from sqlalchemy.engine import Engine
@sqlalchemy.event.listens_for(Engine, "connect")
def _sqlite_wal(connection, _record):
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
luigid(sys.argv[1:])
' --background --pidfile "$PIDFILE" --logdir "$LOGDIR" --state-path "$STATE" \
      --address "$ADDRESS" --port "$PORT"
}

start() {
    local pid i
    if pid=$(running_pid); then
        echo "luigid already running (pid $pid): $URL"
        return 0
    fi
    mkdir -p "$LOGDIR"
    rm -f "$PIDFILE"
    if port_open; then
        echo "luigid: port $PORT on $ADDRESS is taken by another process; set LUIGID_PORT" >&2
        return 1
    fi
    # luigid's own stdout/stderr files are per start day: keep 15 days of them, like our run logs.
    find "$LOGDIR" -type f -name 'luigi-server*' -mtime +"$KEEP_LOG_DAYS" -delete 2>/dev/null || true
    launch
    for ((i = 0; i < WAIT_SECS * 10; i++)); do
        if pid=$(running_pid) && port_open; then
            echo "luigid started (pid $pid): visualiser $URL"
            echo "  state $STATE, history $DB, logs $LOGDIR"
            return 0
        fi
        sleep 0.1
    done
    echo "luigid did not come up on $URL within ${WAIT_SECS}s" >&2
    show_errors
    return 1
}

stop() {
    local pid i
    if ! pid=$(running_pid); then
        rm -f "$PIDFILE"
        echo "luigid not running"
        return 0
    fi
    kill -TERM "$pid"  # luigid saves its state file on SIGTERM
    for ((i = 0; i < WAIT_SECS * 10; i++)); do
        if ! alive "$pid"; then
            rm -f "$PIDFILE"
            echo "luigid stopped (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    echo "luigid (pid $pid) ignored SIGTERM for ${WAIT_SECS}s; sending SIGKILL (state not saved)" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

status() {
    local pid
    if pid=$(running_pid); then
        echo "luigid running (pid $pid): visualiser $URL"
        echo "  state $STATE, history $DB, logs $LOGDIR"
        return 0
    fi
    echo "luigid not running (pid file $PIDFILE)"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop && start ;;
    status) status ;;
esac
