//! Network policies: what a worker can reach. No worker ever uses the host's network stack.
//!
//! - `none`: the worker joins a namespace of this server's whose only interface is loopback.
//! - `egress` (the default): the worker joins this server's *egress namespace*: loopback and one
//!   end of a veth pair (`cpi…`, an address in 100.64.0.0/10, the shared address space no host
//!   uses for its own), default route to the other end (`cpe…`, on the host). On the host, one
//!   nftables table per server masquerades its traffic out, rejects what it sends to the host
//!   itself (the input hook: the gateway, the store, anything listening on any host address),
//!   to link-local and metadata addresses, to other servers' egress namespaces, and lets only
//!   replies back in. Its loopback is its own, so the host's is out of reach; a function database
//!   on the host's loopback is reached through a relay the server listens with inside the
//!   namespace, at the address the function is given (`DATABASE_URL` unchanged). The
//!   system-call filter forbids `bind`/`listen`, so no worker can serve another in there.
//!
//! Why one namespace per server, joined with `setns`: a namespace per worker costs a veth pair,
//! an address and routes per cold start, and network namespaces are torn down asynchronously,
//! which piles up under churn; joining an existing one costs microseconds. Why veth + nftables
//! and not user-mode networking (`pasta`): Debian's build (2023) refuses to run as root here (it
//! drops to `nobody`, then cannot join the namespace), and the kernel path needs no helper
//! process per server. What it costs the host: IPv4 forwarding is switched on (and traffic that
//! does not involve a `cpe…` link is then refused forwarding, so nothing else starts being routed).
//! What egress workers still share: the namespace, so one tenant's `/proc/net/tcp` lists the
//! others' outbound connections (addresses and ports, not data).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    in_new_namespace(bring_loopback_up)
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

/// Prefix of our tables' names: `containerpub_PID_N`.
const TABLE_PREFIX: &str = "containerpub_";

/// This server's egress namespace, its host link and its nftables table; removed when dropped.
#[derive(Debug)]
pub struct EgressNamespace {
    namespace: OwnedFd,
    table: String,
    host_link: String,
    relays: Vec<tokio::task::JoinHandle<()>>,
}

/// The /30 of an egress namespace: `100.64.0.0 + 4 × index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressSubnet {
    pub index: u32,
}

impl EgressSubnet {
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(0x6440_0000 + self.index * 4)
    }
    pub fn host(self) -> Ipv4Addr {
        Ipv4Addr::from(0x6440_0000 + self.index * 4 + 1)
    }
    pub fn inside(self) -> Ipv4Addr {
        Ipv4Addr::from(0x6440_0000 + self.index * 4 + 2)
    }
    pub fn host_link(self) -> String {
        format!("cpe{:05x}", self.index)
    }
    pub fn inside_link(self) -> String {
        format!("cpi{:05x}", self.index)
    }
}

impl EgressNamespace {
    /// Creates the namespace, its link and its rules. `database` is the function database's URL:
    /// its address stays reachable (through a relay when it is on the host's loopback).
    pub fn create(instance: u64, database: Option<&str>) -> Result<Self, String> {
        let subnet = free_subnet(instance)?;
        let (host_link, inside_link) = (subnet.host_link(), subnet.inside_link());
        let server_pid = std::process::id().to_string();
        let inside = format!("{}/30", subnet.inside());
        let gateway = subnet.host().to_string();
        let peer = host_link.clone();
        let namespace = in_new_namespace(move || {
            bring_loopback_up()?;
            // The pair is made from inside, its host end sent to the server's own namespace.
            ip(&["link", "add", &inside_link, "type", "veth", "peer", "name", &peer, "netns", &server_pid])?;
            ip(&["addr", "add", &inside, "dev", &inside_link])?;
            ip(&["link", "set", &inside_link, "up"])?;
            ip(&["route", "add", "default", "via", &gateway])
        })?;
        ip(&["addr", "add", &format!("{}/30", subnet.host()), "dev", &host_link])?;
        ip(&["link", "set", &host_link, "up"])?;
        // Forwarding that a server of ours switched on is kept to our links alone.
        let only_ours = enable_forwarding()?;
        let addresses = database.map(database_addresses).unwrap_or_default();
        let (on_loopback, elsewhere): (Vec<SocketAddr>, Vec<SocketAddr>) =
            addresses.into_iter().partition(|address| address.ip().is_loopback());
        let table = format!("{TABLE_PREFIX}{}_{instance}", std::process::id());
        run_nft(&ruleset(&table, subnet, &elsewhere, only_ours))?;
        let mut egress = Self { namespace, table, host_link, relays: Vec::new() };
        for address in on_loopback {
            // `localhost` gives both loopbacks; one of them may be missing inside (IPv6 off).
            match egress.relay(address) {
                Ok(relay) => egress.relays.push(relay),
                Err(error) if address.is_ipv6() => tracing::debug!(%error, "no IPv6 relay to the function database"),
                Err(error) => return Err(error),
            }
        }
        Ok(egress)
    }

