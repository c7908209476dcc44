//! The rotation templates: one row per `rotation_type`, naming the
//! Serverless Application Repository application it deploys, its strategy,
//! the `engine` values its Lambda accepts in the secret, and the version
//! deployed when `template_version` is not set, per partition.
//!
//! Application names and versions are those AWS CDK pins in
//! `packages/aws-cdk-lib/aws-secretsmanager/lib/secret-rotation.ts`
//! (`SecretRotationApplication`), with the `aws-us-gov` versions as
//! corrected by aws/aws-cdk#38462 (the earlier ones were never published in
//! that partition). The accepted `engine` values are those the functions in
//! aws-samples/aws-secrets-manager-rotation-lambdas check.

use crate::aws::arn::partition_of_region;
use crate::aws::serverlessrepo;

/// How a template's Lambda changes the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The user in the secret gets a new password.
    SingleUser,
    /// Two users alternate; a master secret's user changes their passwords.
    MultiUser,
    /// The generic template: a rotation function for you to write.
    Custom,
}

/// The version deployed when `template_version` is not set, in each
/// partition. `None`: no version is pinned, and the newest one the
/// repository publishes at deploy time is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub aws: Option<&'static str>,
    pub aws_cn: Option<&'static str>,
    pub aws_us_gov: Option<&'static str>,
}

const fn pinned(aws: &'static str, aws_cn: &'static str, aws_us_gov: &'static str) -> Versions {
    Versions {
        aws: Some(aws),
        aws_cn: Some(aws_cn),
        aws_us_gov: Some(aws_us_gov),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub rotation_type: &'static str,
    /// The application's name in the repository.
    pub application: &'static str,
    pub strategy: Strategy,
    /// What the template's Lambda needs in the secret's JSON.
    pub secret: SecretFormat,
    /// Whether the Lambda signs in with a master secret, named by the
    /// secret's `masterarn` key: every multi-user template, and Db2's
    /// single-user one too, since a Db2 user cannot change its own password.
    pub needs_master_secret: bool,
    pub default_versions: Versions,
}

const fn row(
    rotation_type: &'static str,
    application: &'static str,
    strategy: Strategy,
    secret: SecretFormat,
    default_versions: Versions,
) -> Template {
    Template {
        rotation_type,
        application,
        strategy,
        secret,
        needs_master_secret: matches!(strategy, Strategy::MultiUser),
        default_versions,
    }
}

use Strategy::{Custom, MultiUser, SingleUser};

/// What a template's Lambda reads from the secret's JSON besides `host`,
/// `username` and `password`, which every one of them needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretFormat {
    /// The `engine` values the Lambda accepts; empty for the generic
    /// template, whose code is yours.
    pub engines: &'static [&'static str],
    /// The Lambda takes any `engine` that starts with one of `engines`
    /// (Db2's compares with `startswith`).
    pub engine_by_prefix: bool,
    /// The Lambda also needs `dbname` (Oracle's connects to a named
    /// service).
    pub needs_dbname: bool,
}

const fn engines(engines: &'static [&'static str]) -> SecretFormat {
    SecretFormat {
        engines,
        engine_by_prefix: false,
        needs_dbname: false,
    }
}

const MYSQL: SecretFormat = engines(&["mysql", "aurora-mysql"]);
const POSTGRES: SecretFormat = engines(&["postgres", "aurora-postgresql"]);
const MARIADB: SecretFormat = engines(&["mariadb"]);
const ORACLE: SecretFormat = SecretFormat {
    needs_dbname: true,
    ..engines(&["oracle"])
};
const SQLSERVER: SecretFormat = engines(&["sqlserver"]);
const DB2: SecretFormat = SecretFormat {
    engine_by_prefix: true,
    ..engines(&["db2"])
};
const REDSHIFT: SecretFormat = engines(&["redshift"]);
const MONGO: SecretFormat = engines(&["mongo"]);
const ANY: SecretFormat = engines(&[]);

