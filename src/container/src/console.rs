//! A container's consoles: the log its supervisor keeps, and the interactive console the
//! supervisor serves on a socket (init's terminal; see [`crate::shim`]).

use driver::{ConsoleEndpoint, ConsoleKind, DriverError, Operation, Result};
use model::compute::ServerId;

use crate::ContainerDriver;

/// The last `lines` lines of the console log (all of its tail without a count).
pub(crate) fn output(d: &ContainerDriver, id: &ServerId, lines: Option<usize>) -> Result<String> {
    let (p, _) = d.load(id)?;
    // Read from the end: the supervisor caps the log, the reader never relies on it.
    let (old, new) = (p.console_old(), p.console());
    let raw = driver::console::tail(&[&old, &new], driver::console::TAIL_BYTES).unwrap_or_default();
    Ok(driver::console::last_lines(&raw, lines))
}

/// The running container's interactive console: the supervisor's socket. A container has
/// no screen, so no VNC console.
pub(crate) fn endpoint(
    d: &ContainerDriver,
    id: &ServerId,
    kind: ConsoleKind,
) -> Result<ConsoleEndpoint> {
    if kind != ConsoleKind::Serial {
        return Err(DriverError::NotSupported(Operation::Console));
    }
    let (p, _) = d.load(id)?;
    if d.running_boot(id).is_none() || d.cgroup(id).is_frozen() {
        return Err(DriverError::Failed(format!(
            "container {id} is not running"
        )));
    }
    // A supervisor started before consoles were interactive serves none.
    let sock = p.console_socket();
    if !sock.exists() {
        return Err(DriverError::Failed(format!(
            "container {id} has no interactive console until it restarts"
        )));
    }
    Ok(ConsoleEndpoint::Unix(sock))
}
