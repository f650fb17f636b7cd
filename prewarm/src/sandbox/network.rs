//! Network policies: what a worker can reach. No worker ever uses the host's network stack.
//!
//! - `none`: the worker joins a namespace of this server's whose only interface is loopback.
//! - `egress` (the default): each function has a network namespace of its own (created when a
//!   version is prepared, shared by its versions): loopback and `eth0`, one end of a veth pair
//!   whose other end (`cpBBNNN`) is on the host, a /30 of the server's block of 100.64.0.0/10 (the
//!   shared address space no host uses for its own). One nftables table per server masquerades
//!   its block out, rejects what the functions send to the host itself (the input hook: the
//!   gateway, the store, anything listening on any host address), to loopback, link-local and
//!   metadata addresses and to any egress range (so functions cannot reach each other), and lets
//!   only replies back in. A function database on the host's loopback is reached through a relay
//!   the server listens with inside each function's namespace, at the address the function is
//!   given (`DATABASE_URL` unchanged). The system-call filter forbids `bind`/`listen`.
//!
//! Workers join their namespace by path (`/proc/SERVER/fd/N`, opened before `pivot_root`):
//! nothing is created per cold start, and namespaces are only freed when a function's last
//! version is retired (network namespaces are torn down asynchronously; per-start creation is
//! what piles up under churn). Why veth + nftables and not user-mode networking (`pasta`):
//! Debian's build (2023) refuses to work as root here (it drops to `nobody`, then cannot join the
//! namespace) and hung when run as `nobody`; the kernel path needs no helper process. What it costs
//! the host: IPv4 forwarding is switched on while a server runs, and then nothing is forwarded
//! that does not involve an egress link (`cp…`); it is switched back off when the last server
//! stops. Preparing a new function's namespace costs a few `ip` runs (tens of milliseconds).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::database_relay::DatabaseLogin;

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

/// A function's own network namespace, kept alive while any of its versions (or its dependency
/// builder) may join it: its workers join it by path.
#[derive(Debug, Clone)]
pub enum OwnNetwork {
    /// `egress`: its link, its address, its relays.
    Egress(std::sync::Arc<FunctionNetwork>),
    /// `none`: loopback only, and nobody else's loopback.
    Loopback(std::sync::Arc<OwnedFd>),
}

impl OwnNetwork {
    /// The path a worker opens to join it (`/proc/SERVER/fd/N`).
    pub fn namespace_path(&self) -> std::path::PathBuf {
        match self {
            OwnNetwork::Egress(network) => network.namespace_path(),
            OwnNetwork::Loopback(namespace) => descriptor_path(namespace),
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

/// Prefix of our tables' names: `containerpub_PID_N_BB` (BB: the server's address block).
const TABLE_PREFIX: &str = "containerpub_";

/// This server's share of the egress address space and its nftables table; removed when dropped.
///
/// Each server takes a /18 of 100.64.0.0/10 (its *block*, 4,096 addresses) and names its host
/// links `cpBB…` after it, so one table with wildcard rules covers every function's link.
#[derive(Debug)]
pub struct EgressHost {
    block: EgressBlock,
    table: String,
    database: Vec<SocketAddr>,
    /// Function subnets in use (their link may outlive the function for a moment: the kernel
    /// removes a veth pair when its namespace is freed, asynchronously).
    taken: std::sync::Mutex<std::collections::BTreeSet<u16>>,
}

/// A /18 of 100.64.0.0/10: `100.64.0.0 + index × 2^14`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressBlock {
    pub index: u8,
}

/// The /30 of one function's namespace inside a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressSubnet {
    pub block: EgressBlock,
    pub index: u16,
}

/// /30 subnets in a /18.
const SUBNETS_PER_BLOCK: u16 = 4096;

impl EgressBlock {
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(0x6440_0000 + (u32::from(self.index) << 14))
    }
    /// The names of this block's host links start with this.
    pub fn link_prefix(self) -> String {
        format!("cp{:02x}", self.index)
    }
}

impl EgressSubnet {
    fn base(self) -> u32 {
        u32::from(self.block.network()) + u32::from(self.index) * 4
    }
    pub fn host(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 1)
    }
    pub fn inside(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base() + 2)
    }
    pub fn host_link(self) -> String {
        format!("{}{:03x}", self.block.link_prefix(), self.index)
    }
}

