//! The request queue's doorbell: a requester on the daemon's host rings it after queuing
//! (requests.rs), and the daemon takes the request at once instead of at its next look
//! at the queue (every second, which stays the way requests from other hosts and rings
//! that went nowhere are found).
//!
//! The bell is an abstract Unix datagram socket named after the filesystem's uuid: no
//! file to clean up after a crash, one daemon per filesystem and host (a second one's
//! bind fails and it only polls). A ring carries nothing and only makes the daemon look
//! at the queue, so anyone on the host may ring; a burst of rings is one look.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use tokio::sync::Notify;

fn address(fs: &uuid::Uuid) -> std::io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("fvfs-hsm-requests-{fs}"))
}

/// Rings the bell of filesystem `fs`'s daemon; false when no daemon on this host listens
/// (the request then waits in the queue for one).
pub fn ring(fs: &uuid::Uuid) -> bool {
    let sent = || -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(&[], &address(fs)?)?;
        Ok(())
    };
    sent().is_ok()
}

/// Listens for rings of filesystem `fs` on the current tokio runtime; each wakes `wake`.
/// The task ends with the runtime.
pub fn listen(fs: &uuid::Uuid, wake: Arc<Notify>) -> std::io::Result<()> {
    let sock = UnixDatagram::bind_addr(&address(fs)?)?;
    sock.set_nonblocking(true)?;
    let sock = tokio::net::UnixDatagram::from_std(sock)?;
    tokio::spawn(async move {
        let mut buf = [0u8; 16];
        loop {
            match sock.recv(&mut buf).await {
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "the HSM request doorbell failed; requests are taken every second");
                    return;
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ring_wakes_the_listener_of_the_same_filesystem_only() {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(!ring(&a), "no listener yet");
        let wake = Arc::new(Notify::new());
        listen(&a, wake.clone()).unwrap();
        // One daemon per filesystem and host.
        assert!(listen(&a, Arc::new(Notify::new())).is_err());
        assert!(!ring(&b));
        assert!(ring(&a));
        tokio::time::timeout(std::time::Duration::from_secs(5), wake.notified())
            .await
            .expect("the ring woke the listener");
    }
}
