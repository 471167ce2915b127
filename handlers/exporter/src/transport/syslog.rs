//! `syslog`: one message per record to a syslog server over UDP, TCP or TLS, in the format the
//! reference sends through `srslog` with its `RFC5424Formatter`:
//!
//! ```text
//! <25>1 2026-11-30T08:30:00+01:00 HOST APP PID TAG - {"version":5,...}\n
//! ```
//!
//! PRI 25 is `daemon.alert`; the time is the local time, RFC 3339 to the second; HOST is
//! `syslog.source`, else the socket's local address (`127.0.0.1:40312`, as srslog takes it);
//! APP the program's `argv[0]`, its last 48 characters; PID this process's; TAG `syslog.tag`
//! in the MSGID field, as srslog puts it. Every message ends with a newline and, as in the
//! reference, TCP and TLS carry no octet count unless `syslog.framing` is `octet-counting`
//! (RFC 6587 3.4.1: `LEN ` before each message, LEN counting the newline).
//!
//! TLS verifies the server's certificate against `syslog.tls.ca` (PEM), else the system's
//! authorities, for the name `syslog.tls.servername` or `syslog.host`; `syslog.tls.verify`
//! `false` accepts any certificate, which is what the reference does.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{Batch, Cursor, Transport, TransportError};
use crate::config::{Proto, SyslogSettings};

/// PRI of every message: `LOG_ALERT | LOG_DAEMON`.
pub const PRIORITY: u8 = 25;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write may block before the server counts as down.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Conn::Udp(s) => s.local_addr(),
            Conn::Tcp(s) => s.local_addr(),
            Conn::Tls(s) => s.sock.local_addr(),
        }
    }

    fn write_message(&mut self, msg: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => s.send(msg).map(|_| ()),
            Conn::Tcp(s) => s.write_all(msg),
            Conn::Tls(s) => s.write_all(msg).and_then(|()| s.flush()),
        }
    }
}

/// The syslog transport.
pub struct SyslogTransport {
    settings: SyslogSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
    /// HOSTNAME of the messages.
    hostname: String,
    app: String,
    pid: u32,
    message: Vec<u8>,
}

impl std::fmt::Debug for SyslogTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogTransport")
            .field("settings", &self.settings)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

