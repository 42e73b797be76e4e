"""Creates the data resources of infra/template.yaml on a local AWS-protocol endpoint (moto),
as the template declares them, and checks them against it.

    python3 scripts/aws_local.py provision --endpoint URL [--template FILE] [--environment dev]
        creates the bucket, the table and the queues (with the bucket's S3 -> SQS
        notifications), then prints `export` lines for a shell: the endpoint, test
        credentials, BIBGATE_BACKEND/BUCKET/TABLE, BIBGATE_QUEUE_URL (the queues the import
        processor functions read, comma-separated: the inbox queue first, then the drop
        queue), BIBGATE_DLQ_URL (their dead-letter queues, in the same order) and the
        functions' plain-string environment variables (e.g. MALLOC_MMAP_THRESHOLD_), so
        `bibgate-import-processor poll` runs as the template configures the Lambda.
    python3 scripts/aws_local.py check --endpoint URL [...]
        compares what the endpoint holds with the template (key schema, indexes, TTL, queue
        settings, redrive, notifications, versioning); exits 1 listing every difference.

Only the data resources are created (AWS::S3::Bucket, AWS::DynamoDB::Table,
AWS::SQS::Queue): the function runs as `bibgate-import-processor poll`, the shim as
`bibgate serve --backend aws`. A property of those types that this script does not know
is an error, so the template cannot gain a setting that the local stand-in silently drops.
"""

import argparse
import json
import re
import sys

import boto3
import yaml

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

# Per resource type: the properties applied here, and those that mean nothing locally.
KNOWN = {
    "AWS::S3::Bucket": {
        "apply": {"BucketName", "VersioningConfiguration", "NotificationConfiguration",
                  "LifecycleConfiguration", "PublicAccessBlockConfiguration", "BucketEncryption"},
        "local_noop": {"OwnershipControls"},
    },
    "AWS::DynamoDB::Table": {
        "apply": {"TableName", "BillingMode", "AttributeDefinitions", "KeySchema",
                  "GlobalSecondaryIndexes", "TimeToLiveSpecification", "SSESpecification",
                  "PointInTimeRecoverySpecification"},
        "local_noop": {"DeletionProtectionEnabled"},
    },
    "AWS::SQS::Queue": {
        "apply": {"QueueName", "VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy",
                  "ReceiveMessageWaitTimeSeconds", "DelaySeconds", "MaximumMessageSize"},
        "local_noop": {"SqsManagedSseEnabled"},
    },
}
QUEUE_ATTRIBUTES = ["VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                    "DelaySeconds", "MaximumMessageSize"]


class Fail(Exception):
    pass


# --------------------------------------------------------------------- template reading
class Loader(yaml.SafeLoader):
    pass


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}
    return construct


for short, full in [("Ref", "Ref"), ("Sub", "Fn::Sub"), ("GetAtt", "Fn::GetAtt"), ("If", "Fn::If"),
                    ("Not", "Fn::Not"), ("Equals", "Fn::Equals"), ("Join", "Fn::Join"),
                    ("Select", "Fn::Select"), ("Split", "Fn::Split"), ("And", "Fn::And"),
                    ("Or", "Fn::Or"), ("Condition", "Condition")]:
    Loader.add_constructor("!" + short, _tag(full))


