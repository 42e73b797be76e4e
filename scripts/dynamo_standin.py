"""An in-memory DynamoDB for the drop benchmark: the requests Bibgate makes, each applied
atomically in well under a millisecond while the latency proxy overlaps the waits.

Why: the benchmark (scripts/bench-aws-drop.sh) puts a latency proxy (8 ms per DynamoDB
request) in front of the local AWS stand-in and measures how far the import overlaps its
requests. moto serves DynamoDB one request at a time (scripts/moto_server.py, because moto
is not safe under concurrent writes) and spends about 9 ms of Python on a request of the
import path: more than the 8 ms being simulated, so on moto every variant measures moto's
queue, not the client. This service keeps the whole table in dictionaries with an index
per global secondary index and applies a request in well under a millisecond, so the
injected latency is what a request costs and requests overlap as far as the client
overlaps them.

It speaks DynamoDB's JSON protocol (X-Amz-Target DynamoDB_20120810.*) for what the store
adapter (crates/store-aws) and scripts/aws_local.py use: CreateTable, DescribeTable,
DeleteTable, ListTables, UpdateTimeToLive, DescribeTimeToLive, UpdateContinuousBackups,
GetItem, PutItem, DeleteItem, UpdateItem, BatchGetItem, BatchWriteItem, Query (tables and
global secondary indexes, Select COUNT, pagination), Scan and TransactWriteItems
(cancellation reasons, idempotency tokens), with condition, key-condition, filter and
update expressions. DynamoDB's own checks it enforces where the adapter depends on them:
400 KB items, 100 actions per transaction and one action per item, 100 keys per
BatchGetItem without duplicates, no consistent reads on a global secondary index, keys of
the declared types. Anything else is answered with a ValidationException naming it,
never silently accepted.

Its fidelity is checked, not assumed: the store's contract suite
(`cargo test -p bibgate-store-aws --all-features --test contract`) runs against it as
against moto, in scripts/test.sh and before each benchmark (scripts/bench-aws-drop.sh).

It is a benchmark's instrument: the tests run on moto.

Served by scripts/latency_proxy.py (`--dynamodb-standin`), in its process: one request at
a time on its event loop, so each applies atomically.
"""

import base64
import collections
import functools
import json
import re
import time
from decimal import Decimal

PREFIX = "com.amazonaws.dynamodb.v20120810#"
MAX_ITEM_BYTES = 400 * 1024
MAX_PAGE_BYTES = 1024 * 1024
REGION = "us-east-1"
ACCOUNT = "123456789012"


class DynamoError(Exception):
    """An error answered to the client: its type, message and extra fields."""

    def __init__(self, kind, message, status=400, **extra):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.extra = extra


def validation(message):
    return DynamoError("ValidationException", message)


# ------------------------------------------------------------------ attribute values
def value_type(value):
    return next(iter(value))


def sort_key(value):
    """A key attribute's value in DynamoDB's order (S by code point = UTF-8 bytes, N by
    number, B by bytes)."""
    kind = value_type(value)
    if kind == "S":
        return value["S"]
    if kind == "N":
        return Decimal(value["N"])
    if kind == "B":
        return base64.b64decode(value["B"])
    raise validation(f"a key attribute cannot be of type {kind}")


def equal(a, b):
    if a is None or b is None:
        return False
    ka, kb = value_type(a), value_type(b)
    if ka != kb:
        return False
    if ka == "N":
        return Decimal(a["N"]) == Decimal(b["N"])
    if ka in ("NS",):
        return {Decimal(x) for x in a[ka]} == {Decimal(x) for x in b[kb]}
    if ka in ("SS", "BS"):
        return set(a[ka]) == set(b[kb])
    return a[ka] == b[kb]


def compare(a, b):
    """-1, 0 or 1, or None when the two cannot be ordered (missing or different types)."""
    if a is None or b is None:
        return None
    ka, kb = value_type(a), value_type(b)
    if ka != kb or ka not in ("S", "N", "B"):
        return None
    x, y = sort_key(a), sort_key(b)
    return (x > y) - (x < y)


def item_size(item):
    """An item's size as DynamoDB counts it, closely enough: names plus values."""
    size = 0
    for name, value in item.items():
        size += len(name.encode()) + len(json.dumps(value, separators=(",", ":")))
    return size


# ------------------------------------------------------------------ expressions
TOKEN = re.compile(r"\s*(?:(?P<name>#[A-Za-z0-9_]+)|(?P<value>:[A-Za-z0-9_]+)"
                   r"|(?P<op><>|<=|>=|=|<|>|\(|\)|,|\+|-|\.)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))")
KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN"}


@functools.lru_cache(maxsize=4096)
def tokenize(text):
    """An expression's tokens (a tuple; the same expressions come back request after
    request)."""
    tokens, at = [], 0
    text = text.rstrip()
    while at < len(text):
        match = TOKEN.match(text, at)
        if not match or match.end() == at:
            raise validation(f"Invalid expression: cannot read {text[at:]!r}")
        at = match.end()
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
    return tuple(tokens)


class Parser:
    """Expressions as nested tuples; names and values resolved at parse time."""

    def __init__(self, text, names, values):
        self.tokens = tokenize(text)
        self.at = 0
        self.names = names or {}
        self.values = values or {}
        self.used_names = set()
        self.used_values = set()

    def peek(self, offset=0):
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.at += 1
        return token

    def expect(self, text):
        kind, got = self.take()
        if got is None or got.upper() != text.upper():
            raise validation(f"Invalid expression: expected {text!r}, found {got!r}")

    def keyword(self, word):
        kind, got = self.peek()
        return kind == "word" and got.upper() == word

    def done(self):
        if self.at != len(self.tokens):
            raise validation(f"Invalid expression: unexpected {self.peek()[1]!r}")

    # paths and operands
    def path(self):
        kind, got = self.take()
        if kind == "name":
            if got not in self.names:
                raise validation(f"An expression attribute name used in the document path "
                                 f"is not defined; attribute name: {got}")
            self.used_names.add(got)
            name = self.names[got]
        elif kind == "word" and got.upper() not in KEYWORDS:
            name = got
        else:
            raise validation(f"Invalid expression: expected an attribute, found {got!r}")
        if self.peek()[1] == ".":
            raise validation("nested attribute paths are not supported by this stand-in")
        return ("path", name)

    def value(self):
        kind, got = self.take()
        if kind != "value":
            raise validation(f"Invalid expression: expected a value, found {got!r}")
        if got not in self.values:
            raise validation(f"An expression attribute value used in expression is not "
                             f"defined; attribute value: {got}")
        self.used_values.add(got)
        return ("value", self.values[got])

    def operand(self):
        kind, got = self.peek()
        if kind == "value":
            return self.value()
        if kind == "word" and got == "size" and self.peek(1)[1] == "(":
            self.take()
            self.expect("(")
            inner = self.path()
            self.expect(")")
            return ("size", inner)
        return self.path()

    # conditions
    def condition(self):
        return self.binary("OR", self.conjunction)

    def conjunction(self):
        return self.binary("AND", self.negation)

    def binary(self, word, operand):
        """`operand (word operand)*`, left-associative."""
        node = operand()
        while self.keyword(word):
            self.take()
            node = (word.lower(), node, operand())
        return node

    def negation(self):
        if self.keyword("NOT"):
            self.take()
            return ("not", self.negation())
        return self.primary()

    def primary(self):
        kind, got = self.peek()
        if got == "(":
            self.take()
            node = self.condition()
            self.expect(")")
            return node
        functions = ("attribute_exists", "attribute_not_exists", "attribute_type",
                     "begins_with", "contains")
        if kind == "word" and got in functions and self.peek(1)[1] == "(":
            self.take()
            self.expect("(")
            first = self.path() if got != "contains" and got != "begins_with" else self.operand()
            args = [first]
            while self.peek()[1] == ",":
                self.take()
                args.append(self.operand())
            self.expect(")")
            return ("call", got, args)
        left = self.operand()
        if self.keyword("BETWEEN"):
            self.take()
            low = self.operand()
            self.expect("AND")
            return ("between", left, low, self.operand())
        if self.keyword("IN"):
            self.take()
            self.expect("(")
            options = [self.operand()]
            while self.peek()[1] == ",":
                self.take()
                options.append(self.operand())
            self.expect(")")
            return ("in", left, options)
        kind, op = self.take()
        if op not in ("=", "<>", "<", "<=", ">", ">="):
            raise validation(f"Invalid expression: expected a comparator, found {op!r}")
        return ("cmp", op, left, self.operand())

    # update expressions
    def update(self):
        actions = []
        seen = set()
        while self.peek()[0] is not None:
            kind, clause = self.take()
            clause = (clause or "").upper()
            if clause in seen or clause not in ("SET", "REMOVE", "ADD", "DELETE"):
                raise validation(f"Invalid UpdateExpression: unexpected {clause!r}")
            seen.add(clause)
            while True:
                target = self.path()
                if clause == "SET":
                    self.expect("=")
                    actions.append(("set", target[1], self.set_value()))
                elif clause == "REMOVE":
                    actions.append(("remove", target[1]))
                else:
                    actions.append((clause.lower(), target[1], self.value()))
                if self.peek()[1] != ",":
                    break
                self.take()
        return actions

    def set_value(self):
        left = self.set_operand()
        if self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            return ("arith", op, left, self.set_operand())
        return left

    def set_operand(self):
        kind, got = self.peek()
        if kind == "word" and got in ("if_not_exists", "list_append") and self.peek(1)[1] == "(":
            self.take()
            self.expect("(")
            first = self.path() if got == "if_not_exists" else self.operand()
            self.expect(",")
            second = self.operand()
            self.expect(")")
            return (got, first, second)
        return self.operand()

    def unused(self, names, values):
        """DynamoDB refuses names and values an expression does not use."""
        check_used(names, values, self.used_names, self.used_values)


