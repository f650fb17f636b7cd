//! Network policies: what a worker can reach.
//!
//! - `none`: the worker joins a network namespace of this server's that has only a loopback
//!   interface. Nothing outside it is reachable, and nothing of the host is visible.
//! - `egress` (the default): the worker keeps the host's network stack for outbound traffic, and
//!   an nftables table (one per server, matched on the workers' uid range, in the output hook)
//!   rejects everything sent to the host itself (`fib daddr type local`: loopback and every
//!   address of the host, so the gateway, the store and anything else listening), to link-local
//!   addresses and to cloud metadata endpoints, except the configured function database. The
//!   system-call filter removes the rest of what a shared stack would expose: no `bind`/`listen`
//!   (no servers, so no way to receive another tenant's traffic), no Unix, netlink, packet or raw
//!   sockets (no abstract sockets of the host, no routing tables).
//!
//! Why not a namespace per worker with user-mode networking (`pasta`) or a veth pair: Debian's
//! `pasta` (a 2023 build) refuses to run as root (it drops to `nobody`, then cannot join the
//! namespace), and a veth pair per server needs host-wide IP forwarding, an address plan that
//! never collides between servers, and NAT rules. The uid-matched table costs nothing per cold
//! start and leaves no namespace to tear down under churn. What it does not hide: the host's
//! interface list and routes are visible to `egress` workers.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// What a function's workers can reach over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPolicy {
    /// Outbound TCP/UDP to the outside; not the host, link-local or metadata addresses.
    #[default]
    Egress,
    /// Loopback inside the worker's own namespace only.
    None,
}

impl NetworkPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkPolicy::Egress => "egress",
            NetworkPolicy::None => "none",
        }
    }
}

impl std::str::FromStr for NetworkPolicy {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "egress" => Ok(NetworkPolicy::Egress),
            "none" => Ok(NetworkPolicy::None),
            other => Err(format!("unknown network policy {other:?}: expected \"egress\" or \"none\"")),
        }
    }
}

/// Creates a network namespace whose only interface is loopback (up), and returns a handle to it.
/// The namespace is made on a short-lived thread, so no thread of the server ever lives in it.
pub fn loopback_only_namespace() -> Result<OwnedFd, String> {
    std::thread::spawn(|| -> Result<OwnedFd, String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|error| format!("create a network namespace: {error}"))?;
        bring_loopback_up()?;
        let file = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|error| format!("open the new network namespace: {error}"))?;
        Ok(OwnedFd::from(file))
    })
    .join()
    .map_err(|_| "the network namespace thread panicked".to_string())?
}

