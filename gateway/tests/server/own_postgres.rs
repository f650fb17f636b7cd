//! A PostgreSQL server of a test's own, for tests that restart the database under running
//! servers (restarting the shared test server would break every test running beside them).
//! Made from the binaries of the one `scripts/test` started (`CONTAINERPUB_TEST_POSTGRES_BIN`);
//! stopped and removed when dropped.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::harness::skip;

pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub url: String,
    /// PostgreSQL refuses to run as root: as root, its commands run as `postgres`.
    as_postgres: bool,
}

impl OwnPostgres {
    /// A new, running server, or `None` (after a visible skip line) without the binaries.
    pub fn start() -> Option<OwnPostgres> {
        let Ok(bin) = std::env::var("CONTAINERPUB_TEST_POSTGRES_BIN") else {
            skip("CONTAINERPUB_TEST_POSTGRES_BIN is not set (scripts/test sets it): no database to restart");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = nix::unistd::Uid::effective().is_root();
        if as_postgres {
            let postgres = nix::unistd::User::from_name("postgres").unwrap().expect("the postgres user exists");
            nix::unistd::chown(dir.path(), Some(postgres.uid), Some(postgres.gid)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = OwnPostgres {
            bin: PathBuf::from(bin),
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            as_postgres,
        };
        let data = server.data().display().to_string();
        server.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"]);
        let settings = format!(
            "port = {port}\nunix_socket_directories = '{}'\nlisten_addresses = '127.0.0.1'\nfsync = off\nmax_connections = 100\n",
            server.dir.path().display()
        );
        let conf = server.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        server.ctl(&["-w", "start"]);
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let output = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap();
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn ctl(&self, args: &[&str]) {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Stops the server at once (clients are cut off), as a crash or a failover would.
    pub fn stop(&self) {
        self.ctl(&["-m", "immediate", "-w", "stop"]);
    }

    pub fn start_again(&self) {
        self.ctl(&["-w", "start"]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let _ = command.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}
