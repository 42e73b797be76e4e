//! A Connexion shim on `127.0.0.1:0` for tests whose processor runs elsewhere.

use std::time::Duration;

use bibgate_gateway::Config;
use bibgate_inbox::Services;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running shim (no processor) and how to stop it.
pub struct Shim {
    /// `host:port` to send to.
    pub addr: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Shim {
    /// Starts the shim over `services` on the current tokio runtime.
    pub async fn start(services: Services, config: Config) -> Shim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address").to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(bibgate_gateway::run(
            listener,
            async move {
                let _ = stopped.await;
            },
            services,
            config,
        ));
        Shim { addr, stop, server }
    }

    /// Stops it (in-flight connections are answered first), within `limit`.
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(());
        tokio::time::timeout(limit, self.server)
            .await
            .expect("the shim stops")
            .expect("the shim's task");
    }
}
