# A hostile tenant's function. It passes the analyzer: every dangerous module is loaded by a name
# built at run time, and every dangerous call goes through getattr or ctypes. Each probe tries
# several routes out of the sandbox and reports what happened to each, for the test to judge.
import json
import os
import threading

BUILTINS = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
load = BUILTINS["__im" + "port__"]


def attempt(action):
    try:
        value = action()
        return {"ok": True, "value": repr(value)[:300]}
    except BaseException as error:  # the point is to see every failure
        return {"ok": False, "errno": getattr(error, "errno", None), "error": type(error).__name__ + ": " + str(error)[:200]}


def libc():
    ctypes = load("ct" + "ypes")
    return ctypes.CDLL(None, use_errno=True), ctypes


def syscall(number, *args):
    lib, ctypes = libc()
    lib.syscall.restype = ctypes.c_long
    result = lib.syscall(ctypes.c_long(number), *[ctypes.c_long(arg) for arg in args])
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def read(path):
    with open(path, "rb") as handle:
        return handle.read(64)


def write(path):
    with open(path, "wb") as handle:
        return handle.write(b"owned")


def through_tmp_link(path):
    link = "/tmp/link-%d" % len(os.listdir("/tmp"))
    os.symlink(path, link)
    return read(link)


def connect(host, port, kind="tcp"):
    sockets = load("soc" + "ket")
    family = sockets.AF_INET6 if ":" in host else sockets.AF_INET
    sock = sockets.socket(family, sockets.SOCK_STREAM if kind == "tcp" else sockets.SOCK_DGRAM)
    sock.settimeout(3)
    try:
        if kind == "tcp":
            sock.connect((host, port))
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return sock.recv(64).decode(errors="replace")
        sock.sendto(b"ping", (host, port))
        return sock.recvfrom(64)[0].decode(errors="replace")
    finally:
        sock.close()


def status_fields():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
                fields[key] = value.strip()
    return fields


def identity(body):
    return {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "status": status_fields(), "pid": os.getpid(), "cwd": os.getcwd(), "home": os.environ.get("HOME"),
        "hostname": load("soc" + "ket").gethostname(),
        "namespaces": {kind: os.readlink("/proc/self/ns/" + kind) for kind in ("net", "pid", "mnt", "ipc", "uts")},
        "passwd": attempt(lambda: read("/etc/passwd").decode()),
    }


def files(body):
    results = {}
    for path in body["paths"]:
        results[path] = {
            "direct": attempt(lambda: read(path)),
            "proc_self_root": attempt(lambda: read("/proc/self/root" + path)),
            "proc_1_root": attempt(lambda: read("/proc/1/root" + path)),
            "dot_dot_walk": attempt(lambda: read("../" * 12 + path.lstrip("/"))),
            "tmp_symlink": attempt(lambda: through_tmp_link(path)),
            "exists": os.path.exists(path),
        }
    writes = {target: attempt(lambda: write(target)) for target in ["/fn/owned", "/owned", "/etc/owned", "/usr/owned", "/tmp/ok"]}
    return {
        "reads": results,
        "writes": writes,
        "root": sorted(os.listdir("/")),
        "etc": sorted(os.listdir("/etc")),
        "programs": {p: os.path.exists(p) for p in ["/bin/sh", "/bin/bash", "/usr/bin/env", "/usr/bin/id", "/usr/bin/perl", "/usr/bin/curl", "/sbin/ip"]},
    }


