//! The sandbox: every worker is confined, whatever the analyzer said about its code.
//!
//! Layers, each assuming the others failed, applied by the exec wrapper before the runtime starts
//! (never in `pre_exec`; see `enter` for the exact order):
//!
//! 1. **Own identity**: an unprivileged uid and gid per function (from `[sandbox] uid_base`,
//!    allocated and stored by the gateway), no capabilities, `no_new_privs`.
//! 2. **Own file system view**: mount namespace, `pivot_root` onto a read-only template of its
//!    runtime (`rootfs`), the function's directory read-only at `/fn`, a private size-capped
//!    `/tmp` (tmpfs pages count against the worker's memory cgroup), its own `/proc`.
//! 3. **Own pid, ipc and uts namespaces**: the worker is pid 1 of a namespace holding only itself.
//! 4. **Network policy** (`network`): `egress` (the function's own namespace behind this server's
//!    egress) or `none` (a loopback-only namespace of the function's own); never the host's
//!    network stack, never another function's.
//! 5. **rlimits and cgroups** (`limits`), as before the sandbox.
//! 6. **Only the runtime executes** (`exec_allowlist`, Landlock): not a binary the tenant shipped.
//! 7. **System-call filter** (`seccomp`): no new processes, no namespaces, no mounts, no raw
//!    sockets, no servers, none of the kernel's riskier interfaces.
//!
//! Fail closed: when a layer cannot be applied on this host (not root, no seccomp, no `nft` or
//! `ip` for the egress policy, a runtime whose files cannot be listed), [`Sandbox::start`] refuses, and the
//! server does not start unless the operator set `[sandbox] mode = "off"`.

pub mod database_relay;
pub mod enter;
pub mod exec_allowlist;
pub mod network;
pub mod rootfs;
pub mod seccomp;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

pub use network::NetworkPolicy;

use crate::runtime::{Runtime, RuntimeInstall};

/// A layer of the sandbox: its name in `/healthz`, what it keeps from a function, and how a
/// function meets it (docs/security.md renders this list).
#[derive(Debug)]
pub struct Layer {
    pub name: &'static str,
    pub confines: &'static str,
    pub refusal: &'static str,
}

/// Every layer, in the order `/healthz` lists them. `network-none-only` stands in for
/// `network-policy` on a host that cannot provide egress; `exec-only-runtime` needs Landlock.
pub const LAYERS: &[Layer] = &[
    Layer {
        name: "own-uid",
        confines: "each function runs as its own unprivileged uid and gid, never root and never another tenant's",
        refusal: "other tenants' files and processes answer `EACCES`/`EPERM`",
    },
    Layer {
        name: "mount-namespace",
        confines: "a file system view of its own: the runtime, its libraries and the function's directory, nothing of the host or the server",
        refusal: "host paths do not exist (`ENOENT`): `/etc/shadow`, the server's data directory, other functions",
    },
    Layer {
        name: "read-only-root",
        confines: "everything is read-only but a private, size-capped `/tmp` (its pages count against the memory cap)",
        refusal: "writing the function's own files or the runtime answers `EACCES` (they are not its uid's) or `EROFS`; write to `/tmp`",
    },
    Layer {
        name: "pid-namespace",
        confines: "the worker is pid 1 of a namespace holding only itself",
        refusal: "other processes cannot be seen or signalled (`ESRCH`)",
    },
    Layer {
        name: "ipc-namespace",
        confines: "System V queues, semaphores and shared memory of its own",
        refusal: "another function's queues are not found (`ENOENT`)",
    },
    Layer {
        name: "uts-namespace",
        confines: "its own host name (`function`)",
        refusal: "the server's host name is not visible",
    },
    Layer {
        name: "cgroup-namespace",
        confines: "its own cgroup namespace: its group is `/`",
        refusal: "the server's cgroup path (which names its pid) is not visible",
    },
    Layer {
        name: "masked-host-info",
        confines: "what its `/proc` still tells of the host is masked: `kcore`, `keys`, `key-users`, `timer_list`, `timer_stats`, `sched_debug`, `latency_stats`, `cmdline`, `config.gz`, `kallsyms`, `sysrq-trigger`; the `acpi`, `scsi`, `asound`, `irq` and `pressure` directories",
        refusal: "those files read empty, those directories list nothing",
    },
    Layer {
        name: "network-policy",
        confines: "`egress`: outbound TCP and UDP and DNS through its own namespace, never the server's host, loopback, link-local or metadata addresses, nor other functions; `none`: a loopback of its own, shared with no other function",
        refusal: "refused addresses answer at once with `ECONNREFUSED`; under `none`, no route (`ENETUNREACH`)",
    },
    Layer {
        name: "network-none-only",
        confines: "a host without `nft`/`ip` offers only `none`: a loopback of each function's own",
        refusal: "every outside address: no route (`ENETUNREACH`)",
    },
    Layer {
        name: "no-capabilities",
        confines: "no capabilities in any set",
        refusal: "privileged operations answer `EPERM`",
    },
    Layer {
        name: "no-new-privs",
        confines: "nothing it runs can gain privileges (set-uid bits are ignored)",
        refusal: "set-uid programs run without their privileges",
    },
    Layer {
        name: "exec-only-runtime",
        confines: "Landlock: the runtime is the only program that can be executed, not a binary the function ships; and no memfd is executable (`vm.memfd_noexec = 2`)",
        refusal: "`execve` of anything else, or of a program copied into a memfd, answers `EACCES`",
    },
    Layer {
        name: "seccomp",
        confines: "a system-call filter: no new processes, namespaces, mounts, raw sockets or servers (the table below)",
        refusal: "the call answers `EPERM` (`clone3`: `ENOSYS`); the worker is never killed for trying",
    },
];

