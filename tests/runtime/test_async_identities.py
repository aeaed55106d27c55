"""The front and the workers of an async API, each as its own identity, against a moto server that enforces
IAM: each runs on credentials allowed only the statements terraform/aws/async-queue renders for it (`front`,
`worker`), with the resources the stack would put in. Both ways: the runtime's real code paths (a small
request, a large payload through the bucket, a poison request dead-lettered) all succeed on those grants, so
nothing the code calls is missing; and what the other side does is refused (the front cannot receive or
delete, the workers cannot send to their own queue), so the split holds. The render tests pin that each
document has these statements and nothing more.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import httpx
import pytest

from mlkit.render import asyncapi
from tests.conftest import local_server
from tests.runtime.test_async_clouds import VISIBILITY_S, Cloud, process, servers, wait_for  # noqa: F401 (fixture)
from tests.terraform.test_gcp_static import plain

MODULE = Path(asyncapi.__file__).resolve().parents[2] / "terraform/aws/async-queue/main.tf"
REGION = "us-west-2"
# Moto checks IAM on every request after this many: the three that make the admin who sets up the rest.
SETUP_ACTIONS = 3


def policy_document(path: Path, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The module's policy document `name` as IAM JSON, with the stack's references replaced by `values`: a
    whole expression by its value (a list, for a dynamic block's for_each or a for expression), else each
    ${reference} in a string; a dynamic statement once for each of its for_each's items (statement.value.X)."""
    data = plain(hcl2.loads(path.read_text()))["data"]
    (doc,) = [d["aws_iam_policy_document"][name] for d in data if name in d.get("aws_iam_policy_document", {})]

    def resolve(ref: str, item: dict[str, str] | None = None) -> Any:
        if ref in values:
            return values[ref]
        return re.sub(r"\$\{([^}]+)\}", lambda m: item[m.group(1).removeprefix("statement.value.")]
                      if m.group(1).startswith("statement.value.") and item is not None else values[m.group(0)], ref)

    def statement(s: dict[str, Any], item: dict[str, str] | None = None) -> dict[str, Any]:
        resources = resolve(s["resources"]) if isinstance(s["resources"], str) else [resolve(r, item) for r in s["resources"]]
        out = {"Effect": s.get("effect", "Allow"), "Action": s["actions"], "Resource": resources}
        if "sid" in s:
            out["Sid"] = s["sid"]
        for c in s.get("condition", []):
            out.setdefault("Condition", {}).setdefault(c["test"], {})[c["variable"]] = [resolve(v, item) for v in c["values"]]
        return out

    statements = [statement(s) for s in doc.get("statement", [])]
    for block in doc.get("dynamic", []):
        dynamic = block["statement"]
        statements += [statement(c, item) for item in resolve(dynamic["for_each"]) for c in dynamic["content"]]
    return {"Version": "2012-10-17", "Statement": statements}


def rendered_policy(name: str, resources: dict[str, Any]) -> dict[str, Any]:
    """The async-queue module's policy document `name` (front, worker) with the stack's references replaced."""
    return policy_document(MODULE, name, resources)


def client(service: str, endpoint: str, key: dict[str, str]) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


@pytest.fixture
def enforcing(tmp_path) -> Iterator[dict[str, Any]]:
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    env = os.environ | {"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)}
    with local_server(["tests.moto_server", "-H", "127.0.0.1", "-p", "{port}"], tmp_path / "moto.log", env) as port:
        endpoint = f"http://127.0.0.1:{port}"
        root = client("iam", endpoint, {"AccessKeyId": "testing", "SecretAccessKey": "testing"})
        root.create_user(UserName="admin")
        everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        root.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(everything))
        admin = root.create_access_key(UserName="admin")["AccessKey"]
        sqs, s3, iam = (client(s, endpoint, admin) for s in ("sqs", "s3", "iam"))
        dead = sqs.create_queue(QueueName="ocr-dead-letter")["QueueUrl"]
        queue = sqs.create_queue(QueueName="ocr", Attributes={"VisibilityTimeout": str(VISIBILITY_S)})["QueueUrl"]
        arn = {url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] for url in (queue, dead)}
        s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="models", Key="ocr/model.bin", Body=b"weights")
        resources = {
            "${aws_sqs_queue.this.arn}": arn[queue],
            "${aws_sqs_queue.dead_letter.arn}": arn[dead],
            "${local.results_arn}": "arn:aws:s3:::models/async/ocr/*",
            # The workers' model, uploaded under ocr/ in the model bucket.
            "${var.model_read}": [{"bucket_arn": "arn:aws:s3:::models", "prefix": "ocr/"}],
        }
        keys = {}
        for side in ("front", "worker"):  # an IAM user per side stands in for its IRSA role: the same document
            iam.create_user(UserName=side)
            iam.put_user_policy(UserName=side, PolicyName=side, PolicyDocument=json.dumps(rendered_policy(side, resources)))
            keys[side] = iam.create_access_key(UserName=side)["AccessKey"]
        yield {"endpoint": endpoint, "queue": queue, "dead": dead, "keys": keys, "admin": admin}


