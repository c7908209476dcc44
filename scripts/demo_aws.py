"""AWS calls for `make demo`, made with boto3 against the local emulator.

Subcommands:
  create-secrets            make a master secret and a database secret in RDS
                            format; print `DATABASE_SECRET_ARN=...` and
                            `MASTER_SECRET_ARN=...` (never a password)
  status SECRET_ARN         rotation status and every resource behind it
  remove-permission SECRET_ARN
                            delete the Lambda invoke permission scoped to the
                            secret, as someone might by hand
  leftovers SECRET_ARN      after destroy: what, if anything, is left

The endpoint and credentials come from the standard AWS_* variables.
"""

import json
import secrets
import sys

import boto3


def client(service):
    return boto3.client(service)


def _password():
    # Generated here and stored only in the secret: nothing prints it.
    return secrets.token_urlsafe(24)


def create_secrets():
    sm = client("secretsmanager")
    master = sm.create_secret(
        Name="demo/app-db-master",
        Description="Credentials of a database user allowed to manage other users",
        SecretString=json.dumps(
            {
                "engine": "postgres",
                "host": "app-db.cluster-demo.us-east-1.rds.amazonaws.com",
                "username": "postgres_admin",
                "password": _password(),
                "dbname": "app",
                "port": 5432,
            }
        ),
    )
    database = sm.create_secret(
        Name="demo/app-db",
        Description="Credentials the application uses",
        SecretString=json.dumps(
            {
                "engine": "postgres",
                "host": "app-db.cluster-demo.us-east-1.rds.amazonaws.com",
                "username": "app_user",
                "password": _password(),
                "dbname": "app",
                "port": 5432,
                "masterarn": master["ARN"],
            }
        ),
    )
    print(f"DATABASE_SECRET_ARN={database['ARN']}")
    print(f"MASTER_SECRET_ARN={master['ARN']}")


def _invoke_statements(function, secret_arn):
    try:
        policy = json.loads(client("lambda").get_policy(FunctionName=function)["Policy"])
    except client("lambda").exceptions.ResourceNotFoundException:
        return []
    return [s for s in policy.get("Statement", []) if secret_arn in json.dumps(s)]


def status(secret_arn):
    sm = client("secretsmanager")
    described = sm.describe_secret(SecretId=secret_arn)
    print("  Secret")
    print(f"    name               {described['Name']}")
    print(f"    rotation enabled   {described.get('RotationEnabled', False)}")
    print(f"    rotation Lambda    {described.get('RotationLambdaARN', '-')}")
    print(f"    rotation rules     {json.dumps(described.get('RotationRules', {}))}")
    stages = described.get("VersionIdsToStages", {})
    print(f"    version stages     {json.dumps({k[:8]: v for k, v in stages.items() if v})}")
    function = described.get("RotationLambdaARN")
    if not function:
        return
    lam = client("lambda")
    configuration = lam.get_function_configuration(FunctionName=function)
    vpc = configuration.get("VpcConfig") or {}
    print("  Rotation Lambda")
    print(f"    function           {configuration['FunctionName']} ({configuration.get('Runtime')})")
    print(f"    role               {configuration['Role']}")
    print(f"    subnets            {', '.join(vpc.get('SubnetIds', [])) or '-'}")
    print(f"    security groups    {', '.join(vpc.get('SecurityGroupIds', [])) or '-'}")
    for statement in _invoke_statements(function, secret_arn):
        condition = json.dumps(statement.get("Condition", {}))
        print(f"    invoke permission  {statement.get('Sid')}: {statement.get('Principal')} if {condition}")
    role = configuration["Role"].rsplit("/", 1)[-1]
    for name in client("iam").list_role_policies(RoleName=role)["PolicyNames"]:
        print(f"    role policy        {name}")
    cfn = client("cloudformation")
    for stack in cfn.describe_stacks()["Stacks"]:
        if stack["StackStatus"] == "DELETE_COMPLETE":
            continue
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        print("  CloudFormation stack")
        print(f"    name               {stack['StackName']} ({stack['StackStatus']})")
        application = tags.get("serverlessrepo:applicationId", "-").rsplit("/", 1)[-1]
        print(f"    application        {application} {tags.get('serverlessrepo:semanticVersion', '')}")


def remove_permission(secret_arn):
    function = client("secretsmanager").describe_secret(SecretId=secret_arn).get("RotationLambdaARN")
    statements = _invoke_statements(function, secret_arn) if function else []
    if not statements:
        sys.exit(f"no invoke permission scoped to {secret_arn} found")
    for statement in statements:
        client("lambda").remove_permission(FunctionName=function, StatementId=statement["Sid"])
        print(f"  removed invoke permission {statement['Sid']} from {function.rsplit(':', 1)[-1]}")


def leftovers(secret_arn):
    described = client("secretsmanager").describe_secret(SecretId=secret_arn)
    left = []
    if described.get("RotationEnabled"):
        left.append("rotation is still enabled")
    for version, stages in described.get("VersionIdsToStages", {}).items():
        if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
            left.append(f"an AWSPENDING label on version {version[:8]}, which would block the next rotation")
    stacks = [
        s["StackName"]
        for s in client("cloudformation").describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    left.extend(f"stack {name}" for name in stacks)
    functions = [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]]
    left.extend(f"function {name}" for name in functions)
    if left:
        print("  left behind: " + "; ".join(left))
        sys.exit(1)
    print("  rotation is off; no pending version, stack, Lambda, role, policy or permission remains.")
    print("  The two secrets are still there: they were never Terraform's.")


def main(argv):
    commands = {
        "create-secrets": (create_secrets, 0),
        "status": (status, 1),
        "remove-permission": (remove_permission, 1),
        "leftovers": (leftovers, 1),
    }
    if not argv or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        sys.exit(__doc__)
    function, _ = commands[argv[0]]
    function(*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