/// Whether workers are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    On,
    /// Workers run unconfined; only for a machine where every function is trusted.
    Off,
}

/// `[sandbox]` settings (the gateway reads them from its config file as they are).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// `on` confines every worker; `off` runs functions unconfined (trusted code only).
    pub mode: SandboxMode,
    /// The policy of functions that do not choose one (`network` in the config file).
    #[serde(rename = "network")]
    pub default_network: NetworkPolicy,
    /// Functions run as `uid_base + slot` (and the same gid); slots are below `uid_count`.
    pub uid_base: u32,
    pub uid_count: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self { mode: SandboxMode::On, default_network: NetworkPolicy::Egress, uid_base: 200_000, uid_count: 100_000 }
    }
}

impl SandboxConfig {
    /// The uid of a function's identity slot.
    pub fn uid_for_slot(&self, slot: u32) -> Option<u32> {
        (slot < self.uid_count).then(|| self.uid_base + slot)
    }

    /// Refuses a uid range that is empty, starts at root or does not fit in 32 bits.
    pub fn check(&self) -> Result<(), String> {
        if self.uid_base == 0 || self.uid_count == 0 || self.uid_base.checked_add(self.uid_count).is_none() {
            return Err(
                "[sandbox] uid_base must be above 0, uid_count above 0, and uid_base + uid_count below 2^32".into()
            );
        }
        Ok(())
    }
}

/// Why the sandbox cannot confine workers on this host.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox needs root to give each function its own uid and namespaces (running as uid {0}); run the server as root, or set [sandbox] mode = \"off\" to run functions unconfined")]
    NotRoot(u32),
    #[error("this kernel has no seccomp filters ({0}); use a kernel with CONFIG_SECCOMP_FILTER, or set [sandbox] mode = \"off\"")]
    NoSeccomp(String),
    #[error("the egress network policy needs nftables and iproute2: {0}; install them (apt-get install nftables iproute2), set [sandbox] network = \"none\", or set [sandbox] mode = \"off\"")]
    NoEgress(String),
    #[error("cannot prepare the {runtime} sandbox: {message}")]
    Runtime { runtime: &'static str, message: String },
    #[error("cannot create the sandbox's network namespace: {0}")]
    Network(String),
    #[error("{0}")]
    Policy(#[from] seccomp::PolicyError),
    #[error("{0}")]
    BadUidRange(String),
    #[error("cannot write the sandbox's identity files in {path}: {source}")]
    IdentityFiles { path: PathBuf, source: std::io::Error },
}

/// What `/healthz` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxStatus {
    /// `on` or `off`.
    pub mode: &'static str,
    /// The layers in force, in the order they are applied.
    pub layers: Vec<&'static str>,
    pub default_network: &'static str,
    pub uid_range: Option<(u32, u32)>,
    /// Runtimes with a root template.
    pub runtimes: Vec<&'static str>,
}

impl SandboxStatus {
    pub fn off() -> Self {
        Self { mode: "off", layers: Vec::new(), default_network: "host", uid_range: None, runtimes: Vec::new() }
    }
}

