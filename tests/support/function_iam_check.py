"""Checks of function_iam.py's policy evaluation, without an emulator.

    .venv/bin/python tests/support/function_iam_check.py
    # N passed, N failed
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from function_iam import RequestContext, evaluate  # noqa: E402

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/db-AbCdEf"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:rotate-orders"
OTHER_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:rotate-other"
ROLE = "arn:aws:iam::123456789012:role/serverlessrepo-x-RotationLambdaRole-ABC"

RESULTS = []


def check(what, got, wanted):
    RESULTS.append(got == wanted)
    print(f"{'ok  ' if got == wanted else 'FAIL'} {what}: {got}" + ("" if got == wanted else f" (wanted {wanted})"))


def policy(*statements):
    return [{"Version": "2012-10-17", "Statement": list(statements)}]


def decide(documents, action, resource, keys=None):
    return evaluate(documents, action, resource, RequestContext(action, resource, keys))


def allow(action, resource, condition=None):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def main():
    rotation = {"StringEquals": {"secretsmanager:resource/AllowRotationLambdaArn": FUNCTION}}
    conditioned = policy(allow("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:*:*:secret:*", rotation))
    check("the secret's own function may read it", decide(conditioned, "secretsmanager:GetSecretValue", SECRET,
          {"secretsmanager:resource/AllowRotationLambdaArn": FUNCTION}), "allow")
    check("another function's secret is refused", decide(conditioned, "secretsmanager:GetSecretValue", SECRET,
          {"secretsmanager:resource/AllowRotationLambdaArn": OTHER_FUNCTION}), "implicit_deny")
    check("a secret that rotates with nothing is refused",
          decide(conditioned, "secretsmanager:GetSecretValue", SECRET), "implicit_deny")
    if_exists = policy(allow("secretsmanager:GetSecretValue", "*",
                             {"StringEqualsIfExists": {"secretsmanager:resource/AllowRotationLambdaArn": FUNCTION}}))
    check("IfExists holds when the key is absent", decide(if_exists, "secretsmanager:GetSecretValue", SECRET), "allow")
    check("IfExists compares when present", decide(if_exists, "secretsmanager:GetSecretValue", SECRET,
          {"secretsmanager:resource/AllowRotationLambdaArn": OTHER_FUNCTION}), "implicit_deny")

    deny = policy(allow("secretsmanager:*", "*"), {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
                                                   "Resource": SECRET})
    check("an explicit deny wins over an allow", decide(deny, "secretsmanager:GetSecretValue", SECRET), "explicit_deny")
    check("the deny leaves other actions", decide(deny, "secretsmanager:DescribeSecret", SECRET), "allow")

    unknown = policy(allow("secretsmanager:*", "*", {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}))
    check("an unknown key never allows", decide(unknown, "secretsmanager:DescribeSecret", SECRET), "implicit_deny")
    unknown_deny = policy(allow("secretsmanager:*", "*"),
                          {"Effect": "Deny", "Action": "*", "Resource": "*",
                           "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}})
    check("an unknown operator always denies", decide(unknown_deny, "secretsmanager:DescribeSecret", SECRET),
          "explicit_deny")
    for_any = policy(allow("secretsmanager:*", "*", {"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}}))
    check("a set operator never allows", decide(for_any, "secretsmanager:DescribeSecret", SECRET), "implicit_deny")

    pass_role = policy(allow("iam:PassRole", "arn:aws:iam::*:role/serverlessrepo-*",
                             {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}))
    check("PassRole to Lambda", decide(pass_role, "iam:PassRole", ROLE,
          {"iam:PassedToService": "lambda.amazonaws.com"}), "allow")
    check("PassRole to another service", decide(pass_role, "iam:PassRole", ROLE,
          {"iam:PassedToService": "ec2.amazonaws.com"}), "implicit_deny")
    check("PassRole of another role", decide(pass_role, "iam:PassRole", "arn:aws:iam::123456789012:role/admin",
          {"iam:PassedToService": "lambda.amazonaws.com"}), "implicit_deny")

    tagged = policy(allow("secretsmanager:DescribeSecret", "*", {"StringLike": {"aws:ResourceTag/team": "data-*"}}))
    check("a resource tag matches", decide(tagged, "secretsmanager:DescribeSecret", SECRET,
          {"aws:ResourceTag/team": "data-eng"}), "allow")
    check("a missing resource tag does not", decide(tagged, "secretsmanager:DescribeSecret", SECRET), "implicit_deny")
    negated = policy(allow("secretsmanager:DescribeSecret", "*", {"StringNotEquals": {"aws:ResourceTag/team": "x"}}))
    check("a negated operator holds on an absent key",
          decide(negated, "secretsmanager:DescribeSecret", SECRET), "allow")

    arn_like = policy(allow("lambda:InvokeFunction", "*",
                            {"ArnLike": {"aws:SourceArn": "arn:aws:secretsmanager:*:123456789012:secret:*"}}))
    check("ArnLike matches part by part", decide(arn_like, "lambda:InvokeFunction", FUNCTION,
          {"aws:SourceArn": SECRET}), "allow")
    check("ArnLike refuses another account", decide(arn_like, "lambda:InvokeFunction", FUNCTION,
          {"aws:SourceArn": SECRET.replace("123456789012", "210987654321")}), "implicit_deny")

    scoped = policy(allow("cloudformation:CreateChangeSet", "arn:aws:cloudformation:*:*:stack/serverlessrepo-*/*"))
    check("a resource wildcard spans colons and slashes", decide(
        scoped, "cloudformation:CreateChangeSet",
        "arn:aws:cloudformation:us-east-1:123456789012:stack/serverlessrepo-f/0d1e"), "allow")
    check("another stack is refused", decide(
        scoped, "cloudformation:CreateChangeSet",
        "arn:aws:cloudformation:us-east-1:123456789012:stack/app/0d1e"), "implicit_deny")
    check("actions match case-insensitively", decide(
        policy(allow("Lambda:getfunction", "*")), "lambda:GetFunction", FUNCTION), "allow")
    not_action = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    check("NotAction allows the rest", decide(not_action, "lambda:GetFunction", FUNCTION), "allow")
    check("NotAction leaves out what it names", decide(not_action, "iam:CreateRole", ROLE), "implicit_deny")

    passed = sum(RESULTS)
    print(f"{passed} passed, {len(RESULTS) - passed} failed")
    return 0 if passed == len(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
