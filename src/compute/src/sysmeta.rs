//! System metadata keys: the facts about a server that an action in progress, or one
//! awaiting confirmation, keeps between its steps (Nova keeps the same facts in its instance
//! system metadata). Every key compute writes is named here.

/// The flavor before a resize (JSON), for a revert.
pub(crate) const OLD_FLAVOR: &str = "old_flavor";
/// The vm state before a resize, where a confirm or revert returns the server.
pub(crate) const OLD_VM_STATE: &str = "old_vm_state";
/// When a resize finished (RFC 3339), for `resize_confirm_window`.
pub(crate) const RESIZED_AT: &str = "resized_at";
/// The image a shelve made, which an unshelve boots from and a delete removes.
pub(crate) const SHELVED_IMAGE: &str = "shelved_image_id";
/// When a server was shelved (RFC 3339), for `shelved_offload_time`.
pub(crate) const SHELVED_AT: &str = "shelved_at";
/// When a server was soft-deleted (RFC 3339), for `reclaim_instance_interval`.
pub(crate) const SOFT_DELETED_AT: &str = "soft_deleted_at";
/// The password the guest posted to the metadata service, encrypted with its key pair
/// (os-server-password shows and clears it).
pub(crate) const PASSWORD: &str = "password";