/// The host-side state of the sandbox of one pool.
#[derive(Debug)]
pub struct Sandbox {
    pub config: SandboxConfig,
    /// Each runtime's template root (mounted only inside the spawner thread's mount namespace).
    templates: HashMap<Runtime, PathBuf>,
    identity_dir: PathBuf,
    /// The host side of egress (this server's address block and nftables table), when this host
    /// can provide it; released at shutdown.
    egress: std::sync::Mutex<Option<std::sync::Arc<network::EgressHost>>>,
    egress_available: bool,
    /// Each function's own egress namespace, shared by its versions while any of them runs.
    function_networks: std::sync::Mutex<HashMap<u32, std::sync::Weak<network::FunctionNetwork>>>,
    /// Each `none` function's own loopback-only namespace, the same way: two functions never
    /// share a loopback (one's sockets are not in the other's `/proc/net`, nor reachable).
    loopback_networks: std::sync::Mutex<HashMap<u32, std::sync::Weak<OwnedFd>>>,
    /// Landlock is there: workers may execute their runtime and nothing else.
    exec_only_runtime: bool,
    /// Functions prepared without an allocated uid (direct users of the library) get one from the
    /// top of the range, counting down, so they never meet the gateway's slots counting up.
    next_unallocated_slot: AtomicU32,
}

/// What a version's workers need from the sandbox: the launch steps, and the function's own
/// network namespace, which the version's pool keeps alive while it runs.
#[derive(Debug)]
pub struct SandboxLaunch {
    pub steps: enter::SandboxSteps,
    pub network: network::OwnNetwork,
}

/// The one `T` of `uid` in `table` while anything holds it, made by `make` when nothing does;
/// entries nobody holds any more are dropped as new ones go in.
fn held_per_uid<T>(
    table: &std::sync::Mutex<HashMap<u32, std::sync::Weak<T>>>,
    uid: u32,
    make: impl FnOnce() -> Result<T, String>,
) -> Result<std::sync::Arc<T>, String> {
    let mut held = table.lock().map_err(|_| "the network table is poisoned".to_string())?;
    if let Some(existing) = held.get(&uid).and_then(std::sync::Weak::upgrade) {
        return Ok(existing);
    }
    let made = std::sync::Arc::new(make()?);
    held.retain(|_, entry| entry.strong_count() > 0);
    held.insert(uid, std::sync::Arc::downgrade(&made));
    Ok(made)
}

/// The host directories a dependency builder sees (see [`Sandbox::builder_launch`]).
#[derive(Debug, Clone)]
pub struct BuilderView {
    /// The package manager's own files (npm's package), when the runtime does not hold it.
    pub tool: Option<PathBuf>,
    /// Where it installs: a copy of the function's sources.
    pub output: PathBuf,
    /// The download cache shared by every function's builds.
    pub cache: PathBuf,
    /// The function's own part of the cache, bound over the shared cache's `wheels/`.
    pub wheelhouse: Option<PathBuf>,
}

/// Work to run on the spawner thread before it spawns anything: its own mount namespace with
/// the runtime templates in it.
pub type SpawnerSetup = Box<dyn FnOnce() -> Result<(), String> + Send>;