class Template:
    def __init__(self, path, environment):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.load(f, Loader=Loader)
        self.resources = self.doc.get("Resources", {})
        self.parameters = {}
        for name, spec in self.doc.get("Parameters", {}).items():
            if "Default" in spec:
                self.parameters[name] = spec["Default"]
        if environment is not None:
            self.parameters["Environment"] = environment
        self.parameters.update({"AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                                "AWS::Partition": PARTITION})
        self.conditions = {}

    def of_type(self, kind):
        return {name: r for name, r in self.resources.items() if r.get("Type") == kind}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.doc["Conditions"][name]))
        return self.conditions[name]

    def name_of(self, logical):
        resource = self.resources[logical]
        kind = resource["Type"]
        props = resource.get("Properties", {})
        key = {"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName",
               "AWS::SQS::Queue": "QueueName"}.get(kind)
        if key is None or key not in props:
            raise Fail(f"{logical} ({kind}) has no name this script can use")
        return self.resolve(props[key])

    def ref(self, name):
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            kind = self.resources[name]["Type"]
            if kind == "AWS::SQS::Queue":
                return queue_url_of(self.name_of(name))
            return self.name_of(name)
        raise Fail(f"!Ref {name}: not a parameter with a default or a data resource")

    def get_att(self, logical, attribute):
        kind = self.resources[logical]["Type"]
        name = self.name_of(logical)
        if attribute == "Arn":
            if kind == "AWS::SQS::Queue":
                return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}"
            if kind == "AWS::S3::Bucket":
                return f"arn:{PARTITION}:s3:::{name}"
            if kind == "AWS::DynamoDB::Table":
                return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        if attribute == "QueueUrl" and kind == "AWS::SQS::Queue":
            return queue_url_of(name)
        raise Fail(f"!GetAtt {logical}.{attribute} is not supported here")

    def resolve(self, value):
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

                def sub(m):
                    var = m.group(1)
                    if var in variables:
                        return str(self.resolve(variables[var]))
                    if "." in var:
                        logical, attribute = var.split(".", 1)
                        return str(self.get_att(logical, attribute))
                    return str(self.ref(var))
                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Condition":
                return self.condition(arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def props(self, logical):
        resource = self.resources[logical]
        kind = resource["Type"]
        props = resource.get("Properties", {})
        known = KNOWN[kind]["apply"] | KNOWN[kind]["local_noop"]
        unknown = sorted(set(props) - known)
        if unknown:
            raise Fail(f"{logical} ({kind}): scripts/aws_local.py does not know "
                       f"{', '.join(unknown)}; teach it, so the local stand-in matches the template")
        return self.resolve(props)

    def function_settings(self):
        """The functions' environment variables that are plain strings in the template
        (Globals and each function; not the names of resources, which provision gives),
        so a local process runs as the template configures the Lambda."""
        settings = {}
        scopes = [self.doc.get("Globals", {}).get("Function", {})]
        scopes += [r.get("Properties", {}) for r in self.resources.values()
                   if r.get("Type") == "AWS::Serverless::Function"]
        for scope in scopes:
            variables = scope.get("Environment", {}).get("Variables", {})
            for name, value in variables.items():
                if not isinstance(value, str):
                    continue
                if settings.get(name, value) != value:
                    raise Fail(f"the functions set {name} to {settings[name]!r} and {value!r}")
                settings[name] = value
        return settings

    def function_queues(self):
        """The queues the import processor function reads (its SQS event sources)."""
        queues = []
        for logical, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == "SQS":
                    arn = self.resolve(event["Properties"]["Queue"])
                    queues.append(arn.rsplit(":", 1)[1])
        return queues


ENDPOINT = {"url": None}


def queue_url_of(name):
    return f"{ENDPOINT['url']}/{ACCOUNT}/{name}"


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT["url"], region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


# --------------------------------------------------------------------- provisioning
def queue_attributes(props):
    attributes = {name: str(props[name]) for name in QUEUE_ATTRIBUTES if name in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    return attributes


def create_queues(template):
    sqs = client("sqs")
    queues = template.of_type("AWS::SQS::Queue")
    # Dead-letter queues first: a redrive policy names an existing queue.
    order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    urls = {}
    for logical in order:
        props = template.props(logical)
        urls[props["QueueName"]] = sqs.create_queue(
            QueueName=props["QueueName"], Attributes=queue_attributes(props))["QueueUrl"]
    return urls


def key_schema(schema):
    return [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema]


def create_table(template, logical):
    props = template.props(logical)
    dynamodb = client("dynamodb")
    request = {
        "TableName": props["TableName"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": key_schema(props["KeySchema"]),
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            {"IndexName": g["IndexName"], "KeySchema": key_schema(g["KeySchema"]),
             "Projection": g["Projection"]} for g in props["GlobalSecondaryIndexes"]]
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        request["SSESpecification"] = {"Enabled": True}
    dynamodb.create_table(**request)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=props["TableName"], TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})
    pitr = props.get("PointInTimeRecoverySpecification", {})
    if pitr.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=props["TableName"],
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    return props["TableName"]


def lifecycle_rules(rules):
    out = []
    for rule in rules:
        r = {"ID": rule["Id"], "Status": rule["Status"],
             "Filter": {"Prefix": rule.get("Prefix", "")}}
        if "ExpirationInDays" in rule:
            r["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            r["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])}
        if "AbortIncompleteMultipartUpload" in rule:
            r["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation":
                    int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
        out.append(r)
    return out


def queue_notifications(props):
    out = []
    for c in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
        entry = {"QueueArn": c["Queue"], "Events": [c["Event"]]}
        rules = c.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": [
                {"Name": r["Name"].lower(), "Value": r["Value"]} for r in rules]}}
        out.append(entry)
    return out


