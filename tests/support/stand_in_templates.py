"""Stand-in CloudFormation templates for the Secrets Manager rotation
applications of the Serverless Application Repository, and the versions the
stand-in repository publishes of each.

The real applications are SAM templates (`AWS::Serverless::Function`), which
the emulator cannot expand. These stand-ins build the same three things from
plain resources (an execution role, the function, its invoke permission),
declare the same parameter names as the published templates (names are
case-sensitive there too), and expose the one output the real ones expose:
`RotationLambdaARN`.
"""

import json

# Account that publishes the rotation applications in the aws partition.
PUBLISHER_ACCOUNT = "297356227824"

SINGLE_USER = {
    "SecretsManagerRDSMySQLRotationSingleUser": "Rotates a MySQL user password (single user)",
    "SecretsManagerRDSPostgreSQLRotationSingleUser": "Rotates a PostgreSQL user password (single user)",
    "SecretsManagerRDSMariaDBRotationSingleUser": "Rotates a MariaDB user password (single user)",
    "SecretsManagerRDSOracleRotationSingleUser": "Rotates an Oracle user password (single user)",
    "SecretsManagerRDSSQLServerRotationSingleUser": "Rotates a SQL Server user password (single user)",
    "SecretsManagerRDSDb2RotationSingleUser": "Rotates a Db2 user password (single user, set by the master user)",
    "SecretsManagerRedshiftRotationSingleUser": "Rotates a Redshift user password (single user)",
    "SecretsManagerMongoDBRotationSingleUser": "Rotates a DocumentDB user password (single user)",
    "SecretsManagerRotationTemplate": "A template for a custom rotation function",
}
MULTI_USER = {
    "SecretsManagerRDSMySQLRotationMultiUser": "Rotates a MySQL user password (alternating users)",
    "SecretsManagerRDSPostgreSQLRotationMultiUser": "Rotates a PostgreSQL user password (alternating users)",
    "SecretsManagerRDSMariaDBRotationMultiUser": "Rotates a MariaDB user password (alternating users)",
    "SecretsManagerRDSOracleRotationMultiUser": "Rotates an Oracle user password (alternating users)",
    "SecretsManagerRDSSQLServerRotationMultiUser": "Rotates a SQL Server user password (alternating users)",
    "SecretsManagerRDSDb2RotationMultiUser": "Rotates a Db2 user password (alternating users)",
    "SecretsManagerRedshiftRotationMultiUser": "Rotates a Redshift user password (alternating users)",
    "SecretsManagerMongoDBRotationMultiUser": "Rotates a DocumentDB user password (alternating users)",
}
APPLICATIONS = {**SINGLE_USER, **MULTI_USER}


def _published(aws, aws_cn, aws_us_gov):
    return {"aws": aws, "aws-cn": aws_cn, "aws-us-gov": aws_us_gov}


# The versions published per partition, oldest first. Each list holds the
# version AWS CDK pins today (secret-rotation.ts, with the aws-us-gov pins of
# aws/aws-cdk#38462), and in the aws partition the ones CDK pinned before
# (1.1.367 until 2025, then 1.1.618; Db2 1.1.15 and 1.1.17), so that a test can
# move a stack from one real version to another. A version not listed is not
# published: GetApplication and CreateCloudFormationChangeSet answer 404, as
# the repository does (for example the aws-us-gov versions CDK pinned before
# #38462, which were never published there). No public source pins a version
# of the generic template: its numbers here only stand in for real ones.
VERSIONS = {
    "SecretsManagerRDSMySQLRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.440"], ["1.1.384"]),
    "SecretsManagerRDSMySQLRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.440"], ["1.1.383"]),
    "SecretsManagerRDSPostgreSQLRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.440"], ["1.1.383"]),
    "SecretsManagerRDSPostgreSQLRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.440"], ["1.1.383"]),
    "SecretsManagerRDSMariaDBRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.670"], ["1.1.442"], ["1.1.383"]),
    "SecretsManagerRDSMariaDBRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.670"], ["1.1.441"], ["1.1.383"]),
    "SecretsManagerRDSOracleRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.441"], ["1.1.382"]),
    "SecretsManagerRDSOracleRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.441"], ["1.1.383"]),
    "SecretsManagerRDSSQLServerRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.670"], ["1.1.441"], ["1.1.383"]),
    "SecretsManagerRDSSQLServerRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.441"], ["1.1.384"]),
    "SecretsManagerRDSDb2RotationSingleUser": _published(["1.1.15", "1.1.271"], ["1.1.242"], ["1.1.222"]),
    "SecretsManagerRDSDb2RotationMultiUser": _published(["1.1.17", "1.1.272"], ["1.1.240"], ["1.1.223"]),
    "SecretsManagerRedshiftRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.441"], ["1.1.383"]),
    "SecretsManagerRedshiftRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.440"], ["1.1.383"]),
    "SecretsManagerMongoDBRotationSingleUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.440"], ["1.1.384"]),
    "SecretsManagerMongoDBRotationMultiUser": _published(["1.1.367", "1.1.618", "1.1.671"], ["1.1.441"], ["1.1.384"]),
    "SecretsManagerRotationTemplate": _published(["1.1.618", "1.1.671"], ["1.1.440"], ["1.1.383"]),
}


