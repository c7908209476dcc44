//! `terraform-provider-rdsrot`: the plugin binary Terraform starts.

use std::process::ExitCode;

fn main() -> ExitCode {
    rdsrot::logging::install_panic_hook();
    rdsrot::server::run_plugin(rdsrot::provider::RdsrotProvider::new())
}
