//! The AWS Lambda Extensions API (version 2020-01-01), served on the same
//! loopback listener as an environment's Runtime API
//! ([`crate::runtime_api`]), as Lambda serves both at
//! `AWS_LAMBDA_RUNTIME_API`.
//!
//! | Request | Answer |
//! |---|---|
//! | `POST /2020-01-01/extension/register` | `200`, `Lambda-Extension-Identifier` and `{"functionName","functionVersion","handler"}` (`accountId` too when asked for with `Lambda-Extension-Accept-Feature: accountId`) |
//! | `GET .../extension/event/next` | held until there is an event for it: `INVOKE` or `SHUTDOWN`, as JSON |
//! | `POST .../extension/init/error` | `202 {"status":"OK"}`; the environment fails its init |
//! | `POST .../extension/exit/error` | `202 {"status":"OK"}`; the environment fails |
//!
//! Errors are the RIE's (its `rapi/handler` package, the same code as
//! Lambda's): every wrong call is a `403` with an
//! `{"errorMessage","errorType"}` body, its type one of
//! `Extension.InvalidExtensionName`, `InvalidRequestFormat`,
//! `Extension.InvalidEventType`, `Extension.InvalidExtensionState`,
//! `Extension.RegistrationClosed`, `Extension.TooManyExtensions`,
//! `Extension.MissingExtensionIdentifier`,
//! `Extension.InvalidExtensionIdentifier`,
//! `Extension.UnknownExtensionIdentifier`, `Extension.MissingHeader`.
//!
//! The phases are Lambda's, kept in a [`Registry`] that the Runtime API
//! consults (this module is its HTTP face and its rules; the environment in
//! [`crate::environment::builtin`] starts the processes):
//! * **Init.** The external extensions (the executables in the function's
//!   `extensions/` directory) are started first and must all register
//!   before the runtime starts; the runtime may register internal ones
//!   (`INVOKE` only) during its own init. Init is over when the runtime and
//!   every registered extension have called `next`; registration closes
//!   then.
//! * **Invoke.** The invocation's event goes to the runtime, and an `INVOKE`
//!   event to every extension registered for it, at the same moment. The
//!   invocation is over, and the environment free, when the runtime has
//!   answered and each of those extensions has called `next` again (the
//!   RIE holds the client's answer until then, and so does the gateway).
//! * **Shutdown.** Extensions registered for `SHUTDOWN` get it with a
//!   deadline; the environment stops them when they exit, call `next`
//!   again, or the deadline passes.
//!
//! A registry holds at most [`MAX_EXTENSIONS`] extensions, each a few
//! hundred bytes and at most one pending event (an `INVOKE` event is under
//! 400 bytes: ids and an ARN, never the payload), so what an extension can
//! make the gateway hold is bounded.

use crate::runtime_api::{Shared, accepted, error, json};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// The API version in every path.
pub const VERSION: &str = "2020-01-01";
/// Lambda's limit on extensions per function (the RIE's `MaxAgentsAllowed`).
pub const MAX_EXTENSIONS: usize = 10;
/// A register request's body is a list of at most two event names; a
/// body past this is refused unread.
const MAX_REGISTER_BODY: usize = 4096;

pub const NAME: HeaderName = HeaderName::from_static("lambda-extension-name");
pub const IDENTIFIER: HeaderName = HeaderName::from_static("lambda-extension-identifier");
pub const ERROR_TYPE: HeaderName = HeaderName::from_static("lambda-extension-function-error-type");
pub const ACCEPT_FEATURE: HeaderName = HeaderName::from_static("lambda-extension-accept-feature");
pub const EVENT_IDENTIFIER: HeaderName =
    HeaderName::from_static("lambda-extension-event-identifier");

/// What registration tells an extension about its function.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
    pub account_id: String,
    /// The names of the external extensions started for this environment
    /// (their file names): only these may register as external ones.
    pub external: Vec<String>,
}

/// The extensions of one environment and where each stands.
#[derive(Debug, Default)]
pub struct Registry {
    meta: Metadata,
    agents: Vec<Agent>,
    /// Set when init is over: no more registrations.
    closed: bool,
}

#[derive(Debug)]
struct Agent {
    id: String,
    name: String,
    external: bool,
    invoke: bool,
    shutdown: bool,
    state: State,
    /// The next event for it, delivered by its next `next`.
    pending: Option<Bytes>,
}

