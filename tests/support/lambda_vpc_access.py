"""What AWS checks when a function is placed in a VPC, where moto checks
nothing (correction 12 of `emulator.apply_corrections`).

Lambda creates network interfaces in the subnets with the function's
execution role, so `CreateFunction` and `UpdateFunctionConfiguration` with a
`VpcConfig` naming subnets answer 400 `InvalidParameterValueException` "The
provided execution role does not have permissions to call
CreateNetworkInterface on EC2" when the role's policies do not allow
`ec2:CreateNetworkInterface`, `ec2:DescribeNetworkInterfaces` and
`ec2:DeleteNetworkInterface` (the AWS managed policy
`AWSLambdaVPCAccessExecutionRole` grants them). A stack's function is
created the same way, so a template whose role lacks them fails to deploy.
Subnets and security groups are not looked up: the tests name made-up ones.
"""

NETWORK_INTERFACE_ACTIONS = (
    ("ec2:CreateNetworkInterface", "CreateNetworkInterface"),
    ("ec2:DescribeNetworkInterfaces", "DescribeNetworkInterfaces"),
    ("ec2:DeleteNetworkInterface", "DeleteNetworkInterface"),
)


def apply():
    from moto.awslambda.exceptions import InvalidParameterValueException
    from moto.awslambda.models import LambdaBackend

    import function_iam

    def refuse_without_network_rights(backend, role_arn, vpc_config):
        if not vpc_config or not vpc_config.get("SubnetIds"):
            return
        role_name = (role_arn or "").rsplit("/", 1)[-1]
        documents = function_iam.role_policy_documents(backend.account_id, role_name)
        for action, call in NETWORK_INTERFACE_ACTIONS:
            if function_iam.evaluate(documents, action, "*") != "allow":
                raise InvalidParameterValueException(
                    f"The provided execution role does not have permissions to call {call} on EC2"
                )

    create_function = LambdaBackend.create_function

    def create_function_checked(self, spec):
        refuse_without_network_rights(self, spec.get("Role"), spec.get("VpcConfig"))
        return create_function(self, spec)

    update_function_configuration = LambdaBackend.update_function_configuration

    def update_function_configuration_checked(self, function_name, qualifier, body):
        if body.get("VpcConfig"):
            role = body.get("Role") or self.get_function(function_name, qualifier).role
            refuse_without_network_rights(self, role, body.get("VpcConfig"))
        return update_function_configuration(self, function_name, qualifier, body)

    LambdaBackend.create_function = create_function_checked
    LambdaBackend.update_function_configuration = update_function_configuration_checked