def operand_value(node, item):
    kind = node[0]
    if kind == "value":
        return node[1]
    if kind == "path":
        return item.get(node[1]) if item is not None else None
    if kind == "size":
        value = operand_value(node[1], item)
        if value is None:
            return None
        t = value_type(value)
        if t == "S":
            return {"N": str(len(value["S"].encode()))}
        if t == "B":
            return {"N": str(len(base64.b64decode(value["B"])))}
        if t in ("SS", "NS", "BS", "L"):
            return {"N": str(len(value[t]))}
        if t == "M":
            return {"N": str(len(value["M"]))}
        return None
    raise validation(f"cannot evaluate {kind}")


def holds(node, item):
    """Whether a condition holds for `item` (None: the item does not exist)."""
    kind = node[0]
    if kind == "or":
        return holds(node[1], item) or holds(node[2], item)
    if kind == "and":
        return holds(node[1], item) and holds(node[2], item)
    if kind == "not":
        return not holds(node[1], item)
    if kind == "cmp":
        op, left, right = node[1], operand_value(node[2], item), operand_value(node[3], item)
        if op == "=":
            return equal(left, right)
        if op == "<>":
            return left is not None and right is not None and not equal(left, right)
        order = compare(left, right)
        if order is None:
            return False
        return {"<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0}[op]
    if kind == "between":
        value = operand_value(node[1], item)
        low, high = compare(value, operand_value(node[2], item)), compare(
            value, operand_value(node[3], item))
        return low is not None and high is not None and low >= 0 and high <= 0
    if kind == "in":
        value = operand_value(node[1], item)
        return any(equal(value, operand_value(option, item)) for option in node[2])
    if kind == "call":
        name, args = node[1], node[2]
        if name == "attribute_exists":
            return operand_value(args[0], item) is not None
        if name == "attribute_not_exists":
            return operand_value(args[0], item) is None
        if name == "attribute_type":
            value = operand_value(args[0], item)
            wanted = operand_value(args[1], item)
            return value is not None and value_type(value) == wanted.get("S")
        if name == "begins_with":
            value, prefix = operand_value(args[0], item), operand_value(args[1], item)
            if value is None or prefix is None or value_type(value) != value_type(prefix):
                return False
            t = value_type(value)
            if t == "S":
                return value["S"].startswith(prefix["S"])
            if t == "B":
                return base64.b64decode(value["B"]).startswith(base64.b64decode(prefix["B"]))
            return False
        if name == "contains":
            value, part = operand_value(args[0], item), operand_value(args[1], item)
            if value is None or part is None:
                return False
            t = value_type(value)
            if t == "S" and value_type(part) == "S":
                return part["S"] in value["S"]
            if t in ("SS", "NS", "BS"):
                return any(equal({t[0]: member}, part) for member in value[t])
            if t == "L":
                return any(equal(member, part) for member in value["L"])
            return False
    raise validation(f"cannot evaluate {kind}")


def parse_condition(text, names, values):
    parser = Parser(text, names, values)
    node = parser.condition()
    parser.done()
    parser.unused(names, values)
    return node


def number(value, what):
    if value is None or value_type(value) != "N":
        raise validation(f"An operand in the update expression has an incorrect data type ({what})")
    return Decimal(value["N"])


def format_number(value):
    text = format(value.normalize(), "f")
    return text


def apply_update(actions, item):
    """The item after an update expression's actions, and the names they changed."""
    new = dict(item)
    changed = []
    for action in actions:
        kind, name = action[0], action[1]
        changed.append(name)
        if kind == "set":
            new[name] = set_value(action[2], item)
        elif kind == "remove":
            new.pop(name, None)
        elif kind == "add":
            delta = action[2][1]
            current = new.get(name)
            t = value_type(delta)
            if t == "N":
                base = number(current, "ADD") if current is not None else Decimal(0)
                new[name] = {"N": format_number(base + Decimal(delta["N"]))}
            elif t in ("SS", "NS", "BS"):
                members = list(current[t]) if current is not None else []
                for member in delta[t]:
                    if member not in members:
                        members.append(member)
                new[name] = {t: members}
            else:
                raise validation("ADD takes a number or a set")
        elif kind == "delete":
            delta = action[2][1]
            current = new.get(name)
            if current is not None:
                t = value_type(delta)
                members = [m for m in current[t] if m not in delta[t]]
                if members:
                    new[name] = {t: members}
                else:
                    new.pop(name)
    return new, changed


def set_value(node, item):
    kind = node[0]
    if kind == "arith":
        left, right = set_value(node[2], item), set_value(node[3], item)
        a, b = number(left, node[1]), number(right, node[1])
        return {"N": format_number(a + b if node[1] == "+" else a - b)}
    if kind == "if_not_exists":
        current = operand_value(node[1], item)
        return current if current is not None else set_value(node[2], item)
    if kind == "list_append":
        a, b = set_value(node[1], item), set_value(node[2], item)
        return {"L": a["L"] + b["L"]}
    value = operand_value(node, item)
    if value is None:
        raise validation("The provided expression refers to an attribute that does not exist "
                         "in the item")
    return value


# ------------------------------------------------------------------ tables
class Index:
    def __init__(self, name, keys, projection):
        self.name = name
        self.hash, self.range = keys
        self.projection = projection
        self.partitions = {}  # hash value key -> {primary key: item}


class Table:
    def __init__(self, request):
        self.name = request["TableName"]
        self.created = time.time()
        self.attributes = {a["AttributeName"]: a["AttributeType"]
                           for a in request["AttributeDefinitions"]}
        self.key_schema = request["KeySchema"]
        self.hash, self.range = keys_of(request["KeySchema"])
        self.indexes = {}
        self.index_requests = request.get("GlobalSecondaryIndexes", [])
        for index in self.index_requests:
            self.indexes[index["IndexName"]] = Index(
                index["IndexName"], keys_of(index["KeySchema"]),
                index.get("Projection", {}).get("ProjectionType", "ALL"))
        self.billing = request.get("BillingMode", "PROVISIONED")
        self.ttl = None
        self.partitions = {}  # hash value key -> {range value key: item}

    # keys
    def key_of(self, item):
        """The primary key of an item whose key was checked, as a hashable pair."""
        return (sort_key(item[self.hash]),
                sort_key(item[self.range]) if self.range is not None else None)

    def check_key(self, item):
        """The item's primary key as a hashable pair, after checking its types."""
        parts = []
        for name in (self.hash, self.range):
            if name is None:
                parts.append(None)
                continue
            value = item.get(name)
            if value is None:
                raise validation(f"One of the required keys was not given a value ({name})")
            if value_type(value) != self.attributes[name]:
                raise validation(f"One or more parameter values were invalid: Type mismatch "
                                 f"for key {name} expected: {self.attributes[name]} actual: "
                                 f"{value_type(value)}")
            if value_type(value) in ("S", "B") and not next(iter(value.values())):
                raise validation(f"One or more parameter values are not valid. The AttributeValue "
                                 f"for a key attribute cannot contain an empty string value. "
                                 f"Key: {name}")
            parts.append(sort_key(value))
        return tuple(parts)

    def key_only(self, key):
        names = {self.hash, self.range} - {None}
        if set(key) != names:
            raise validation("The provided key element does not match the schema")
        self.check_key(key)
        return key

    def get(self, key):
        hash_key, range_key = self.key_of(self.key_only(key))
        return self.partitions.get(hash_key, {}).get(range_key)

    # writes
    def check_item(self, item, measure=True):
        """Checks an item's keys and, when `measure` (a request that could hold one),
        its size."""
        self.check_key(item)
        for index in self.indexes.values():
            for name in (index.hash, index.range):
                if name is not None and name in item and value_type(item[name]) != self.attributes[name]:
                    raise validation(f"One or more parameter values were invalid: Type mismatch "
                                     f"for Index Key {name} Expected: {self.attributes[name]} "
                                     f"Actual: {value_type(item[name])} IndexName: {index.name}")
        if measure and item_size(item) > MAX_ITEM_BYTES:
            raise validation("Item size has exceeded the maximum allowed size")

    def put(self, item):
        hash_key, range_key = self.key_of(item)
        old = self.partitions.setdefault(hash_key, {}).get(range_key)
        if old is not None:
            self.unindex(old)
        self.partitions[hash_key][range_key] = item
        self.index(item)
        return old

    def delete(self, key):
        hash_key, range_key = self.key_of(key)
        partition = self.partitions.get(hash_key, {})
        old = partition.pop(range_key, None)
        if old is not None:
            self.unindex(old)
            if not partition:
                del self.partitions[hash_key]
        return old

    def index(self, item):
        primary = self.key_of(item)
        for index in self.indexes.values():
            if index.hash in item and (index.range is None or index.range in item):
                index.partitions.setdefault(sort_key(item[index.hash]), {})[primary] = item

    def unindex(self, item):
        primary = self.key_of(item)
        for index in self.indexes.values():
            if index.hash in item:
                partition = index.partitions.get(sort_key(item[index.hash]), {})
                partition.pop(primary, None)
                if not partition:
                    index.partitions.pop(sort_key(item[index.hash]), None)

    def count(self):
        return sum(len(p) for p in self.partitions.values())

    def describe(self):
        def schema_attributes():
            return [{"AttributeName": n, "AttributeType": t} for n, t in self.attributes.items()]
        description = {
            "TableName": self.name,
            "TableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.name}",
            "TableStatus": "ACTIVE",
            "CreationDateTime": self.created,
            "KeySchema": self.key_schema,
            "AttributeDefinitions": schema_attributes(),
            "ItemCount": self.count(),
            "TableSizeBytes": 0,
            "BillingModeSummary": {"BillingMode": self.billing},
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0,
                                      "NumberOfDecreasesToday": 0},
        }
        if self.index_requests:
            description["GlobalSecondaryIndexes"] = [
                {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"],
                 "Projection": index.get("Projection", {"ProjectionType": "ALL"}),
                 "IndexStatus": "ACTIVE", "ItemCount": 0, "IndexSizeBytes": 0,
                 "IndexArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.name}"
                             f"/index/{index['IndexName']}"}
                for index in self.index_requests]
        return description