/// An extension's state, named as the RIE names them in its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Registered,
    /// Waiting in `next`, or done with its last event.
    Ready,
    /// Has an event and is working on it.
    Running,
    InitError,
    ExitError,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Registered => "Registered",
            State::Ready => "Ready",
            State::Running => "Running",
            State::InitError => "InitError",
            State::ExitError => "Exited",
        }
    }
}

/// A refusal: the RIE answers every wrong call with a 403 and a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: &'static str,
    pub message: String,
}

fn refuse(kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { kind, message: message.into() }
}

/// `{"events": [...]}`. Unknown fields are ignored, as Go's decoder does.
#[derive(Deserialize)]
struct RegisterBody {
    #[serde(default)]
    events: Vec<String>,
    #[serde(default, rename = "configurationKeys")]
    configuration_keys: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct RegisterAnswer<'a> {
    #[serde(rename = "accountId", skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(rename = "functionName")]
    function_name: &'a str,
    #[serde(rename = "functionVersion")]
    function_version: &'a str,
    handler: &'a str,
}

/// An `INVOKE` event, as the RIE renders it.
#[derive(Serialize)]
struct InvokeEvent<'a> {
    #[serde(rename = "eventType")]
    event_type: &'static str,
    #[serde(rename = "deadlineMs")]
    deadline_ms: u64,
    #[serde(rename = "requestId")]
    request_id: &'a str,
    #[serde(rename = "invokedFunctionArn")]
    invoked_function_arn: &'a str,
}

/// A `SHUTDOWN` event.
#[derive(Serialize)]
struct ShutdownEvent<'a> {
    #[serde(rename = "eventType")]
    event_type: &'static str,
    #[serde(rename = "deadlineMs")]
    deadline_ms: u64,
    #[serde(rename = "shutdownReason")]
    shutdown_reason: &'a str,
}

impl Registry {
    pub fn new(meta: Metadata) -> Registry {
        Registry { meta, agents: Vec::new(), closed: false }
    }

    /// `POST /register`: the new extension's identifier and the answer's
    /// body.
    pub fn register(
        &mut self,
        name: Option<&str>,
        body: &[u8],
        with_account: bool,
    ) -> Result<(String, Vec<u8>), Refusal> {
        let name = name.unwrap_or_default();
        if name.is_empty() {
            return Err(refuse("Extension.InvalidExtensionName", "Empty extension name"));
        }
        let parsed: RegisterBody = serde_json::from_slice(body)
            .map_err(|e| refuse("InvalidRequestFormat", e.to_string()))?;
        if !parsed.configuration_keys.is_empty() {
            return Err(refuse(
                "InvalidRequestFormat",
                "configurationKeys are deprecated; use environment variables instead",
            ));
        }
        let external = self.meta.external.iter().any(|n| n == name);
        let (mut invoke, mut shutdown) = (false, false);
        for event in &parsed.events {
            match event.as_str() {
                "INVOKE" => invoke = true,
                // Internal extensions (in the runtime's process) stop with
                // it: they may not subscribe to SHUTDOWN.
                "SHUTDOWN" if external => shutdown = true,
                "SHUTDOWN" => {
                    return Err(refuse(
                        "Extension.InvalidEventType",
                        format!("{event}: ErrorEventNotSupportedForInternalAgent"),
                    ));
                }
                _ => {
                    return Err(refuse(
                        "Extension.InvalidEventType",
                        format!("{event}: ErrorInvalidEventType"),
                    ));
                }
            }
        }
        if let Some(agent) = self.agents.iter().find(|a| a.name == name) {
            return Err(if external {
                refuse(
                    "Extension.InvalidExtensionState",
                    format!(
                        "State transition from {} to Registered failed for extension {name}. Error: State transition is not allowed",
                        agent.state.name()
                    ),
                )
            } else {
                refuse(
                    "Extension.InvalidExtensionState",
                    "Extension with this name already registered",
                )
            });
        }
        if !external {
            if self.closed {
                return Err(refuse(
                    "Extension.RegistrationClosed",
                    "Extension registration closed already",
                ));
            }
            if self.agents.len() >= MAX_EXTENSIONS {
                return Err(refuse(
                    "Extension.TooManyExtensions",
                    format!("Extension limit ({MAX_EXTENSIONS}) reached"),
                ));
            }
        }
        let id = crate::ids::request_id();
        self.agents.push(Agent {
            id: id.clone(),
            name: name.to_owned(),
            external,
            invoke,
            shutdown,
            state: State::Registered,
            pending: None,
        });
        let answer = RegisterAnswer {
            account_id: with_account.then_some(self.meta.account_id.as_str()),
            function_name: &self.meta.function_name,
            function_version: &self.meta.function_version,
            handler: &self.meta.handler,
        };
        Ok((id, serde_json::to_vec(&answer).unwrap_or_default()))
    }