/// Accepts any server certificate (`syslog.tls.verify: false`, the reference's behaviour).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(s: &SyslogSettings) -> Result<rustls::ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError(format!("syslog.tls: {e}")))?;
    if !s.tls_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match &s.tls_ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TransportError(format!("syslog.tls.ca: {path}: {e}")))?;
            if certs.is_empty() {
                return Err(TransportError(format!(
                    "syslog.tls.ca: {path}: no certificate in the file"
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| TransportError(format!("syslog.tls.ca: {path}: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TransportError(
                    "syslog.tls: no trusted certificate authority found on this system: set \"syslog.tls.ca\" (or \"syslog.tls.verify\": \"false\")".into(),
                ));
            }
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Go's `time.Now().Format(time.RFC3339)` in the local time zone: `2026-11-30T08:30:00+01:00`,
/// `Z` for UTC.
pub fn rfc3339_now() -> String {
    let now = jiff::Zoned::now();
    let offset = now.offset().seconds();
    let base = now.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset == 0 {
        format!("{base}Z")
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let a = offset.unsigned_abs();
        format!("{base}{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
    }
}

impl SyslogTransport {
    /// A transport for `settings`; it connects at the first send (or [`reconnect`](
    /// Transport::reconnect)).
    ///
    /// # Errors
    /// A bad TLS setting (unreadable `syslog.tls.ca`, no system authority).
    pub fn new(settings: SyslogSettings) -> Result<Self, TransportError> {
        let tls = match settings.proto {
            Proto::Tls => Some(Arc::new(tls_config(&settings)?)),
            _ => None,
        };
        let arg0 = std::env::args().next().unwrap_or_default();
        let app = match arg0.char_indices().rev().nth(47) {
            Some((i, _)) => arg0[i..].to_owned(),
            None => arg0,
        };
        Ok(SyslogTransport {
            settings,
            tls,
            conn: None,
            hostname: String::new(),
            app,
            pid: std::process::id(),
            message: Vec::with_capacity(4096),
        })
    }

    fn target(&self) -> String {
        format!("{}:{}", self.settings.host, self.settings.port)
    }

    fn connect(&mut self) -> Result<(), TransportError> {
        let target = self.target();
        let what = format!("syslog {} {target}", self.settings.proto.name());
        let addrs: Vec<SocketAddr> = (self.settings.host.as_str(), self.settings.port)
            .to_socket_addrs()
            .map_err(|e| TransportError::io(&what, &e))?
            .collect();
        let mut last = None;
        for addr in addrs {
            let conn = match self.settings.proto {
                Proto::Udp => {
                    let bind: SocketAddr = if addr.is_ipv4() {
                        "0.0.0.0:0".parse().expect("address")
                    } else {
                        "[::]:0".parse().expect("address")
                    };
                    UdpSocket::bind(bind)
                        .and_then(|s| s.connect(addr).map(|()| s))
                        .map(Conn::Udp)
                }
                Proto::Tcp | Proto::Tls => TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
                    .and_then(|s| s.set_write_timeout(Some(WRITE_TIMEOUT)).map(|()| s))
                    .map(Conn::Tcp),
            };
            match conn {
                Ok(c) => {
                    let c = match (c, &self.tls) {
                        (Conn::Tcp(sock), Some(tls)) => self.handshake(sock, tls, &what)?,
                        (c, _) => c,
                    };
                    self.hostname = if self.settings.source.is_empty() {
                        c.local_addr().map(|a| a.to_string()).unwrap_or_default()
                    } else {
                        self.settings.source.clone()
                    };
                    self.conn = Some(c);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => TransportError::io(&what, &e),
            None => TransportError(format!("{what}: the name has no address")),
        })
    }

    fn handshake(
        &self,
        sock: TcpStream,
        tls: &Arc<rustls::ClientConfig>,
        what: &str,
    ) -> Result<Conn, TransportError> {
        let name = self
            .settings
            .tls_server_name
            .clone()
            .unwrap_or_else(|| self.settings.host.clone());
        let server = ServerName::try_from(name.clone())
            .map_err(|e| TransportError(format!("{what}: server name {name:?}: {e}")))?;
        let conn = rustls::ClientConnection::new(Arc::clone(tls), server)
            .map_err(|e| TransportError(format!("{what}: {e}")))?;
        let mut stream = rustls::StreamOwned::new(conn, sock);
        // Complete the handshake now, so that a certificate problem shows at connect time.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| TransportError::io(&format!("{what}: TLS handshake"), &e))?;
        }
        Ok(Conn::Tls(Box::new(stream)))
    }

    /// Formats record `msg` as the message to send into `self.message`.
    fn format(&mut self, msg: &[u8]) {
        let header = format!(
            "<{PRIORITY}>1 {} {} {} {} {} - ",
            rfc3339_now(),
            self.hostname,
            self.app,
            self.pid,
            self.settings.tag
        );
        self.message.clear();
        let len = header.len() + msg.len() + 1;
        if self.settings.octet_counting && self.settings.proto != Proto::Udp {
            self.message.extend_from_slice(format!("{len} ").as_bytes());
        }
        self.message.extend_from_slice(header.as_bytes());
        self.message.extend_from_slice(msg);
        self.message.push(b'\n');
    }
}

impl Transport for SyslogTransport {
    fn send(&mut self, batch: &Batch, cursor: &mut Cursor) -> Result<(), TransportError> {
        if self.conn.is_none() {
            self.connect()?;
        }
        while cursor.records < batch.len() {
            let i = cursor.records;
            self.format(batch.record(i));
            let Some(conn) = self.conn.as_mut() else {
                return Err(TransportError("syslog: not connected".into()));
            };
            match conn.write_message(&self.message) {
                Ok(()) => {}
                // One datagram cannot carry it: UDP can never deliver this record.
                Err(e) if e.raw_os_error() == Some(90) => {
                    handler_sdk::log::error!(
                        "syslog udp {}: record of {} bytes too large for a datagram ({e}); dropped",
                        self.target(),
                        batch.record(i).len()
                    );
                }
                Err(e) => {
                    self.conn = None;
                    return Err(TransportError::io(
                        &format!("syslog {} {}", self.settings.proto.name(), self.target()),
                        &e,
                    ));
                }
            }
            cursor.records += 1;
            cursor.bytes = batch.ends[i] + 1;
        }
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), TransportError> {
        self.conn = None;
        self.connect()
    }

    fn remote(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("syslog {} {}", self.settings.proto.name(), self.target())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_rfc3339_to_the_second() {
        let t = rfc3339_now();
        let ok = t.len() >= 20
            && t.as_bytes()[4] == b'-'
            && t.as_bytes()[10] == b'T'
            && (t.ends_with('Z') || t.as_bytes()[t.len() - 3] == b':');
        assert!(ok, "{t}");
        assert!(!t.contains('.'), "no fraction: {t}");
    }
}
