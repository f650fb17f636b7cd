//! The function database relay's gate: a connection from a function's network namespace to the
//! function database on the host's loopback is let through only as the function's own role, into
//! its own database.
//!
//! The relay's connections reach PostgreSQL from the host's `127.0.0.1`, where `pg_hba.conf`
//! rules are often `trust` (Debian's default for local sockets, the test cluster's for
//! everything). Without this gate, only the password stood between a tenant and every role the
//! cluster has, `postgres` included, and every database. So the relay reads the client's
//! startup packet itself (PostgreSQL protocol 3.0, "Message Flow: Start-up"):
//!
//! - `SSLRequest` and `GSSENCRequest` are answered `N` (not supported here): an encrypted
//!   session could not be checked, and the hop it would protect is loopback inside this host. A
//!   client that insists on encryption stops there, with its own message.
//! - `CancelRequest` is passed on as it is: it names a backend by its pid and a random secret key
//!   only that backend's client was given.
//! - A `StartupMessage` must name the function's role as `user` and its database (`database`,
//!   which defaults to the user's name) and must not ask for replication; anything else is
//!   answered with a PostgreSQL `ErrorResponse` (SQLSTATE 28000, or 3D000 for the database) that
//!   every driver shows as it is, and the connection is closed.
//!
//! Only then is the packet sent on to PostgreSQL, and the two connections joined. A client that
//! sends nothing is dropped after [`STARTUP_WAIT`].
//!
//! The relay also remembers the backend's cancel key (`BackendKeyData`, sent once at start-up).
//! When the function's side of a connection ends (the worker exited, was killed at its deadline,
//! or closed the socket), the relay sends PostgreSQL a `CancelRequest` for that backend before it
//! closes the upstream side: a backend busy in a statement does not read its socket, so without
//! the cancel a `pg_sleep(45)` would go on for 45 s after its caller was gone. A backend that
//! traps the cancel is ended by the server's watchdog (`gateway/src/function_database/watchdog.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a client may take to send its startup packet.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// The largest startup packet accepted (PostgreSQL's own limit is 10,000 bytes).
const MAX_STARTUP_BYTES: usize = 10_000;

/// Protocol 3.0; a 3.x client (3.2 from PostgreSQL 18's libpq) sends the same startup message
/// with its minor version in the low 16 bits, and PostgreSQL negotiates the minor itself.
const PROTOCOL_3_0: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// The only login a function's relay lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseLogin {
    pub user: String,
    pub database: String,
}

impl DatabaseLogin {
    /// The role and database of a `postgres://USER:PASSWORD@HOST:PORT/DATABASE?…` URL (the
    /// database defaults to the user's name, as PostgreSQL's does).
    pub fn from_url(url: &str) -> Option<DatabaseLogin> {
        let rest = url.split_once("://")?.1;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, _) = authority.rsplit_once('@')?;
        let user = percent_decode(credentials.split(':').next()?)?;
        let database = percent_decode(path.split('?').next().unwrap_or(""))?;
        if user.is_empty() {
            return None;
        }
        let database = if database.is_empty() { user.clone() } else { database };
        Some(DatabaseLogin { user, database })
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// What the gate decided about one connection's first packets.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Send these bytes on to PostgreSQL, then join the connections.
    Forward(Vec<u8>),
    /// Answer with this `ErrorResponse` and close.
    Refuse(Vec<u8>),
    /// The client left, or sent something that is not PostgreSQL: close.
    Close,
}

/// Serves one relay connection: the gate, then the bytes both ways.
pub async fn serve(mut inbound: tokio::net::TcpStream, upstream: SocketAddr, allowed: Option<DatabaseLogin>) {
    let admission = match tokio::time::timeout(STARTUP_WAIT, admit(&mut inbound, allowed.as_ref())).await {
        Ok(admission) => admission,
        Err(_) => Admission::Close,
    };
    match admission {
        Admission::Forward(startup) => {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else { return };
            if outbound.write_all(&startup).await.is_err() {
                return;
            }
            if startup.get(4..8) == Some(&CANCEL_REQUEST.to_be_bytes()[..]) {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            } else {
                join_cancelling_when_the_client_leaves(inbound, outbound, upstream).await;
            }
        }
        Admission::Refuse(error) => {
            let _ = inbound.write_all(&error).await;
            let _ = inbound.shutdown().await;
        }
        Admission::Close => {}
    }
}

