"""moto's DynamoDB, served single-threaded on 127.0.0.1.

Usage: python moto_dynamodb.py PORT_FILE [PARENT_PID]

Binds a free port (the OS picks it, so two runs never race for one), writes the port to
PORT_FILE, then serves until killed. Single-threaded on purpose: moto's DynamoDB backend
takes no lock, and its default threaded server loses conditional updates under concurrent
writers (../../../shared/STANDINS.md), which would make fencing tests lie. This is what
werkzeug's run_simple(host, port, app, threaded=False) does, minus the fixed port.
If PARENT_PID is given, the server exits when that process is gone (a test script killed
with SIGKILL cannot run its clean-up trap).
"""

import os
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def exit_with_parent(pid: int) -> None:
    # A watchdog thread: it never touches moto's state, so requests stay serialised.
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            os._exit(0)
        time.sleep(1)


def main() -> None:
    port_file = sys.argv[1]
    if len(sys.argv) > 2:
        threading.Thread(target=exit_with_parent, args=(int(sys.argv[2]),), daemon=True).start()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False, processes=1)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_port))
    os.replace(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
