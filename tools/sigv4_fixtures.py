"""Invoke API requests as botocore signs them, for the gateway's signature
tests (fixtures/sigv4/invoke.json): what AWS's own SDK core puts on the wire,
at a fixed clock, with a known key, never sent anywhere.

    python3 tools/sigv4_fixtures.py > fixtures/sigv4/invoke.json

The last case in that file was captured from aws-sdk-lambda 1.114 (the Rust
SDK as `cargo lambda invoke --remote` 1.9.2 locks it), which this script
keeps as it finds it.
"""
import datetime
import json
import pathlib
import sys
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
from botocore.awsrequest import AWSResponse

CLOCK = datetime.datetime(2024, 1, 15, 12, 0, 0)
KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def signed(endpoint, token=None, **invoke):
    """The request botocore would send for `client.invoke(**invoke)`."""
    seen = {}

    def capture(request, **_):
        url = urlsplit(request.url)
        headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
        # http.client adds Host on the wire; botocore signed it as this.
        seen.update(method=request.method, path_and_query=url.path + (f"?{url.query}" if url.query else ""),
                    headers=[("Host", url.netloc)] + headers,
                    body=request.body.decode() if request.body else "", client=f"botocore {botocore.__version__}")
        return AWSResponse(request.url, 200, {}, None)

    session = boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                            aws_session_token=token, region_name="us-east-1")
    client = session.client("lambda", endpoint_url=endpoint)
    client.meta.events.register("before-send", capture)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=CLOCK):
        client.invoke(**invoke)
    return seen


cases = [
    signed("http://127.0.0.1:9", FunctionName="my-func", Payload=b'{"hello":"world"}',
           InvocationType="RequestResponse", LogType="Tail"),
    signed("http://127.0.0.1:9", FunctionName="arn:aws:lambda:us-east-1:123456789012:function:my-func",
           Payload=b'{"hello":"world"}', Qualifier="live", ClientContext="eyJhIjoxfQ=="),
    signed("http://127.0.0.1:9", token="FAKETOKEN", FunctionName="my-func", Payload=b"{}"),
    signed("https://lambda.example.internal", FunctionName="my-func:live", Payload=b"", InvocationType="Event"),
]
existing = pathlib.Path(__file__).resolve().parent.parent / "fixtures/sigv4/invoke.json"
if existing.exists():
    cases += [c for c in json.loads(existing.read_text()) if not c["client"].startswith("botocore")]
json.dump(cases, sys.stdout, indent=1)
print()