    fn find(&mut self, id: &str) -> Result<&mut Agent, Refusal> {
        self.agents.iter_mut().find(|a| a.id == id).ok_or_else(|| {
            refuse("Extension.UnknownExtensionIdentifier", format!("Unknown extension {id}"))
        })
    }

    /// `GET /event/next`: the extension is done with its last event.
    pub fn next(&mut self, id: &str) -> Result<(), Refusal> {
        let agent = self.find(id)?;
        match agent.state {
            State::Registered | State::Ready | State::Running => {
                agent.state = State::Ready;
                Ok(())
            }
            state => Err(transition(state, "Ready", id)),
        }
    }

    /// The event waiting for `id`, if any; taking it makes it run.
    pub fn take_event(&mut self, id: &str) -> Option<Bytes> {
        let agent = self.agents.iter_mut().find(|a| a.id == id)?;
        let event = agent.pending.take()?;
        agent.state = State::Running;
        Some(event)
    }

    /// `POST /init/error` or `/exit/error`: the extension's name, once
    /// its state allows the call.
    pub fn fail(&mut self, id: &str, at_exit: bool) -> Result<String, Refusal> {
        let agent = self.find(id)?;
        let allowed = match agent.state {
            State::Registered => true,
            State::Ready | State::Running => at_exit,
            State::InitError | State::ExitError => false,
        };
        if !allowed {
            let to = if at_exit { "Exited" } else { "InitError" };
            return Err(transition(agent.state, to, id));
        }
        agent.state = if at_exit { State::ExitError } else { State::InitError };
        Ok(agent.name.clone())
    }

    /// Whether every external extension started has registered.
    pub fn all_registered(&self) -> bool {
        self.meta.external.iter().all(|name| self.agents.iter().any(|a| &a.name == name))
    }

    /// Whether every registered extension has called `next` and has no
    /// event waiting (init over, or the last invocation's work done).
    pub fn all_ready(&self) -> bool {
        self.agents.iter().all(|a| a.state == State::Ready && a.pending.is_none())
    }

    /// Init is over: no more registrations.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Hands an `INVOKE` event to every extension registered for it.
    pub fn invoke(&mut self, deadline_ms: u64, request_id: &str, arn: &str) -> bool {
        // The common case, no extension: nothing to render (this runs on
        // every invocation).
        if !self.agents.iter().any(|a| a.invoke) {
            return false;
        }
        let event = InvokeEvent {
            event_type: "INVOKE",
            deadline_ms,
            request_id,
            invoked_function_arn: arn,
        };
        let event = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        let mut any = false;
        for agent in self.agents.iter_mut().filter(|a| a.invoke) {
            agent.pending = Some(event.clone());
            any = true;
        }
        any
    }

    /// Hands a `SHUTDOWN` event to every external extension registered for
    /// it; `true` if there was one.
    pub fn shutdown(&mut self, deadline_ms: u64, reason: &str) -> bool {
        let event = ShutdownEvent { event_type: "SHUTDOWN", deadline_ms, shutdown_reason: reason };
        let event = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        let mut any = false;
        for agent in self.agents.iter_mut().filter(|a| a.shutdown && a.external) {
            agent.pending = Some(event.clone());
            any = true;
        }
        any
    }

    /// Whether every extension given `SHUTDOWN` has taken it and called
    /// `next` again (or was never given one).
    pub fn shut_down(&self) -> bool {
        self.agents
            .iter()
            .filter(|a| a.shutdown && a.external)
            .all(|a| a.pending.is_none() && a.state != State::Running)
    }

    /// Whether the extension called `name` is done with `SHUTDOWN` (or was
    /// never to get one).
    pub fn shut_down_by(&self, name: &str) -> bool {
        self.agents
            .iter()
            .filter(|a| a.name == name && a.shutdown && a.external)
            .all(|a| a.pending.is_none() && a.state != State::Running)
    }

    /// Whether any extension registered for `SHUTDOWN`.
    pub fn wants_shutdown(&self) -> bool {
        self.agents.iter().any(|a| a.shutdown && a.external)
    }
}

fn transition(from: State, to: &str, id: &str) -> Refusal {
    refuse(
        "Extension.InvalidExtensionState",
        format!(
            "State transition from {} to {to} failed for extension {id}. Error: State transition is not allowed",
            from.name()
        ),
    )
}

/// What a request to the Extensions API asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Register,
    Next,
    InitError,
    ExitError,
}

