use super::*;

const PROJECT: &str = include_str!("../../../template.yaml");

fn read(text: &str) -> Result<Template, TemplateError> {
    parse(text, &[], "eu-west-1")
}

/// A template with one function and the given extra lines, indented
/// where the caller puts them.
fn one_function(function_props: &str, event_props: &str, api_props: &str) -> String {
    format!(
        r#"Transform: AWS::Serverless-2016-10-31
Parameters:
  Level:
    Type: String
    Default: WARN
    AllowedValues: [DEBUG, INFO, WARN]
  Seconds:
    Type: Number
    Default: 7
  NoDefault:
    Type: String
Globals:
  Function:
    Runtime: provided.al2023
    Timeout: 4
    MemorySize: 256
    Environment:
      Variables:
        FROM_GLOBALS: g
        OVERRIDDEN: globals
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Description: test
{api_props}
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: fixture
    Properties:
      Role: !GetAtt SomeRole.Arn
{function_props}
      Events:
        Get:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: get
            Path: /items/{{id}}
{event_props}
"#
    )
}

fn refused(text: &str) -> String {
    match read(text) {
        Ok(template) => panic!("accepted: {template:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_the_projects_template() {
    let template = read(PROJECT).expect("template.yaml");
    let names: Vec<_> = template.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["hello", "ping", "docs", "authorizer"]);
    let timeouts: Vec<_> = template.functions.iter().map(|f| f.timeout.as_secs()).collect();
    assert_eq!(timeouts, [10, 3, 5, 3], "each function's own Timeout, or Globals'");
    let memory: Vec<_> = template.functions.iter().map(|f| f.memory_size).collect();
    assert_eq!(memory, [512, 128, 128, 128]);
    assert_eq!(template.functions[0].log_format.as_deref(), Some("JSON"));
    assert_eq!(template.functions[0].log_level.as_deref(), Some("INFO"));
    let routes: Vec<_> = template
        .routes
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.function.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("ANY", "/api/v1/hello", "hello"),
            ("ANY", "/ping", "ping"),
            ("ANY", "/openapi.json", "docs"),
            ("ANY", "/docs", "docs"),
            ("ANY", "/docs/{proxy+}", "docs"),
        ]
    );
    assert!(template.routes.iter().all(|r| r.integration_timeout == MAX_INTEGRATION_TIMEOUT));
    assert_eq!(template.throttle, Some(Throttle { burst: 500, rate: 1000.0 }));
    // The authorizer: read, and off by default.
    assert_eq!(
        template.authorizers,
        [AuthorizerSpec {
            name: "ApiKeyAuthorizer".into(),
            function: "authorizer".into(),
            identity_headers: vec!["authorization".into()],
            ttl: Duration::from_secs(300),
        }]
    );
    assert_eq!(template.functions[3].variables["KF_API_KEYS"], "");
    assert!(template.routes.iter().all(|r| r.authorizer.is_none()));
    // One parameter turns it on for /api/v1/hello only.
    let on =
        parse(PROJECT, &["RequireApiKey=true".into(), "ApiKeyHashes=ci:abc".into()], "eu-west-1")
            .expect("auth on");
    let guarded: Vec<_> =
        on.routes.iter().filter(|r| r.authorizer.is_some()).map(|r| r.path.as_str()).collect();
    assert_eq!(guarded, ["/api/v1/hello"]);
    assert_eq!(on.functions[3].variables["KF_API_KEYS"], "ci:abc");
    let e = parse(PROJECT, &["ApiKeyHashes=x".into(), "RequireApiKey=yes".into()], "x")
        .expect_err("not allowed");
    assert!(e.to_string().contains("AllowedValues"), "{e}");
}