impl SecretFormat {
    /// Whether the Lambda takes `value` as the secret's `engine`.
    pub fn accepts(&self, value: &str) -> bool {
        self.engines.iter().any(|e| {
            if self.engine_by_prefix {
                value.starts_with(e)
            } else {
                value == *e
            }
        })
    }

    /// The accepted values, as a diagnostic says them.
    pub fn accepted_list(&self) -> String {
        let quoted: Vec<String> = self.engines.iter().map(|e| format!("{e:?}")).collect();
        let list = quoted.join(" or ");
        if self.engine_by_prefix {
            format!("a value starting with {list}")
        } else {
            list
        }
    }
}

/// Every template, one row per `rotation_type`.
pub const TEMPLATES: [Template; 17] = [
    row(
        "mysql_single_user",
        "SecretsManagerRDSMySQLRotationSingleUser",
        SingleUser,
        MYSQL,
        pinned("1.1.671", "1.1.440", "1.1.384"),
    ),
    row(
        "mysql_multi_user",
        "SecretsManagerRDSMySQLRotationMultiUser",
        MultiUser,
        MYSQL,
        pinned("1.1.671", "1.1.440", "1.1.383"),
    ),
    row(
        "postgresql_single_user",
        "SecretsManagerRDSPostgreSQLRotationSingleUser",
        SingleUser,
        POSTGRES,
        pinned("1.1.671", "1.1.440", "1.1.383"),
    ),
    row(
        "postgresql_multi_user",
        "SecretsManagerRDSPostgreSQLRotationMultiUser",
        MultiUser,
        POSTGRES,
        pinned("1.1.671", "1.1.440", "1.1.383"),
    ),
    row(
        "mariadb_single_user",
        "SecretsManagerRDSMariaDBRotationSingleUser",
        SingleUser,
        MARIADB,
        pinned("1.1.670", "1.1.442", "1.1.383"),
    ),
    row(
        "mariadb_multi_user",
        "SecretsManagerRDSMariaDBRotationMultiUser",
        MultiUser,
        MARIADB,
        pinned("1.1.670", "1.1.441", "1.1.383"),
    ),
    row(
        "oracle_single_user",
        "SecretsManagerRDSOracleRotationSingleUser",
        SingleUser,
        ORACLE,
        pinned("1.1.671", "1.1.441", "1.1.382"),
    ),
    row(
        "oracle_multi_user",
        "SecretsManagerRDSOracleRotationMultiUser",
        MultiUser,
        ORACLE,
        pinned("1.1.671", "1.1.441", "1.1.383"),
    ),
    row(
        "sqlserver_single_user",
        "SecretsManagerRDSSQLServerRotationSingleUser",
        SingleUser,
        SQLSERVER,
        pinned("1.1.670", "1.1.441", "1.1.383"),
    ),
    row(
        "sqlserver_multi_user",
        "SecretsManagerRDSSQLServerRotationMultiUser",
        MultiUser,
        SQLSERVER,
        pinned("1.1.671", "1.1.441", "1.1.384"),
    ),
    Template {
        needs_master_secret: true,
        ..row(
            "db2_single_user",
            "SecretsManagerRDSDb2RotationSingleUser",
            SingleUser,
            DB2,
            pinned("1.1.271", "1.1.242", "1.1.222"),
        )
    },
    row(
        "db2_multi_user",
        "SecretsManagerRDSDb2RotationMultiUser",
        MultiUser,
        DB2,
        pinned("1.1.272", "1.1.240", "1.1.223"),
    ),
    row(
        "redshift_single_user",
        "SecretsManagerRedshiftRotationSingleUser",
        SingleUser,
        REDSHIFT,
        pinned("1.1.671", "1.1.441", "1.1.383"),
    ),
    row(
        "redshift_multi_user",
        "SecretsManagerRedshiftRotationMultiUser",
        MultiUser,
        REDSHIFT,
        pinned("1.1.671", "1.1.440", "1.1.383"),
    ),
    row(
        "mongodb_single_user",
        "SecretsManagerMongoDBRotationSingleUser",
        SingleUser,
        MONGO,
        pinned("1.1.671", "1.1.440", "1.1.384"),
    ),
    row(
        "mongodb_multi_user",
        "SecretsManagerMongoDBRotationMultiUser",
        MultiUser,
        MONGO,
        pinned("1.1.671", "1.1.441", "1.1.384"),
    ),
    // No public source pins a version of the generic template.
    row(
        "generic",
        "SecretsManagerRotationTemplate",
        Custom,
        ANY,
        Versions {
            aws: None,
            aws_cn: None,
            aws_us_gov: None,
        },
    ),
];