impl EgressHost {
    /// Takes a free block, switches forwarding on and installs the table. `database` is the
    /// function database's URL: its address stays reachable (through a relay in each function's
    /// namespace when it is on the host's loopback).
    pub fn create(instance: u64, database: Option<&str>) -> Result<Self, String> {
        let block = free_block(instance)?;
        // Forwarding that a server of ours switched on is kept to our links alone.
        let only_ours = enable_forwarding()?;
        let database = database.map(database_addresses).unwrap_or_default();
        let on_host: Vec<SocketAddr> = database.iter().copied().filter(|address| !address.ip().is_loopback()).collect();
        // The block is in the name, so servers starting later see it is taken.
        let table = format!("{TABLE_PREFIX}{}_{instance}_{:02x}", std::process::id(), block.index);
        run_nft(&ruleset(&table, block, &on_host, only_ours))?;
        Ok(Self { block, table, database, taken: Default::default() })
    }

    /// A new namespace for one function: `lo` and `eth0`, the other end of `eth0` on the host.
    pub fn function_namespace(self: &std::sync::Arc<Self>) -> Result<FunctionNetwork, String> {
        let subnet = self.take_subnet()?;
        let created = self.configure(subnet);
        if created.is_err() {
            self.release_subnet(subnet);
        }
        created
    }

    fn configure(self: &std::sync::Arc<Self>, subnet: EgressSubnet) -> Result<FunctionNetwork, String> {
        let host_link = subnet.host_link();
        let server_pid = std::process::id().to_string();
        let inside = format!("{}/30", subnet.inside());
        let gateway = subnet.host().to_string();
        let peer = host_link.clone();
        let namespace = in_new_namespace(move || {
            bring_loopback_up()?;
            // The pair is made from inside, its host end sent to the server's own namespace.
            ip(&["link", "add", "eth0", "type", "veth", "peer", "name", &peer, "netns", &server_pid])?;
            ip(&["addr", "add", &inside, "dev", "eth0"])?;
            ip(&["link", "set", "eth0", "up"])?;
            ip(&["route", "add", "default", "via", &gateway])
        })?;
        let mut network = FunctionNetwork {
            namespace,
            subnet,
            host: self.clone(),
            relays: Vec::new(),
            database_login: Default::default(),
        };
        ip(&["addr", "add", &format!("{}/30", subnet.host()), "dev", &host_link])?;
        ip(&["link", "set", &host_link, "up"])?;
        for address in self.database.iter().filter(|address| address.ip().is_loopback()) {
            // `localhost` gives both loopbacks; one of them may be missing inside (IPv6 off).
            match network.relay(*address) {
                Ok(relay) => network.relays.push(relay),
                Err(error) if address.is_ipv6() => tracing::debug!(%error, "no IPv6 relay to the function database"),
                Err(error) => return Err(error),
            }
        }
        Ok(network)
    }

    fn take_subnet(&self) -> Result<EgressSubnet, String> {
        let mut taken = self.taken.lock().map_err(|_| "the egress subnet table is poisoned".to_string())?;
        let free = (0..SUBNETS_PER_BLOCK)
            .map(|index| EgressSubnet { block: self.block, index })
            .find(|subnet| !taken.contains(&subnet.index) && !link_exists(&subnet.host_link()))
            .ok_or_else(|| format!("all {SUBNETS_PER_BLOCK} egress subnets of this server are in use"))?;
        taken.insert(free.index);
        Ok(free)
    }

    fn release_subnet(&self, subnet: EgressSubnet) {
        if let Ok(mut taken) = self.taken.lock() {
            taken.remove(&subnet.index);
        }
    }
}

impl Drop for EgressHost {
    fn drop(&mut self) {
        let _ = run_nft(&format!("delete table inet {}\n", self.table));
        restore_forwarding_when_unused();
    }
}

/// One function's network namespace (egress policy) and its database relays. When the last
/// handle goes, the kernel frees the namespace once its last worker is gone, and the veth pair
/// with it.
#[derive(Debug)]
pub struct FunctionNetwork {
    namespace: OwnedFd,
    subnet: EgressSubnet,
    host: std::sync::Arc<EgressHost>,
    relays: Vec<tokio::task::JoinHandle<()>>,
    /// The one login its database relays let through (`database_relay`): the function's role
    /// and database, set by each version's launch; none, and every connection is refused.
    database_login: std::sync::Arc<std::sync::RwLock<Option<DatabaseLogin>>>,
}

