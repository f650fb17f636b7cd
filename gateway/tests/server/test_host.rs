//! A host "outside" for functions with the `egress` network policy: on the far side of a veth
//! pair, in a network namespace of its own, at a 198.18.0.0/15 benchmarking address (no real host
//! has one), so tests never reach an outside address and functions reach it the way they reach
//! the internet (the host's own addresses are refused to them).

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Answers TCP with an HTTP/1.0 `200` whose body is `test-host` (after 10 s for a request to a
/// path starting with `/slow`), and UDP with `pong`. Removed (namespace, link, server) when dropped.
pub struct TestHost {
    namespace: String,
    pub address: Ipv4Addr,
    pub port: u16,
    server: Child,
}

/// The host's server: one thread per connection, so a slow answer holds up no one else.
const SERVER: &str = r#"
import socket, sys, threading, time
address, port = sys.argv[1], int(sys.argv[2])

def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((address, port))
    while True:
        data, peer = u.recvfrom(64)
        u.sendto(b"pong", peer)

def answer(connection):
    try:
        connection.settimeout(30)
        request = connection.recv(4096)
        if request.split(b" ")[1:2] and request.split(b" ")[1].startswith(b"/slow"):
            time.sleep(10)
        connection.sendall(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\ntest-host")
    except OSError:
        pass
    finally:
        connection.close()

threading.Thread(target=udp, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((address, port))
s.listen(64)
while True:
    connection, _ = s.accept()
    threading.Thread(target=answer, args=(connection,), daemon=True).start()
"#;

impl TestHost {
    /// Needs root (`ip netns`).
    pub fn start() -> Self {
        static HOSTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = std::process::id() % 100_000 * 10 + HOSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let namespace = format!("cpt{id}");
        let (host_side, far_side) = (format!("cph{id}"), format!("cpn{id}"));
        let subnet = (id % 16_000) * 4;
        let octets =
            |last: u32| Ipv4Addr::new(198, 18 + (subnet >> 16) as u8, (subnet >> 8) as u8, (subnet as u8) + last as u8);
        let (host_ip, far_ip) = (octets(1), octets(2));
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().unwrap();
            assert!(status.success(), "ip {args:?} failed");
        };
        let _ = Command::new("ip").args(["netns", "del", &namespace]).stderr(Stdio::null()).status();
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &host_side, "type", "veth", "peer", "name", &far_side]);
        ip(&["link", "set", &far_side, "netns", &namespace]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_side]);
        ip(&["link", "set", &host_side, "up"]);
        ip(&["-n", &namespace, "addr", "add", &format!("{far_ip}/30"), "dev", &far_side]);
        ip(&["-n", &namespace, "link", "set", &far_side, "up"]);
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        let port = 18_080;
        let server = Command::new("ip")
            .args(["netns", "exec", &namespace, "python3", "-c", SERVER, &far_ip.to_string(), &port.to_string()])
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect_timeout(&(far_ip, port).into(), Duration::from_millis(200)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "the test host did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { namespace, address: far_ip, port, server }
    }

    /// `http://ADDRESS:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.address, self.port)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).status();
    }
}