def create_bucket(template, logical):
    props = template.props(logical)
    s3 = client("s3")
    name = props["BucketName"]
    s3.create_bucket(Bucket=name)
    if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props[
            "PublicAccessBlockConfiguration"])
    if "BucketEncryption" in props:
        rules = [{("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault"
                   else k): v for k, v in rule.items()}
                 for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={
            "Rules": lifecycle_rules(props["LifecycleConfiguration"]["Rules"])})
    notifications = queue_notifications(props)
    if notifications:
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
            "QueueConfigurations": notifications})
    return name


def provision(template):
    queue_urls = create_queues(template)
    tables = [create_table(template, t) for t in template.of_type("AWS::DynamoDB::Table")]
    buckets = [create_bucket(template, b) for b in template.of_type("AWS::S3::Bucket")]
    if len(tables) != 1 or len(buckets) != 1:
        raise Fail(f"expected one table and one bucket, the template has {tables} and {buckets}")
    sources = template.function_queues()
    if not sources:
        raise Fail("no SQS event source of a function in the template")
    dead_letters = []
    for logical, queue in template.of_type("AWS::SQS::Queue").items():
        props = template.props(logical)
        if props["QueueName"] in sources and "RedrivePolicy" in props:
            dead_letters.append(props["RedrivePolicy"]["deadLetterTargetArn"].rsplit(":", 1)[1])
    # The notifications' first message is s3:TestEvent: take it, as the Lambda service
    # acknowledges it, so the queues start empty.
    sqs = client("sqs")
    for name in sources:
        for _ in range(3):
            got = sqs.receive_message(QueueUrl=queue_urls[name], MaxNumberOfMessages=10,
                                      WaitTimeSeconds=1).get("Messages", [])
            for m in got:
                if "s3:TestEvent" in m["Body"]:
                    sqs.delete_message(QueueUrl=queue_urls[name], ReceiptHandle=m["ReceiptHandle"])
            if got:
                break
    return {
        **template.function_settings(),
        "AWS_ENDPOINT_URL": ENDPOINT["url"],
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION,
        "BIBGATE_BACKEND": "aws",
        "BIBGATE_BUCKET": buckets[0],
        "BIBGATE_TABLE": tables[0],
        "BIBGATE_QUEUE_URL": ",".join(queue_urls[n] for n in sources),
        "BIBGATE_DLQ_URL": ",".join(queue_urls[n] for n in dead_letters),
    }


