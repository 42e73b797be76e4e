"""moto's server for the tests, with every DynamoDB request applied atomically.

Real DynamoDB applies each request (an UpdateItem ADD, a TransactWriteItems) atomically;
moto's threaded server does not: two concurrent `ADD` updates of one counter can both read
the old value, and concurrent transactions can fail with HTTP 500. The adapters are written
for DynamoDB, so the test double is made to behave like it, here, and not the adapters:
DynamoDB requests are served one at a time; S3 and SQS (long polls) stay concurrent.

Usage: python3 scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import argparse
import os
import threading

from moto.moto_server.threaded_moto_server import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                # The whole response is produced inside the lock.
                return [b"".join(app(environ, start_response))]
        return app(environ, start_response)

    run_simple(args.host, args.port, serve, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
