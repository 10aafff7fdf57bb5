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
