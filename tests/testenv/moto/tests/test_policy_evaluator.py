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