def keys_of(schema):
    hash_name = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    range_name = next((k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"), None)
    return hash_name, range_name


def project(item, request, table, index):
    """The attributes a read returns: ProjectionExpression, else the index's projection."""
    if request.get("ProjectionExpression"):
        names = request.get("ExpressionAttributeNames", {})
        wanted = [names.get(p.strip(), p.strip())
                  for p in request["ProjectionExpression"].split(",")]
        return {n: item[n] for n in wanted if n in item}
    if index is not None and index.projection == "KEYS_ONLY":
        keep = {table.hash, table.range, index.hash, index.range} - {None}
        return {n: v for n, v in item.items() if n in keep}
    return item


# ------------------------------------------------------------------ the service
class Service:
    def __init__(self):
        self.tables = {}
        # Whether the request being served is large enough to hold an item over the limit.
        self.large = True
        self.tokens = {}  # ClientRequestToken -> (time, actions), for 10 minutes
        self.token_times = collections.deque()  # (time, token), oldest first

    def table(self, name):
        table = self.tables.get(name)
        if table is None:
            raise DynamoError("ResourceNotFoundException",
                              f"Requested resource not found: Table: {name} not found")
        return table

    def call(self, operation, request, request_bytes=None):
        method = getattr(self, "op_" + operation, None)
        if method is None:
            raise DynamoError("UnknownOperationException",
                              f"{operation} is not served by this stand-in")
        self.large = request_bytes is None or request_bytes > MAX_ITEM_BYTES
        return method(request)

    # tables
    def op_CreateTable(self, request):
        if request["TableName"] in self.tables:
            raise DynamoError("ResourceInUseException",
                              f"Table already exists: {request['TableName']}")
        table = Table(request)
        self.tables[table.name] = table
        return {"TableDescription": table.describe()}

    def op_DescribeTable(self, request):
        return {"Table": self.table(request["TableName"]).describe()}

    def op_DeleteTable(self, request):
        table = self.table(request["TableName"])
        del self.tables[table.name]
        return {"TableDescription": table.describe()}

    def op_ListTables(self, request):
        return {"TableNames": sorted(self.tables)}

    def op_UpdateTimeToLive(self, request):
        table = self.table(request["TableName"])
        spec = request["TimeToLiveSpecification"]
        table.ttl = spec["AttributeName"] if spec.get("Enabled") else None
        return {"TimeToLiveSpecification": spec}

    def op_DescribeTimeToLive(self, request):
        table = self.table(request["TableName"])
        if table.ttl is None:
            return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED",
                                          "AttributeName": table.ttl}}

    def op_UpdateContinuousBackups(self, request):
        self.table(request["TableName"])
        enabled = request.get("PointInTimeRecoverySpecification", {}).get(
            "PointInTimeRecoveryEnabled", False)
        return {"ContinuousBackupsDescription": {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": {
                "PointInTimeRecoveryStatus": "ENABLED" if enabled else "DISABLED"}}}

    # single items
    def condition_holds(self, request, item):
        text = request.get("ConditionExpression")
        if not text:
            return True
        node = parse_condition(text, request.get("ExpressionAttributeNames"),
                               request.get("ExpressionAttributeValues"))
        return holds(node, item)

    @staticmethod
    def returned(request, old, new, changed=()):
        wanted = request.get("ReturnValues", "NONE")
        if wanted == "ALL_OLD" and old:
            return {"Attributes": old}
        if wanted == "ALL_NEW" and new:
            return {"Attributes": new}
        if wanted == "UPDATED_OLD" and old:
            return {"Attributes": {n: old[n] for n in changed if n in old}}
        if wanted == "UPDATED_NEW" and new:
            return {"Attributes": {n: new[n] for n in changed if n in new}}
        return {}

    def op_GetItem(self, request):
        table = self.table(request["TableName"])
        item = table.get(request["Key"])
        return {"Item": project(item, request, table, None)} if item is not None else {}

    def op_PutItem(self, request):
        table = self.table(request["TableName"])
        item = request["Item"]
        table.check_item(item, self.large)
        current = table.get({n: item[n] for n in (table.hash, table.range) if n})
        if not self.condition_holds(request, current):
            raise DynamoError("ConditionalCheckFailedException", "The conditional request failed")
        old = table.put(item)
        return self.returned(request, old, item)

    def op_DeleteItem(self, request):
        table = self.table(request["TableName"])
        current = table.get(request["Key"])
        if not self.condition_holds(request, current):
            raise DynamoError("ConditionalCheckFailedException", "The conditional request failed")
        old = table.delete(request["Key"]) if current is not None else None
        return self.returned(request, old, None)

    def updated(self, table, request, current):
        parser = Parser(request["UpdateExpression"], request.get("ExpressionAttributeNames"),
                        request.get("ExpressionAttributeValues"))
        actions = parser.update()
        parser.done()
        if request.get("ConditionExpression"):
            condition = Parser(request["ConditionExpression"], request.get(
                "ExpressionAttributeNames"), request.get("ExpressionAttributeValues"))
            node = condition.condition()
            condition.done()
            parser.used_names |= condition.used_names
            parser.used_values |= condition.used_values
        else:
            node = None
        parser.unused(request.get("ExpressionAttributeNames"),
                      request.get("ExpressionAttributeValues"))
        key = table.key_only(request["Key"])
        for action in actions:
            if action[1] in key:
                raise validation(f"One or more parameter values were invalid: Cannot update "
                                 f"attribute {action[1]}. This attribute is part of the key")
        if node is not None and not holds(node, current):
            return None, None, key
        new, changed = apply_update(actions, current if current is not None else dict(key))
        table.check_item(new, self.large)
        return new, changed, key

    def op_UpdateItem(self, request):
        table = self.table(request["TableName"])
        current = table.get(request["Key"])
        new, changed, _ = self.updated(table, request, current)
        if new is None:
            raise DynamoError("ConditionalCheckFailedException", "The conditional request failed")
        table.put(new)
        return self.returned(request, current, new, changed)

    # batches
    def op_BatchGetItem(self, request):
        responses, total = {}, 0
        for name, wanted in request["RequestItems"].items():
            table = self.table(name)
            keys = wanted["Keys"]
            seen = set()
            for key in keys:
                primary = table.key_of(table.key_only(key))
                if primary in seen:
                    raise validation("Provided list of item keys contains duplicates")
                seen.add(primary)
            total += len(keys)
            found = []
            for key in keys:
                item = table.get(key)
                if item is not None:
                    found.append(project(item, wanted, table, None))
            responses[name] = found
        if total > 100:
            raise validation("Too many items requested for the BatchGetItem call")
        return {"Responses": responses, "UnprocessedKeys": {}}

    def op_BatchWriteItem(self, request):
        writes = [(name, write) for name, ws in request["RequestItems"].items() for write in ws]
        if len(writes) > 25:
            raise validation("Too many items requested for the BatchWriteItem call")
        for name, write in writes:
            table = self.table(name)
            if "PutRequest" in write:
                table.check_item(write["PutRequest"]["Item"], self.large)
                table.put(write["PutRequest"]["Item"])
            else:
                table.delete(table.key_only(write["DeleteRequest"]["Key"]))
        return {"UnprocessedItems": {}}

    # reads of many items
    def op_Query(self, request):
        table = self.table(request["TableName"])
        index = None
        if request.get("IndexName"):
            index = table.indexes.get(request["IndexName"])
            if index is None:
                raise validation(f"The table does not have the specified index: "
                                 f"{request['IndexName']}")
            if request.get("ConsistentRead"):
                raise validation("Consistent reads are not supported on global secondary indexes")
        hash_name = index.hash if index else table.hash
        range_name = index.range if index else table.range
        names = request.get("ExpressionAttributeNames")
        values = request.get("ExpressionAttributeValues")
        key_parser = Parser(request["KeyConditionExpression"], names, values)
        key_node = key_parser.condition()
        key_parser.done()
        filter_node = None
        used_names, used_values = set(key_parser.used_names), set(key_parser.used_values)
        if request.get("FilterExpression"):
            filter_parser = Parser(request["FilterExpression"], names, values)
            filter_node = filter_parser.condition()
            filter_parser.done()
            used_names |= filter_parser.used_names
            used_values |= filter_parser.used_values
        if request.get("ProjectionExpression"):
            used_names |= {p.strip() for p in request["ProjectionExpression"].split(",")}
        check_used(names, values, used_names, used_values)
        hash_value = partition_value(key_node, hash_name)
        if index is None:
            partition = table.partitions.get(sort_key(hash_value), {})
            candidates = sorted(partition.items(), key=lambda pair: pair[0])
            candidates = [(((k,) if k is not None else ()), item) for k, item in candidates]
        else:
            partition = index.partitions.get(sort_key(hash_value), {})
            candidates = sorted(
                (((sort_key(item[range_name]),) if range_name else ()) + primary, item)
                for primary, item in partition.items())
        if request.get("ScanIndexForward") is False:
            candidates.reverse()
        matching = [(position, item) for position, item in candidates if holds(key_node, item)]
        return self.page(request, table, index, matching, filter_node,
                         lambda item: position_of(table, index, item))

    def op_Scan(self, request):
        table = self.table(request["TableName"])
        if request.get("IndexName"):
            raise validation("Scan of an index is not served by this stand-in")
        names = request.get("ExpressionAttributeNames")
        values = request.get("ExpressionAttributeValues")
        filter_node = None
        if request.get("FilterExpression"):
            parser = Parser(request["FilterExpression"], names, values)
            filter_node = parser.condition()
            parser.done()
            check_used(names, values, parser.used_names, parser.used_values)
        candidates = sorted(((h, r), item) for h, partition in table.partitions.items()
                            for r, item in partition.items())
        return self.page(request, table, None, candidates, filter_node,
                         lambda item: table.key_of(item))

    def page(self, request, table, index, candidates, filter_node, position_of_item):
        start = request.get("ExclusiveStartKey")
        if start:
            after = position_of_item(start)
            reverse = request.get("ScanIndexForward") is False
            candidates = [(p, item) for p, item in candidates
                          if (p < after if reverse else p > after)]
        limit = request.get("Limit")
        items, evaluated, size, last = [], 0, 0, None
        for position, item in candidates:
            if (limit is not None and evaluated >= limit) or size >= MAX_PAGE_BYTES:
                break
            evaluated += 1
            size += item_size(item)
            last = item
            if filter_node is None or holds(filter_node, item):
                items.append(item)
        result = {"Count": len(items), "ScannedCount": evaluated}
        if request.get("Select") != "COUNT":
            result["Items"] = [project(item, request, table, index) for item in items]
        if last is not None and evaluated < len(candidates):
            keys = {table.hash, table.range}
            if index is not None:
                keys |= {index.hash, index.range}
            result["LastEvaluatedKey"] = {n: last[n] for n in keys - {None}}
        return result

    # transactions
    def op_TransactWriteItems(self, request):
        actions = request["TransactItems"]
        if not actions or len(actions) > 100:
            raise validation("Member must have length less than or equal to 100 "
                             "(TransactItems)")
        token = request.get("ClientRequestToken")
        now = time.monotonic()
        if token is not None:
            seen = self.tokens.get(token)
            if seen is not None and now - seen[0] < 600:
                if seen[1] != actions:
                    raise DynamoError("IdempotentParameterMismatchException",
                                      "The request uses the same client token as a previous, "
                                      "but non-identical request")
                return {}
        planned, touched, reasons, failed = [], set(), [], False
        for action in actions:
            (kind, body), = action.items()
            table = self.table(body["TableName"])
            if kind == "Put":
                table.check_item(body["Item"], self.large)
                key = {n: body["Item"][n] for n in (table.hash, table.range) if n}
            else:
                key = table.key_only(body["Key"])
            identity = (table.name, table.key_of(key))
            if identity in touched:
                raise validation("Transaction request cannot include multiple operations on "
                                 "one item")
            touched.add(identity)
            current = table.get(key)
            if kind == "Update":
                new, _, _ = self.updated(table, body, current)
                ok = new is not None
            else:
                ok = self.condition_holds(body, current)
                new = body.get("Item")
            if ok:
                reasons.append({"Code": "None"})
            else:
                failed = True
                reason = {"Code": "ConditionalCheckFailed",
                          "Message": "The conditional request failed"}
                if body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    reason["Item"] = current
                reasons.append(reason)
            planned.append((kind, table, key, new))
        if failed:
            codes = ", ".join(r["Code"] for r in reasons)
            raise DynamoError("TransactionCanceledException",
                              f"Transaction cancelled, please refer cancellation reasons for "
                              f"specific reasons [{codes}]", CancellationReasons=reasons)
        for kind, table, key, new in planned:
            if kind in ("Put", "Update"):
                table.put(new)
            elif kind == "Delete":
                table.delete(key)
        if token is not None:
            # Requests are parsed anew and never changed in place: no copy needed.
            self.tokens[token] = (now, actions)
            self.token_times.append((now, token))
            while self.token_times and now - self.token_times[0][0] >= 600:
                _, old = self.token_times.popleft()
                if old in self.tokens and now - self.tokens[old][0] >= 600:
                    del self.tokens[old]
        return {}