    pub fn namespace(&self) -> &OwnedFd {
        &self.namespace
    }

    /// Listens on `address` inside the namespace and forwards each connection to the same
    /// address on the host (the function database on the host's loopback).
    fn relay(&self, address: SocketAddr) -> Result<tokio::task::JoinHandle<()>, String> {
        let namespace =
            self.namespace.try_clone().map_err(|error| format!("duplicate the namespace handle: {error}"))?;
        let listener = std::thread::spawn(move || -> Result<std::net::TcpListener, String> {
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|error| format!("enter the egress namespace: {error}"))?;
            let listener = std::net::TcpListener::bind(address)
                .map_err(|error| format!("listen on {address} in the egress namespace: {error}"))?;
            listener.set_nonblocking(true).map_err(|error| format!("make the relay non-blocking: {error}"))?;
            Ok(listener)
        })
        .join()
        .map_err(|_| "the relay thread panicked".to_string())??;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the function database relay needs a Tokio runtime".to_string())?;
        let _entered = runtime.enter();
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|error| format!("register the relay: {error}"))?;
        Ok(runtime.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(address).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }))
    }
}

impl Drop for EgressNamespace {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
        let _ = run_nft(&format!("delete table inet {}\n", self.table));
        // The host end goes with the namespace once its last worker is gone; remove it now.
        let _ = ip(&["link", "del", &self.host_link]);
        restore_forwarding_when_unused();
    }
}

const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// Present while IPv4 forwarding is on because a server of ours switched it on (under `/run`,
/// so a reboot forgets it with the setting).
const FORWARDING_MARKER: &str = "/run/containerpub-switched-ip-forwarding-on";

/// Switches IPv4 forwarding on if it is off; true when it is on because of us (now or earlier).
fn enable_forwarding() -> Result<bool, String> {
    let was = std::fs::read_to_string(FORWARDING).map_err(|error| format!("read {FORWARDING}: {error}"))?;
    if was.trim() != "1" {
        std::fs::write(FORWARDING_MARKER, b"").map_err(|error| format!("write {FORWARDING_MARKER}: {error}"))?;
        std::fs::write(FORWARDING, "1").map_err(|error| format!("enable IPv4 forwarding: {error}"))?;
        tracing::info!(
            "switched IPv4 forwarding on for the sandbox's egress namespace; traffic not involving it is not forwarded"
        );
    }
    Ok(std::path::Path::new(FORWARDING_MARKER).exists())
}

/// Switches forwarding back off when we switched it on and no egress link of any server is left.
fn restore_forwarding_when_unused() {
    if std::path::Path::new(FORWARDING_MARKER).exists() && !egress_links_remain() {
        let _ = std::fs::write(FORWARDING, "0");
        let _ = std::fs::remove_file(FORWARDING_MARKER);
    }
}

/// Whether any server's egress link is still there.
fn egress_links_remain() -> bool {
    std::fs::read_dir("/sys/class/net")
        .map(|links| links.flatten().any(|link| link.file_name().to_string_lossy().starts_with("cpe")))
        .unwrap_or(false)
}

/// A /30 no other link on this host uses, starting from one derived from our pid and instance.
fn free_subnet(instance: u64) -> Result<EgressSubnet, String> {
    let start = (u64::from(std::process::id()) * 64 + instance) % (1 << 20);
    for step in 0..256 {
        let subnet = EgressSubnet { index: ((start + step) % (1 << 20)) as u32 };
        let taken = std::path::Path::new("/sys/class/net").join(subnet.host_link()).exists()
            || std::fs::read_to_string("/proc/net/route").unwrap_or_default().lines().any(|line| {
                let network = line.split_whitespace().nth(1).and_then(|hex| u32::from_str_radix(hex, 16).ok());
                network.map(|n| Ipv4Addr::from(u32::from_be(n))) == Some(subnet.network())
            });
        if !taken {
            return Ok(subnet);
        }
    }
    Err("no free /30 in 100.64.0.0/10 for the egress namespace".into())
}