def side(enforcing: dict[str, Any], name: str) -> Cloud:
    key = enforcing["keys"][name]
    env = {
        "AWS_ENDPOINT_URL": enforcing["endpoint"], "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    flags = ["--queue", f"sqs:{enforcing['queue']}", "--dead-letter", f"sqs:{enforcing['dead']}", "--results", "s3://models/async/ocr"]
    return Cloud(name, env, flags, list, list, lambda: True)


def denied(call: Any, **kw: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        call(**kw)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_front_and_workers_run_on_their_own_grants_and_neither_may_do_the_others_work(enforcing, tmp_path, servers):  # noqa: F811
    front = process(servers, side(enforcing, "front"), "front")
    log = tmp_path / "w.predicted"
    log.touch()
    process(servers, side(enforcing, "worker"), "worker", "--config", json.dumps({"log": str(log)}))
    with httpx.Client(base_url=front.url, timeout=20) as http:
        def finished(*accepted: httpx.Response) -> list[dict] | None:
            records = [http.get(a.headers["location"]).json() for a in accepted]
            return records if all(r.get("status") in ("completed", "failed") for r in records) else None

        small = http.post("/predict", json={"n": 1, "x": 21})
        big = http.post("/predict", content=os.urandom(200 * 1024), headers={"content-type": "application/octet-stream"})
        assert [a.status_code for a in (small, big)] == [202, 202], [a.text for a in (small, big)]
        done = wait_for("the two requests", lambda: finished(small, big), bound_s=90)
        assert [r["status"] for r in done] == ["completed", "completed"], done
        assert done[0]["result"] == {"y": 42, "n": 1} and done[1]["result"] == {"bytes": 200 * 1024}
        # Alone, so that its failures fail no other request of a batch.
        poison = http.post("/predict", json={"n": -1, "x": 0, "poison": True})
        assert poison.status_code == 202, poison.text
        (failed,) = wait_for("the poison request", lambda: finished(poison), bound_s=90)
        assert failed["status"] == "failed" and failed["error"] == "the predictor raised ValueError: poison request"
    sqs = client("sqs", enforcing["endpoint"], enforcing["admin"])
    dead = sqs.receive_message(QueueUrl=enforcing["dead"], WaitTimeSeconds=1).get("Messages", [])
    assert [json.loads(base64.b64decode(m["Body"]))["id"] for m in dead] == [poison.json()["id"]]

    front_sqs, front_s3 = (client(s, enforcing["endpoint"], enforcing["keys"]["front"]) for s in ("sqs", "s3"))
    worker_sqs = client("sqs", enforcing["endpoint"], enforcing["keys"]["worker"])
    # The front cannot take work off the queue, nor read the model.
    assert denied(front_sqs.receive_message, QueueUrl=enforcing["queue"])
    assert denied(front_sqs.delete_message, QueueUrl=enforcing["queue"], ReceiptHandle="x")
    assert denied(front_sqs.send_message, QueueUrl=enforcing["dead"], MessageBody="x")
    assert denied(front_s3.get_object, Bucket="models", Key="ocr/model.bin")
    # The workers cannot put work on their own queue, nor write outside their prefix.
    assert denied(worker_sqs.send_message, QueueUrl=enforcing["queue"], MessageBody="x")
    assert denied(client("s3", enforcing["endpoint"], enforcing["keys"]["worker"]).put_object, Bucket="models", Key="ocr/model.bin", Body=b"x")


def allowed(call: Any, **kw: Any) -> bool:
    call(**kw)  # raises on a refusal, with what was refused
    return True


def test_no_identity_reads_or_writes_another_async_apis_records(enforcing):
    """Results isolation: ocr's front and workers reach their own records (and the workers their own model) and
    are refused another async API's (`other`) records and model; a realtime API's role, with the model read every
    other role attaches (terraform/aws/model-bucket), reads models but no async API's records. Ids are the only
    secret of a result where the API has no api_keys, so one API's pods must not read another's."""
    endpoint, admin = enforcing["endpoint"], enforcing["admin"]
    s3 = client("s3", endpoint, admin)
    for key in ("async/ocr/r1.json", "async/other/r2.json", "other/model.bin"):
        s3.put_object(Bucket="models", Key=key, Body=b"{}")
    iam = client("iam", endpoint, admin)
    read = policy_document(MODULE.parents[1] / "model-bucket/main.tf", "read", {
        "${aws_s3_bucket.this.arn}": "arn:aws:s3:::models",
        "${length(var.private_prefixes) > 0 ? [1] : []}": [1],
        '${[for prefix in var.private_prefixes : "${aws_s3_bucket.this.arn}/${prefix}*"]}': ["arn:aws:s3:::models/async/*"],
    })
    assert [s["Effect"] for s in read["Statement"]] == ["Allow", "Allow", "Deny"]
    iam.create_user(UserName="serving")
    iam.put_user_policy(UserName="serving", PolicyName="read", PolicyDocument=json.dumps(read))
    keys = enforcing["keys"] | {"serving": iam.create_access_key(UserName="serving")["AccessKey"]}
    front, worker, serving = (client("s3", endpoint, keys[k]) for k in ("front", "worker", "serving"))

    for own in (front, worker):  # its own records: read and written
        assert allowed(own.get_object, Bucket="models", Key="async/ocr/r1.json")
        assert allowed(own.put_object, Bucket="models", Key="async/ocr/r3.json", Body=b"{}")
    for anyone in (front, worker, serving):  # another API's records: neither read nor written
        assert denied(anyone.get_object, Bucket="models", Key="async/other/r2.json")
        assert denied(anyone.put_object, Bucket="models", Key="async/other/r4.json", Body=b"{}")
    assert denied(serving.get_object, Bucket="models", Key="async/ocr/r1.json")  # nor the realtime API's role
    # The workers read their own model and no other API's; the serving role reads models.
    assert allowed(worker.get_object, Bucket="models", Key="ocr/model.bin")
    # (Its listing is limited to the model's prefix by an s3:prefix condition, which moto does not evaluate for S3:
    # it refuses every conditioned listing; tests/render/test_asyncapi.py pins the condition.)
    assert denied(worker.get_object, Bucket="models", Key="other/model.bin")
    assert allowed(serving.get_object, Bucket="models", Key="other/model.bin")
    assert denied(front.get_object, Bucket="models", Key="other/model.bin")