def check_used(names, values, used_names, used_values):
    for name in names or {}:
        if name not in used_names:
            raise validation(f"Value provided in ExpressionAttributeNames unused in expressions: "
                             f"keys: {{{name}}}")
    for value in values or {}:
        if value not in used_values:
            raise validation(f"Value provided in ExpressionAttributeValues unused in "
                             f"expressions: keys: {{{value}}}")


def partition_value(node, hash_name):
    """The value a key condition gives the partition key (`hash = :v`, alone or in an AND)."""
    parts, stack = [], [node]
    while stack:
        part = stack.pop()
        if part[0] == "and":
            stack.extend((part[1], part[2]))
        else:
            parts.append(part)
    for part in parts:
        if part[0] == "cmp" and part[1] == "=":
            left, right = part[2], part[3]
            if left[0] == "path" and left[1] == hash_name and right[0] == "value":
                return right[1]
            if right[0] == "path" and right[1] == hash_name and left[0] == "value":
                return left[1]
    raise validation("Query condition missed key schema element")


def position_of(table, index, item):
    primary = table.key_of(item)
    if index is None:
        return tuple(p for p in primary[1:2] if p is not None) if table.range else ()
    return ((sort_key(item[index.range]),) if index.range else ()) + primary


# ------------------------------------------------------------------ the protocol
def respond(service, target, raw):
    """The status and JSON body answering one request (its X-Amz-Target and body)."""
    if not target.startswith("DynamoDB_20120810."):
        payload = {"__type": PREFIX + "UnknownOperationException",
                   "message": f"not a DynamoDB request: {target!r}"}
        return 400, json.dumps(payload).encode()
    try:
        request = json.loads(raw or b"{}")
        answer = service.call(target.split(".", 1)[1], request, len(raw or b""))
        return 200, json.dumps(answer, separators=(",", ":")).encode()
    except DynamoError as err:
        payload = {"__type": PREFIX + err.kind, "message": err.message}
        payload.update(err.extra)
        return err.status, json.dumps(payload).encode()
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        payload = {"__type": PREFIX + "ValidationException",
                   "message": f"malformed request: {err!r}"}
        return 400, json.dumps(payload).encode()
