"""The KMS key-state table: which operations a key's state refuses, and with which error.

Source: AWS KMS Developer Guide, "Key states of AWS KMS keys", section "Key state table"
(https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html). The rows below
are that table as AWS published it in awsdocs/aws-kms-developer-guide,
doc_source/key-state.md (June 2023, the last revision published as source). The columns,
in the table's order, are Enabled, Disabled, PendingDeletion (with
PendingReplicaDeletion, which shares its column), PendingImport, Unavailable, Creating
and Updating. The table only lists operations on an existing key; CreateKey, ListKeys
and the other keyless operations are never refused for a key state.

Each cell is `None` (the operation succeeds) or the footnote number whose error the
table gives. Cells marked "N/A" in the table (the key type cannot do the operation) are
`None` here: the key-type rules, not the state, refuse those.

Choices where the table leaves one open:
- "[2] or [3]" (cryptographic operations on a key pending deletion): [3],
  `KMSInvalidStateException`, which is what AWS is seen to answer for Decrypt and Encrypt.
- "? [7]" and "[1] or [7]" (rotation operations): [7] applies to keys with imported key
  material or in a custom key store (Origin EXTERNAL, AWS_CLOUDHSM, EXTERNAL_KEY_STORE);
  it is checked before the state's own footnote. The message of [7] is not documented.
- "? [10]" (UpdateAlias): the state of the *target* key decides ([3]); the key the
  alias pointed at before does not matter. The caller passes the target key.
"""

from __future__ import annotations

# Columns of the table, in its order. PendingReplicaDeletion shares PendingDeletion's.
COLUMNS = ("Enabled", "Disabled", "PendingDeletion", "PendingImport", "Unavailable", "Creating", "Updating")
COLUMN_OF_STATE = {state: i for i, state in enumerate(COLUMNS)}
COLUMN_OF_STATE["PendingReplicaDeletion"] = COLUMNS.index("PendingDeletion")
STATES = tuple(COLUMNS) + ("PendingReplicaDeletion",)

OK = None
# Footnotes ("Table Details"): number -> (error code, message with {arn} and {state}).
FOOTNOTES: dict[int, tuple[str, str]] = {
    1: ("DisabledException", "{arn} is disabled."),
    3: ("KMSInvalidStateException", "{arn} is {state}."),  # pending (replica) deletion
    4: ("KMSInvalidStateException", "{arn} is not pending deletion."),
    5: ("KMSInvalidStateException", "{arn} is pending import."),
    6: ("UnsupportedOperationException", "{arn} origin is EXTERNAL which is not valid for this operation."),
    # [7]: the table gives only the code; the message follows [6]'s form (a guess).
    7: ("UnsupportedOperationException", "{arn} origin is {origin} which is not valid for this operation."),
    11: ("KMSInvalidStateException", "{arn} is unavailable."),
    14: ("KMSInvalidStateException", "{arn} is creating."),
    15: ("KMSInvalidStateException", "{arn} is updating."),
}

_CRYPTO = (OK, 1, 3, 5, 11, 14, OK)  # Encrypt, Decrypt, GenerateDataKey*, ReEncrypt
_SIGN_MAC = (OK, 1, 3, OK, OK, 14, OK)  # Sign, Verify, GenerateMac, VerifyMac, GetPublicKey (N/A cells OK)
_ROTATION = (OK, 1, 3, 6, 7, 14, OK)  # Enable/DisableKeyRotation; "? [7]" cells are OK here
_ALWAYS = (OK,) * 7
_NOT_PENDING_DELETION = (OK, OK, 3, OK, OK, OK, OK)

#                                 Enabled Disabled PendDel PendImport Unavail Creating Updating
TABLE: dict[str, tuple] = {
    "CancelKeyDeletion":                   (4, 4, OK, 4, 4, 4, 4),
    "CreateAlias":                         _NOT_PENDING_DELETION,
    "CreateGrant":                         (OK, 1, 3, 5, OK, 14, OK),
    "Decrypt":                             _CRYPTO,
    "DeleteAlias":                         _ALWAYS,
    "DescribeKey":                         _ALWAYS,
    "DisableKey":                          (OK, OK, 3, 5, OK, 14, 15),
    "DisableKeyRotation":                  _ROTATION,
    "EnableKey":                           (OK, OK, 3, 5, OK, 14, 15),
    "EnableKeyRotation":                   _ROTATION,
    "Encrypt":                             _CRYPTO,
    "GenerateDataKey":                     _CRYPTO,
    "GenerateDataKeyPair":                 _CRYPTO,
    "GenerateDataKeyPairWithoutPlaintext": _CRYPTO,
    "GenerateDataKeyWithoutPlaintext":     _CRYPTO,
    "GenerateMac":                         _SIGN_MAC,
    "GetKeyPolicy":                        _ALWAYS,
    "GetKeyRotationStatus":                (OK, OK, OK, 6, 7, OK, OK),
    "GetPublicKey":                        _SIGN_MAC,
    "ListAliases":                         _ALWAYS,
    "ListGrants":                          _ALWAYS,
    "ListKeyPolicies":                     _ALWAYS,
    "ListResourceTags":                    _ALWAYS,
    "PutKeyPolicy":                        _ALWAYS,
    "ReEncrypt":                           _CRYPTO,
    "ReplicateKey":                        (OK, 1, 3, 5, OK, 14, 15),
    "RetireGrant":                         _ALWAYS,
    "RevokeGrant":                         _ALWAYS,
    "ScheduleKeyDeletion":                 (OK, OK, 3, OK, OK, OK, 15),
    "Sign":                                _SIGN_MAC,
    "TagResource":                         _NOT_PENDING_DELETION,
    "UntagResource":                       _NOT_PENDING_DELETION,
    "UpdateAlias":                         _NOT_PENDING_DELETION,  # [10]: the target key's state
    "UpdateKeyDescription":                _NOT_PENDING_DELETION,
    "UpdatePrimaryRegion":                 (OK, 1, 3, 5, OK, 14, OK),
    "Verify":                              _SIGN_MAC,
    "VerifyMac":                           _SIGN_MAC,
}

# Footnote [7]: rotation is not supported for imported key material or custom key stores.
ROTATION_OPS = {"EnableKeyRotation", "DisableKeyRotation", "GetKeyRotationStatus"}
NO_ROTATION_ORIGINS = {"EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"}


def _words(state: str) -> str:
    """"PendingReplicaDeletion" -> "pending replica deletion"."""
    return "".join(" " + c.lower() if c.isupper() else c for c in state).strip()


def footnote(op: str, state: str, origin: str = "AWS_KMS") -> int | None:
    """The table's footnote for `op` on a key in `state`, or None if it succeeds."""
    row = TABLE.get(op)
    if row is None or state not in COLUMN_OF_STATE:
        return None
    cell = row[COLUMN_OF_STATE[state]]
    if op in ROTATION_OPS and origin in NO_ROTATION_ORIGINS and cell != 6:
        return 7
    return cell


def refusal(op: str, state: str, origin: str, arn: str) -> tuple[str, str] | None:
    """(error code, message) for `op` on the key `arn`, or None when the state allows it."""
    note = footnote(op, state, origin)
    if note is None:
        return None
    code, message = FOOTNOTES[note]
    return code, message.format(arn=arn, state=_words(state), origin=origin)
