//! The interactive prompts, driven through a pseudo-terminal: `login` asks for the email on the
//! terminal and reads the password without echoing it.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{binary, start_server};

/// Everything the terminal shows, gathered by a reader thread.
struct Screen {
    chunks: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Screen {
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("{needle:?} never appeared; the terminal shows: {:?}", self.seen),
            }
        }
    }

    fn rest(&mut self) -> String {
        while let Ok(chunk) = self.chunks.recv_timeout(Duration::from_secs(5)) {
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        self.seen.clone()
    }
}

#[test]
fn login_prompts_on_a_terminal_without_echoing_the_password() {
    let server = start_server();
    let home = tempfile::tempdir().unwrap();
    let registered = reqwest::blocking::Client::new()
        .post(format!("{}/api/auth/register", server.url))
        .json(&serde_json::json!({ "email": "ada@example.com", "password": "hunter2-hunter2" }))
        .send()
        .unwrap();
    assert_eq!(registered.status(), 201);

    let pty = nix::pty::openpty(None, None).unwrap();
    let mut command = Command::new(binary("dart_cloud"));
    command
        .args(["login", "--no-color"])
        .env("DART_CLOUD_URL", &server.url)
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave));
    // The terminal must be the child's controlling terminal: the password prompt opens /dev/tty.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(command); // closes the parent's copies of the terminal's slave side
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let (sender, chunks) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Screen { chunks, seen: String::new() };
    screen.wait_for("Email: ");
    master.write_all(b"ada@example.com\n").unwrap();
    screen.wait_for("Password: ");
    // The prompt is printed before echo is turned off: type only once the terminal stopped
    // echoing, as a person (slower than this test) always does.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nix::sys::termios::tcgetattr(&master).unwrap().local_flags.contains(nix::sys::termios::LocalFlags::ECHO) {
        assert!(Instant::now() < deadline, "echo was never turned off for the password");
        std::thread::sleep(Duration::from_millis(5));
    }
    master.write_all(b"hunter2-hunter2\n").unwrap();
    let status = child.wait().unwrap();
    let shown = screen.rest();
    assert!(status.success(), "{shown}");
    assert!(shown.contains("ada@example.com"), "the email is echoed: {shown}");
    assert!(!shown.contains("hunter2"), "the password must not be echoed: {shown}");
    assert!(shown.contains("Logged in to"), "{shown}");
    assert!(home.path().join("dart_cloud/credentials.json").exists());
}
