use super::*;

const PROJECT: &str = include_str!("../../../template.yaml");

fn read(text: &str) -> Result<Template, TemplateError> {
    parse(text, &[], "eu-west-1")
}

/// The tests' base template: one function behind one HTTP API, with
/// parameters, conditions and Globals, and a `# +name` comment wherever a
/// test adds lines.
const ONE_FUNCTION: &str = include_str!("../../../fixtures/templates/one-function.yaml");
/// Every key the reader honours, as a patch on `ONE_FUNCTION`.
const EVERY_KEY: &str = include_str!("../../../fixtures/templates/every-key.yaml");
/// An authorizer and the route security that applies it, as a patch.
const AUTHORIZER: &str = include_str!("../../../fixtures/templates/authorizer.yaml");

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Each line of `lines`, indented by `pad` more spaces.
fn indented(lines: &str, pad: usize, out: &mut String) {
    for line in lines.lines() {
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str(line);
        out.push('\n');
    }
}

/// `text` with `snippet` where the comment `# +{marker}` is, at its
/// indentation (the snippet's own indentation is relative to it).
fn insert(text: &str, marker: &str, snippet: &str) -> String {
    let comment = format!("# +{marker}");
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        if line.trim() == comment {
            found = true;
            indented(snippet, indent(line), &mut out);
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(found, "the template has no {comment}");
    out
}

/// `text` with each `# +name` section of `patch` inserted at its marker.
fn patched(text: &str, patch: &str) -> String {
    let mut text = text.to_owned();
    let mut section: Option<(&str, String)> = None;
    for line in patch.lines().chain(["# +"]) {
        if let Some(marker) = line.strip_prefix("# +") {
            if let Some((name, snippet)) = section.take() {
                text = insert(&text, name, &snippet);
            }
            section = Some((marker, String::new()));
        } else if let Some((_, snippet)) = &mut section {
            snippet.push_str(line);
            snippet.push('\n');
        }
    }
    text
}

/// `text` with the one line that reads `from` (after its indentation)
/// replaced by `to`, at that indentation; `to` may be several lines.
fn replaced(text: &str, from: &str, to: &str) -> String {
    let matching = text.lines().filter(|l| l.trim_start().starts_with(from)).count();
    assert_eq!(matching, 1, "lines starting {from:?}");
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with(from) {
            indented(to, indent(line), &mut out);
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `text` without the one line that starts `key` and the lines nested
/// under it.
fn removed(text: &str, key: &str) -> String {
    let matching = text.lines().filter(|l| l.trim_start().starts_with(key)).count();
    assert_eq!(matching, 1, "lines starting {key:?}");
    let mut out = String::new();
    let mut under: Option<usize> = None;
    for line in text.lines() {
        if let Some(depth) = under {
            if indent(line) > depth {
                continue;
            }
            under = None;
        }
        if line.trim_start().starts_with(key) {
            under = Some(indent(line));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
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

#[test]
fn authorizers_and_the_conditions_that_switch_them() {
    let text = patched(ONE_FUNCTION, AUTHORIZER);
    let on = |overrides: &[&str], security: &str| {
        let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
        let text = replaced(&text, "security:", &format!("security: {security}"));
        parse(&text, &overrides, "x").expect("valid").routes[0].authorizer.clone()
    };
    let keys = Some("Keys".to_owned());
    assert_eq!(on(&[], "[{Keys: []}]"), keys);
    assert_eq!(on(&[], "[]"), None);
    assert_eq!(on(&[], "!If [On, [{Keys: []}], []]"), None, "Level defaults to WARN");
    assert_eq!(on(&["Level=DEBUG"], "!If [On, [{Keys: []}], []]"), keys);
    assert_eq!(on(&["Level=DEBUG"], "!If [Off, [{Keys: []}], []]"), None);
    assert_eq!(on(&["Level=DEBUG"], "{\"Fn::If\": [Both, [{Keys: []}], []]}"), keys);
    let template = read(&text).expect("valid");
    assert_eq!(template.authorizers[0].identity_headers, ["authorization", "x-tenant"]);
    assert_eq!(template.authorizers[0].ttl, Duration::from_secs(60));
    assert_eq!(template.authorizers[0].function, "fixture");

    for (security, says) in [
        ("[{Keys: []}, {Other: []}]", "at most one authorizer"),
        ("!If [Nope, [], []]", "no condition \"Nope\""),
        ("!If [On, []]", "Fn::If takes"),
    ] {
        let error = refused(&replaced(&text, "security:", &format!("security: {security}")));
        assert!(error.contains(says), "{security}: {error}");
    }
    assert!(refused(&removed(&text, "Identity:")).contains("Identity: missing"));
    for (from, to, says) in [
        ("Headers:", "QueryStrings: [k]", "Headers only"),
        ("Headers:", "Headers: []", "at least one header"),
        ("ReauthorizeEvery:", "ReauthorizeEvery: 9999", "from 0 to 3600"),
        ("get:", "put:", "no function has the route PUT"),
        ("get:", "brew:", "not an HTTP method"),
        ("security:", "summary: x\nsecurity: []", "security only"),
        ("FunctionArn:", "FunctionArn: !GetAtt Nope.Arn", "Nope is not a function"),
        ("FunctionArn:", "FunctionArn: arn:aws:lambda:x", "must be !GetAtt"),
        ("EnableSimpleResponses:", "EnableSimpleResponses: false", "simple responses only"),
        (
            "AuthorizerPayloadFormatVersion:",
            "AuthorizerPayloadFormatVersion: \"1.0\"",
            "payload 2.0",
        ),
        ("Auth:", "Auth:\n  DefaultAuthorizer: Keys", "DefaultAuthorizer: not supported"),
    ] {
        let error = refused(&replaced(&text, from, to));
        assert!(error.contains(says), "{to}: {error}");
    }
    // A NoEcho parameter's value is never repeated in a message.
    let secret = insert(
        &text,
        "parameters",
        "Secret:\n  Type: String\n  NoEcho: true\n  AllowedValues: [a]",
    );
    let e = parse(&secret, &["Secret=hunter2".into()], "x").expect_err("not allowed");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn every_supported_key_with_globals_and_parameters() {
    let text = patched(ONE_FUNCTION, EVERY_KEY);
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
    let bare = removed(&removed(&text, "Timeout: 4"), "Timeout: !Ref Seconds");
    assert_eq!(read(&bare).expect("bare").functions[0].timeout, Duration::from_secs(3));
}

#[test]
fn what_it_cannot_honour_is_an_error_naming_the_key_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        // (where, the lines added there, the message)
        ("function", "Layers: [arn]", "Fn.Properties.Layers: not supported in a pod: a layer"),
        ("function", "Timeout: !GetAtt X.Y", "!GetAtt cannot be resolved"),
        ("function", "Timeout: {\"Fn::If\": [a, 1, 2]}", "Fn::If cannot be resolved"),
        ("function", "Timeout: 901", "from 1 to 900"),
        ("function", "Timeout: soon", "\"soon\" is not a whole number"),
        ("function", "Timeout: !Ref NoDefault", "NoDefault has no Default"),
        ("function", "Timeout: !Ref Missing", "not a parameter"),
        ("function", "Runtime: python3.13", "custom runtimes"),
        ("function", "ReservedConcurrentExecutions: 0", "--functions"),
        ("function", "EventInvokeConfig:\n  MaximumRetryAttempts: 3", "from 0 to 2"),
        ("function", "EventInvokeConfig:\n  MaximumEventAgeInSeconds: 30", "from 60 to 21600"),
        ("function", "EventInvokeConfig:\n  DestinationConfig: {}", "no destination"),
        ("function", "DeadLetterQueue: {}", "Fn.Properties.DeadLetterQueue: not supported"),
        ("function", "Environment:\n  Variables:\n    AWS_REGION: x", "reserved by Lambda"),
        ("function", "Environment:\n  Variables:\n    1X: x", "variable name"),
        ("event", "Auth:\n  Authorizer: Missing", "no authorizer \"Missing\""),
        ("event", "Auth:\n  AuthorizationScopes: [a]", "AuthorizationScopes: not"),
        ("event", "RouteSettings: {}", "RouteSettings: not supported"),
        ("event", "PayloadFormatVersion: \"1.0\"", "payload format 2.0"),
        ("event", "TimeoutInMillis: 31000", "from 50 to 30000"),
        ("api", "CorsConfiguration: true", "Api.Properties.CorsConfiguration: not supported"),
        ("api", "StageName: prod", "$default stage"),
        ("api", "DefaultRouteSettings:\n  ThrottlingBurstLimit: 1", "set both"),
    ];
    for (at, lines, says) in cases {
        let error = refused(&insert(ONE_FUNCTION, at, lines));
        assert!(error.contains(says), "{at}: {lines}: {error}");
        assert!(error.starts_with("template line "), "{error}");
    }
    // The line is the key's own.
    let text = insert(ONE_FUNCTION, "function", "Layers: [arn]");
    let line = text.lines().position(|l| l.contains("Layers")).expect("the line") + 1;
    let error = refused(&text);
    assert!(error.starts_with(&format!("template line {line}:")), "{error} (line {line})");
}

#[test]
fn event_invoke_config_sets_the_retries_and_the_age_of_asynchronous_invocations() {
    let template = read(ONE_FUNCTION).expect("the fixture");
    let function = &template.functions[0];
    assert_eq!((function.event_retries, function.event_max_age), (2, Duration::from_secs(21_600)));
    let text = insert(
        ONE_FUNCTION,
        "function",
        "EventInvokeConfig:\n  MaximumRetryAttempts: 0\n  MaximumEventAgeInSeconds: 120",
    );
    let function = &read(&text).expect("with EventInvokeConfig").functions[0];
    assert_eq!((function.event_retries, function.event_max_age), (0, Duration::from_secs(120)));
}

#[test]
fn whole_template_constructs_it_cannot_serve_are_errors() {
    let base = ONE_FUNCTION;
    let route = "Again:\n  Type: HttpApi\n  Properties:\n    ApiId: !Ref Api\n    Method: GET\n    Path: /items/{id}";
    let cases: Vec<(String, &str)> = vec![
        (replaced(base, "Type: HttpApi", "Type: Api"), "only HttpApi events"),
        (replaced(base, "Path:", "Path: /items/{id+}/more"), "must be the last"),
        (replaced(base, "Path:", "Path: items"), "must start with /"),
        (removed(base, "Method:"), "$default routes"),
        (replaced(base, "Method:", "Method: brew"), "is not one of"),
        (replaced(base, "ApiId:", "ApiId: !Ref Other"), "not an HttpApi of this template"),
        (removed(base, "Binary:"), "BuildProperties.Binary: missing"),
        (replaced(base, "Binary:", "Binary: ../x"), "not a binary name"),
        (insert(base, "resources", "Rest:\n  Type: AWS::Serverless::Api"), "REST APIs"),
        (insert(base, "events", route), "the same route as line"),
        (insert(base, "resources", "Extra: &anchor\n  Type: X\nCopy: *anchor"), "aliases"),
        ("Resources: [\n".to_owned(), "not YAML"),
        (insert(base, "function", "Timeout: 5\nTimeout: 6"), "\"Timeout\" appears twice"),
    ];
    for (text, says) in cases {
        let error = refused(&text);
        assert!(error.contains(says), "{says}: {error}");
    }
}

#[test]
fn a_function_without_build_metadata_is_named_by_its_code_uri() {
    let text = removed(
        &insert(ONE_FUNCTION, "function", "CodeUri: target/lambda/fixture-two/"),
        "Metadata:",
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
