# A reusable rotation with a compliance limit: give it a database secret and
# the longest a credential may live, and it turns rotation on with the
# interval that honours that limit. Its tests are in tests/ (see
# docs/guides/testing-modules.md).

resource "rdsrot_rotation" "this" {
  secret_id           = var.secret_id
  rotation_type       = var.rotation_type
  rotation_lambda_arn = var.rotation_lambda_arn
  master_secret_arn   = var.master_secret_arn

  # The provider wants both placement sets or neither: an empty input means
  # "no VPC", which it spells as null.
  vpc_subnet_ids         = length(var.vpc_subnet_ids) > 0 ? var.vpc_subnet_ids : null
  vpc_security_group_ids = length(var.vpc_security_group_ids) > 0 ? var.vpc_security_group_ids : null

  rotate_immediately = var.rotate_immediately
  enabled            = var.enabled

  rotation_rules {
    max_credential_age_days = var.max_credential_age_days
    duration                = var.rotation_window
  }
}