impl FunctionNetwork {
    /// The path a worker opens to join this namespace (`/proc/SERVER/fd/N`).
    pub fn namespace_path(&self) -> std::path::PathBuf {
        descriptor_path(&self.namespace)
    }

    /// The login the database relays admit from now on (the function's versions share one).
    pub fn allow_database_login(&self, login: Option<DatabaseLogin>) {
        if let Ok(mut allowed) = self.database_login.write() {
            *allowed = login;
        }
    }

    /// Listens on `address` inside the namespace and forwards each connection that passes the
    /// gate (`database_relay`) to the same address on the host (the function database on the
    /// host's loopback).
    fn relay(&self, address: SocketAddr) -> Result<tokio::task::JoinHandle<()>, String> {
        let namespace =
            self.namespace.try_clone().map_err(|error| format!("duplicate the namespace handle: {error}"))?;
        let listener = std::thread::spawn(move || -> Result<std::net::TcpListener, String> {
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|error| format!("enter the function's network namespace: {error}"))?;
            let listener = std::net::TcpListener::bind(address)
                .map_err(|error| format!("listen on {address} in the function's network namespace: {error}"))?;
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
        let database_login = self.database_login.clone();
        Ok(runtime.spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let allowed = database_login.read().ok().and_then(|login| login.clone());
                tokio::spawn(super::database_relay::serve(inbound, address, allowed));
            }
        }))
    }
}

impl Drop for FunctionNetwork {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
        // The subnet is offered again only once its link is gone (`take_subnet` checks).
        self.host.release_subnet(self.subnet);
    }
}

/// `/proc/SERVER/fd/N` for one of the server's descriptors: a sandboxed shell opens it (as root,
/// before it leaves the host's `/proc`) to join a namespace the server holds.
pub fn descriptor_path(descriptor: &OwnedFd) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), descriptor.as_raw_fd()))
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
        tracing::info!("switched IPv4 forwarding on for the functions' egress links; nothing else is forwarded");
    }
    Ok(std::path::Path::new(FORWARDING_MARKER).exists())
}

/// Switches forwarding back off when we switched it on and no server has a table any more.
fn restore_forwarding_when_unused() {
    if std::path::Path::new(FORWARDING_MARKER).exists() && !our_tables_remain() {
        let _ = std::fs::write(FORWARDING, "0");
        let _ = std::fs::remove_file(FORWARDING_MARKER);
    }
}

fn our_tables_remain() -> bool {
    !our_tables().is_empty()
}

