//! The real database servers (`support::databases`) and their helpers: a
//! user signs in with its own password only, a user never created does not
//! exist, a master user can do what a rotation function does with it
//! (create a clone, hand on privileges, change a password), and both
//! servers listen on 127.0.0.1 alone.

use crate::databases_or_skip;
use crate::support::databases::unique_name;
use crate::support::moto::distinctive_password;

/// Both servers, by the engine names of the RDS secret format.
const ENGINES: [&str; 2] = ["postgres", "mysql"];

#[test]
fn a_created_user_signs_in_with_its_password_and_not_another() {
    let databases = databases_or_skip!();
    for engine in ENGINES {
        let user = unique_name("app");
        let password = distinctive_password(&user);
        databases.create_user(engine, &user, &password);

        assert!(
            databases.user_exists(engine, &user),
            "{engine}: {user} was created"
        );
        assert!(
            databases.can_sign_in(engine, &user, &password),
            "{engine}: {user} signs in with its password"
        );
        assert!(
            !databases.can_sign_in(engine, &user, &distinctive_password("other")),
            "{engine}: {user} must not sign in with another password"
        );
        assert!(
            databases.can_read_notes_of(engine, &user, &password, &user),
            "{engine}: {user} reads its own notes table"
        );
    }
}

#[test]
fn a_user_never_created_does_not_exist_nor_sign_in() {
    let databases = databases_or_skip!();
    for engine in ENGINES {
        let user = unique_name("ghost");
        assert!(
            !databases.user_exists(engine, &user),
            "{engine}: {user} was never created"
        );
        assert!(
            !databases.can_sign_in(engine, &user, "any-password"),
            "{engine}: {user} was never created, yet signed in"
        );
    }
    // MariaDB answers for `mariadb` secrets too.
    assert_eq!(databases.server("mariadb").port, databases.mysql().port);
}

#[test]
fn a_master_user_clones_a_user_and_changes_its_password() {
    let databases = databases_or_skip!();
    for engine in ENGINES {
        let master = unique_name("master");
        let master_password = distinctive_password(&master);
        databases.create_master_user(engine, &master, &master_password);
        let user = unique_name("app");
        let old_password = distinctive_password("old");
        databases.create_user(engine, &user, &old_password);
        let stranger = unique_name("stranger");
        let stranger_password = distinctive_password(&stranger);
        databases.create_user(engine, &stranger, &stranger_password);

        // What an alternating-users rotation does: a clone with the user's
        // privileges, then a new password for the user.
        let clone = format!("{user}_clone");
        let clone_password = distinctive_password("clone");
        let new_password = distinctive_password("new");
        let as_master = match engine {
            "postgres" => format!(
                "CREATE ROLE \"{clone}\" LOGIN PASSWORD '{clone_password}';\n\
                 GRANT \"{user}\" TO \"{clone}\";\n\
                 ALTER ROLE \"{user}\" PASSWORD '{new_password}';\n"
            ),
            _ => format!(
                "CREATE USER '{clone}'@'%' IDENTIFIED BY '{clone_password}';\n\
                 GRANT SELECT, INSERT ON {table} TO '{clone}'@'%';\n\
                 ALTER USER '{user}'@'%' IDENTIFIED BY '{new_password}';\n",
                table = databases.notes_table(engine, &user),
            ),
        };
        if let Err(error) = databases.sql_as(engine, &master, &master_password, &as_master) {
            panic!("{engine}: the master user could not clone {user}: {error}");
        }

        assert!(
            databases.user_exists(engine, &clone),
            "{engine}: the clone exists"
        );
        assert!(
            databases.can_read_notes_of(engine, &clone, &clone_password, &user),
            "{engine}: the clone holds {user}'s privileges"
        );
        assert!(
            !databases.can_read_notes_of(engine, &stranger, &stranger_password, &user),
            "{engine}: another user must not read {user}'s notes"
        );
        assert!(
            databases.can_sign_in(engine, &user, &new_password),
            "{engine}: new password"
        );
        assert!(
            !databases.can_sign_in(engine, &user, &old_password),
            "{engine}: the old password must be refused after the change"
        );
    }
}

#[test]
fn both_servers_listen_on_127_0_0_1_only() {
    let databases = databases_or_skip!();
    for server in [databases.postgres(), databases.mysql()] {
        assert_eq!(server.host, "127.0.0.1");
        std::net::TcpStream::connect(("127.0.0.1", server.port))
            .unwrap_or_else(|e| panic!("port {} answers on 127.0.0.1: {e}", server.port));
        // Read from the kernel's socket tables rather than probed: no other
        // address may be a network target of the tests.
        let listening = listening_addresses(server.port);
        assert_eq!(
            listening,
            vec!["0100007F".to_owned()],
            "port {} must listen on 127.0.0.1 alone (hex addresses from /proc/net/tcp*)",
            server.port
        );
    }
}

/// The local addresses (kernel hex notation) of the sockets listening on
/// `port`, IPv4 and IPv6.
fn listening_addresses(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let wanted_port = format!("{port:04X}");
    let mut addresses = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            if let Some((address, port)) = local.split_once(':') {
                if port == wanted_port && *state == LISTEN {
                    addresses.push(address.to_owned());
                }
            }
        }
    }
    addresses
}
