//! Classification of AWS errors into the few classes controllers act on. Controllers
//! branch on [`ErrorClass`], never on message text.

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

/// What a controller should do about a failed AWS call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The resource does not exist (or is gone).
    NotFound,
    /// The caller is not allowed; fix IAM or the key policy.
    AccessDenied,
    /// The request is invalid; retrying the same request cannot succeed until the spec
    /// changes.
    InvalidInput,
    /// A policy names principals that do not exist (yet): new IAM roles take seconds to
    /// become visible, so this is retried with backoff.
    InvalidPrincipal,
    /// AWS throttled the call; slow down.
    Throttled,
    /// Network trouble, timeouts, 5xx: retry with backoff.
    Transient,
}

impl ErrorClass {
    /// A stable CamelCase name, used as metric label and in condition reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::NotFound => "NotFound",
            ErrorClass::AccessDenied => "AccessDenied",
            ErrorClass::InvalidInput => "InvalidInput",
            ErrorClass::InvalidPrincipal => "InvalidPrincipal",
            ErrorClass::Throttled => "Throttled",
            ErrorClass::Transient => "Transient",
        }
    }

    /// Whether retrying the same request later can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::InvalidPrincipal | ErrorClass::Throttled | ErrorClass::Transient
        )
    }
}

/// A failed AWS call, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service}:{operation} failed ({}): {message}", class.as_str())]
pub struct AwsError {
    pub class: ErrorClass,
    pub service: &'static str,
    pub operation: &'static str,
    /// The AWS error code, e.g. `NotFoundException`, when AWS sent one.
    pub code: Option<String>,
    pub message: String,
}

/// An answer of AWS that a controller acts on beyond its [`ErrorClass`]: the request was
/// refused because of a known state, not a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// kms:CreateAlias answered `AlreadyExistsException`: the alias name is taken, possibly
    /// by another key.
    AliasTaken,
    /// kms:ScheduleKeyDeletion answered `KMSInvalidStateException`: the key's state
    /// forbids scheduling, which for a key crosskey created means it is already pending
    /// deletion.
    AlreadyPendingDeletion,
    /// kms:UntagResource answered `KMSInvalidStateException`: AWS refuses tag changes on
    /// a key that is pending deletion (KMS key-state table).
    UntagRefusedByKeyState,
}

impl AwsError {
    pub fn is(&self, class: ErrorClass) -> bool {
        self.class == class
    }

    /// Whether AWS answered with an error code: the request reached the service, which
    /// refused it. Without one the call failed before AWS answered (credentials,
    /// network, timeout) or the answer could not be read.
    pub fn answered_by_aws(&self) -> bool {
        self.code.is_some()
    }

    /// The known refusal this error is, if any.
    pub fn refusal(&self) -> Option<Refusal> {
        match (self.service, self.operation, self.code.as_deref()?) {
            ("kms", "CreateAlias", "AlreadyExistsException") => Some(Refusal::AliasTaken),
            // "… is pending deletion." or "… is pending replica deletion."; a key that
            // is Creating or Updating (a multi-Region key) is refused too, for a moment.
            ("kms", "ScheduleKeyDeletion", "KMSInvalidStateException")
                if self.message.contains("pending") =>
            {
                Some(Refusal::AlreadyPendingDeletion)
            }
            ("kms", "UntagResource", "KMSInvalidStateException") => {
                Some(Refusal::UntagRefusedByKeyState)
            }
            _ => None,
        }
    }

    /// See [`Refusal::AliasTaken`].
    pub fn is_alias_taken(&self) -> bool {
        self.refusal() == Some(Refusal::AliasTaken)
    }

    /// See [`Refusal::AlreadyPendingDeletion`].
    pub fn is_already_pending_deletion(&self) -> bool {
        self.refusal() == Some(Refusal::AlreadyPendingDeletion)
    }

    /// Whether this may mean that a backup vault does not exist: AWS Backup answers
    /// `AccessDeniedException` to DescribeBackupVault and ListRecoveryPointsByBackupVault
    /// for a vault that does not exist (Terraform's provider reads it as not found), and
    /// also for a real denial. The class stays `AccessDenied`; the caller decides, e.g.
    /// from whether it ever created the vault.
    pub fn may_be_missing_vault(&self) -> bool {
        self.class == ErrorClass::AccessDenied
            && self.service == "backup"
            && matches!(
                self.operation,
                "DescribeBackupVault" | "ListRecoveryPointsByBackupVault"
            )
    }
}

