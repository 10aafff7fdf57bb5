"""The project's gunicorn settings: `gunicorn wsgi:app` in the repository root reads this file."""

# -- start-up check and request limits (ops) ----------------------------------------------------
# The master loads and checks the settings and reaches the database before any worker forks:
# a bad start is one line on stderr and exit 2 (configuration) or 3 (storage), not a traceback
# per worker.


def on_starting(server):
    app_uri = getattr(server.app, "app_uri", None) or server.cfg.wsgi_app or ""
    if not app_uri.startswith("wsgi:"):
        return  # another app served from this directory (the bench's hello-world): not ours to check
    from web.launch import check_or_exit
    check_or_exit()


# Clerk session tokens with custom claims can pass gunicorn's 8 KB default per header; with
# 64 KB gunicorn hands them to the app, which answers any header over its own bound with a 431
# in the JSON envelope (web/limits.py). The request line keeps gunicorn's maximum.
limit_request_line = 8190
limit_request_field_size = 65536
limit_request_fields = 100
# -- end of start-up check and request limits ---------------------------------------------------

# -- workers (measured: bench/results/concurrency-writer-seals.md, bench/results/fanout.md) ---------
# gthread: a request waiting on I/O (Composio, the sequencer's seal, a live SSE stream or ?wait)
# holds one thread, not a whole worker. Sync workers carried half the webhooks of gthread at 32
# connections, and one SSE client would take a sync worker for its whole life. 320 threads a
# worker held 500 idle streams on two workers with a third to spare; a busy worker's CPU work
# still runs one thread at a time, so more threads cost memory, not throughput. gevent workers
# answered no webhook at all on PostgreSQL (before the writer seals: worker timeouts), so they
# are not a supported setup (bench/results/concurrency-writer-seals.md; the cause, something
# in the storage's threads or psycopg blocking the hub, is not tracked down).
import os as _os

workers = int(_os.environ.get("WEB_CONCURRENCY", "2"))   # about one per core
worker_class = "gthread"
threads = int(_os.environ.get("GUNICORN_THREADS", "320"))
worker_connections = 2000   # gthread: open connections a worker accepts (streams included)
keepalive = 5
# The first `import composio` in a worker can take seconds on a busy machine: a worker killed for
# it would never finish booting.
timeout = 60
graceful_timeout = 20       # open streams are cut then; browsers resume with Last-Event-ID
# -- end of workers -------------------------------------------------------------------------------