def processes(body):
    subprocess = load("sub" + "process")
    ran = []
    worker = threading.Thread(target=lambda: ran.append(1))
    worker.start()
    worker.join()
    lib, _ = libc()
    return {
        "thread": len(ran) == 1,
        "os_fork": attempt(lambda: getattr(os, "fo" + "rk")()),
        "subprocess_shell": attempt(lambda: subprocess.run(["/bin/sh", "-c", "id"], capture_output=True)),
        "subprocess_self": attempt(lambda: subprocess.run([load("sys").executable, "-c", "print(1)"], capture_output=True)),
        "posix_spawn_self": attempt(lambda: getattr(os, "posix_" + "spawn")(load("sys").executable, ["python3", "-c", "1"], {})),
        "ctypes_fork": attempt(lambda: syscall(57)),
        "ctypes_vfork": attempt(lambda: syscall(58)),
        "ctypes_clone": attempt(lambda: syscall(56, 17, 0, 0, 0, 0)),
        "ctypes_clone3": attempt(lambda: syscall(435, 0, 0)),
        "libc_system": attempt(lambda: lib.system(b"id")),
        "exec_shell": attempt(lambda: getattr(os, "ex" + "ecv")("/bin/sh", ["sh", "-c", "id"])),
        # A program the tenant shipped in its own archive, execute bit and all.
        "exec_shipped": attempt(lambda: getattr(os, "ex" + "ecv")("/fn/tool", ["tool"])),
    }


# x86_64 numbers: the calls the policy refuses, each normally allowed to some unprivileged process.
SYSCALLS = {
    "ptrace_traceme": (101, 0, 0, 0, 0),
    "unshare_user": (272, 0x10000000),
    "unshare_net": (272, 0x40000000),
    "setns": (308, 0, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    "umount2": (166, 0, 0),
    "pivot_root": (155, 0, 0),
    "chroot": (161, 0),
    "bpf": (321, 0, 0, 0),
    "perf_event_open": (298, 0, 0, 0, 0, 0),
    "keyctl": (250, 0, 0, 0, 0, 0),
    "add_key": (248, 0, 0, 0, 0, 0),
    "request_key": (249, 0, 0, 0, 0),
    "userfaultfd": (323, 0),
    "io_uring_setup": (425, 1, 0),
    "personality_read_implies_exec": (135, 0x0400000),
    "process_vm_readv": (310, 1, 0, 0, 0, 0, 0),
    "init_module": (175, 0, 0, 0),
    "finit_module": (313, 0, 0, 0),
    "kexec_load": (246, 0, 0, 0, 0),
    "reboot": (169, 0, 0, 0, 0),
    "open_by_handle_at": (304, 0, 0, 0),
    "syslog": (103, 3, 0, 0),
    "swapon": (167, 0, 0),
}


def syscalls(body):
    return {name: attempt(lambda call=call: syscall(*call)) for name, call in SYSCALLS.items()}


def signals(body):
    server = body["server_pid"]
    kill = getattr(os, "ki" + "ll")
    return {
        "proc_pids": sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit()),
        "kill_server_0": attempt(lambda: kill(server, 0)),
        "kill_server_term": attempt(lambda: kill(server, 15)),
        "kill_victim": attempt(lambda: kill(body["victim_pid"], 9)),
        "kill_everyone": attempt(lambda: kill(-1, 15)),
        "server_environ": attempt(lambda: read("/proc/%d/environ" % server)),
        "server_root": attempt(lambda: os.listdir("/proc/%d/root" % server)),
    }


IPC_CREAT = 0o1000


def ipc(body):
    # msgget: a System V message queue, the kind of object an ipc namespace keeps apart.
    flags = 0o666 | (IPC_CREAT if body.get("create") else 0)
    return {"queue": attempt(lambda: syscall(68, body["key"], flags))}


def network(body):
    results = {name: attempt(lambda target=target: connect(*target)) for name, target in body["targets"].items()}
    sockets = load("soc" + "ket")
    results["raw_icmp"] = attempt(lambda: sockets.socket(sockets.AF_INET, sockets.SOCK_RAW, 1))
    results["packet"] = attempt(lambda: sockets.socket(17, sockets.SOCK_RAW, 0))
    results["netlink"] = attempt(lambda: sockets.socket(16, sockets.SOCK_RAW, 0))
    results["unix_abstract"] = attempt(lambda: sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM).connect("\0containerpub"))
    results["listen"] = attempt(lambda: sockets.create_server(("0.0.0.0", 0)))
    # Netlink is refused, so the interfaces are read from procfs (it shows the reader's namespace).
    results["interfaces"] = attempt(lambda: sorted(line.split(":")[0].strip() for line in open("/proc/self/net/dev").readlines()[2:]))
    return results