impl Sandbox {
    /// Checks that every layer can be applied here and prepares the host side. `database` is the
    /// function database's URL, which `egress` workers may reach even on the host's loopback.
    pub fn start(
        config: SandboxConfig,
        state_dir: &Path,
        runtimes: &RuntimeInstall,
        database: Option<&str>,
        instance: u64,
    ) -> Result<(Self, SpawnerSetup), SandboxError> {
        let uid = nix::unistd::geteuid().as_raw();
        if uid != 0 {
            return Err(SandboxError::NotRoot(uid));
        }
        config.check().map_err(SandboxError::BadUidRange)?;
        // SAFETY: PR_GET_SECCOMP takes no pointers; it fails with EINVAL without seccomp support.
        if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
            return Err(SandboxError::NoSeccomp(std::io::Error::last_os_error().to_string()));
        }
        seccomp::SyscallPolicy::build()?;
        let egress = match network::tools_available() {
            Ok(()) => {
                let stale = network::remove_stale_tables();
                if stale > 0 {
                    tracing::info!(stale, "removed the egress tables of servers that are gone");
                }
                Some(std::sync::Arc::new(
                    network::EgressHost::create(instance, database).map_err(SandboxError::NoEgress)?,
                ))
            }
            Err(_) if config.default_network == NetworkPolicy::None => None,
            Err(message) => return Err(SandboxError::NoEgress(message)),
        };
        // Every `none` function gets one of its own; one now says the host can make them.
        drop(network::loopback_only_namespace().map_err(SandboxError::Network)?);
        let exec_only_runtime = exec_allowlist::available();
        if !exec_only_runtime {
            tracing::warn!("this kernel has no Landlock: a function could execute a program it ships in its own directory (still as its own uid, in its sandbox, under the system-call filter)");
        }
        let mut files = Vec::new();
        for (runtime, executable) in runtimes.available() {
            let Some(executable) = executable else { continue };
            let listed = rootfs::runtime_files(runtime, &executable)
                .map_err(|message| SandboxError::Runtime { runtime: runtime.name(), message })?;
            files.push(listed);
        }
        let templates_dir = state_dir.join("sandbox-roots");
        let identity_dir = state_dir.join("sandbox-identities");
        for dir in [&templates_dir, &identity_dir] {
            std::fs::create_dir_all(dir).map_err(|source| SandboxError::IdentityFiles { path: dir.clone(), source })?;
        }
        let templates: HashMap<Runtime, PathBuf> =
            files.iter().map(|listed| (listed.runtime, templates_dir.join(listed.runtime.name()))).collect();
        for template in templates.values() {
            std::fs::create_dir_all(template)
                .map_err(|source| SandboxError::IdentityFiles { path: template.clone(), source })?;
        }
        let adapters = runtimes.adapter_dir().to_path_buf();
        let setup_templates = templates.clone();
        let setup: SpawnerSetup = Box::new(move || {
            // Only this thread (and the workers it spawns) enters the new namespace.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|error| format!("create the spawner's mount namespace: {error}"))?;
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|error| format!("make the spawner's mounts private: {error}"))?;
            for listed in &files {
                rootfs::build_template(&setup_templates[&listed.runtime], listed, &adapters)
                    .map_err(|error| format!("build the {} root: {error}", listed.runtime.name()))?;
            }
            Ok(())
        });
        let sandbox = Self {
            next_unallocated_slot: AtomicU32::new(config.uid_count),
            config,
            templates,
            identity_dir,
            egress_available: egress.is_some(),
            egress: std::sync::Mutex::new(egress),
            function_networks: Default::default(),
            loopback_networks: Default::default(),
            exec_only_runtime,
        };
        Ok((sandbox, setup))
    }

    pub fn status(&self) -> SandboxStatus {
        let mut runtimes: Vec<&'static str> = self.templates.keys().map(|runtime| runtime.name()).collect();
        runtimes.sort_unstable();
        let layers = LAYERS
            .iter()
            .filter(|layer| match layer.name {
                "network-policy" => self.egress_available,
                "network-none-only" => !self.egress_available,
                "exec-only-runtime" => self.exec_only_runtime,
                _ => true,
            })
            .map(|layer| layer.name)
            .collect();
        SandboxStatus {
            mode: "on",
            layers,
            default_network: self.config.default_network.as_str(),
            uid_range: Some((self.config.uid_base, self.config.uid_base + self.config.uid_count - 1)),
            runtimes,
        }
    }

    /// The template root of a runtime, when this host has that runtime.
    pub fn template(&self, runtime: Runtime) -> Option<&Path> {
        self.templates.get(&runtime).map(PathBuf::as_path)
    }

    pub fn exec_only_runtime(&self) -> bool {
        self.exec_only_runtime
    }

    pub fn egress_available(&self) -> bool {
        self.egress_available
    }

    /// The loopback-only namespace of the function running as `uid` (`none`): created on first
    /// use, shared by its versions and its builder while any of them holds it. Blocking: the
    /// namespace is made on a thread of its own.
    pub fn loopback_network(&self, uid: u32) -> Result<std::sync::Arc<OwnedFd>, String> {
        held_per_uid(&self.loopback_networks, uid, network::loopback_only_namespace)
    }

    /// The egress namespace of the function running as `uid`: created on first use, shared by its
    /// versions while any of them is prepared (the pools hold it).
    pub fn function_network(&self, uid: u32) -> Result<std::sync::Arc<network::FunctionNetwork>, String> {
        held_per_uid(&self.function_networks, uid, || {
            let host = self.egress.lock().map_err(|_| "the egress host is poisoned".to_string())?.clone();
            host.ok_or_else(|| "egress is not available on this server".to_string())?.function_namespace()
        })
    }

    /// Removes what the sandbox set up on the host (its egress table; function namespaces and
    /// their links go with their last worker). Blocking: it runs `nft`.
    pub fn release_host_side(&self) {
        let released = self.egress.lock().map(|mut host| host.take());
        drop(released);
    }

    /// The steps that confine the workers of a function running as `uid` from `directory`, and its
    /// own network namespace for `egress` (its version keeps that alive while it runs).
    /// `database_url` is the function's `DATABASE_URL`: its role and database are the only login
    /// the namespace's database relay lets through.
    pub fn launch(
        &self,
        runtime: Runtime,
        directory: &Path,
        uid: u32,
        network: NetworkPolicy,
        tmp_bytes: u64,
        database_url: Option<&str>,
    ) -> Result<SandboxLaunch, String> {
        let root = self.template(runtime).ok_or_else(|| format!("this server has no {} runtime", runtime.name()))?;
        if network == NetworkPolicy::Egress && !self.egress_available {
            return Err("the egress network policy needs nftables and iproute2 on this server (apt-get install nftables iproute2), or deploy with network \"none\"".into());
        }
        let (passwd, group) = self.identity_files(uid).map_err(|error| error.to_string())?;
        let own = match network {
            NetworkPolicy::Egress => {
                let own = self.function_network(uid)?;
                own.allow_database_login(database_url.and_then(database_relay::DatabaseLogin::from_url));
                network::OwnNetwork::Egress(own)
            }
            NetworkPolicy::None => network::OwnNetwork::Loopback(self.loopback_network(uid)?),
        };
        let network_namespace = own.namespace_path();
        let steps = enter::SandboxSteps {
            root: root.to_path_buf(),
            binds: vec![
                (directory.to_path_buf(), PathBuf::from(rootfs::FUNCTION_DIR)),
                (passwd, PathBuf::from("/etc/passwd")),
                (group, PathBuf::from("/etc/group")),
            ],
            writable_binds: Vec::new(),
            umask: None,
            tmp_bytes,
            uid,
            gid: uid,
            network_namespace,
            exec_only_runtime: self.exec_only_runtime,
        };
        Ok(SandboxLaunch { steps, network: own })
    }

    /// The steps of a dependency builder (see `dependencies`) for the function running as `uid`:
    /// the same layers as its workers, with the package manager's files read-only at
    /// [`rootfs::TOOL_DIR`], and only `output` (a copy of the function) and `cache` writable.
    /// `online` joins the function's own egress namespace to reach registries; otherwise the
    /// loopback-only one, where only the cache can answer.
    pub fn builder_launch(
        &self,
        runtime: Runtime,
        build: &BuilderView,
        uid: u32,
        online: bool,
        tmp_bytes: u64,
    ) -> Result<SandboxLaunch, String> {
        let network = if online { NetworkPolicy::Egress } else { NetworkPolicy::None };
        if online && !self.egress_available {
            return Err("this server has no egress (nftables and iproute2 are missing), so packages that are not in its cache cannot be fetched; install them (apt-get install nftables iproute2) or upload the installed packages with the function".into());
        }
        // The builder never logs into the function database.
        let SandboxLaunch { mut steps, network } =
            self.launch(runtime, &build.output, uid, network, tmp_bytes, None)?;
        // The function's copy is writable at its own place, not read-only at /fn.
        steps.binds.retain(|(_, target)| target != Path::new(rootfs::FUNCTION_DIR));
        if let Some(tool) = &build.tool {
            steps.binds.push((tool.clone(), PathBuf::from(rootfs::TOOL_DIR)));
        }
        steps.writable_binds = vec![
            (build.output.clone(), PathBuf::from(rootfs::BUILD_OUTPUT_DIR)),
            (build.cache.clone(), PathBuf::from(rootfs::CACHE_DIR)),
        ];
        if let Some(wheelhouse) = &build.wheelhouse {
            steps.writable_binds.push((wheelhouse.clone(), Path::new(rootfs::CACHE_DIR).join("wheels")));
        }
        steps.umask = Some(0);
        Ok(SandboxLaunch { steps, network })
    }

    /// A uid for a function prepared without one.
    pub fn unallocated_uid(&self) -> Option<u32> {
        let slot = self.next_unallocated_slot.fetch_sub(1, Ordering::Relaxed).checked_sub(1)?;
        self.config.uid_for_slot(slot)
    }

    /// `passwd` and `group` files naming the function's uid (written once per uid).
    pub fn identity_files(&self, uid: u32) -> Result<(PathBuf, PathBuf), SandboxError> {
        let passwd = self.identity_dir.join(format!("{uid}.passwd"));
        let group = self.identity_dir.join(format!("{uid}.group"));
        let write = |path: &Path, contents: String| {
            if path.is_file() {
                return Ok(());
            }
            let staging = path.with_extension("tmp");
            std::fs::write(&staging, contents)
                .and_then(|()| std::fs::rename(&staging, path))
                .map_err(|source| SandboxError::IdentityFiles { path: path.to_path_buf(), source })
        };
        write(&passwd, format!("function:x:{uid}:{uid}:function:{}:/nonexistent\n", rootfs::FUNCTION_DIR))?;
        write(&group, format!("function:x:{uid}:\n"))?;
        Ok((passwd, group))
    }
}