/// Joins a session's two connections. When the client's side ends first, the backend is sent a
/// `CancelRequest` (with the key it gave at start-up) before its connection is closed.
async fn join_cancelling_when_the_client_leaves(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    upstream: SocketAddr,
) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let cancel_key = std::sync::Mutex::new(None::<Vec<u8>>);
    let from_client = tokio::io::copy(&mut client_read, &mut server_write);
    let to_client = async {
        if let Some(key) = relay_greeting(&mut server_read, &mut client_write).await {
            *cancel_key.lock().expect("the cancel key lock is never poisoned") = Some(key);
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        }
    };
    let client_left = tokio::select! {
        _ = from_client => true,
        _ = to_client => false,
    };
    // The backend sees the end of its connection first (an idle one exits at once), then a
    // busy one is cancelled, reads that end and exits too.
    drop((client_read, client_write, server_read, server_write));
    let key = cancel_key.into_inner().expect("the cancel key lock is never poisoned");
    if let (true, Some(key)) = (client_left, key) {
        cancel(upstream, &key).await;
    }
}

/// Passes the server's start-up messages on to the client until the first `ReadyForQuery`, and
/// returns the `BackendKeyData` body (the backend's pid and its secret key); `None` when the
/// session ended first (a refused login) or the server sent no key.
async fn relay_greeting<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    server: &mut R,
    client: &mut W,
) -> Option<Vec<u8>> {
    let mut key = None;
    loop {
        let mut header = [0u8; 5];
        server.read_exact(&mut header).await.ok()?;
        let length = u32::from_be_bytes(header[1..5].try_into().expect("four bytes")) as usize;
        if !(4..=MAX_GREETING_MESSAGE_BYTES).contains(&length) {
            return None;
        }
        let mut body = vec![0u8; length - 4];
        server.read_exact(&mut body).await.ok()?;
        client.write_all(&header).await.ok()?;
        client.write_all(&body).await.ok()?;
        match header[0] {
            b'K' if body.len() >= 8 => key = Some(body),
            b'Z' => return key,
            _ => {}
        }
    }
}

/// The largest message accepted before `ReadyForQuery` (authentication exchanges and parameter
/// reports are a few hundred bytes).
const MAX_GREETING_MESSAGE_BYTES: usize = 1 << 20;

/// Sends PostgreSQL a `CancelRequest` for the backend whose `BackendKeyData` body this is.
async fn cancel(upstream: SocketAddr, key: &[u8]) {
    let request = cancel_request(key);
    let sent = async {
        let mut connection = tokio::net::TcpStream::connect(upstream).await?;
        connection.write_all(&request).await?;
        // PostgreSQL answers nothing and closes: wait for that, so the request is read.
        let mut rest = Vec::new();
        connection.read_to_end(&mut rest).await?;
        std::io::Result::Ok(())
    };
    if let Err(error) =
        tokio::time::timeout(STARTUP_WAIT, sent).await.unwrap_or(Err(std::io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!(%error, "cannot cancel a departed function's database statement");
    }
}

/// Length, code, then the `BackendKeyData` body as the backend gave it (pid and key: 8 bytes in
/// protocol 3.0, a longer key in 3.2).
fn cancel_request(key: &[u8]) -> Vec<u8> {
    let mut request = ((8 + key.len()) as u32).to_be_bytes().to_vec();
    request.extend_from_slice(&CANCEL_REQUEST.to_be_bytes());
    request.extend_from_slice(key);
    request
}

/// Reads the client's startup packets (answering encryption requests) and decides.
async fn admit<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, allowed: Option<&DatabaseLogin>) -> Admission {
    // An SSL request may be followed by a GSS one and the other way round: at most two, then
    // the startup message itself.
    for _ in 0..3 {
        let Some(packet) = read_packet(client).await else { return Admission::Close };
        let code = u32::from_be_bytes(packet[4..8].try_into().expect("packets have 8 bytes or more"));
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                if client.write_all(b"N").await.is_err() {
                    return Admission::Close;
                }
            }
            CANCEL_REQUEST => return Admission::Forward(packet),
            version if version >> 16 == PROTOCOL_3_0 >> 16 => return judge(packet, allowed),
            _ => {
                return Admission::Refuse(error_response(
                    "08P01",
                    "the function database relay speaks PostgreSQL protocol 3 only",
                ))
            }
        }
    }
    Admission::Close
}

/// One length-prefixed startup packet, its length included.
async fn read_packet<S: AsyncRead + Unpin>(client: &mut S) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    client.read_exact(&mut length).await.ok()?;
    let total = u32::from_be_bytes(length) as usize;
    if !(8..=MAX_STARTUP_BYTES).contains(&total) {
        return None;
    }
    let mut packet = vec![0u8; total];
    packet[..4].copy_from_slice(&length);
    client.read_exact(&mut packet[4..]).await.ok()?;
    Some(packet)
}

