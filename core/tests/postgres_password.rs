//! A wrong password, against a server that checks passwords. The machines' test servers trust every
//! local login, so a stand-in speaks the start of PostgreSQL's wire protocol itself: it asks for the
//! password in clear text and refuses it with `28P01`, as a `password`/`md5`/`scram` server does. Runs
//! everywhere (no server needed).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use growthflow_core::destination::postgres::{PostgresDestination, PostgresTarget};
use growthflow_core::ErrorKind;

const PASSWORD: &str = "w0ng-pässword-not-to-be-printed";

fn read_u32(s: &mut TcpStream) -> u32 {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    u32::from_be_bytes(b)
}

fn read_body(s: &mut TcpStream, len: u32) -> Vec<u8> {
    let mut body = vec![0u8; len as usize - 4];
    s.read_exact(&mut body).unwrap();
    body
}

/// Serves one login: declines TLS, asks for a clear-text password, returns what the client sent and
/// refuses it.
fn refuse_one_login(listener: TcpListener) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // The startup packet, after an optional SSLRequest (sslmode=prefer asks first).
        loop {
            let len = read_u32(&mut s);
            let body = read_body(&mut s, len);
            if body[..4] == 80877103u32.to_be_bytes() {
                s.write_all(b"N").unwrap();
                continue;
            }
            break;
        }
        // AuthenticationCleartextPassword.
        s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).unwrap();
        let mut tag = [0u8; 1];
        s.read_exact(&mut tag).unwrap();
        assert_eq!(tag[0], b'p', "a PasswordMessage");
        let len = read_u32(&mut s);
        let body = read_body(&mut s, len);
        let sent = String::from_utf8(body[..body.len() - 1].to_vec()).unwrap();
        let mut fields = Vec::new();
        for (code, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "28P01"),
            (b'M', "password authentication failed for user \"gf\""),
        ] {
            fields.push(code);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        msg.extend_from_slice(&fields);
        s.write_all(&msg).unwrap();
        sent
    })
}

#[test]
fn a_wrong_password_names_the_setting_and_never_the_password() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = refuse_one_login(listener);
    let encoded: String = url::form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect();
    let url = format!("postgres://gf:{encoded}@127.0.0.1:{port}/shop?connect_timeout=10");
    let target = PostgresTarget::parse(&url, None).unwrap();

    let err = PostgresDestination::open(&target).unwrap_err();

    assert_eq!(
        server.join().unwrap(),
        PASSWORD,
        "the server got the password"
    );
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Destination, "{text}");
    assert!(
        text.contains("check the user and password in destination.url"),
        "says what to fix: {text}"
    );
    assert!(text.contains("127.0.0.1"), "names the server: {text}");
    for shown in [text.clone(), format!("{err:?}")] {
        assert!(!shown.contains(PASSWORD), "the password leaked: {shown}");
        assert!(!shown.contains(&encoded), "the password leaked: {shown}");
    }
}
