# Helpers shared by the stand-in scripts. Source it; do not run it.
#
# Stand-ins register their clean-up with `standins_on_exit CMD`: one EXIT trap runs every
# registered command, last registered first, so several stand-ins (and the script that
# sources them) never overwrite each other's trap. Scripts that source stand-ins should
# use `standins_on_exit` instead of `trap ... EXIT`.

if [[ -z "${_STANDINS_COMMON_LOADED:-}" ]]; then
    _STANDINS_COMMON_LOADED=1
    STANDINS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    STANDINS_CACHE="${STANDINS_CACHE:-$STANDINS_ROOT/.cache/standins}"
    _standins_cleanups=()

    standins_cleanup() {
        local i
        for ((i = ${#_standins_cleanups[@]} - 1; i >= 0; i--)); do
            eval "${_standins_cleanups[$i]}" || true
        done
        _standins_cleanups=()
    }

    standins_on_exit() {
        _standins_cleanups+=("$1")
        trap standins_cleanup EXIT
        # A signal ends the script through its EXIT trap.
        trap 'exit 130' INT
        trap 'exit 143' TERM
    }

    # standins_venv NAME REQUIREMENTS_FILE: prints the path of a virtual environment under
    # .cache/standins/ with exactly the pinned requirements installed, creating it on first
    # use (and again whenever the requirements file changes).
    standins_venv() {
        local name="$1" requirements="$2"
        local digest venv
        digest="$(sha256sum "$requirements" | cut -c1-16)"
        venv="$STANDINS_CACHE/$name-$digest"
        mkdir -p "$STANDINS_CACHE"
        (
            # Two test runs starting at once must not build the same environment together.
            if command -v flock >/dev/null; then
                exec 9>"$STANDINS_CACHE/$name.lock"
                flock 9
            fi
            if [[ ! -f "$venv/.installed" ]]; then
                echo "standins: creating $venv (pinned: $(basename "$requirements"))" >&2
                rm -rf "$venv"
                python3 -m venv "$venv" >&2
                "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
                touch "$venv/.installed"
            fi
        ) || return 1
        printf '%s\n' "$venv"
    }

    # standins_free_port: a port of 127.0.0.1 free at the moment of asking.
    standins_free_port() {
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    }

    # standins_wait_tcp PORT SECONDS PID LOG: waits until something accepts connections on
    # 127.0.0.1:PORT, failing early (with LOG) if the process PID has died. A TCP connect,
    # never an HTTP request: any request to cargo lambda watch's Invoke API runs the function.
    standins_wait_tcp() {
        local port="$1" seconds="$2" pid="$3" log="$4" i
        for ((i = 0; i < seconds * 10; i++)); do
            if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; then
                return 0
            fi
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "standins: the server (pid $pid) exited at start-up; its log:" >&2
                cat "$log" >&2
                return 1
            fi
            sleep 0.1
        done
        echo "standins: nothing accepted connections on 127.0.0.1:$port within $seconds s; the log:" >&2
        cat "$log" >&2
        return 1
    }

    # standins_wait_http URL SECONDS PID: waits until URL answers 200, failing early if the
    # process PID has died.
    standins_wait_http() {
        local url="$1" seconds="$2" pid="$3" python="${4:-python3}"
        "$python" - "$url" "$seconds" "$pid" <<'PY'
import os, sys, time, urllib.request
url, deadline, pid = sys.argv[1], time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"standins: the server (pid {pid}) exited before {url} answered")
    if time.monotonic() > deadline:
        sys.exit(f"standins: {url} did not answer within {sys.argv[2]} s")
    time.sleep(0.1)
PY
    }
fi