/// The names of every server's tables on this host (`containerpub_PID_N_BB`).
fn our_tables() -> Vec<String> {
    let Ok(output) = nft().args(["list", "tables"]).stdin(Stdio::null()).output() else { return Vec::new() };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("table inet "))
        .filter(|name| name.starts_with(TABLE_PREFIX))
        .map(str::to_string)
        .collect()
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// A /18 no other server on this host uses (no table claims it, no link of it exists, no route
/// goes into it), starting from one derived from our pid and instance.
fn free_block(instance: u64) -> Result<EgressBlock, String> {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|links| links.flatten().map(|link| link.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let claimed: Vec<u8> =
        our_tables().iter().filter_map(|name| u8::from_str_radix(name.rsplit('_').next()?, 16).ok()).collect();
    let start = u64::from(std::process::id()).wrapping_mul(7).wrapping_add(instance);
    for step in 0..256 {
        let block = EgressBlock { index: ((start + step) % 256) as u8 };
        let (low, high) = (u32::from(block.network()), u32::from(block.network()) + (1 << 14));
        let routed = routes.lines().skip(1).any(|line| {
            let destination = line.split_whitespace().nth(1).and_then(|hex| u32::from_str_radix(hex, 16).ok());
            destination
                .map(|raw| u32::from(Ipv4Addr::from(u32::from_be(raw))))
                .is_some_and(|dest| dest >= low && dest < high)
        });
        if !routed
            && !claimed.contains(&block.index)
            && !links.iter().any(|link| link.starts_with(&block.link_prefix()))
        {
            return Ok(block);
        }
    }
    Err("no free /18 in 100.64.0.0/10 for this server's egress links (256 servers on one host?)".into())
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

/// The rules of one server's egress links (every `cpBB…` of its `block`): masquerade out, refuse
/// the host (input), loopback, link-local, metadata and every egress range (forward), let only
/// replies in. `database` addresses on the host (not its loopback) stay reachable; `only_ours`
/// refuses forwarding that involves no egress link of any server (`cp…`).
pub fn ruleset(table: &str, block: EgressBlock, database: &[SocketAddr], only_ours: bool) -> String {
    let links = format!("{}*", block.link_prefix());
    // TCP is refused with a reset: ICMP errors are rate-limited per destination, so after a
    // burst of refusals further connects would hang until they time out instead of failing.
    let tcp = "meta l4proto tcp reject with tcp reset";
    let reject = "reject with icmpx type admin-prohibited";
    let mut input = String::new();
    for address in database.iter().filter(|address| address.is_ipv4()) {
        input.push_str(&format!(
            "    iifname \"{links}\" ip daddr {} tcp dport {} accept\n",
            address.ip(),
            address.port()
        ));
    }
    let unrelated = if only_ours { "    iifname != \"cp*\" oifname != \"cp*\" drop\n" } else { "" };
    format!(
        "table inet {table} {{\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   ip saddr {network}/18 oifname != \"{links}\" masquerade\n\
         \x20 }}\n\
         \x20 chain forward {{\n\
         \x20   type filter hook forward priority 0; policy accept;\n\
         \x20   iifname \"{links}\" ip daddr {{ {forbidden} }} {tcp}\n\
         \x20   iifname \"{links}\" ip daddr {{ {forbidden} }} {reject}\n\
         \x20   iifname \"{links}\" accept\n\
         \x20   oifname \"{links}\" ct state established,related accept\n\
         \x20   oifname \"{links}\" drop\n\
         {unrelated}\
         \x20 }}\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority 0; policy accept;\n\
         \x20   iifname \"{links}\" ct state established,related accept\n\
         {input}\
         \x20   iifname \"{links}\" {tcp}\n\
         \x20   iifname \"{links}\" {reject}\n\
         \x20 }}\n\
         }}\n",
        network = block.network(),
        forbidden = "127.0.0.0/8, 169.254.0.0/16, 100.64.0.0/10, 100.100.100.200",
    )
}

/// Removes the tables of servers that are gone (a crash leaves its table behind).
pub fn remove_stale_tables() -> usize {
    let mut removed = 0;
    for name in our_tables() {
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
        let block = EgressBlock { index: 0x12 };
        let subnet = EgressSubnet { block, index: 0x3 };
        assert_eq!(block.network(), "100.68.128.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            (subnet.host(), subnet.inside()),
            ("100.68.128.13".parse().unwrap(), "100.68.128.14".parse().unwrap())
        );
        assert_eq!(subnet.host_link(), "cp12003");
        let last = EgressSubnet { block: EgressBlock { index: 255 }, index: SUBNETS_PER_BLOCK - 1 };
        assert_eq!(last.inside(), "100.127.255.254".parse::<Ipv4Addr>().unwrap(), "the last block ends the range");
        let rules = ruleset("containerpub_1_0", block, &["192.0.2.2:5433".parse().unwrap()], true);
        let accept = rules.find("iifname \"cp12*\" ip daddr 192.0.2.2 tcp dport 5433 accept").expect(&rules);
        let refuse = rules.rfind("iifname \"cp12*\" reject").expect(&rules);
        assert!(accept < refuse, "{rules}");
        assert!(rules.contains("ip saddr 100.68.128.0/18 oifname != \"cp12*\" masquerade"), "{rules}");
        assert!(rules.contains("iifname \"cp12*\" meta l4proto tcp reject with tcp reset"), "{rules}");
        assert!(rules.contains("169.254.0.0/16") && rules.contains("100.64.0.0/10"), "{rules}");
        assert!(rules.contains("iifname \"cp12*\" meta l4proto tcp reject with tcp reset"), "{rules}");
        assert!(rules.contains("iifname != \"cp*\" oifname != \"cp*\" drop"), "{rules}");
        assert!(!ruleset("t", block, &[], false).contains("\"cp*\""));
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