/// Maps an AWS error code (and, for the one ambiguous code, its message) to a class.
pub fn class_of(code: Option<&str>, message: &str, http_status: Option<u16>) -> ErrorClass {
    match code {
        Some(
            "NotFoundException"
            | "ResourceNotFoundException"
            | "NoSuchEntity"
            | "NoSuchEntityException"
            // SQS: a queue that does not exist (JSON protocol, and the query code).
            | "QueueDoesNotExist"
            | "AWS.SimpleQueueService.NonExistentQueue"
            // RAM: a resource share, resource or principal it does not know.
            | "UnknownResourceException",
        ) => ErrorClass::NotFound,
        Some(
            "AccessDeniedException"
            | "AccessDenied"
            | "UnauthorizedOperation"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "UnrecognizedClientException",
        ) => ErrorClass::AccessDenied,
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException",
        ) => ErrorClass::Throttled,
        // KMS reports a missing principal as a malformed policy; this is the only place
        // where the message decides, and it decides here, not in the controllers.
        Some("MalformedPolicyDocumentException") if message.contains("invalid principals") => {
            ErrorClass::InvalidPrincipal
        }
        // AWS Backup's answer to a vault access policy naming a principal that does not
        // exist (yet), the counterpart of KMS's.
        Some("InvalidParameterValueException") if message.contains("Invalid principal") => {
            ErrorClass::InvalidPrincipal
        }
        Some(
            "MalformedPolicyDocumentException"
            | "ValidationException"
            | "InvalidParameterValueException"
            | "InvalidParameterException"
            | "InvalidArnException"
            | "InvalidAliasNameException"
            | "LimitExceededException"
            | "KMSInvalidStateException"
            | "AlreadyExistsException"
            | "InvalidRequestException"
            | "MalformedPolicyDocument"
            | "TagException"
            | "UnsupportedOperationException"
            | "DisabledException"
            | "InvalidKeyUsageException"
            // IAM's codes for a bad or too large inline policy (PutRolePolicy).
            | "ValidationError"
            | "LimitExceeded"
            // RAM's refusals of a share request.
            | "MalformedArnException"
            | "OperationNotPermittedException"
            | "ResourceShareLimitExceededException"
            | "InvalidStateTransitionException",
        ) => ErrorClass::InvalidInput,
        _ => match http_status {
            Some(429) => ErrorClass::Throttled,
            Some(403) => ErrorClass::AccessDenied,
            Some(404) => ErrorClass::NotFound,
            _ => ErrorClass::Transient,
        },
    }
}

/// Classifies any SDK error of any AWS service.
pub fn classify<E>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let http_status = err.raw_response().map(|r| r.status().as_u16());
    let (code, message) = match &err {
        SdkError::ServiceError(service_err) => {
            let inner = service_err.err();
            (
                inner.code().map(str::to_string),
                inner
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| inner.to_string()),
            )
        }
        other => (other.code().map(str::to_string), display_chain(other)),
    };
    let class = match (&code, refused_assume_role(&err)) {
        // The call never left: STS refused the AssumeRole behind its credentials. That is
        // a denial (wrong role, trust policy or ExternalId), not a transient failure.
        (None, Some(sts_code)) => class_of(Some(&sts_code), &message, None),
        _ => class_of(code.as_deref(), &message, http_status),
    };
    AwsError {
        class,
        service,
        operation,
        code,
        message,
    }
}

/// The error code of an sts:AssumeRole that STS answered while loading the credentials
/// of a failed call, found in the error's source chain.
fn refused_assume_role(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(refused) =
            cause.downcast_ref::<aws_sdk_sts::operation::assume_role::AssumeRoleError>()
        {
            return refused.code().map(str::to_string);
        }
        source = cause.source();
    }
    None
}

