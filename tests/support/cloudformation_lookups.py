"""How AWS lets a resource lead back to the stack that made it, where moto
does not (correction 10 of `emulator.apply_corrections`).

- AWS tags every function a stack creates with `aws:cloudformation:stack-name`,
  `aws:cloudformation:stack-id` and `aws:cloudformation:logical-id` (and the
  template's own `Tags`); moto tags only EC2 resources.
- A stack's `AWS::Lambda::Permission` adds a statement whose `Sid` is the
  resource's physical id (`<stack>-<logical id>-<random>`), which
  `DescribeStackResources` reports; moto gives the statement a random
  UUID and the resource no physical id, so nothing ties the two.
- `DescribeStackResources` with `PhysicalResourceId` and no `StackName`
  answers every resource of the stack that holds that physical resource, or
  a `ValidationError` "Stack for <id> does not exist"; moto requires
  `StackName`.

Both are how a rotation Lambda set up outside the provider (by the console,
the CLI or another tool) is traced to its stack on import.
"""


def apply():
    _tag_functions_with_their_stack()
    _name_permission_statements_by_resource()
    _describe_stack_resources_by_physical_id()


def _tag_functions_with_their_stack():
    from moto.awslambda.models import LambdaFunction

    create = LambdaFunction.create_from_cloudformation_json.__func__

    def create_tagged(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        function = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        stack_id = kwargs.get("StackId")
        if stack_id:
            declared = (cloudformation_json.get("Properties") or {}).get("Tags") or []
            tags = {t["Key"]: t["Value"] for t in declared if "Key" in t and "Value" in t}
            # arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>
            tags["aws:cloudformation:stack-name"] = stack_id.split("/")[1]
            tags["aws:cloudformation:stack-id"] = stack_id
            tags["aws:cloudformation:logical-id"] = kwargs.get("LogicalId", "")
            function.tags = {**(function.tags or {}), **tags}
        return function

    LambdaFunction.create_from_cloudformation_json = classmethod(create_tagged)


def _name_permission_statements_by_resource():
    import json
    import random
    import string

    from moto.awslambda.models import Permission, get_backend

    def create_named(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = dict(cloudformation_json["Properties"])
        stack_id = kwargs.get("StackId") or ""
        stack_name = stack_id.split("/")[1] if stack_id.count("/") >= 2 else "stack"
        suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=12))
        statement_id = f"{stack_name}-{kwargs.get('LogicalId', 'Permission')}-{suffix}"
        properties["StatementId"] = statement_id
        function = get_backend(account_id, region_name).get_function(properties["FunctionName"])
        function.policy.add_statement(raw=json.dumps(properties))
        permission = Permission(region=region_name)
        permission.physical_resource_id = statement_id
        permission.function_name = properties["FunctionName"]
        return permission

    Permission.create_from_cloudformation_json = classmethod(create_named)


def _describe_stack_resources_by_physical_id():
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.responses import CloudFormationResponse, StackResourceDTO
    from moto.core.responses import ActionResult

    describe = CloudFormationResponse.describe_stack_resources

    def describe_by_stack_or_physical_id(self):
        physical_id = self._get_param("PhysicalResourceId")
        if self._get_param("StackName") or not physical_id:
            return describe(self)
        backend = self.cloudformation_backend
        for stack in list(backend.stacks.values()):
            if stack.status == "DELETE_COMPLETE":
                continue
            resources = list(stack.stack_resources)
            if any(getattr(r, "physical_resource_id", None) == physical_id for r in resources):
                return ActionResult({"StackResources": [StackResourceDTO(stack, r) for r in resources]})
        raise ValidationError(physical_id, message=f"Stack for {physical_id} does not exist")

    CloudFormationResponse.describe_stack_resources = describe_by_stack_or_physical_id
