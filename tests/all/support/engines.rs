//! Database secrets for every rotation template: each holds the RDS JSON
//! its template's Lambda reads (the `engine` value it accepts, `host`,
//! `username`, `password`, `port`, `dbname`, and `masterarn` where the
//! template signs in with a master secret).

#![allow(dead_code)]

use rdsrot::rotation::template::{self, Template};

use super::moto::{self, create_secret, distinctive_password, DatabaseSecret};

/// The rotation types added beside MySQL and PostgreSQL.
pub const NEW_ROTATION_TYPES: [&str; 12] = [
    "mariadb_single_user",
    "mariadb_multi_user",
    "oracle_single_user",
    "oracle_multi_user",
    "sqlserver_single_user",
    "sqlserver_multi_user",
    "db2_single_user",
    "db2_multi_user",
    "redshift_single_user",
    "redshift_multi_user",
    "mongodb_single_user",
    "mongodb_multi_user",
];

/// The template of a rotation type the provider knows.
pub fn template_of(rotation_type: &str) -> &'static Template {
    template::find(rotation_type)
        .unwrap_or_else(|| panic!("{rotation_type} is a rotation_type of the table"))
}

/// The secret JSON for `t`'s engine. The generic template reads what its
/// author's code reads: a PostgreSQL secret stands in.
pub fn secret_json(
    t: &Template,
    username: &str,
    password: &str,
    master_arn: Option<&str>,
) -> String {
    let engine = t.secret.engines.first().copied().unwrap_or("postgres");
    moto::rds_secret_json(engine, username, password, master_arn)
}

/// A database secret for `rotation_type` and, when its template signs in
/// with one, its master secret (same engine), named after `prefix`.
pub async fn create_secrets(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    rotation_type: &str,
) -> (DatabaseSecret, Option<DatabaseSecret>) {
    let t = template_of(rotation_type);
    let master = if t.needs_master_secret {
        let name = format!("{prefix}-master");
        let password = distinctive_password(&name);
        let arn = create_secret(client, &name, &secret_json(t, "admin", &password, None)).await;
        Some(DatabaseSecret {
            arn,
            name,
            password,
        })
    } else {
        None
    };
    let password = distinctive_password(prefix);
    let arn = create_secret(
        client,
        prefix,
        &secret_json(
            t,
            &format!("{}_user", prefix.replace(['-', '/'], "_")),
            &password,
            master.as_ref().map(|m| m.arn.as_str()),
        ),
    )
    .await;
    (
        DatabaseSecret {
            arn,
            name: prefix.to_owned(),
            password,
        },
        master,
    )
}
