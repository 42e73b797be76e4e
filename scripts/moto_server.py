"""moto's server for the tests, with every DynamoDB request applied atomically.

Real DynamoDB applies each request (an UpdateItem ADD, a TransactWriteItems) atomically;
moto's threaded server does not: two concurrent `ADD` updates of one counter can both read
the old value, and concurrent transactions can fail with HTTP 500. The adapters are written
for DynamoDB, so the test double is made to behave like it, here, and not the adapters:
DynamoDB requests are served one at a time; S3 and SQS (long polls) stay concurrent.

moto's `TransactWriteItems` also deep-copies the whole table before every action of a
transaction (its way to roll back), so on moto a commit's cost grows with the table: at
30,000 items a commit takes seconds, which says nothing about DynamoDB and makes any
benchmark of more than a few hundred records measure moto. Since DynamoDB requests are
served one at a time here, the rollback is done with an undo log instead: before the
transaction, the items its actions name are remembered (an item an `Update` would change in
place is replaced by a copy first), no table is copied, and if the transaction fails those
items are put back. The outcome of every request is the same as moto's.

Usage: python3 scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import argparse
import os
import socket
import threading

from moto.moto_server.threaded_moto_server import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import WSGIRequestHandler, run_simple


def install_transaction_undo_log() -> None:
    """Replaces moto's whole-table copy in `TransactWriteItems` with an undo log of the
    items the transaction names (see the module docs). Relies on DynamoDB requests being
    served one at a time."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    real_copy = models.copy

    class NoTableCopy:
        """`copy` for moto's DynamoDB backend: a Table is not copied (the undo log below
        restores what a failed transaction changed); anything else is."""

        def deepcopy(self, value, memo=None):
            if isinstance(value, Table):
                return value
            return real_copy.deepcopy(value, memo)

        def __getattr__(self, name):
            return getattr(real_copy, name)

    models.copy = NoTableCopy()
    transact = models.DynamoDBBackend.transact_write_items

    def transact_with_undo_log(self, transact_items):
        undo = []
        for action in transact_items:
            op_type, op = next(iter(action.items()))
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            attrs = op.get("Item") if op_type == "Put" else op.get("Key")
            if table is None or not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
                continue
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in attrs:
                    continue
                range_value = DynamoType(attrs[table.range_key_attr])
            current = table.get_item(hash_value, range_value)
            if current is not None and op_type == "Update":
                # An update changes the item in place: it changes a copy, the log keeps
                # the original.
                copied = real_copy.deepcopy(current)
                if range_value is None:
                    table.items[hash_value] = copied
                else:
                    table.items[hash_value][range_value] = copied
            undo.append((table, hash_value, range_value, current))
        try:
            return transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(undo):
                if range_value is None:
                    if item is None:
                        table.items.pop(hash_value, None)
                    else:
                        table.items[hash_value] = item
                elif item is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = item
            raise

    models.DynamoDBBackend.transact_write_items = transact_with_undo_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    install_transaction_undo_log()

    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                # The whole response is produced inside the lock.
                return [b"".join(app(environ, start_response))]
        return app(environ, start_response)

    # Responses are written in pieces (status and headers, then the body): without
    # TCP_NODELAY, Nagle's algorithm and the client's delayed ACK can hold each request up to
    # 40 ms.
    setup = WSGIRequestHandler.setup

    def setup_nodelay(handler):
        setup(handler)
        handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    WSGIRequestHandler.setup = setup_nodelay
    run_simple(args.host, args.port, serve, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
