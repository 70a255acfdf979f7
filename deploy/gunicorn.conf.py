"""gunicorn settings of one portal instance (README, "Production"); scripts/cluster and the
cross-instance tests (tests/cluster/) start every instance with this file:

    gunicorn -c deploy/gunicorn.conf.py --bind 127.0.0.1:8001 wsgi:app

Environment: PORTAL_WORKERS (processes, default 2) and PORTAL_THREADS (threads each, default 4).
"""

import os

# gthread: a worker serves several requests at once while each waits on PostgreSQL.
worker_class = "gthread"
workers = int(os.environ.get("PORTAL_WORKERS", "2"))
threads = int(os.environ.get("PORTAL_THREADS", "4"))
# Each worker imports the app itself (no preload), so SIGHUP loads new code: the master starts
# new workers and lets the old ones finish their requests (a graceful restart).
preload_app = False
# A worker whose request runs longer than this is killed and replaced.
timeout = 60
# On SIGTERM or a restart, requests under way get this long to finish.
graceful_timeout = 30
# Behind the balancer's keep-alive: it closes its server side after each answer
# (deploy/haproxy.cfg, http-server-close), so a short keep-alive is enough.
keepalive = 5
# Workers are replaced after this many requests (with jitter, so never all at once), which
# bounds what a slow leak can grow to.
max_requests = 5000
max_requests_jitter = 500
accesslog = None
errorlog = "-"
loglevel = os.environ.get("PORTAL_LOG_LEVEL", "warning")
