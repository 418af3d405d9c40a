//! libvirt's domain lifecycle events: the compute service hears at once that a guest
//! stopped, crashed, paused or started, instead of at the next power-state sync.
//!
//! The `virt` crate has no safe binding for domain event callbacks, so this module (the only
//! one of the crate allowed `unsafe`) registers one with `virt-sys`. Events are hints: the
//! callback passes the server's id to the sink, and the compute service then asks the driver
//! for the domain's state, as its periodic sync would. A lost event therefore costs at most
//! one sync interval, never a wrong state.
//!
//! One thread runs libvirt's default event loop on a connection of its own. It wakes every
//! second to check that the connection is alive (reopening it after libvirtd restarts, and
//! telling the sink nothing: the periodic sync covers what happened meanwhile) and that the
//! driver it serves still exists; when the driver is dropped the thread ends.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use driver::StateSink;
use model::compute::ServerId;
use virt::connect::Connect;
use virt::sys;

use crate::PREFIX;

/// What the C callback reaches through its opaque pointer.
struct Listener {
    sink: StateSink,
}

/// The server a domain name belongs to, if the domain is one of onebox's.
fn server_of(name: &str) -> Option<ServerId> {
    let uuid = name.strip_prefix(PREFIX)?;
    ServerId::parse(uuid)
}

unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    if dom.is_null() || opaque.is_null() {
        return 0;
    }
    // SAFETY: `opaque` is the `Listener` leaked at registration; libvirt frees it through
    // `free_listener` only after the callback can no longer run. `dom` is valid for the
    // duration of the call and its name is owned by it.
    let (listener, name) = unsafe {
        let name = sys::virDomainGetName(dom);
        if name.is_null() {
            return 0;
        }
        (
            &*(opaque as *const Listener),
            CStr::from_ptr(name).to_string_lossy().into_owned(),
        )
    };
    if let Some(id) = server_of(&name) {
        tracing::debug!(server_id = %id, event, "libvirt lifecycle event");
        // A panic must not unwind into libvirt's C frames.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (listener.sink)(&id)));
    }
    0
}

unsafe extern "C" fn free_listener(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: the pointer came from `Box::into_raw` in `register` and libvirt calls this
        // once, when the callback is deregistered.
        drop(unsafe { Box::from_raw(opaque as *mut Listener) });
    }
}

unsafe extern "C" fn tick(_timer: c_int, _opaque: *mut c_void) {}

/// Registers the lifecycle callback on `conn`; returns libvirt's callback id.
fn register(conn: &Connect, sink: StateSink) -> Result<c_int, virt::error::Error> {
    let opaque = Box::into_raw(Box::new(Listener { sink })) as *mut c_void;
    // SAFETY: the lifecycle callback has the signature libvirt documents for
    // VIR_DOMAIN_EVENT_ID_LIFECYCLE; the generic type only erases it, as the C API requires
    // (VIR_DOMAIN_EVENT_CALLBACK). On failure libvirt does not take `opaque`, so it is freed
    // here.
    let ret = unsafe {
        let cb: unsafe extern "C" fn(
            sys::virConnectPtr,
            sys::virDomainPtr,
            c_int,
            c_int,
            *mut c_void,
        ) -> c_int = on_lifecycle;
        let generic = std::mem::transmute::<
            unsafe extern "C" fn(
                sys::virConnectPtr,
                sys::virDomainPtr,
                c_int,
                c_int,
                *mut c_void,
            ) -> c_int,
            unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void),
        >(cb);
        let ret = sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            Some(generic),
            opaque,
            Some(free_listener),
        );
        if ret < 0 {
            drop(Box::from_raw(opaque as *mut Listener));
        }
        ret
    };
    if ret < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(ret)
}

fn deregister(conn: &Connect, callback: c_int) {
    // SAFETY: `callback` was returned by `register` on this connection.
    unsafe {
        sys::virConnectDomainEventDeregisterAny(conn.as_ptr(), callback);
    }
}

static EVENT_LOOP: Once = Once::new();

/// Registers libvirt's default event loop implementation, once per process and before the
/// event connection opens, and a one-second timer so that the loop wakes up regularly.
fn init_event_loop() {
    EVENT_LOOP.call_once(|| {
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::error!(error = %e.message(), "libvirt event loop");
            return;
        }
        // SAFETY: `tick` does nothing with its arguments; no opaque data, no free callback.
        let t = unsafe { sys::virEventAddTimeout(1000, Some(tick), std::ptr::null_mut(), None) };
        if t < 0 {
            tracing::error!("libvirt event loop timer could not be added");
        }
    });
}

/// Starts the event thread for `uri`. It runs while `alive` can be upgraded.
pub(crate) fn watch<T: Send + Sync + 'static>(uri: String, sink: StateSink, alive: Weak<T>) {
    init_event_loop();
    let spawned = std::thread::Builder::new()
        .name("libvirt-events".into())
        .spawn(move || run(&uri, sink, alive));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "libvirt event thread");
    }
}

fn run<T>(uri: &str, sink: StateSink, alive: Weak<T>) {
    let mut backoff = Duration::from_millis(200);
    while alive.strong_count() > 0 {
        let mut conn = match Connect::open(Some(uri)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.message(), "libvirt event connection");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let callback = match register(&conn, Arc::clone(&sink)) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e.message(), "libvirt lifecycle events");
                let _ = conn.close();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        tracing::debug!("following libvirt lifecycle events");
        while alive.strong_count() > 0 && conn.is_alive().unwrap_or(false) {
            if virt::event::event_run_default_impl().is_err() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        deregister(&conn, callback);
        // `Connect` does not close itself when dropped.
        let _ = conn.close();
    }
    tracing::debug!("libvirt event thread ends");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_onebox_domains_map_to_servers() {
        let id = "6f1c2b9e-1d2a-4a3b-9c4d-5e6f7a8b9c0d";
        assert_eq!(
            server_of(&format!("onebox-{id}")).map(|s| s.to_string()),
            Some(id.to_string())
        );
        assert!(server_of(id).is_none());
        assert!(server_of("onebox-not-a-uuid").is_none());
        assert!(server_of("other-6f1c2b9e-1d2a-4a3b-9c4d-5e6f7a8b9c0d").is_none());
    }
}