/// Checks a protocol 3 startup message against the function's login.
fn judge(packet: Vec<u8>, allowed: Option<&DatabaseLogin>) -> Admission {
    let Some(allowed) = allowed else {
        return Admission::Refuse(error_response(
            "28000",
            "this function has no function database: the server has none configured for it",
        ));
    };
    let Some(parameters) = startup_parameters(&packet[8..]) else {
        return Admission::Refuse(error_response("08P01", "the startup message is malformed"));
    };
    let parameter = |name: &str| parameters.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let user = parameter("user").unwrap_or("");
    if user != allowed.user {
        return Admission::Refuse(error_response(
            "28000",
            &format!(
                "role \"{user}\" is not this function's: a function connects only as its own role, \"{}\" (in DATABASE_URL)",
                allowed.user
            ),
        ));
    }
    let database = parameter("database").filter(|database| !database.is_empty()).unwrap_or(user);
    if database != allowed.database {
        return Admission::Refuse(error_response(
            "3D000",
            &format!(
                "database \"{database}\" is not this function's: a function connects only to \"{}\" (in DATABASE_URL)",
                allowed.database
            ),
        ));
    }
    if parameter("replication").is_some_and(|value| !matches!(value, "false" | "off" | "no" | "0")) {
        return Admission::Refuse(error_response("28000", "a function may not open a replication connection"));
    }
    Admission::Forward(packet)
}

/// The name/value pairs of a startup message body, or `None` when it is not well formed.
fn startup_parameters(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut fields = body.split(|byte| *byte == 0);
    let mut parameters = Vec::new();
    loop {
        let name = fields.next()?;
        if name.is_empty() {
            return Some(parameters);
        }
        let value = fields.next()?;
        parameters.push((String::from_utf8(name.to_vec()).ok()?, String::from_utf8(value.to_vec()).ok()?));
    }
}