/// An HttpApi with an authorizer, switched by condition `On` (on the
/// parameter `Level`).
fn with_authorizer(body_security: &str, identity: &str) -> String {
    let text = one_function(
        "",
        "",
        &format!(
            "      DefinitionBody:
        openapi: \"3.0.1\"
        info: {{title: t, version: \"1\"}}
        paths:
          /items/{{id}}:
            get:
              security: {body_security}
      Auth:
        Authorizers:
          Keys:
            FunctionArn: !GetAtt Fn.Arn
            AuthorizerPayloadFormatVersion: \"2.0\"
            EnableSimpleResponses: true
{identity}"
        ),
    );
    text.replace(
            "Globals:",
            "Conditions:\n  On: !Equals [!Ref Level, DEBUG]\n  Off: !Not [Condition: On]\n  Both: {\"Fn::And\": [{Condition: On}, !Equals [a, a]]}\nGlobals:",
        )
}

const IDENTITY: &str = "            Identity:
              Headers: [Authorization, X-Tenant]
              ReauthorizeEvery: 60";

#[test]
fn authorizers_and_the_conditions_that_switch_them() {
    let on = |overrides: &[&str], security: &str| {
        let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
        let text = with_authorizer(security, IDENTITY);
        parse(&text, &overrides, "x").expect("valid").routes[0].authorizer.clone()
    };
    let keys = Some("Keys".to_owned());
    assert_eq!(on(&[], "[{Keys: []}]"), keys);
    assert_eq!(on(&[], "[]"), None);
    assert_eq!(on(&[], "!If [On, [{Keys: []}], []]"), None, "Level defaults to WARN");
    assert_eq!(on(&["Level=DEBUG"], "!If [On, [{Keys: []}], []]"), keys);
    assert_eq!(on(&["Level=DEBUG"], "!If [Off, [{Keys: []}], []]"), None);
    assert_eq!(on(&["Level=DEBUG"], "{\"Fn::If\": [Both, [{Keys: []}], []]}"), keys);
    let template = parse(&with_authorizer("[]", IDENTITY), &[], "x").expect("valid");
    assert_eq!(template.authorizers[0].identity_headers, ["authorization", "x-tenant"]);
    assert_eq!(template.authorizers[0].ttl, Duration::from_secs(60));
    assert_eq!(template.authorizers[0].function, "fixture");

    for (security, identity, says) in [
        ("[{Keys: []}, {Other: []}]", IDENTITY, "at most one authorizer"),
        ("!If [Nope, [], []]", IDENTITY, "no condition \"Nope\""),
        ("!If [On, []]", IDENTITY, "Fn::If takes"),
        ("[]", "", "Identity: missing"),
        ("[]", "            Identity:\n              QueryStrings: [k]", "Headers only"),
        ("[]", "            Identity:\n              Headers: []", "at least one header"),
        (
            "[]",
            "            Identity:\n              Headers: [A]\n              ReauthorizeEvery: 9999",
            "from 0 to 3600",
        ),
    ] {
        let error = refused(&with_authorizer(security, identity));
        assert!(error.contains(says), "{security} / {identity}: {error}");
    }
    let text = with_authorizer("[]", IDENTITY);
    for (from, to, says) in [
        ("            get:\n", "            put:\n", "no function has the route PUT"),
        ("            get:\n", "            brew:\n", "not an HTTP method"),
        (
            "              security:",
            "              summary: x\n              security:",
            "security only",
        ),
        ("FunctionArn: !GetAtt Fn.Arn", "FunctionArn: !GetAtt Nope.Arn", "Nope is not a function"),
        ("FunctionArn: !GetAtt Fn.Arn", "FunctionArn: arn:aws:lambda:x", "must be !GetAtt"),
        ("EnableSimpleResponses: true", "EnableSimpleResponses: false", "simple responses only"),
        (
            "AuthorizerPayloadFormatVersion: \"2.0\"",
            "AuthorizerPayloadFormatVersion: \"1.0\"",
            "payload 2.0",
        ),
        (
            "      Auth:\n",
            "      Auth:\n        DefaultAuthorizer: Keys\n",
            "DefaultAuthorizer: not supported",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let error = refused(&text.replacen(from, to, 1));
        assert!(error.contains(says), "{to}: {error}");
    }
    // A NoEcho parameter's value is never repeated in a message.
    let secret = text.replace(
        "  NoDefault:\n",
        "  Secret:\n    Type: String\n    NoEcho: true\n    AllowedValues: [a]\n  NoDefault:\n",
    );
    let e = parse(&secret, &["Secret=hunter2".into()], "x").expect_err("not allowed");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn every_supported_key_with_globals_and_parameters() {
    let text = one_function(
        "      Timeout: !Ref Seconds
      ReservedConcurrentExecutions: 2
      Environment:
        Variables:
          OVERRIDDEN: function
          LEVEL: !Ref Level
          REGION: !Ref AWS::Region
          COUNT: 3
      LoggingConfig:
        LogFormat: JSON
        ApplicationLogLevel: {Ref: Level}
        LogGroup: !Ref SomeGroup",
        "            TimeoutInMillis: 1500
            PayloadFormatVersion: \"2.0\"",
        "      DefaultRouteSettings:
        ThrottlingBurstLimit: 3
        ThrottlingRateLimit: 0.5
        DetailedMetricsEnabled: true",
    );
    let template = read(&text).expect("valid");
    let f = &template.functions[0];
    assert_eq!((f.name.as_str(), f.logical_id.as_str()), ("fixture", "Fn"));
    assert_eq!(f.timeout, Duration::from_secs(7), "!Ref to a parameter's Default");
    assert_eq!(f.memory_size, 256, "from Globals");
    assert_eq!(f.reserved_concurrency, Some(2));
    let vars: Vec<_> = f.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        vars,
        [
            ("COUNT", "3"),
            ("FROM_GLOBALS", "g"),
            ("LEVEL", "WARN"),
            ("OVERRIDDEN", "function"),
            ("REGION", "eu-west-1"),
        ],
        "Globals' variables merged under the function's"
    );
    assert_eq!((f.log_format.as_deref(), f.log_level.as_deref()), (Some("JSON"), Some("WARN")));
    let route = &template.routes[0];
    assert_eq!((route.method.as_str(), route.path.as_str()), ("GET", "/items/{id}"));
    assert_eq!(route.integration_timeout, Duration::from_millis(1500));
    assert_eq!(template.throttle, Some(Throttle { burst: 3, rate: 0.5 }));

    // Overrides, as `sam deploy --parameter-overrides` takes them.
    let overridden =
        parse(&text, &["Level=DEBUG".into(), "Seconds=9".into()], "x").expect("overrides");
    assert_eq!(overridden.functions[0].timeout, Duration::from_secs(9));
    assert_eq!(overridden.functions[0].variables["LEVEL"], "DEBUG");
    for (bad, says) in [
        ("Level=LOUD", "AllowedValues"),
        ("Nope=1", "no parameter \"Nope\""),
        ("Level", "not Name=Value"),
    ] {
        let e = parse(&text, &[bad.into()], "x").expect_err(bad).to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    // Lambda's default timeout without Globals.
    let bare = text.replace("    Timeout: 4\n", "").replace("      Timeout: !Ref Seconds\n", "");
    assert_eq!(read(&bare).expect("bare").functions[0].timeout, Duration::from_secs(3));
}

#[test]
fn what_it_cannot_honour_is_an_error_naming_the_key_and_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (function properties, event properties, api properties, message)
        ("      Layers: [arn]", "", "", "Fn.Properties.Layers: not supported"),
        ("      Timeout: !GetAtt X.Y", "", "", "!GetAtt cannot be resolved"),
        ("      Timeout: {\"Fn::If\": [a, 1, 2]}", "", "", "Fn::If cannot be resolved"),
        ("      Timeout: 901", "", "", "from 1 to 900"),
        ("      Timeout: soon", "", "", "\"soon\" is not a whole number"),
        ("      Timeout: !Ref NoDefault", "", "", "NoDefault has no Default"),
        ("      Timeout: !Ref Missing", "", "", "not a parameter"),
        ("      Runtime: python3.13", "", "", "custom runtimes"),
        ("      ReservedConcurrentExecutions: 0", "", "", "--functions"),
        (
            "      Environment:\n        Variables:\n          AWS_REGION: x",
            "",
            "",
            "reserved by Lambda",
        ),
        ("      Environment:\n        Variables:\n          1X: x", "", "", "variable name"),
        (
            "",
            "            Auth:\n              Authorizer: Missing",
            "",
            "no authorizer \"Missing\"",
        ),
        (
            "",
            "            Auth:\n              AuthorizationScopes: [a]",
            "",
            "AuthorizationScopes: not",
        ),
        ("", "            RouteSettings: {}", "", "RouteSettings: not supported"),
        ("", "            PayloadFormatVersion: \"1.0\"", "", "payload format 2.0"),
        ("", "            TimeoutInMillis: 31000", "", "from 50 to 30000"),
        (
            "",
            "",
            "      CorsConfiguration: true",
            "Api.Properties.CorsConfiguration: not supported",
        ),
        ("", "", "      StageName: prod", "$default stage"),
        ("", "", "      DefaultRouteSettings:\n        ThrottlingBurstLimit: 1", "set both"),
    ];
    for (function, event, api, says) in cases {
        let error = refused(&one_function(function, event, api));
        assert!(error.contains(says), "{function}{event}{api}: {error}");
        assert!(error.starts_with("template line "), "{error}");
    }
    // The line is the key's own.
    let error = refused(&one_function("      Layers: [arn]", "", ""));
    let text = one_function("      Layers: [arn]", "", "");
    let line = text.lines().position(|l| l.contains("Layers")).expect("the line") + 1;
    assert!(error.starts_with(&format!("template line {line}:")), "{error} (line {line})");
}

#[test]
fn whole_template_constructs_it_cannot_serve_are_errors() {
    let base = one_function("", "", "");
    let cases: Vec<(String, &str)> = vec![
        (base.replace("Type: HttpApi\n", "Type: Api\n"), "only HttpApi events"),
        (base.replace("Path: /items/{id}", "Path: /items/{id+}/more"), "must be the last"),
        (base.replace("Path: /items/{id}", "Path: items"), "must start with /"),
        (base.replace("            Method: get\n", ""), "$default routes"),
        (base.replace("Method: get", "Method: brew"), "is not one of"),
        (base.replace("ApiId: !Ref Api", "ApiId: !Ref Other"), "not an HttpApi of this template"),
        (base.replace("        Binary: fixture\n", ""), "BuildProperties.Binary: missing"),
        (base.replace("Binary: fixture", "Binary: ../x"), "not a binary name"),
        (base.replace("  Fn:\n", "  Rest:\n    Type: AWS::Serverless::Api\n  Fn:\n"), "REST APIs"),
        (
            format!(
                "{base}        Again:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref Api\n            Method: GET\n            Path: /items/{{id}}\n"
            ),
            "the same route as line",
        ),
        (format!("{base}  Extra: &anchor\n    Type: X\n  Copy: *anchor\n"), "aliases"),
        ("Resources: [\n".to_owned(), "not YAML"),
    ];
    for (text, says) in cases {
        let error = refused(&text);
        assert!(error.contains(says), "{says}: {error}");
    }
}

#[test]
fn a_function_without_build_metadata_is_named_by_its_code_uri() {
    let text = one_function("      CodeUri: target/lambda/fixture-two/", "", "").replace(
            "    Metadata:\n      BuildMethod: rust-cargolambda\n      BuildProperties:\n        Binary: fixture\n",
            "",
        );
    assert_eq!(read(&text).expect("valid").functions[0].name, "fixture-two");
}

/// The module doc's "Keys:" list for each file is exactly the keys that
/// file's `match` arms read, so the doc cannot promise a key the code
/// refuses, nor the code read one the doc does not name.
#[test]
fn the_documented_keys_are_the_ones_read() {
    let doc: String = include_str!("mod.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim())
        .collect::<Vec<_>>()
        .join(" ");
    let quoted = |text: &str| -> std::collections::BTreeSet<String> {
        text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
    };
    for (file, source) in
        [("function", include_str!("function.rs")), ("api", include_str!("api.rs"))]
    {
        let item = format!("* `{file}.rs`:");
        let start = doc.find(&item).unwrap_or_else(|| panic!("the doc has no {item}"));
        let rest = &doc[start + item.len()..];
        let rest = &rest[..rest.find("* `").unwrap_or(rest.len())];
        let keys = rest.split("Keys:").nth(1).unwrap_or_else(|| panic!("{file}: no Keys: list"));
        let documented = quoted(keys);
        // Match arms: lines that start with one or more quoted keys and `=>`.
        let mut read = std::collections::BTreeSet::new();
        for line in source.lines().map(str::trim) {
            let Some((arm, _)) = line.split_once("=>") else { continue };
            let arm = arm.split(" if ").next().unwrap_or(arm).trim();
            let alternatives: Vec<&str> = arm.split('|').map(str::trim).collect();
            if alternatives.iter().all(|a| {
                a.len() > 2
                    && a.starts_with('"')
                    && a.ends_with('"')
                    && !a[1..a.len() - 1].contains('"')
            }) {
                read.extend(alternatives.iter().map(|a| a.trim_matches('"').to_owned()));
            }
        }
        assert_eq!(documented, read, "{file}.rs: the doc's Keys: list and the keys its code reads");
    }
}
