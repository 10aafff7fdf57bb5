"""An app's backend receiving our outgoing webhooks on 127.0.0.1, verifying each request with
the `standardwebhooks` package (the reference library of the spec), as a receiver would.

It can be stopped and started again on the same port (a backend that is down for a while),
and told to hold requests without answering (a relay killed mid-delivery)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


class Receiver:
    def __init__(self, port: int = 0, status: int = 204):
        self.secret: str | None = None
        self.status = status
        self.location: str | None = None     # sent with a 3xx status
        self.received: list[dict] = []       # verified deliveries: {"id", "timestamp", "body"}
        self.rejected: list[str] = []        # why a request failed verification
        self.arrived = threading.Condition()
        self.hold = threading.Event()        # set: requests wait (unanswered) until it is cleared
        self._server = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(outer.secret).verify(raw, headers)
                    entry = {"id": headers["webhook-id"], "timestamp": headers["webhook-timestamp"],
                             "body": json.loads(raw)}
                except Exception as exc:  # verification failed: what a receiver would refuse
                    with outer.arrived:
                        outer.rejected.append(f"{type(exc).__name__}: {exc}")
                        outer.arrived.notify_all()
                    self.send_response(400)
                    self.end_headers()
                    return
                with outer.arrived:
                    outer.received.append({**entry, "held": outer.hold.is_set()})
                    outer.arrived.notify_all()
                while outer.hold.is_set():
                    time.sleep(0.05)
                self.send_response(outer.status)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.end_headers()

            def log_message(self, *_):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, n: int, timeout: float = 60.0) -> list[dict]:
        """Until at least n verified deliveries have arrived (or the timeout: then what there is)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= n, timeout=timeout)
            return list(self.received)

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.received]