/// Every `rotation_type`, in table order.
pub const ROTATION_TYPES: [&str; TEMPLATES.len()] = {
    let mut names = [""; TEMPLATES.len()];
    let mut i = 0;
    while i < TEMPLATES.len() {
        names[i] = TEMPLATES[i].rotation_type;
        i += 1;
    }
    names
};

/// The template of a `rotation_type`.
pub fn find(rotation_type: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.rotation_type == rotation_type)
}

/// The template an application ARN (or bare name) belongs to.
pub fn of_application(application: &str) -> Option<&'static Template> {
    let name = application.rsplit('/').next()?;
    TEMPLATES.iter().find(|t| t.application == name)
}

impl Template {
    /// The application's ARN in the partition of `region`.
    pub fn application_arn(&self, region: &str) -> String {
        serverlessrepo::application_arn(self.application, region)
    }

    /// The version deployed in the partition of `region` when
    /// `template_version` is not set; `None` when none is pinned.
    pub fn default_version(&self, region: &str) -> Option<&'static str> {
        let v = self.default_versions;
        match partition_of_region(region) {
            "aws-cn" => v.aws_cn,
            "aws-us-gov" => v.aws_us_gov,
            _ => v.aws,
        }
    }

    pub fn is_multi_user(&self) -> bool {
        self.strategy == Strategy::MultiUser
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_semantic_version(v: &str) -> bool {
        let parts: Vec<&str> = v.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    }

    #[test]
    fn every_type_has_one_row_an_application_and_a_consistent_strategy() {
        for (i, t) in TEMPLATES.iter().enumerate() {
            assert_eq!(ROTATION_TYPES[i], t.rotation_type);
            assert_eq!(find(t.rotation_type), Some(t));
            assert_eq!(
                TEMPLATES
                    .iter()
                    .filter(|o| o.rotation_type == t.rotation_type || o.application == t.application)
                    .count(),
                1,
                "{} is listed once",
                t.rotation_type
            );
            assert!(t.application.starts_with("SecretsManager"), "{t:?}");
            let (suffix, app_suffix) = match t.strategy {
                Strategy::SingleUser => ("_single_user", "RotationSingleUser"),
                Strategy::MultiUser => ("_multi_user", "RotationMultiUser"),
                Strategy::Custom => ("generic", "RotationTemplate"),
            };
            assert!(t.rotation_type.ends_with(suffix), "{t:?}");
            assert!(t.application.ends_with(app_suffix), "{t:?}");
            assert_eq!(t.secret.engines.is_empty(), t.strategy == Strategy::Custom);
            if t.is_multi_user() {
                assert!(t.needs_master_secret, "{t:?}");
            }
        }
        assert_eq!(find("oracle"), None);
        assert_eq!(find("Generic"), None);
    }

    #[test]
    fn eight_engines_two_strategies_each_and_the_generic_template() {
        let engines = [
            "mysql",
            "postgresql",
            "mariadb",
            "oracle",
            "sqlserver",
            "db2",
            "redshift",
            "mongodb",
        ];
        for engine in engines {
            for strategy in ["single_user", "multi_user"] {
                assert!(
                    find(&format!("{engine}_{strategy}")).is_some(),
                    "{engine}_{strategy}"
                );
            }
        }
        assert_eq!(TEMPLATES.len(), engines.len() * 2 + 1);
        assert_eq!(
            find("generic").map(|t| t.application),
            Some("SecretsManagerRotationTemplate")
        );
    }

    #[test]
    fn the_names_are_the_publishers() {
        // Redshift's single-user application is spelled out in full, as
        // AWS publishes it.
        assert_eq!(
            find("redshift_single_user").map(|t| t.application),
            Some("SecretsManagerRedshiftRotationSingleUser")
        );
        assert_eq!(
            find("mongodb_multi_user").map(|t| t.application),
            Some("SecretsManagerMongoDBRotationMultiUser")
        );
        assert_eq!(
            find("db2_single_user").map(|t| t.application),
            Some("SecretsManagerRDSDb2RotationSingleUser")
        );
    }

    #[test]
    fn every_rds_template_pins_a_version_in_each_partition() {
        for t in TEMPLATES.iter().filter(|t| t.strategy != Strategy::Custom) {
            for region in ["us-east-1", "cn-north-1", "us-gov-west-1"] {
                let v = t.default_version(region);
                assert!(
                    v.is_some_and(is_semantic_version),
                    "{} in {region}: {v:?}",
                    t.rotation_type
                );
            }
        }
        let pins = |t: &str| {
            let t = find(t).expect("known type");
            (
                t.default_version("eu-west-1"),
                t.default_version("cn-northwest-1"),
                t.default_version("us-gov-east-1"),
            )
        };
        assert_eq!(
            pins("mariadb_single_user"),
            (Some("1.1.670"), Some("1.1.442"), Some("1.1.383"))
        );
        assert_eq!(
            pins("sqlserver_multi_user"),
            (Some("1.1.671"), Some("1.1.441"), Some("1.1.384"))
        );
        assert_eq!(
            pins("db2_single_user"),
            (Some("1.1.271"), Some("1.1.242"), Some("1.1.222"))
        );
        assert_eq!(
            pins("db2_multi_user"),
            (Some("1.1.272"), Some("1.1.240"), Some("1.1.223"))
        );
        assert_eq!(pins("generic"), (None, None, None));
    }

    #[test]
    fn db2_single_user_needs_a_master_secret_and_other_single_user_types_do_not() {
        for t in TEMPLATES
            .iter()
            .filter(|t| t.strategy == Strategy::SingleUser)
        {
            assert_eq!(
                t.needs_master_secret,
                t.rotation_type == "db2_single_user",
                "{t:?}"
            );
        }
        assert!(!find("generic").is_some_and(|t| t.needs_master_secret));
    }

    #[test]
    fn application_arns_per_partition() {
        let t = find("oracle_multi_user").expect("known type");
        assert_eq!(
            t.application_arn("eu-west-1"),
            "arn:aws:serverlessrepo:us-east-1:297356227824:applications/\
SecretsManagerRDSOracleRotationMultiUser"
        );
        assert_eq!(
            t.application_arn("cn-northwest-1"),
            "arn:aws-cn:serverlessrepo:cn-north-1:193023089310:applications/\
SecretsManagerRDSOracleRotationMultiUser"
        );
        assert_eq!(
            t.application_arn("us-gov-east-1"),
            "arn:aws-us-gov:serverlessrepo:us-gov-west-1:023102451235:applications/\
SecretsManagerRDSOracleRotationMultiUser"
        );
    }

    #[test]
    fn the_template_of_an_application_arn() {
        for t in &TEMPLATES {
            for region in ["us-east-1", "cn-north-1", "us-gov-west-1"] {
                assert_eq!(of_application(&t.application_arn(region)), Some(t));
            }
            assert_eq!(of_application(t.application), Some(t));
        }
        assert_eq!(of_application("arn:x/Other"), None);
        assert_eq!(of_application(""), None);
    }
}