# --------------------------------------------------------------------- checking
def check(template):
    problems = []

    def expect(what, found, wanted):
        if found != wanted:
            problems.append(f"{what}: the endpoint has {found!r}, the template declares {wanted!r}")

    dynamodb = client("dynamodb")
    for logical in template.of_type("AWS::DynamoDB::Table"):
        props = template.props(logical)
        table = dynamodb.describe_table(TableName=props["TableName"])["Table"]
        expect(f"{logical} key schema", key_schema(table["KeySchema"]), key_schema(props["KeySchema"]))
        expect(f"{logical} attributes",
               sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
               sorted((a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]))
        found = {g["IndexName"]: (key_schema(g["KeySchema"]), g["Projection"]["ProjectionType"])
                 for g in table.get("GlobalSecondaryIndexes", [])}
        wanted = {g["IndexName"]: (key_schema(g["KeySchema"]), g["Projection"]["ProjectionType"])
                  for g in props.get("GlobalSecondaryIndexes", [])}
        expect(f"{logical} global secondary indexes", found, wanted)
        ttl = dynamodb.describe_time_to_live(TableName=props["TableName"])["TimeToLiveDescription"]
        wanted_ttl = props.get("TimeToLiveSpecification", {})
        expect(f"{logical} TTL attribute", ttl.get("AttributeName"),
               wanted_ttl.get("AttributeName") if wanted_ttl.get("Enabled") else None)
    sqs = client("sqs")
    for logical in template.of_type("AWS::SQS::Queue"):
        props = template.props(logical)
        url = sqs.get_queue_url(QueueName=props["QueueName"])["QueueUrl"]
        found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for name in QUEUE_ATTRIBUTES:
            if name in props:
                expect(f"{logical} {name}", found.get(name), str(props[name]))
        if "RedrivePolicy" in props:
            redrive = json.loads(found.get("RedrivePolicy", "{}"))
            expect(f"{logical} redrive target", redrive.get("deadLetterTargetArn"),
                   props["RedrivePolicy"]["deadLetterTargetArn"])
            expect(f"{logical} maxReceiveCount", int(redrive.get("maxReceiveCount", 0)),
                   int(props["RedrivePolicy"]["maxReceiveCount"]))
    s3 = client("s3")
    for logical in template.of_type("AWS::S3::Bucket"):
        props = template.props(logical)
        name = props["BucketName"]
        config = s3.get_bucket_notification_configuration(Bucket=name)

        def shape(configs):
            return sorted((c["QueueArn"], tuple(c["Events"]),
                           tuple((r["Name"].lower(), r["Value"]) for r in
                                 c.get("Filter", {}).get("Key", {}).get("FilterRules", [])))
                          for c in configs)
        expect(f"{logical} notifications", shape(config.get("QueueConfigurations", [])),
               shape(queue_notifications(props)))
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status")
        expect(f"{logical} versioning", versioning,
               props.get("VersioningConfiguration", {}).get("Status"))
    problems.extend(template_rules(template))
    return problems


def template_rules(template):
    """Rules between the template's own settings."""
    problems = []
    retention = [int(template.props(q).get("MessageRetentionPeriod", 345600))
                 for q in template.of_type("AWS::SQS::Queue")]
    for logical in template.of_type("AWS::S3::Bucket"):
        rules = template.props(logical).get("LifecycleConfiguration", {}).get("Rules", [])
        for rule in rules:
            if rule.get("Prefix") == "inbox/" and "ExpirationInDays" in rule:
                lifetime = int(rule["ExpirationInDays"]) * 86400
                if retention and lifetime <= max(retention):
                    problems.append(
                        f"{logical}: inbox objects expire after {lifetime} s, not after the "
                        f"longest queue retention ({max(retention)} s): a re-driven export "
                        "would find its bytes gone")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["provision", "check"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--template", default="infra/template.yaml")
    parser.add_argument("--environment", default=None,
                        help="the template's Environment parameter (default: its default)")
    args = parser.parse_args()
    ENDPOINT["url"] = args.endpoint.rstrip("/")
    try:
        template = Template(args.template, args.environment)
        if args.command == "provision":
            for name, value in provision(template).items():
                print(f"export {name}='{value}'")
        else:
            problems = check(template)
            if problems:
                for p in problems:
                    print(p, file=sys.stderr)
                sys.exit(1)
            print("the endpoint matches the template", file=sys.stderr)
    except Fail as e:
        print(f"aws_local.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
