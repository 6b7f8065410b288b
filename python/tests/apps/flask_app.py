"""A Flask app limited by Flask-Limiter on the rld:// storage, for test_flask.py (run by
gunicorn with several workers). The limited endpoint answers with the worker's pid and
the CLOCK_MONOTONIC time it was admitted at (the same clock in every process)."""
import os
import time

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

import rld.limits  # noqa: F401  (registers rld://)

app = Flask(__name__)
limiter = Limiter(get_remote_address, app=app, storage_uri="rld://",
                  strategy=os.environ.get("RLD_TEST_STRATEGY", "fixed-window"),
                  headers_enabled=True)


@app.get("/limited")
@limiter.limit(os.environ.get("RLD_TEST_LIMIT", "10 per second"))
def limited():
    return f"{os.getpid()} {time.monotonic():.6f}"


@app.get("/free")
@limiter.exempt
def free():
    return str(os.getpid())
