#!/bin/sh
# Import an existing rotation by the secret's ARN:
terraform import rdsrot_rotation.example arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/db-AbCdEf

# or, instead, by the secret's name:
# terraform import rdsrot_rotation.example orders/db