def fill_tmp(body):
    def fill():
        chunk = b"x" * (1 << 20)
        with open("/tmp/fill", "wb") as handle:
            for _ in range(body["megabytes"]):
                handle.write(chunk)
        return os.path.getsize("/tmp/fill")
    return {"fill": attempt(fill)}


def pipes(body):
    """Its own pipes (stdout, stderr, the request and reply pipes) are its uid's, and it can open
    them again by path as the Dart VM does; no other process's descriptors are in sight."""
    def owner(fd):
        stat = os.fstat(fd)
        return {"uid": stat.st_uid, "mode": stat.st_mode & 0o777}
    return {
        "owners": {str(fd): owner(fd) for fd in (1, 2, 3, 4)},
        "reopen_request": attempt(lambda: os.close(os.open("/dev/fd/3", os.O_RDONLY | os.O_NONBLOCK))),
        "reopen_reply": attempt(lambda: os.close(os.open("/dev/fd/4", os.O_WRONLY | os.O_NONBLOCK))),
        "processes": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
    }


HOST_FILES = ["/proc/cmdline", "/proc/config.gz", "/proc/keys", "/proc/key-users", "/proc/kcore",
              "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", "/proc/kallsyms"]
HOST_DIRS = ["/proc/pressure", "/proc/acpi", "/proc/scsi", "/proc/asound", "/proc/irq"]


def host_info(body):
    """What procfs tells of the host: each file's first bytes (or why not), each directory's
    entries, and the worker's cgroup as it sees it."""
    def first_bytes(path):
        with open(path, "rb") as handle:
            return handle.read(200).decode("latin-1")
    return {
        "files": {path: attempt(lambda path=path: first_bytes(path)) for path in HOST_FILES},
        "dirs": {path: attempt(lambda path=path: os.listdir(path)) for path in HOST_DIRS},
        "cgroup": attempt(lambda: first_bytes("/proc/self/cgroup")),
    }


def memfd_exec(body):
    """A program the function shipped, copied into a memfd and executed from there (Landlock
    checks paths, and a memfd has none); and a memfd asked for as executable."""
    def run_from_memfd():
        program = open(body["program"], "rb").read()
        fd = os.memfd_create("tool", 0)
        os.write(fd, program)
        getattr(os, "ex" + "ecv")("/proc/self/fd/%d" % fd, ["tool"])
    MFD_EXEC = 0x10
    return {"exec": attempt(run_from_memfd), "create_exec": attempt(lambda: os.memfd_create("tool", MFD_EXEC))}


HELD = []


def udp(body):
    """A UDP socket held open past the call (connecting one gives it a local port), and the uids
    of every UDP socket this worker's network namespace shows: another function's must never be
    among them."""
    if body.get("hold"):
        sockets = load("soc" + "ket")
        held = sockets.socket(sockets.AF_INET, sockets.SOCK_DGRAM)
        held.connect(("127.0.0.1", 9))
        HELD.append(held)
    lines = open("/proc/net/udp").readlines()[1:]
    return {"uids": sorted({int(line.split()[7]) for line in lines}), "held": len(HELD)}


def descriptors(body):
    """The descriptors this worker holds, and what reading the ones named gives."""
    targets = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass  # listdir's own, closed by now
    return {
        "targets": targets,
        "reads": {str(fd): attempt(lambda fd=fd: os.pread(fd, 64, 0)) for fd in body["fds"]},
    }


PROBES = {"identity": identity, "files": files, "processes": processes, "syscalls": syscalls,
          "signals": signals, "ipc": ipc, "network": network, "fill_tmp": fill_tmp, "pipes": pipes,
          "udp": udp, "descriptors": descriptors, "host_info": host_info,
          "memfd_exec": memfd_exec}


def handler(body):
    return PROBES[body["probe"]](body)