/// A PostgreSQL `ErrorResponse` with severity FATAL.
fn error_response(sqlstate: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (kind, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', sqlstate), (b'M', message)] {
        fields.push(kind);
        fields.extend_from_slice(value.replace('\0', " ").as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend(fields);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(parameters: &[(&str, &str)]) -> Vec<u8> {
        let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
        for (name, value) in parameters {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        [((body.len() + 4) as u32).to_be_bytes().to_vec(), body].concat()
    }

    fn own() -> DatabaseLogin {
        DatabaseLogin { user: "cpfn_ab12".into(), database: "functions".into() }
    }

    /// Runs the gate on `sent`; returns its decision and what it wrote back.
    async fn gate(sent: Vec<u8>, allowed: Option<DatabaseLogin>) -> (Admission, Vec<u8>) {
        let (mut client, mut relay) = tokio::io::duplex(64 << 10);
        client.write_all(&sent).await.unwrap();
        drop(client.shutdown().await);
        let admission = admit(&mut relay, allowed.as_ref()).await;
        drop(relay);
        let mut answered = Vec::new();
        client.read_to_end(&mut answered).await.unwrap();
        (admission, answered)
    }

    fn refused_with(admission: &Admission, sqlstate: &str, words: &str) {
        let Admission::Refuse(error) = admission else { panic!("not refused: {admission:?}") };
        let text = String::from_utf8_lossy(error);
        assert!(error[0] == b'E' && text.contains(&format!("C{sqlstate}\0")), "{text:?}");
        assert!(text.contains(words), "{text:?}");
    }

    #[tokio::test]
    async fn only_the_functions_own_role_and_database_pass() {
        let mine = startup(&[("user", "cpfn_ab12"), ("database", "functions"), ("application_name", "psql")]);
        assert_eq!(gate(mine.clone(), Some(own())).await.0, Admission::Forward(mine));
        for (user, database, sqlstate, words) in [
            ("postgres", "functions", "28000", "role \"postgres\" is not this function's"),
            ("cpfn_other", "functions", "28000", "only as its own role, \"cpfn_ab12\""),
            ("cpfn_ab12", "postgres", "3D000", "database \"postgres\" is not this function's"),
            ("cpfn_ab12", "template1", "3D000", "only to \"functions\""),
        ] {
            let (admission, _) = gate(startup(&[("user", user), ("database", database)]), Some(own())).await;
            refused_with(&admission, sqlstate, words);
        }
        // No database: PostgreSQL takes the user's name, which is not the function's database.
        let (admission, _) = gate(startup(&[("user", "cpfn_ab12")]), Some(own())).await;
        refused_with(&admission, "3D000", "database \"cpfn_ab12\"");
        let replication = startup(&[("user", "cpfn_ab12"), ("database", "functions"), ("replication", "database")]);
        refused_with(&gate(replication, Some(own())).await.0, "28000", "replication");
        // A function without a database gets nothing.
        let (admission, _) = gate(startup(&[("user", "cpfn_ab12"), ("database", "functions")]), None).await;
        refused_with(&admission, "28000", "no function database");
    }

    #[tokio::test]
    async fn encryption_requests_are_declined_and_the_startup_that_follows_is_checked() {
        let ssl = [8u32.to_be_bytes(), SSL_REQUEST.to_be_bytes()].concat();
        let gss = [8u32.to_be_bytes(), GSSENC_REQUEST.to_be_bytes()].concat();
        let as_postgres = startup(&[("user", "postgres"), ("database", "functions")]);
        let (admission, answered) = gate([ssl.clone(), gss, as_postgres].concat(), Some(own())).await;
        assert_eq!(&answered[..2], b"NN", "both declined");
        refused_with(&admission, "28000", "role \"postgres\"");
        // A client that insists on encryption leaves after the N.
        let (admission, answered) = gate(ssl, Some(own())).await;
        assert_eq!((admission, answered), (Admission::Close, b"N".to_vec()));
    }

    #[tokio::test]
    async fn garbage_and_cancel_requests() {
        let cancel =
            [16u32.to_be_bytes(), CANCEL_REQUEST.to_be_bytes(), 42u32.to_be_bytes(), 7u32.to_be_bytes()].concat();
        assert_eq!(gate(cancel.clone(), Some(own())).await.0, Admission::Forward(cancel));
        assert_eq!(gate(b"GET / HTTP/1.1\r\n\r\n".to_vec(), Some(own())).await.0, Admission::Close);
        let old_protocol = [8u32.to_be_bytes(), 131_072u32.to_be_bytes()].concat();
        refused_with(&gate(old_protocol, Some(own())).await.0, "08P01", "protocol 3 only");
        // A 3.2 client's startup is judged like a 3.0 one's.
        let mut newer = startup(&[("user", "cpfn_ab12"), ("database", "functions")]);
        newer[4..8].copy_from_slice(&(PROTOCOL_3_0 | 2).to_be_bytes());
        assert_eq!(gate(newer.clone(), Some(own())).await.0, Admission::Forward(newer));
        let mut newer_postgres = startup(&[("user", "postgres"), ("database", "functions")]);
        newer_postgres[4..8].copy_from_slice(&(PROTOCOL_3_0 | 2).to_be_bytes());
        refused_with(&gate(newer_postgres, Some(own())).await.0, "28000", "role \"postgres\"");
        let mut truncated = startup(&[("user", "cpfn_ab12")]);
        truncated.truncate(truncated.len() - 3);
        let length = (truncated.len() as u32).to_be_bytes();
        truncated[..4].copy_from_slice(&length);
        refused_with(&gate(truncated, Some(own())).await.0, "08P01", "malformed");
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        [vec![kind], ((body.len() + 4) as u32).to_be_bytes().to_vec(), body.to_vec()].concat()
    }

    #[tokio::test]
    async fn the_greeting_is_passed_on_and_its_cancel_key_kept() {
        let key = [0, 0, 0x30, 0x39, 1, 2, 3, 4];
        let greeting = [
            message(b'R', &[0, 0, 0, 0]),
            message(b'S', b"server_version\x0018\x00"),
            message(b'K', &key),
            message(b'Z', b"I"),
        ]
        .concat();
        let mut server = [greeting.clone(), message(b'T', b"after")].concat();
        let mut reader = &server[..];
        let mut client = Vec::new();
        assert_eq!(relay_greeting(&mut reader, &mut client).await, Some(key.to_vec()));
        assert_eq!(client, greeting, "every start-up message reaches the client as it was");
        assert_eq!(reader, &message(b'T', b"after")[..], "what follows is left for the plain copy");
        // A refused login ends before any key.
        server = message(b'E', b"SFATAL\x00\x00");
        assert_eq!(relay_greeting(&mut &server[..], &mut Vec::new()).await, None);
    }

    #[tokio::test]
    async fn a_cancel_request_is_what_the_gate_itself_would_pass() {
        let request = cancel_request(&[0, 0, 0x30, 0x39, 1, 2, 3, 4]);
        assert_eq!(request.len(), 16, "PostgreSQL reads exactly the length it is given");
        assert_eq!(gate(request.clone(), None).await.0, Admission::Forward(request));
    }

    #[test]
    fn logins_come_from_the_database_url() {
        let login = DatabaseLogin::from_url("postgres://cpfn_ab12:s3cr%2Ft@127.0.0.1:5432/functions?sslmode=disable");
        assert_eq!(login, Some(own()));
        let defaulted = DatabaseLogin::from_url("postgresql://app%20user@localhost").unwrap();
        assert_eq!((defaulted.user.as_str(), defaulted.database.as_str()), ("app user", "app user"));
        assert_eq!(DatabaseLogin::from_url("postgres://127.0.0.1/functions"), None);
    }
}