/// The call a path under `/2020-01-01/extension/` names, with the method it
/// takes (`None`: not an Extensions API path).
pub(crate) fn call(path: &str) -> Option<(Call, &'static str)> {
    let rest = path.strip_prefix('/')?.strip_prefix(VERSION)?.strip_prefix("/extension/")?;
    Some(match rest {
        "register" => (Call::Register, "POST"),
        "event/next" => (Call::Next, "GET"),
        "init/error" => (Call::InitError, "POST"),
        "exit/error" => (Call::ExitError, "POST"),
        _ => return None,
    })
}

fn forbidden(refusal: Refusal) -> Response<Full<Bytes>> {
    error(StatusCode::FORBIDDEN, refusal.kind, &refusal.message)
}

/// The caller's identifier, checked as the RIE's middleware checks it.
fn identifier(request: &Request<Incoming>) -> Result<String, Refusal> {
    let value = request.headers().get(&IDENTIFIER).map(|v| v.to_str().unwrap_or("?"));
    match value {
        None | Some("") => Err(refuse(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        )),
        Some(v) if is_uuid(v) => Ok(v.to_ascii_lowercase()),
        Some(_) => Err(refuse(
            "Extension.InvalidExtensionIdentifier",
            "Invalid Lambda-Extension-Identifier",
        )),
    }
}

