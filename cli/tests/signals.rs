//! A socket waiting for events must survive a signal handled elsewhere in the process.
//!
//! A read with a timeout is never restarted after a signal handler runs (signal(7)), so
//! any handler in the process (tokio's SIGCHLD handler, when a test's child process
//! exits) can make the wait fail with EINTR. CI saw exactly that: "no welcome: Interrupted
//! system call". Here the signal is aimed at the waiting thread, so the read is always
//! interrupted.

use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::Signal;
use ovation_cli::Socket;
use ovation_proto::{Event, ServerFrame};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::Message;

#[test]
// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
fn a_signal_during_a_wait_does_not_end_the_socket() {
    let signalled = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&signalled))
        .expect("install a SIGUSR1 handler");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (reader_tx, reader_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws =
            tungstenite::accept_hdr(stream, |request: &Request, mut response: Response| {
                // Answer with the first subprotocol offered, as the Worker does.
                let offered = request.headers()["Sec-WebSocket-Protocol"]
                    .to_str()
                    .unwrap();
                let first = offered.split(',').next().unwrap().trim().to_owned();
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", first.parse().unwrap());
                Ok(response)
            })
            .unwrap();
        // Interrupt the client while it waits, then answer.
        let reader = reader_rx.recv().unwrap();
        thread::sleep(Duration::from_millis(200));
        pthread_kill(reader, Signal::SIGUSR1).expect("signal the waiting thread");
        thread::sleep(Duration::from_millis(200));
        let frame = ServerFrame::Batch {
            server_time_ms: 1,
            events: vec![Event::Online { count: 7 }],
        };
        ws.send(Message::Binary(frame.encode().into())).unwrap();
        // Hold the socket open until the client has read.
        let _ = ws.read();
    });

    let mut socket = Socket::open(&base, "room-1", "token").expect("open");
    reader_tx.send(pthread_self()).unwrap();
    let event = socket.wait_for(Duration::from_secs(5), |e| {
        matches!(e, Event::Online { .. })
    });
    assert!(
        signalled.load(std::sync::atomic::Ordering::SeqCst),
        "the signal was handled while the socket waited"
    );
    assert_eq!(event, Ok(Event::Online { count: 7 }));
    socket.close();
    server.join().unwrap();
}