/// Runs `configure` on a short-lived thread inside a new network namespace, and returns a handle
/// to that namespace; no thread of the server stays in it.
fn in_new_namespace(configure: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<OwnedFd, String> {
    std::thread::spawn(move || -> Result<OwnedFd, String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|error| format!("create a network namespace: {error}"))?;
        configure()?;
        let file = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|error| format!("open the new network namespace: {error}"))?;
        Ok(OwnedFd::from(file))
    })
    .join()
    .map_err(|_| "the network namespace thread panicked".to_string())?
}

/// The rules of one server's egress link (`subnet`); `database` addresses on the host (not its
/// loopback) stay reachable; `only_ours` refuses forwarding that does not involve a `cpe…` link.
pub fn ruleset(table: &str, subnet: EgressSubnet, database: &[SocketAddr], only_ours: bool) -> String {
    let link = subnet.host_link();
    let reject = "reject with icmpx type admin-prohibited";
    let mut input = String::new();
    for address in database.iter().filter(|address| address.is_ipv4()) {
        input.push_str(&format!(
            "    iifname \"{link}\" ip daddr {} tcp dport {} accept\n",
            address.ip(),
            address.port()
        ));
    }
    let unrelated = if only_ours { "    iifname != \"cpe*\" oifname != \"cpe*\" drop\n" } else { "" };
    format!(
        "table inet {table} {{\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   ip saddr {network}/30 oifname != \"{link}\" masquerade\n\
         \x20 }}\n\
         \x20 chain forward {{\n\
         \x20   type filter hook forward priority 0; policy accept;\n\
         \x20   iifname \"{link}\" ip daddr {{ 127.0.0.0/8, 169.254.0.0/16, 100.64.0.0/10, 100.100.100.200 }} {reject}\n\
         \x20   iifname \"{link}\" accept\n\
         \x20   oifname \"{link}\" ct state established,related accept\n\
         \x20   oifname \"{link}\" drop\n\
         {unrelated}\
         \x20 }}\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority 0; policy accept;\n\
         \x20   iifname \"{link}\" ct state established,related accept\n\
         {input}\
         \x20   iifname \"{link}\" {reject}\n\
         \x20 }}\n\
         }}\n",
        network = subnet.network(),
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

/// Whether `nft` and `ip` can be run here (installed, and we may change the ruleset).
pub fn tools_available() -> Result<(), String> {
    match tool("ip").arg("-V").stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => {}
        _ => return Err("ip not found: install iproute2".into()),
    }
    match nft().args(["list", "tables"]).stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("nft list tables failed: {}", String::from_utf8_lossy(&output.stderr).trim())),
        Err(error) => Err(format!("nft not found ({error}): install nftables")),
    }
}

/// An administration tool from `PATH`, or from the sbin directories a non-login root `PATH` may
/// leave out.
fn tool(name: &str) -> Command {
    let found = crate::runtime::find_on_path(std::env::var_os("PATH").as_deref(), name).or_else(|| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|dir| std::path::Path::new(dir).join(name))
            .find(|path| path.is_file())
    });
    Command::new(found.unwrap_or_else(|| name.into()))
}

fn nft() -> Command {
    tool("nft")
}

/// Runs `ip ARGS` (iproute2) in the calling thread's network namespace.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = tool("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("run ip ({error}): install iproute2"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
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
    fn the_ruleset_lets_the_database_in_before_refusing_the_host() {
        let subnet = EgressSubnet { index: 0x12 };
        assert_eq!(
            (subnet.network(), subnet.host(), subnet.inside()),
            ("100.64.0.72".parse().unwrap(), "100.64.0.73".parse().unwrap(), "100.64.0.74".parse().unwrap())
        );
        assert_eq!((subnet.host_link(), subnet.inside_link()), ("cpe00012".to_string(), "cpi00012".to_string()));
        let rules = ruleset("containerpub_1_0", subnet, &["192.0.2.2:5433".parse().unwrap()], true);
        let accept = rules.find("iifname \"cpe00012\" ip daddr 192.0.2.2 tcp dport 5433 accept").expect(&rules);
        let refuse = rules.rfind("iifname \"cpe00012\" reject").expect(&rules);
        assert!(accept < refuse, "{rules}");
        assert!(rules.contains("ip saddr 100.64.0.72/30 oifname != \"cpe00012\" masquerade"), "{rules}");
        assert!(rules.contains("169.254.0.0/16") && rules.contains("100.64.0.0/10"), "{rules}");
        assert!(rules.contains("iifname != \"cpe*\" oifname != \"cpe*\" drop"), "{rules}");
        assert!(!ruleset("t", subnet, &[], false).contains("cpe*"));
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
