//! Observing every AWS call in one place: an SDK interceptor, registered on every service
//! client that [`super::ClientFactory`] builds, that reports each operation's outcome
//! (`success` or the [`ErrorClass`] of its error) and each throttled attempt to a
//! [`CallReporter`] (the operator's metrics, wired in by the controllers). The error
//! class comes from the HTTP response (the AWS error code in the `x-amzn-ErrorType`
//! header, the JSON `__type` or the XML `<Code>`), classified by the same [`class_of`]
//! the controllers use; a call that got no response is `Transient`.

use std::sync::Arc;

use aws_sdk_kms::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_kms::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};

use super::error::{ErrorClass, class_of};

/// How one AWS operation ended, after the SDK's retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    Failed(ErrorClass),
}

impl CallOutcome {
    /// `success` or the error class's name: a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Failed(class) => class.as_str(),
        }
    }
}

/// Where [`CallObserver`] reports. `service` is lower case (`kms`), `operation` the
/// API name (`GetKeyPolicy`).
pub trait CallReporter: Send + Sync {
    /// One operation finished.
    fn request(&self, service: &str, operation: &str, outcome: CallOutcome);
    /// One attempt of an operation was throttled by AWS.
    fn throttled(&self, service: &str, operation: &str);
}

/// The interceptor; cheap to clone, it shares its reporter.
#[derive(Clone)]
pub struct CallObserver {
    reporter: Arc<dyn CallReporter>,
}

impl std::fmt::Debug for CallObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallObserver").finish_non_exhaustive()
    }
}

impl CallObserver {
    pub fn new(reporter: Arc<dyn CallReporter>) -> Self {
        Self { reporter }
    }
}

/// `(service, operation)` of the call, e.g. `("kms", "GetKeyPolicy")`.
fn operation(cfg: &ConfigBag) -> (String, String) {
    match cfg.load::<Metadata>() {
        Some(metadata) => (
            metadata.service().to_ascii_lowercase(),
            metadata.name().to_string(),
        ),
        None => ("unknown".to_string(), "unknown".to_string()),
    }
}

impl Intercept for CallObserver {
    fn name(&self) -> &'static str {
        "CrosskeyCallMetrics"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Err(_)) = context.output_or_error()
            && classify_response(context.response()) == ErrorClass::Throttled
        {
            let (service, operation) = operation(cfg);
            self.reporter.throttled(&service, &operation);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => CallOutcome::Success,
            _ => CallOutcome::Failed(classify_response(context.response())),
        };
        let (service, operation) = operation(cfg);
        self.reporter.request(&service, &operation, outcome);
        Ok(())
    }
}

/// The class of a failed call from its HTTP response; no response means the call never
/// reached AWS (network, timeout): `Transient`.
fn classify_response(response: Option<&HttpResponse>) -> ErrorClass {
    let Some(response) = response else {
        return ErrorClass::Transient;
    };
    let body = response
        .body()
        .bytes()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let (code, message) = error_code(response.headers().get("x-amzn-errortype"), &body);
    class_of(
        code.as_deref(),
        message.as_deref().unwrap_or_default(),
        Some(response.status().as_u16()),
    )
}

/// The AWS error code and message of an error response, for the JSON protocols (header
/// `x-amzn-ErrorType` or body `__type`, e.g. `com.amazonaws.kms#NotFoundException`) and
/// the query protocol (XML `<Code>` and `<Message>`).
fn error_code(header: Option<&str>, body: &str) -> (Option<String>, Option<String>) {
    let clean = |code: &str| {
        let code = code.rsplit('#').next().unwrap_or(code);
        code.split(':').next().unwrap_or(code).trim().to_string()
    };
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(trimmed).unwrap_or_default();
        let code = header
            .map(str::to_string)
            .or_else(|| json["__type"].as_str().map(str::to_string))
            .or_else(|| json["code"].as_str().map(str::to_string))
            .map(|c| clean(&c));
        let message = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str())
            .map(str::to_string);
        return (code, message);
    }
    let code = header
        .map(clean)
        .or_else(|| xml_element(body, "Code").map(|c| clean(&c)));
    (code, xml_element(body, "Message"))
}

fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(body[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_named_like_the_error_classes() {
        assert_eq!(CallOutcome::Success.as_str(), "success");
        assert_eq!(
            CallOutcome::Failed(ErrorClass::Throttled).as_str(),
            "Throttled"
        );
    }

    #[test]
    fn json_error_codes_from_header_or_body() {
        assert_eq!(
            error_code(
                Some("NotFoundException:http://internal.amazon.com/coral/"),
                "{}"
            ),
            (Some("NotFoundException".into()), None)
        );
        assert_eq!(
            error_code(
                None,
                r#"{"__type":"com.amazonaws.kms#ThrottlingException","message":"Rate exceeded"}"#
            ),
            (
                Some("ThrottlingException".into()),
                Some("Rate exceeded".into())
            )
        );
    }

    #[test]
    fn query_error_codes_from_xml() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code>\
                    <Message>The role with name x cannot be found.</Message></Error></ErrorResponse>";
        assert_eq!(
            error_code(None, body),
            (
                Some("NoSuchEntity".into()),
                Some("The role with name x cannot be found.".into())
            )
        );
        assert_eq!(error_code(None, "not xml"), (None, None));
    }

    #[test]
    fn responses_classify_like_the_controllers_do() {
        let response = |status: u16, body: &str| {
            HttpResponse::new(
                status.try_into().unwrap(),
                aws_smithy_types::body::SdkBody::from(body),
            )
        };
        assert_eq!(classify_response(None), ErrorClass::Transient);
        assert_eq!(
            classify_response(Some(&response(
                400,
                r#"{"__type":"ThrottlingException","message":"slow down"}"#
            ))),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify_response(Some(&response(
                400,
                r#"{"__type":"MalformedPolicyDocumentException","message":"Policy contains a statement with one or more invalid principals."}"#
            ))),
            ErrorClass::InvalidPrincipal
        );
        assert_eq!(
            classify_response(Some(&response(
                400,
                "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"
            ))),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify_response(Some(&response(503, ""))),
            ErrorClass::Transient
        );
    }
}