fn display_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes() {
        let cases = [
            (Some("NotFoundException"), "", None, ErrorClass::NotFound),
            (Some("NoSuchEntity"), "", None, ErrorClass::NotFound),
            (
                Some("AccessDeniedException"),
                "",
                None,
                ErrorClass::AccessDenied,
            ),
            (Some("ThrottlingException"), "", None, ErrorClass::Throttled),
            (
                Some("Throttling"),
                "Rate exceeded",
                None,
                ErrorClass::Throttled,
            ),
            (
                Some("MalformedPolicyDocumentException"),
                "Policy contains a statement with one or more invalid principals.",
                None,
                ErrorClass::InvalidPrincipal,
            ),
            (
                Some("MalformedPolicyDocumentException"),
                "The new key policy will not allow you to update the key policy in the future.",
                None,
                ErrorClass::InvalidInput,
            ),
            (
                Some("ValidationException"),
                "",
                None,
                ErrorClass::InvalidInput,
            ),
            (
                Some("InternalFailure"),
                "",
                Some(500),
                ErrorClass::Transient,
            ),
            (None, "", Some(503), ErrorClass::Transient),
            (None, "", Some(429), ErrorClass::Throttled),
            (None, "dispatch failure", None, ErrorClass::Transient),
        ];
        for (code, message, status, expected) in cases {
            assert_eq!(
                class_of(code, message, status),
                expected,
                "{code:?} {message:?} {status:?}"
            );
        }
    }

    fn answer(service: &'static str, operation: &'static str, code: Option<&str>) -> AwsError {
        AwsError {
            class: class_of(code, "", None),
            service,
            operation,
            code: code.map(str::to_string),
            message: String::new(),
        }
    }

    #[test]
    fn an_existing_alias_is_a_taken_alias() {
        let taken = answer("kms", "CreateAlias", Some("AlreadyExistsException"));
        assert_eq!(taken.refusal(), Some(Refusal::AliasTaken));
        assert!(taken.is_alias_taken());
        assert!(!taken.is_already_pending_deletion());
        // Only CreateAlias's answer means the alias.
        assert!(!answer("kms", "CreateKey", Some("AlreadyExistsException")).is_alias_taken());
        assert!(!answer("kms", "CreateAlias", Some("NotFoundException")).is_alias_taken());
        assert!(!answer("kms", "CreateAlias", None).is_alias_taken());
    }

    #[test]
    fn an_invalid_state_on_untagging_is_a_key_state_refusal() {
        let refused = answer("kms", "UntagResource", Some("KMSInvalidStateException"));
        assert_eq!(refused.refusal(), Some(Refusal::UntagRefusedByKeyState));
        assert_eq!(
            answer("kms", "UntagResource", Some("NotFoundException")).refusal(),
            None
        );
        assert_eq!(
            answer("kms", "TagResource", Some("KMSInvalidStateException")).refusal(),
            None
        );
    }

    #[test]
    fn an_invalid_state_on_scheduling_is_already_pending_deletion() {
        let state = |message: &str| AwsError {
            message: message.to_string(),
            ..answer(
                "kms",
                "ScheduleKeyDeletion",
                Some("KMSInvalidStateException"),
            )
        };
        let pending = state("arn:aws:kms:us-east-1:111122223333:key/k is pending deletion.");
        assert_eq!(pending.refusal(), Some(Refusal::AlreadyPendingDeletion));
        let replicas =
            state("arn:aws:kms:us-east-1:111122223333:key/mrk-1 is pending replica deletion.");
        assert!(replicas.is_already_pending_deletion());
        let updating = state("arn:aws:kms:us-east-1:111122223333:key/mrk-1 is updating.");
        assert!(!updating.is_already_pending_deletion());
        assert!(pending.is_already_pending_deletion());
        assert!(!pending.is_alias_taken());
        assert!(
            !answer("kms", "EnableKey", Some("KMSInvalidStateException"))
                .is_already_pending_deletion()
        );
        assert!(
            !answer("kms", "ScheduleKeyDeletion", Some("NotFoundException"))
                .is_already_pending_deletion()
        );
    }

    #[test]
    fn an_error_code_means_aws_answered() {
        assert!(answer("sts", "GetCallerIdentity", Some("AccessDenied")).answered_by_aws());
        assert!(answer("kms", "CreateKey", Some("InternalFailure")).answered_by_aws());
        assert!(!answer("sts", "GetCallerIdentity", None).answered_by_aws());
        assert_eq!(answer("kms", "CreateKey", None).refusal(), None);
    }

    #[test]
    fn access_denied_on_a_vault_read_may_mean_it_is_missing() {
        for operation in ["DescribeBackupVault", "ListRecoveryPointsByBackupVault"] {
            let denied = answer("backup", operation, Some("AccessDeniedException"));
            assert!(denied.may_be_missing_vault(), "{operation}");
            // The classification is unchanged.
            assert_eq!(denied.class, ErrorClass::AccessDenied);
        }
        assert!(
            !answer("backup", "CreateBackupVault", Some("AccessDeniedException"))
                .may_be_missing_vault()
        );
        assert!(
            !answer("backup", "DescribeBackupVault", Some("ThrottlingException"))
                .may_be_missing_vault()
        );
        assert!(
            !answer("kms", "DescribeKey", Some("AccessDeniedException")).may_be_missing_vault()
        );
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        assert!(ErrorClass::Throttled.is_retryable());
        assert!(ErrorClass::Transient.is_retryable());
        assert!(ErrorClass::InvalidPrincipal.is_retryable());
        assert!(!ErrorClass::InvalidInput.is_retryable());
        assert!(!ErrorClass::AccessDenied.is_retryable());
        assert!(!ErrorClass::NotFound.is_retryable());
    }
}