fn bring_loopback_up() -> Result<(), String> {
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!("open a socket to configure loopback: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own; the socket is open.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(format!("read loopback flags: {}", std::io::Error::last_os_error()));
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(format!("bring loopback up: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The nftables table that confines `egress` workers; removed when dropped.
#[derive(Debug)]
pub struct EgressFirewall {
    table: String,
}

/// Prefix of our tables' names: `containerpub_PID_N`.
const TABLE_PREFIX: &str = "containerpub_";

impl EgressFirewall {
    /// Installs the table for workers with uids in `uids` (inclusive); `allowed` are the only
    /// host-local or otherwise forbidden addresses they may still reach (the function database).
    pub fn install(instance: u64, uids: (u32, u32), allowed: &[SocketAddr]) -> Result<Self, String> {
        let table = format!("{TABLE_PREFIX}{}_{instance}", std::process::id());
        run_nft(&ruleset(&table, uids, allowed))?;
        Ok(Self { table })
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for EgressFirewall {
    fn drop(&mut self) {
        let _ = run_nft(&format!("delete table inet {}\n", self.table));
    }
}

/// The rules: accept the allowed addresses first, then reject the host, link-local and metadata.
pub fn ruleset(table: &str, (first_uid, last_uid): (u32, u32), allowed: &[SocketAddr]) -> String {
    let who = format!("meta skuid {first_uid}-{last_uid}");
    let reject = "reject with icmpx type admin-prohibited";
    let mut rules = String::new();
    for address in allowed {
        let family = match address.ip() {
            IpAddr::V4(_) => "ip",
            IpAddr::V6(_) => "ip6",
        };
        rules.push_str(&format!("    {who} {family} daddr {} tcp dport {} accept\n", address.ip(), address.port()));
    }
    rules.push_str(&format!("    {who} fib daddr type local {reject}\n"));
    rules.push_str(&format!("    {who} ip daddr {{ 169.254.0.0/16, 100.100.100.200 }} {reject}\n"));
    rules.push_str(&format!("    {who} ip6 daddr {{ fe80::/10, fd00:ec2::254 }} {reject}\n"));
    format!(
        "table inet {table} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n"
    )
}

/// Removes the tables of servers that are gone (a crash leaves its table behind).
pub fn remove_stale_tables() -> usize {
    let Ok(output) = nft().args(["list", "tables"]).stdin(Stdio::null()).output() else { return 0 };
    let mut removed = 0;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.strip_prefix("table inet ") else { continue };
        let Some(rest) = name.strip_prefix(TABLE_PREFIX) else { continue };
        let Some(pid) = rest.split('_').next().and_then(|pid| pid.parse::<i32>().ok()) else { continue };
        if pid as u32 != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && run_nft(&format!("delete table inet {name}\n")).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Whether `nft` can be run here (installed, and we may change the ruleset).
pub fn nft_available() -> Result<(), String> {
    match nft().args(["list", "tables"]).stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("nft list tables failed: {}", String::from_utf8_lossy(&output.stderr).trim())),
        Err(error) => Err(format!("nft not found ({error}): install nftables")),
    }
}

/// `nft` from `PATH`, or from the sbin directories a non-login root `PATH` may leave out.
fn nft() -> Command {
    let found = crate::runtime::find_on_path(std::env::var_os("PATH").as_deref(), "nft").or_else(|| {
        ["/usr/sbin/nft", "/sbin/nft"].map(std::path::PathBuf::from).into_iter().find(|path| path.is_file())
    });
    Command::new(found.unwrap_or_else(|| "nft".into()))
}

fn run_nft(script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = nft()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("run nft ({error}): install nftables"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(|error| format!("write to nft: {error}"))?;
    let output = child.wait_with_output().map_err(|error| format!("wait for nft: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("nft refused the rules: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// The host and port a `postgres://` URL points at, when the host is an address (or `localhost`).
pub fn database_addresses(url: &str) -> Vec<SocketAddr> {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else { return Vec::new() };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => match port.parse::<u16>() {
            Ok(port) => (host, port),
            Err(_) => (host_port, 5432),
        },
        _ => (host_port, 5432),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == "localhost" {
        return vec![SocketAddr::from(([127, 0, 0, 1], port)), SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))];
    }
    host.parse::<IpAddr>().map(|ip| vec![SocketAddr::new(ip, port)]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_accepts_the_database_before_rejecting_the_host() {
        let rules = ruleset("containerpub_1_0", (200_000, 299_999), &["127.0.0.1:5433".parse().unwrap()]);
        let accept = rules.find("ip daddr 127.0.0.1 tcp dport 5433 accept").expect(&rules);
        let local = rules.find("fib daddr type local reject").expect(&rules);
        assert!(accept < local);
        assert!(rules.contains("meta skuid 200000-299999"));
        assert!(rules.contains("169.254.0.0/16") && rules.contains("fe80::/10"));
    }

    #[test]
    fn database_urls_give_their_address() {
        assert_eq!(database_addresses("postgres://u:p@127.0.0.1:5433/db"), vec!["127.0.0.1:5433".parse().unwrap()]);
        assert_eq!(
            database_addresses("postgres://10.1.2.3/db?sslmode=disable"),
            vec!["10.1.2.3:5432".parse().unwrap()]
        );
        assert_eq!(database_addresses("postgres://[::1]:6000/db"), vec!["[::1]:6000".parse().unwrap()]);
        assert_eq!(database_addresses("postgres://u@localhost:7000/db").len(), 2);
        assert!(database_addresses("postgres://db.example/db").is_empty());
    }

    #[test]
    fn policies_parse_from_their_names() {
        assert_eq!("none".parse::<NetworkPolicy>(), Ok(NetworkPolicy::None));
        assert!("host".parse::<NetworkPolicy>().unwrap_err().contains("expected"));
    }
}
