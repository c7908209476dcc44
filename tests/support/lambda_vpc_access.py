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

A stack's `AWS::IAM::Role` gets the managed policies its template declares
(`ManagedPolicyArns`) attached when it is created, brought in line on an
update, and detached before the role is deleted, as AWS does; moto ignores
the property.
"""

NETWORK_INTERFACE_ACTIONS = (
    ("ec2:CreateNetworkInterface", "CreateNetworkInterface"),
    ("ec2:DescribeNetworkInterfaces", "DescribeNetworkInterfaces"),
    ("ec2:DeleteNetworkInterface", "DeleteNetworkInterface"),
)


def apply():
    _attach_declared_managed_policies()
    _refuse_placement_without_network_rights()


def _attach_declared_managed_policies():
    from moto.iam.models import Role, iam_backends
    from moto.utilities.utils import get_partition

    def declared(cloudformation_json):
        arns = (cloudformation_json.get("Properties") or {}).get("ManagedPolicyArns") or []
        return [arn for arn in arns if isinstance(arn, str)] if isinstance(arns, list) else []

    def bring_in_line(role, wanted, account_id, region_name):
        backend = iam_backends[account_id][get_partition(region_name)]
        for arn in set(getattr(role, "rdsrot_declared_managed", ())) - set(wanted):
            if arn in role.managed_policies:
                backend.detach_role_policy(arn, role.name)
        for arn in wanted:
            if arn not in role.managed_policies:
                backend.attach_role_policy(arn, role.name)
        # What the stack attached, for its deletion: the template the delete
        # handler gets still holds the unresolved `Fn::If`.
        role.rdsrot_declared_managed = set(wanted)

    create = Role.create_from_cloudformation_json.__func__

    def create_with_managed_policies(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        role = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        bring_in_line(role, declared(cloudformation_json), account_id, region_name)
        return role

    update = Role.update_from_cloudformation_json.__func__

    def update_with_managed_policies(
        cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
    ):
        role = update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        bring_in_line(original_resource, declared(cloudformation_json), account_id, region_name)
        return role

    delete = Role.delete_from_cloudformation_json.__func__

    def delete_after_detaching(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = iam_backends[account_id][get_partition(region_name)]
        properties = cloudformation_json.get("Properties") or {}
        declared_inline = {p.get("PolicyName") for p in properties.get("Policies") or []}
        for role in list(backend.roles.values()):
            if role.name != resource_name:
                continue
            declared_managed = set(getattr(role, "rdsrot_declared_managed", ()))
            # A policy the template never declared makes the deletion fail
            # (correction 8): the role is then kept whole, as AWS keeps it.
            undeclared = set(role.managed_policies) - declared_managed or set(role.policies) - declared_inline
            if not undeclared:
                for arn in declared_managed & set(role.managed_policies):
                    backend.detach_role_policy(arn, role.name)
        delete(cls, resource_name, cloudformation_json, account_id, region_name)

    Role.create_from_cloudformation_json = classmethod(create_with_managed_policies)
    Role.update_from_cloudformation_json = classmethod(update_with_managed_policies)
    Role.delete_from_cloudformation_json = classmethod(delete_after_detaching)


def _refuse_placement_without_network_rights():
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
