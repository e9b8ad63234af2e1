"""Unit tests of the extension's own policy evaluator (no server)."""

import pytest

from crosskey_moto import policy as pol

B_ROLE = pol.PrincipalInfo(
    account="222222222222", kind="AssumedRole",
    arn="arn:aws:sts::222222222222:assumed-role/app/s1",
    principal_arn="arn:aws:iam::222222222222:role/app", entity_id="AROAEXAMPLEID0000001",
)
KEY = "arn:aws:kms:us-east-1:111111111111:key/k1"


@pytest.mark.parametrize(
    "operator,key,values,ctx,expected",
    [
        ("StringEquals", "kms:CallerAccount", ["222222222222"], {"kms:calleraccount": "222222222222"}, True),
        ("StringEquals", "kms:CallerAccount", "333333333333", {"kms:calleraccount": "222222222222"}, False),
        ("StringEquals", "kms:CallerAccount", "x", {}, False),
        ("StringNotEquals", "kms:CallerAccount", "x", {}, True),  # negated + absent
        ("StringEqualsIfExists", "kms:ViaService", "backup.us-east-1.amazonaws.com", {}, True),
        ("StringEqualsIfExists", "kms:ViaService", "backup.us-east-1.amazonaws.com",
         {"kms:viaservice": "s3.us-east-1.amazonaws.com"}, False),
        ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/ap?", {"aws:principalarn": B_ROLE.principal_arn}, True),
        ("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/APP", {"aws:principalarn": B_ROLE.principal_arn}, False),
        ("StringEqualsIgnoreCase", "aws:PrincipalArn", "ARN:AWS:IAM::222222222222:ROLE/APP",
         {"aws:principalarn": B_ROLE.principal_arn}, True),
        ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::222222222222:role/*", {"aws:principalarn": B_ROLE.principal_arn}, True),
        ("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:user/*", {"aws:principalarn": B_ROLE.principal_arn}, False),
        ("ArnEquals", "aws:PrincipalArn", "arn:aws:iam::222222222222:role/app", {"aws:principalarn": B_ROLE.principal_arn}, True),
        ("ArnNotLike", "aws:PrincipalArn", "arn:aws:iam::222222222222:role/*", {"aws:principalarn": B_ROLE.principal_arn}, False),
        ("Bool", "kms:GrantIsForAWSResource", "true", {"kms:grantisforawsresource": True}, True),
        ("Bool", "kms:GrantIsForAWSResource", True, {"kms:grantisforawsresource": False}, False),
        ("Bool", "kms:GrantIsForAWSResource", "true", {}, False),
        ("Null", "aws:PrincipalOrgID", "true", {}, True),
        ("Null", "aws:PrincipalOrgID", "false", {}, False),
        ("Null", "aws:PrincipalOrgID", "false", {"aws:principalorgid": "o-abc"}, True),
        ("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", "o-abc/r-1/ou-1/*",
         {"aws:principalorgpaths": ["o-abc/r-1/ou-1/ou-2/"]}, True),
        ("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", "o-abc/r-1/ou-1/*",
         {"aws:principalorgpaths": ["o-abc/r-1/ou-9/"]}, False),
        ("ForAnyValue:StringLike", "aws:PrincipalOrgPaths", "o-abc/*", {}, False),
        ("ForAllValues:StringEquals", "kms:GrantOperations", ["Decrypt", "Encrypt"],
         {"kms:grantoperations": ["Decrypt"]}, True),
        ("ForAllValues:StringEquals", "kms:GrantOperations", ["Decrypt"],
         {"kms:grantoperations": ["Decrypt", "CreateGrant"]}, False),
        ("ForAllValues:StringEquals", "kms:GrantOperations", ["Decrypt"], {}, True),  # absent: true
        ("NumericLessThan", "x:n", "5", {"x:n": "3"}, True),
        ("BogusOperator", "kms:CallerAccount", "x", {"kms:calleraccount": "x"}, False),
    ],
)
def test_condition_operators(operator, key, values, ctx, expected):
    assert pol.condition_holds(operator, ctx, key, values) is expected


def test_condition_keys_are_case_insensitive_and_blocks_are_anded():
    ctx = {"kms:calleraccount": "222222222222", "kms:viaservice": "backup.us-east-1.amazonaws.com"}
    block = {
        "StringEquals": {"KMS:CallerAccount": "222222222222", "kms:ViaService": "backup.us-east-1.amazonaws.com"},
        "Bool": {"aws:SecureTransport": "true"},
    }
    assert pol.conditions_hold({"StringEquals": block["StringEquals"]}, ctx)
    assert not pol.conditions_hold(block, ctx)  # SecureTransport absent


def test_principal_matching():
    assert pol.match_principal("*", B_ROLE) == pol.DIRECT
    assert pol.match_principal({"AWS": "*"}, B_ROLE) == pol.DIRECT
    assert pol.match_principal({"AWS": "222222222222"}, B_ROLE) == pol.ACCOUNT
    assert pol.match_principal({"AWS": ["arn:aws:iam::222222222222:root"]}, B_ROLE) == pol.ACCOUNT
    assert pol.match_principal({"AWS": "arn:aws:iam::222222222222:role/app"}, B_ROLE) == pol.DIRECT
    assert pol.match_principal({"AWS": B_ROLE.arn}, B_ROLE) == pol.DIRECT
    assert pol.match_principal({"AWS": "AROAEXAMPLEID0000001"}, B_ROLE) == pol.DIRECT
    assert pol.match_principal({"AWS": "arn:aws:iam::222222222222:role/other"}, B_ROLE) is None
    assert pol.match_principal({"AWS": "arn:aws:iam::333333333333:root"}, B_ROLE) is None
    assert pol.match_principal({"Service": "backup.amazonaws.com"}, B_ROLE) is None


def test_resource_policy_evaluation():
    doc = pol.parse_policy({
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "222222222222"}, "Action": "KMS:Describe*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": B_ROLE.principal_arn}, "Action": "kms:Encrypt", "Resource": "*"},
            {"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111111111111:root"},
             "Action": "kms:PutKeyPolicy", "Resource": "*"},
            {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt"},  # no Resource: grants nothing
        ]
    })
    r = pol.evaluate_resource_policy(doc, B_ROLE, "kms:DescribeKey", KEY, {})
    assert (r.allow_account, r.allow_direct, r.deny) == (True, False, False)
    r = pol.evaluate_resource_policy(doc, B_ROLE, "kms:Encrypt", KEY, {})
    assert (r.allow_account, r.allow_direct) == (False, True)
    assert pol.evaluate_resource_policy(doc, B_ROLE, "kms:PutKeyPolicy", KEY, {}).deny
    r = pol.evaluate_resource_policy(doc, B_ROLE, "kms:Decrypt", KEY, {})
    assert not (r.allow_account or r.allow_direct or r.deny)


def test_identity_policy_evaluation():
    docs = [
        {"Statement": {"Effect": "Allow", "Action": ["kms:*"], "Resource": "arn:aws:kms:*:111111111111:key/*"}},
        {"Statement": [{"Effect": "Deny", "NotAction": "kms:Describe*", "Resource": KEY,
                        "Condition": {"StringNotEquals": {"kms:ViaService": "backup.us-east-1.amazonaws.com"}}}]},
    ]
    assert pol.evaluate_identity_policies(docs, "kms:DescribeKey", KEY, {}) == "allow"
    assert pol.evaluate_identity_policies(docs, "kms:Encrypt", KEY, {}) == "deny"
    via = {"kms:viaservice": "backup.us-east-1.amazonaws.com"}
    assert pol.evaluate_identity_policies(docs, "kms:Encrypt", KEY, via) == "allow"
    assert pol.evaluate_identity_policies(docs, "kms:Encrypt", "arn:aws:kms:us-east-1:999999999999:key/x", {}) is None


def test_parse_policy_errors():
    for bad in ("{", "[]", '{"Version": "2012-10-17"}', '{"Statement": [{"Effect": "Maybe"}]}'):
        with pytest.raises(pol.PolicyError):
            pol.parse_policy(bad)
    assert pol.unknown_operators({"Statement": [{"Effect": "Allow", "Condition": {
        "ForAnyValue:StringLike": {}, "StringEqualsIfExists": {}, "Sometimes:StringLike": {}, "Foo": {}}}]}) == [
        "Sometimes:StringLike", "Foo"]


# --- operators that take typed values (IAM User Guide, "Condition operators") ----------


@pytest.mark.parametrize(
    "operator,values,ctx_value,expected",
    [
        ("DateLessThan", "2025-01-01T00:00:00Z", "2024-06-01T12:00:00Z", True),
        ("DateLessThan", "2024-01-01T00:00:00Z", "2024-06-01T12:00:00Z", False),
        ("DateGreaterThan", "1700000000", "2024-06-01T12:00:00Z", True),  # epoch policy value
        ("DateEquals", "2024-06-01T14:00:00+02:00", "2024-06-01T12:00:00Z", True),
        ("DateEquals", "2024-06-01", "2024-06-01T00:00:00Z", True),
        ("DateLessThanEquals", "2024-06-01T12:00:00.500Z", "2024-06-01T12:00:00.5Z", True),
        ("DateNotEquals", "2024-06-01T12:00:00Z", "1717243200", False),  # same instant
        ("DateLessThan", "garbage", "2024-06-01T12:00:00Z", False),
        ("DateLessThan", "2024-02-30T00:00:00Z", "2024-01-01T00:00:00Z", False),
        ("NumericLessThan", "3600", "59", True),
        ("NumericGreaterThanEquals", ["10", "3600"], "3600", True),
        ("NumericEquals", "1.5", "1.50", True),
        ("NumericNotEquals", "3600", "3600", False),
        ("NumericLessThan", "x", "1", False),
        ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
        ("IpAddress", "203.0.113.7", "203.0.113.7", True),
        ("IpAddress", "203.0.113.0/24", "198.51.100.1", False),
        ("IpAddress", "203.0.113.9/24", "203.0.113.200", True),  # host bits ignored
        ("IpAddress", "2001:db8::/32", "2001:db8:1::5", True),
        ("IpAddress", "2001:db8::/32", "203.0.113.7", False),
        ("IpAddress", "0.0.0.0/0", "2001:db8::1", False),  # families never mix
        ("IpAddress", "203.0.113.0/33", "203.0.113.7", False),
        ("NotIpAddress", ["10.0.0.0/8", "2001:db8::/32"], "203.0.113.7", True),
        ("NotIpAddress", ["10.0.0.0/8"], "10.1.2.3", False),
        ("BinaryEquals", "QUJD", "QUJD", True),
        ("BinaryEquals", "QUJD", "QUJDRA==", False),
    ],
)
def test_typed_operators(operator, values, ctx_value, expected):
    assert pol.condition_holds(operator, {"k:x": ctx_value}, "k:x", values) is expected


@pytest.mark.parametrize("operator", [
    "StringEquals", "StringLike", "ArnLike", "Bool", "NumericEquals", "DateEquals", "IpAddress",
    "BinaryEquals", "StringNotEquals", "NumericNotEquals", "DateNotEquals", "NotIpAddress",
])
def test_absent_key_and_if_exists_for_every_family(operator):
    negated = "Not" in operator
    assert pol.condition_holds(operator, {}, "k:x", "1") is negated
    assert pol.condition_holds(operator + "IfExists", {}, "k:x", "1") is True
    assert pol.condition_holds("ForAllValues:" + operator, {}, "k:x", "1") is True
    assert pol.condition_holds("ForAnyValue:" + operator, {}, "k:x", "1") is False
    assert pol.condition_holds("ForAnyValue:" + operator + "IfExists", {}, "k:x", "1") is True


def test_set_operators_and_null_data_sets():
    tags = {"aws:tagkeys": ["key1:legal", "key2:audit"]}
    assert pol.condition_holds("ForAnyValue:StringLike", tags, "aws:TagKeys", "key2*")
    assert not pol.condition_holds("ForAllValues:StringLike", tags, "aws:TagKeys", "key2*")
    # The guide's DenyRestrictedTags example.
    assert pol.condition_holds("ForAllValues:StringNotLike", {"aws:tagkeys": ["key2:audit"]}, "aws:TagKeys", "key1*")
    assert not pol.condition_holds("ForAllValues:StringNotLike", {"aws:tagkeys": ["key1:hr"]}, "aws:TagKeys", "key1*")
    # An empty list or an empty string is a null data set.
    for empty in ([], [""], ""):
        assert pol.condition_holds("ForAllValues:StringEquals", {"aws:tagkeys": empty}, "aws:TagKeys", "x")
        assert not pol.condition_holds("ForAnyValue:StringEquals", {"aws:tagkeys": empty}, "aws:TagKeys", "x")


def test_null_takes_no_if_exists_or_set_operator():
    assert pol.condition_holds("Null", {}, "k:x", "true")
    assert not pol.condition_holds("NullIfExists", {}, "k:x", "true")
    assert not pol.condition_holds("ForAnyValue:Null", {}, "k:x", "true")
    assert pol.unknown_operators({"Statement": [{"Effect": "Allow", "Condition": {
        "NullIfExists": {}, "DateLessThanIfExists": {}, "ForAllValues:NotIpAddress": {}}}]}) == ["NullIfExists"]


# --- NotPrincipal (IAM User Guide, "AWS JSON policy elements: NotPrincipal") --------------

B_ROOT = pol.PrincipalInfo(account="222222222222", kind="Root", arn="arn:aws:iam::222222222222:root",
                           principal_arn="arn:aws:iam::222222222222:root")
B_USER = pol.PrincipalInfo(account="222222222222", kind="User", arn="arn:aws:iam::222222222222:user/u",
                           principal_arn="arn:aws:iam::222222222222:user/u", entity_id="AIDAEXAMPLEID0000001")


def test_not_principal_needs_the_whole_chain_named():
    acct, role, sess = "arn:aws:iam::222222222222:root", B_ROLE.principal_arn, B_ROLE.arn
    assert not pol.principal_excluded({"AWS": [acct, role]}, B_ROLE)  # role alone: sessions still denied
    assert not pol.principal_excluded({"AWS": [role, sess]}, B_ROLE)  # account missing
    assert not pol.principal_excluded({"AWS": "222222222222"}, B_ROLE)
    assert pol.principal_excluded({"AWS": [acct, role, sess]}, B_ROLE)
    assert pol.principal_excluded({"AWS": ["222222222222", B_ROLE.entity_id, sess]}, B_ROLE)
    assert pol.principal_excluded({"AWS": "*"}, B_ROLE)
    assert pol.principal_excluded({"AWS": acct}, B_ROOT)
    assert not pol.principal_excluded({"AWS": acct}, B_USER)
    assert pol.principal_excluded({"AWS": [acct, B_USER.arn]}, B_USER)


def test_not_principal_with_allow_grants_nothing():
    doc = {"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "333333333333"}, "Action": "kms:*", "Resource": "*"}]}
    r = pol.evaluate_resource_policy(doc, B_ROLE, "kms:Decrypt", KEY, {})
    assert not (r.allow_account or r.allow_direct or r.deny)
    doc["Statement"][0]["Effect"] = "Deny"
    assert pol.evaluate_resource_policy(doc, B_ROLE, "kms:Decrypt", KEY, {}).deny