/// `8-4-4-4-12` hex digits, as Go's `uuid.Parse` takes them (its other
/// spellings, braces and `urn:uuid:`, are not worth a dependency).
fn is_uuid(v: &str) -> bool {
    v.len() == 36
        && v.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Serves one Extensions API call.
pub(crate) async fn handle(
    shared: &Shared,
    call: Call,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match call {
        Call::Register => {
            let name = request
                .headers()
                .get(&NAME)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let with_account = request
                .headers()
                .get(&ACCEPT_FEATURE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
            let unlimited = crate::budget::Account::unlimited();
            let read = crate::budget::read(
                request.into_body(),
                MAX_REGISTER_BODY,
                None,
                &unlimited,
                crate::budget::cost,
            );
            let body = match read.await {
                Ok(body) => body,
                Err(_) => {
                    let why = format!("the body is unreadable or over {MAX_REGISTER_BODY} bytes");
                    return forbidden(refuse("InvalidRequestFormat", why));
                }
            };
            let registered =
                shared.with_extensions(|r| r.register(name.as_deref(), &body, with_account));
            match registered {
                Ok((id, answer)) => {
                    shared.changed();
                    let mut response = json(StatusCode::OK, answer);
                    if let Ok(id) = HeaderValue::from_str(&id) {
                        response.headers_mut().insert(IDENTIFIER, id);
                    }
                    response
                }
                Err(refusal) => forbidden(refusal),
            }
        }
        Call::Next => {
            let id = match identifier(&request) {
                Ok(id) => id,
                Err(refusal) => return forbidden(refusal),
            };
            if let Err(refusal) = shared.with_extensions(|r| r.next(&id)) {
                return forbidden(refusal);
            }
            shared.changed();
            loop {
                // Registered before looking, so an event in between is not
                // missed.
                let delivered = shared.extension_work();
                if let Some(event) = shared.with_extensions(|r| r.take_event(&id)) {
                    shared.changed();
                    let mut response = json(StatusCode::OK, event.to_vec());
                    let event_id = crate::ids::request_id();
                    if let Ok(event_id) = HeaderValue::from_str(&event_id) {
                        response.headers_mut().insert(EVENT_IDENTIFIER, event_id);
                    }
                    return response;
                }
                delivered.await;
            }
        }
        Call::InitError | Call::ExitError => {
            let at_exit = call == Call::ExitError;
            let id = match identifier(&request) {
                Ok(id) => id,
                Err(refusal) => return forbidden(refusal),
            };
            let Some(kind) = request
                .headers()
                .get(&ERROR_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .filter(|v| !v.is_empty())
            else {
                return forbidden(refuse(
                    "Extension.MissingHeader",
                    "Lambda-Extension-Function-Error-Type not found",
                ));
            };
            match shared.with_extensions(|r| r.fail(&id, at_exit)) {
                Ok(name) => {
                    shared.extension_failed(&name, &kind, at_exit);
                    accepted()
                }
                Err(refusal) => forbidden(refusal),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(Metadata {
            function_name: "Hello".into(),
            function_version: "$LATEST".into(),
            handler: "bootstrap".into(),
            account_id: "000000000000".into(),
            external: vec!["counter".into()],
        })
    }

    #[test]
    fn registration_answers_and_refuses_as_the_rie_does() {
        let mut r = registry();
        assert_eq!(
            r.register(None, b"{}", false).unwrap_err().kind,
            "Extension.InvalidExtensionName"
        );
        assert_eq!(
            r.register(Some("counter"), b"{", false).unwrap_err().kind,
            "InvalidRequestFormat"
        );
        let bad = r.register(Some("counter"), br#"{"events":["LOGS"]}"#, false).unwrap_err();
        assert_eq!(bad.kind, "Extension.InvalidEventType");
        let keys = br#"{"events":[],"configurationKeys":["a"]}"#;
        assert_eq!(
            r.register(Some("counter"), keys, false).unwrap_err().kind,
            "InvalidRequestFormat"
        );
        assert!(!r.all_registered());
        let body = br#"{"events":["INVOKE","SHUTDOWN"]}"#;
        let (id, answer) = r.register(Some("counter"), body, true).expect("registers");
        assert!(is_uuid(&id), "{id}");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"accountId":"000000000000","functionName":"Hello","functionVersion":"$LATEST","handler":"bootstrap"})
        );
        assert!(r.all_registered());
        // Twice: a state error, naming the state.
        let again = r.register(Some("counter"), body, false).unwrap_err();
        assert_eq!(again.kind, "Extension.InvalidExtensionState");
        assert!(
            again.message.starts_with("State transition from Registered to Registered"),
            "{}",
            again.message
        );
        // An internal one may not take SHUTDOWN, and none may come after init.
        let internal =
            r.register(Some("inside"), br#"{"events":["SHUTDOWN"]}"#, false).unwrap_err();
        assert_eq!(internal.kind, "Extension.InvalidEventType");
        r.close();
        let late = r.register(Some("late"), br#"{"events":["INVOKE"]}"#, false).unwrap_err();
        assert_eq!(late.kind, "Extension.RegistrationClosed");
    }

    #[test]
    fn an_invocation_ends_when_every_invoke_extension_calls_next_again() {
        let mut r = registry();
        let (id, _) = r.register(Some("counter"), br#"{"events":["INVOKE"]}"#, false).unwrap();
        assert!(!r.all_ready(), "registered, not yet in next");
        r.next(&id).unwrap();
        assert!(r.all_ready());
        assert!(r.invoke(1, "req-1", "arn"));
        assert!(!r.all_ready(), "its INVOKE is waiting");
        let event: serde_json::Value = serde_json::from_slice(&r.take_event(&id).unwrap()).unwrap();
        assert_eq!(event["eventType"], "INVOKE");
        assert_eq!(event["requestId"], "req-1");
        assert!(!r.all_ready(), "working on it");
        r.next(&id).unwrap();
        assert!(r.all_ready());
        // Not registered for SHUTDOWN: nothing to wait for.
        assert!(!r.shutdown(2, "spindown"));
        assert!(r.shut_down());
    }

    #[test]
    fn errors_end_the_extension_and_unknown_ids_are_refused() {
        let mut r = registry();
        let (id, _) = r.register(Some("counter"), br#"{"events":["SHUTDOWN"]}"#, false).unwrap();
        assert_eq!(
            r.next("00000000-0000-4000-8000-000000000000").unwrap_err().kind,
            "Extension.UnknownExtensionIdentifier"
        );
        assert_eq!(r.fail(&id, false).unwrap(), "counter");
        let after = r.next(&id).unwrap_err();
        assert_eq!(after.kind, "Extension.InvalidExtensionState");
        assert!(
            after.message.starts_with("State transition from InitError to Ready"),
            "{}",
            after.message
        );
        assert!(is_uuid("0b1c2d3e-aaaa-4bbb-8ccc-0123456789ab"));
        assert!(!is_uuid("not-a-uuid"));
    }

    #[test]
    fn shutdown_waits_for_its_subscribers() {
        let mut r = registry();
        let (id, _) =
            r.register(Some("counter"), br#"{"events":["INVOKE","SHUTDOWN"]}"#, false).unwrap();
        r.next(&id).unwrap();
        assert!(r.wants_shutdown());
        assert!(r.shutdown(5, "spindown"));
        assert!(!r.shut_down());
        let event: serde_json::Value = serde_json::from_slice(&r.take_event(&id).unwrap()).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"eventType":"SHUTDOWN","deadlineMs":5,"shutdownReason":"spindown"})
        );
        assert!(!r.shut_down());
        r.next(&id).unwrap();
        assert!(r.shut_down());
    }
}
