"""What AWS will really create from template.yaml.

`sam validate --lint` and cfn-lint check the template as written; this test
expands it the way CloudFormation does on deploy, with samtranslator (the
library inside aws-sam-cli, offline), after doing what `sam package` does
first (local CodeUri paths become S3 objects), and asserts on the resources
that would be created: the Lambda permissions API Gateway needs, the
functions, the HTTP API's routes and stage, the outputs, and the role.

Run by `make test` with the tools venv's Python (it has aws-sam-cli).
"""

import copy
import fnmatch
import re
import unittest
from pathlib import Path

from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]



def documented_functions() -> dict[str, dict]:
    """docs/deploy-lambda.md's table of each function's memory and timeout,
    by the resource name SAM gives it: what users are told AWS will run."""
    text = (ROOT / "docs/deploy-lambda.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) MB \| (\d+) s \|", text, re.M)
    assert rows, "docs/deploy-lambda.md has no | `function` | N MB | N s | table"
    return {f"{binary.capitalize()}Function": {"binary": binary, "memory": int(memory), "timeout": int(timeout)}
            for binary, memory, timeout in rows}


FUNCTIONS = documented_functions()


def route_table() -> list[tuple[str, str]]:
    """(function, path) of shared::routes::ROUTES, `{*file}` as API Gateway's
    greedy `{proxy+}`."""
    text = (ROOT / "shared/src/routes.rs").read_text()
    rows = re.findall(r'Route \{ method: "\w+", path: "([^"]+)", function: "(\w+)"', text)
    assert rows, "no routes found in shared/src/routes.rs"
    return sorted({(f, p.replace("{*file}", "{proxy+}")) for p, f in rows})


def example_paths(route: str) -> list[str]:
    """Request paths a route serves, for checking permissions against."""
    if route.endswith("/{proxy+}"):
        base = route[: -len("/{proxy+}")]
        return [f"{base}/index.html", f"{base}/swagger-ui.css", f"{base}/a/b.js"]
    return [route]


def target(integration: dict) -> str:
    """The logical id of the function an API integration invokes."""
    match = re.search(r"\$\{(\w+)\.Arn\}", integration["uri"]["Fn::Sub"])
    assert match, integration
    return match.group(1)


def expand() -> dict:
    template = yaml_parse((ROOT / "template.yaml").read_text())
    packaged = copy.deepcopy(template)
    # What `sam package` does first: local code becomes S3 objects.
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://artifacts-bucket/kf-api/code.zip"
    packaged.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    parameters = {"AWS::Region": "eu-west-2", "AWS::Partition": "aws", "AWS::AccountId": "123456789012",
                  "AWS::StackName": "kf-api", "AWS::URLSuffix": "amazonaws.com"}
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return translator.translate(packaged, parameter_values=parameters)


def concrete(arn: str) -> str:
    """A SourceArn's pattern with the stack's values in, any stage."""
    for name, value in (("${AWS::Partition}", "aws"), ("${AWS::Region}", "eu-west-2"),
                        ("${AWS::AccountId}", "123456789012"), ("${__ApiId__}", "abc123"),
                        ("${__Stage__}", "*")):
        arn = arn.replace(name, value)
    return arn


class ExpandedTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cfn = expand()
        cls.resources = cls.cfn["Resources"]

    def of_type(self, kind: str) -> dict:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def test_every_permission_covers_every_path_its_route_serves(self):
        api = self.of_type("AWS::ApiGatewayV2::Api")
        self.assertEqual(len(api), 1, api)
        (api_name,) = api
        routes = {}
        for path, methods in api[api_name]["Properties"]["Body"]["paths"].items():
            integration = methods["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
            routes[path] = target(integration)
        permissions = self.of_type("AWS::Lambda::Permission")
        self.assertTrue(permissions)
        for path, function in routes.items():
            arns = []
            for permission in permissions.values():
                props = permission["Properties"]
                if props["FunctionName"] != {"Ref": function}:
                    continue
                self.assertEqual(props["Principal"], "apigateway.amazonaws.com")
                self.assertEqual(props["Action"], "lambda:InvokeFunction")
                arn = props["SourceArn"]["Fn::Sub"][0] if isinstance(props["SourceArn"]["Fn::Sub"], list) \
                    else props["SourceArn"]["Fn::Sub"]
                arns.append(arn)
            self.assertTrue(arns, f"no permission for {function}")
            for arn in arns:
                # API Gateway checks the permission against the request's real
                # path: braces left in would match no request at all.
                literal = re.sub(r"\$\{[^}]+\}", "", arn)
                self.assertNotIn("{", literal, f"{arn}: an unexpanded path parameter")
                self.assertNotIn("}", literal, arn)
            for request_path in example_paths(path):
                # .../${__ApiId__}/${__Stage__}/<METHOD>/<path>: any stage, any method.
                request = f"arn:aws:execute-api:eu-west-2:123456789012:abc123/$default/GET{request_path}"
                matched = [a for a in arns if fnmatch.fnmatchcase(request, concrete(a))]
                self.assertTrue(matched, f"GET {request_path} ({function}) is allowed by none of {arns}")

    def test_the_api_routes_are_the_route_table(self):
        (api,) = self.of_type("AWS::ApiGatewayV2::Api").values()
        expanded = sorted(
            (target(methods["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"])
             .removesuffix("Function").lower(), path)
            for path, methods in api["Properties"]["Body"]["paths"].items()
        )
        self.assertEqual(expanded, route_table())
        for methods in api["Properties"]["Body"]["paths"].values():
            self.assertEqual(list(methods), ["x-amazon-apigateway-any-method"], "ANY: functions answer 405")

    def test_functions(self):
        functions = self.of_type("AWS::Lambda::Function")
        self.assertEqual(sorted(functions), sorted(FUNCTIONS))
        for name, expected in FUNCTIONS.items():
            props = functions[name]["Properties"]
            self.assertEqual(props["Architectures"], ["arm64"], name)
            self.assertEqual(props["Runtime"], "provided.al2023", name)
            self.assertEqual(props["Handler"], "bootstrap", name)
            self.assertEqual(props["MemorySize"], expected["memory"], name)
            self.assertEqual(props["Timeout"], expected["timeout"], name)
            self.assertEqual(props["Code"], {"S3Bucket": "artifacts-bucket", "S3Key": "kf-api/code.zip"}, name)
            logging = props["LoggingConfig"]
            self.assertEqual(logging["LogFormat"], "JSON", name)
            group = name.replace("Function", "LogGroup")
            self.assertEqual(logging["LogGroup"], {"Ref": group}, name)
            self.assertEqual(props["Role"], {"Fn::GetAtt": ["FunctionRole", "Arn"]}, name)
            log_group = self.resources[group]["Properties"]
            self.assertEqual(log_group["LogGroupName"],
                             {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-{expected['binary']}"})

    def test_stage_throttling_and_access_logs(self):
        (stage,) = self.of_type("AWS::ApiGatewayV2::Stage").values()
        props = stage["Properties"]
        self.assertEqual(props["StageName"], "$default")
        self.assertTrue(props["AutoDeploy"])
        # The parameters (which the gateway reads too), with their defaults.
        self.assertEqual(props["DefaultRouteSettings"],
                         {"ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
                          "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"}})
        parameters = self.cfn["Parameters"]
        self.assertEqual((parameters["ThrottlingBurstLimit"]["Default"],
                          parameters["ThrottlingRateLimit"]["Default"]), (500, 1000))
        self.assertEqual(props["AccessLogSettings"]["DestinationArn"], {"Fn::GetAtt": ["ApiLogGroup", "Arn"]})
        self.assertIn("$context.requestId", props["AccessLogSettings"]["Format"])

    def test_the_authorizer_guards_hello_only_when_switched_on(self):
        (api,) = self.of_type("AWS::ApiGatewayV2::Api").values()
        body = api["Properties"]["Body"]
        scheme = body["components"]["securitySchemes"]["ApiKeyAuthorizer"]["x-amazon-apigateway-authorizer"]
        self.assertEqual(scheme["identitySource"], ["$request.header.Authorization"])
        self.assertEqual((scheme["authorizerPayloadFormatVersion"], scheme["enableSimpleResponses"]),
                         ("2.0", True))
        self.assertGreater(scheme["authorizerResultTtlInSeconds"], 0, "results are cached")
        self.assertIn("AuthorizerFunction", str(scheme["authorizerUri"]))
        for path, methods in body["paths"].items():
            security = methods["x-amazon-apigateway-any-method"].get("security")
            if path == "/api/v1/hello":
                self.assertEqual(security, {"Fn::If": ["ApiKeyRequired", [{"ApiKeyAuthorizer": []}], []]})
            else:
                self.assertIsNone(security, f"{path} stays open")
        self.assertEqual(self.cfn["Conditions"]["ApiKeyRequired"],
                         {"Fn::Equals": [{"Ref": "RequireApiKey"}, "true"]})
        parameters = self.cfn["Parameters"]
        self.assertEqual(parameters["RequireApiKey"]["Default"], "false", "off by default")
        self.assertTrue(parameters["ApiKeyHashes"]["NoEcho"])
        # API Gateway may invoke the authorizer, and only through this API.
        permissions = [p["Properties"] for p in self.of_type("AWS::Lambda::Permission").values()
                       if p["Properties"]["FunctionName"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}]
        self.assertEqual(len(permissions), 1)
        self.assertIn("/authorizers/*", str(permissions[0]["SourceArn"]))
        env = self.of_type("AWS::Lambda::Function")["AuthorizerFunction"]["Properties"]["Environment"]
        self.assertEqual(env["Variables"], {"KF_API_KEYS": {"Ref": "ApiKeyHashes"}})

    def test_outputs(self):
        self.assertEqual(sorted(self.cfn["Outputs"]),
                         ["ApiUrl", "AuthorizerFunctionArn", "DocsFunctionArn", "DocsUrl", "HelloFunctionArn",
                          "PingFunctionArn"])

    def test_the_role_may_only_write_the_functions_own_logs(self):
        roles = self.of_type("AWS::IAM::Role")
        self.assertEqual(list(roles), ["FunctionRole"], "one role, no role SAM made")
        props = roles["FunctionRole"]["Properties"]
        self.assertNotIn("ManagedPolicyArns", props)
        statements = [s for policy in props["Policies"] for s in policy["PolicyDocument"]["Statement"]]
        self.assertEqual(len(statements), 1, statements)
        (statement,) = statements
        self.assertEqual(statement["Effect"], "Allow")
        self.assertEqual(sorted(statement["Action"]), ["logs:CreateLogStream", "logs:PutLogEvents"])
        self.assertEqual(statement["Resource"], [{"Fn::GetAtt": [f"{n}LogGroup", "Arn"]}
                                                 for n in ("Hello", "Ping", "Docs", "Authorizer")])


if __name__ == "__main__":
    unittest.main()