def versions(application, partition):
    """The versions of an application published in a partition, oldest first."""
    return VERSIONS[application].get(partition, [])


def latest_version(application, partition):
    published = versions(application, partition)
    return published[-1] if published else None


REQUIRED_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"]

# Where the stand-in repository keeps its functions' code: as the real one
# copies an application's packaged code to a bucket of its own in the
# caller's account and Region, the template names an S3 location, and the
# emulator uploads the zip (rotation_functions/package.py) there before it
# creates the change set. Bucket names are global: the name carries both.
_CODE_BUCKET_PREFIX = "rdsrot-serverlessrepo"


def code_bucket(account_id, region):
    return f"{_CODE_BUCKET_PREFIX}-{account_id}-{region}"


def code_key(application, version):
    return f"{application}/{version}/rotation-function.zip"


def _parameter(kind, description, default=None):
    definition = {"Type": kind, "Description": description}
    if default is not None:
        definition["Default"] = default
    return definition


def parameters(application):
    """The template parameters of one application, as CloudFormation declares them."""
    declared = {
        "endpoint": _parameter("String", "The Secrets Manager endpoint the function calls"),
        "functionName": _parameter("String", "The name of the rotation function"),
        "invokingServicePrincipal": _parameter(
            "String",
            "The service principal allowed to invoke the function",
            "secretsmanager.amazonaws.com",
        ),
        "kmsKeyArn": _parameter("String", "The KMS key of the rotated secret", ""),
        "vpcSubnetIds": _parameter("CommaDelimitedList", "Subnets of the function", ""),
        "vpcSecurityGroupIds": _parameter(
            "CommaDelimitedList", "Security groups of the function", ""
        ),
        "excludeCharacters": _parameter(
            "String", "Characters left out of generated passwords", ":/@\"'\\"
        ),
        "runtime": _parameter("String", "The Lambda runtime of the function", "python3.10"),
    }
    if application in MULTI_USER:
        declared["masterSecretArn"] = _parameter(
            "String", "The secret holding the elevated user's credentials"
        )
        declared["masterSecretKmsKeyArn"] = _parameter(
            "String", "The KMS key of the master secret", ""
        )
    return declared


def required_parameters(application):
    return [name for name, spec in parameters(application).items() if "Default" not in spec]


def _with_optional(statements, optional):
    """The statements, each optional one added when its condition holds.

    Whole lists are chosen with nested `Fn::If`: an `AWS::NoValue` inside a
    list is dropped by CloudFormation but kept as a null by moto.
    """
    if not optional:
        return statements
    (condition, statement), rest = optional[0], optional[1:]
    return {"Fn::If": [condition, _with_optional(statements + [statement], rest), _with_optional(statements, rest)]}


