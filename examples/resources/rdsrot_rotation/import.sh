#!/bin/sh
# Import the rotation already configured on a secret, by the secret's ARN:
terraform import rdsrot_rotation.single_user arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/db-AbCdEf

# or, instead, by the secret's name:
# terraform import rdsrot_rotation.single_user orders/db
