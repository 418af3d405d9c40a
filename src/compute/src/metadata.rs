//! The compute side of the metadata service: which server a guest is, from the address it
//! speaks from, and what it may read about itself.

use driver::InstanceSpec;
use store::compute as sql;

use crate::Compute;

impl Compute {
    /// What the guest at `addr` reads about itself, when `addr` is a live server's port
    /// address (and, when `mac` is given, that port's MAC).
    pub async fn metadata_for(&self, addr: &str, mac: Option<&str>) -> Option<InstanceSpec> {
        let a = addr.to_owned();
        let (id, port_mac) = self
            .store
            .read(move |c| sql::server_by_port_address(c, &a))
            .await
            .ok()??;
        if let Some(m) = mac
            && !m.eq_ignore_ascii_case(&port_mac)
        {
            tracing::warn!(%addr, "metadata request from an address whose MAC is not its port's");
            return None;
        }
        let server = self
            .store
            .read(move |c| sql::get_server(c, &id))
            .await
            .ok()??;
        if server.deleted {
            return None;
        }
        Some(self.instance_spec(&server).await)
    }
}