# The AWS managed policy that lets Lambda manage a function's network
# interfaces in a VPC.
VPC_ACCESS_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def template(application, version):
    """The stand-in template body (JSON) for one version of one application.

    Each version's body differs, as the repository's packaged templates do
    (their code location and `AWS::ServerlessRepo::Application` metadata
    name the version): a change of version alone is a real change to the
    stack, never an empty change set.
    """
    # The secret actions reach every secret of the account and Region (one
    # rotation application serves any number of secrets) but, as in the real
    # templates, only those whose rotation function is this one: Secrets
    # Manager exposes the secret's RotationLambdaARN to IAM as
    # `secretsmanager:resource/AllowRotationLambdaArn`.
    rotated_secrets = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"}
    this_function = {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${functionName}"
    }
    statements = [
        {
            "Effect": "Allow",
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ],
            "Resource": rotated_secrets,
            "Condition": {"StringEquals": {"secretsmanager:resource/AllowRotationLambdaArn": this_function}},
        },
        # GetRandomPassword acts on no resource.
        {"Effect": "Allow", "Action": ["secretsmanager:GetRandomPassword"], "Resource": "*"},
    ]
    # A customer managed key is used only through Secrets Manager.
    through_secrets_manager = {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}
    }
    optional = [
        (
            "SecretUsesCustomerKey",
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": {"Ref": "kmsKeyArn"},
                "Condition": through_secrets_manager,
            },
        )
    ]
    conditions = {
        "PlacedInVpc": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "vpcSubnetIds"}]}, ""]}]},
        "SecretUsesCustomerKey": {"Fn::Not": [{"Fn::Equals": [{"Ref": "kmsKeyArn"}, ""]}]},
    }
    if application in MULTI_USER:
        # The master secret rotates with another function: no condition on it.
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": {"Ref": "masterSecretArn"},
            }
        )
        conditions["MasterSecretUsesCustomerKey"] = {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "masterSecretKmsKeyArn"}, ""]}]
        }
        optional.append(
            (
                "MasterSecretUsesCustomerKey",
                {
                    "Effect": "Allow",
                    "Action": ["kms:Decrypt"],
                    "Resource": {"Ref": "masterSecretKmsKeyArn"},
                    "Condition": through_secrets_manager,
                },
            )
        )
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Stand-in for {application}: {APPLICATIONS[application]}",
        "Metadata": {"AWS::ServerlessRepo::Application": {"Name": application, "SemanticVersion": version}},
        "Parameters": parameters(application),
        "Conditions": conditions,
        "Resources": {
            "RotationLambdaRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    },
                    "Policies": [
                        {
                            "PolicyName": "SecretsManagerRotationPolicy",
                            "PolicyDocument": {"Version": "2012-10-17", "Statement": _with_optional(statements, optional)},
                        }
                    ],
                    # Lambda makes the function's network interfaces with
                    # its role: the templates attach AWS's managed policy
                    # for that when the function is placed in a VPC.
                    "ManagedPolicyArns": {
                        "Fn::If": [
                            "PlacedInVpc",
                            [{"Fn::Sub": VPC_ACCESS_POLICY}],
                            {"Ref": "AWS::NoValue"},
                        ]
                    },
                },
            },
            "RotationLambda": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": {"Ref": "functionName"},
                    "Runtime": {"Ref": "runtime"},
                    "Handler": "lambda_function.lambda_handler",
                    "Timeout": 30,
                    "Role": {"Fn::GetAtt": ["RotationLambdaRole", "Arn"]},
                    "Code": {
                        "S3Bucket": {"Fn::Sub": _CODE_BUCKET_PREFIX + "-${AWS::AccountId}-${AWS::Region}"},
                        "S3Key": code_key(application, version),
                    },
                    "Environment": {
                        "Variables": {
                            "SECRETS_MANAGER_ENDPOINT": {"Ref": "endpoint"},
                            "EXCLUDE_CHARACTERS": {"Ref": "excludeCharacters"},
                        }
                    },
                    "VpcConfig": {
                        "Fn::If": [
                            "PlacedInVpc",
                            {
                                "SubnetIds": {"Ref": "vpcSubnetIds"},
                                "SecurityGroupIds": {"Ref": "vpcSecurityGroupIds"},
                            },
                            {"Ref": "AWS::NoValue"},
                        ]
                    },
                },
            },
            "RotationLambdaInvokePermission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Fn::GetAtt": ["RotationLambda", "Arn"]},
                    "Action": "lambda:InvokeFunction",
                    "Principal": {"Ref": "invokingServicePrincipal"},
                },
            },
        },
        "Outputs": {
            "RotationLambdaARN": {
                "Description": "The ARN of the rotation function",
                "Value": {"Fn::GetAtt": ["RotationLambda", "Arn"]},
            }
        },
    }
    return json.dumps(body, indent=1)


def parameter_definitions(application):
    """The `parameterDefinitions` of GetApplication, in the repository's own JSON shape."""
    definitions = []
    for name, spec in parameters(application).items():
        entry = {
            "name": name,
            "type": spec["Type"],
            "description": spec["Description"],
            "referencedByResources": ["RotationLambda"],
        }
        if "Default" in spec:
            entry["defaultValue"] = spec["Default"]
        definitions.append(entry)
    return definitions
