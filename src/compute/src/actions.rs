//! Server actions: which is legal when, and carrying them out through the driver.
//!
//! [`check`] is the one place that decides whether an action may start, from the server's
//! vm state, task state and whether it ever booted, following Nova's table
//! (`compute/api.py`'s `check_instance_state` decorators). It alone produces the 409 Nova
//! gives for an action out of place.

use model::Persona;
use model::compute::{PowerState, Server, ServerId, TaskState, VmState};
use store::compute::{self as sql, ActionEvent, InstanceAction};

use model::Context;

use crate::{Compute, Error, Result};

/// An action that runs on the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    RebootSoft,
    RebootHard,
    Stop,
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
}

impl PowerAction {
    /// The name Nova's messages use (`Cannot 'stop' instance …`).
    pub fn nova_name(self) -> &'static str {
        match self {
            PowerAction::RebootSoft | PowerAction::RebootHard => "reboot",
            PowerAction::Stop => "stop",
            PowerAction::Start => "start",
            PowerAction::Pause => "pause",
            PowerAction::Unpause => "unpause",
            PowerAction::Suspend => "suspend",
            PowerAction::Resume => "resume",
        }
    }

    /// The instance action's event name, as Nova's compute manager records it.
    pub fn event(self) -> &'static str {
        match self {
            PowerAction::RebootSoft | PowerAction::RebootHard => "compute_reboot_instance",
            PowerAction::Stop => "compute_stop_instance",
            PowerAction::Start => "compute_start_instance",
            PowerAction::Pause => "compute_pause_instance",
            PowerAction::Unpause => "compute_unpause_instance",
            PowerAction::Suspend => "compute_suspend_instance",
            PowerAction::Resume => "compute_resume_instance",
        }
    }

    /// The task state the server is in while the action runs.
    pub fn task(self) -> TaskState {
        match self {
            PowerAction::RebootSoft => TaskState::Rebooting,
            PowerAction::RebootHard => TaskState::RebootingHard,
            PowerAction::Stop => TaskState::PoweringOff,
            PowerAction::Start => TaskState::PoweringOn,
            PowerAction::Pause => TaskState::Pausing,
            PowerAction::Unpause => TaskState::Unpausing,
            PowerAction::Suspend => TaskState::Suspending,
            PowerAction::Resume => TaskState::Resuming,
        }
    }

    /// Where the server ends when the action succeeds.
    pub fn end(self) -> (VmState, PowerState) {
        match self {
            PowerAction::RebootSoft
            | PowerAction::RebootHard
            | PowerAction::Start
            | PowerAction::Unpause
            | PowerAction::Resume => (VmState::Active, PowerState::Running),
            PowerAction::Stop => (VmState::Stopped, PowerState::Shutdown),
            PowerAction::Pause => (VmState::Paused, PowerState::Paused),
            PowerAction::Suspend => (VmState::Suspended, PowerState::Suspended),
        }
    }
}

/// Every action whose legality depends on the server's state (delete, lock, unlock,
/// os-resetState, forceDelete and console output are legal in any state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Power(PowerAction),
    Rebuild,
    Resize,
    ConfirmResize,
    RevertResize,
    CreateImage,
    CreateBackup,
    Shelve,
    ShelveOffload,
    Unshelve,
    Restore,
    ChangePassword,
    TriggerCrashDump,
    Rescue,
    Unrescue,
    /// `POST /servers/{id}/os-interface` (not a server action body, so not in [`Action::ALL`]).
    AttachInterface,
    /// `DELETE /servers/{id}/os-interface/{port}` (not in [`Action::ALL`] either).
    DetachInterface,
    /// `POST /servers/{id}/os-volume_attachments` (not in [`Action::ALL`]).
    AttachVolume,
    /// `DELETE /servers/{id}/os-volume_attachments/{volume}` (not in [`Action::ALL`]).
    DetachVolume,
}

impl Action {
    /// Every action, for tables over all of them.
    pub const ALL: &'static [Action] = &[
        Action::Power(PowerAction::RebootSoft),
        Action::Power(PowerAction::RebootHard),
        Action::Power(PowerAction::Stop),
        Action::Power(PowerAction::Start),
        Action::Power(PowerAction::Pause),
        Action::Power(PowerAction::Unpause),
        Action::Power(PowerAction::Suspend),
        Action::Power(PowerAction::Resume),
        Action::Rebuild,
        Action::Resize,
        Action::ConfirmResize,
        Action::RevertResize,
        Action::CreateImage,
        Action::CreateBackup,
        Action::Shelve,
        Action::ShelveOffload,
        Action::Unshelve,
        Action::Restore,
        Action::ChangePassword,
        Action::TriggerCrashDump,
        Action::Rescue,
        Action::Unrescue,
    ];

    /// The name Nova's conflict messages use (the API action's name).
    pub fn nova_name(self) -> &'static str {
        match self {
            Action::Power(p) => p.nova_name(),
            Action::Rebuild => "rebuild",
            Action::Resize => "resize",
            Action::ConfirmResize => "confirmResize",
            Action::RevertResize => "revertResize",
            Action::CreateImage => "createImage",
            Action::CreateBackup => "createBackup",
            Action::Shelve => "shelve",
            Action::ShelveOffload => "shelveOffload",
            Action::Unshelve => "unshelve",
            Action::Restore => "restore",
            Action::ChangePassword => "changePassword",
            Action::TriggerCrashDump => "trigger_crash_dump",
            Action::Rescue => "rescue",
            Action::Unrescue => "unrescue",
            Action::AttachInterface => "attach_interface",
            Action::DetachInterface => "detach_interface",
            Action::AttachVolume => "attach_volume",
            Action::DetachVolume => "detach_volume",
        }
    }

    /// Whether a locked server refuses this action to a non-admin (Nova's
    /// `check_instance_lock`; snapshots and backups are not lock-checked).
    pub fn lock_checked(self) -> bool {
        !matches!(self, Action::CreateImage | Action::CreateBackup)
    }
}

/// Nova's rule for power actions; see [`check_action`].
pub fn check(action: PowerAction, s: &Server) -> Result<()> {
    check_action(Action::Power(action), s)
}

/// Nova's rule: may `action` start on a server in this state? Exhaustive over actions; the
/// table is `reference/nova/states.md` §5. Every action here needs a server that booted
/// once (`launched_at`).
pub fn check_action(action: Action, s: &Server) -> Result<()> {
    use Action as A;
    use PowerAction as P;
    use TaskState as T;
    use VmState as V;
    let vm = s.vm_state;
    let task = s.task_state;
    let idle = task.is_none();
    let (vm_ok, task_ok) = match action {
        A::Power(P::RebootSoft) => (vm == V::Active, idle),
        A::Power(P::RebootHard) => (
            matches!(
                vm,
                V::Active | V::Stopped | V::Paused | V::Suspended | V::Error
            ),
            matches!(
                task,
                None | Some(
                    T::Rebooting
                        | T::RebootPending
                        | T::RebootStarted
                        | T::RebootingHard
                        | T::Resuming
                        | T::Unpausing
                        | T::Pausing
                        | T::Suspending
                )
            ),
        ),
        A::Power(P::Stop) => (matches!(vm, V::Active | V::Error), idle),
        A::Power(P::Start) => (vm == V::Stopped, idle),
        A::Power(P::Pause) => (vm == V::Active, idle),
        A::Power(P::Unpause) => (vm == V::Paused, idle),
        A::Power(P::Suspend) => (vm == V::Active, idle),
        A::Power(P::Resume) => (vm == V::Suspended, idle),
        A::Rebuild => (matches!(vm, V::Active | V::Stopped | V::Error), idle),
        A::Resize => (matches!(vm, V::Active | V::Stopped), idle),
        A::ConfirmResize | A::RevertResize => (vm == V::Resized, idle),
        A::CreateImage | A::CreateBackup | A::Shelve => (
            matches!(vm, V::Active | V::Stopped | V::Paused | V::Suspended),
            idle,
        ),
        A::ShelveOffload => (vm == V::Shelved, idle),
        A::Unshelve => (matches!(vm, V::Shelved | V::ShelvedOffloaded), idle),
        A::Restore => (vm == V::SoftDeleted, idle),
        A::ChangePassword => (vm == V::Active, idle),
        A::Rescue => (matches!(vm, V::Active | V::Stopped | V::Error), idle),
        A::Unrescue => (vm == V::Rescued, idle),
        A::AttachInterface | A::DetachInterface => {
            (matches!(vm, V::Active | V::Paused | V::Stopped), idle)
        }
        A::AttachVolume | A::DetachVolume => (
            matches!(vm, V::Active | V::Paused | V::Stopped | V::Resized),
            idle,
        ),
        A::TriggerCrashDump => (
            matches!(
                vm,
                V::Active | V::Paused | V::Rescued | V::Resized | V::Error
            ),
            idle,
        ),
    };
    let refuse = |attr: &str, state: &str| {
        Err(Error::Conflict(format!(
            "Cannot '{}' instance {} while it is in {attr} {state}",
            action.nova_name(),
            s.id
        )))
    };
    if !vm_ok {
        return refuse("vm_state", vm.as_str());
    }
    if !task_ok {
        return refuse("task_state", task.map_or("None", TaskState::as_str));
    }
    if s.launched_at.is_none() {
        return Err(Error::Conflict(format!("Instance {} is not ready", s.id)));
    }
    Ok(())
}

/// Lock or unlock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockChange {
    Lock { reason: Option<String> },
    Unlock,
}

impl Compute {
    /// Starts a power action: checks lock and legality, takes the task state, records the
    /// instance action, and runs the driver call in the background.
    pub async fn power_action(
        &self,
        ctx: &Context,
        id: &str,
        action: PowerAction,
        request_id: &str,
    ) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::Power(action))?;
        let caps = self.backends.get(s.backend).capabilities();
        let supported = match action {
            PowerAction::Pause | PowerAction::Unpause => caps.pause,
            PowerAction::Suspend | PowerAction::Resume => caps.suspend,
            _ => true,
        };
        if !supported {
            return Err(Error::BadRequest(format!(
                "{} is not supported by the backend of instance {}.",
                action.nova_name(),
                s.id
            )));
        }
        let from_vm = s.vm_state;
        self.start(
            &s,
            (Action::Power(action), action.task()),
            request_id,
            &ctx.user_id,
            move |c, id, action_id| async move {
                c.run_power(id, action, action_id, from_vm).await
            },
        )
        .await?;
        Ok(())
    }

    /// Locks or unlocks a server. An admin's lock on another project's server can be undone
    /// only by an admin; a lock asked for by the server's own project on a server already
    /// locked changes nothing (Nova's rule: so an owner never takes over an admin's lock).
    /// The lock is read and written in one transaction, so two lock requests, or a lock and
    /// an action, are decided in the order they commit.
    pub async fn set_lock(
        &self,
        ctx: &Context,
        id: &str,
        change: LockChange,
        request_id: &str,
    ) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-lock-server:lock to be performed.".into(),
            ));
        }
        let owner = ctx.in_project(&s.project_id);
        let admin = ctx.is_admin();
        let (rid, project, user) = (
            request_id.to_owned(),
            s.project_id.clone(),
            ctx.user_id.clone(),
        );
        let host = self.cfg.host.clone();
        let sid = s.id.clone();
        self.store
            .write(move |tx| {
                let held = sql::lock_holder(tx, &sid)?;
                let name = match &change {
                    LockChange::Lock { .. } if held.is_some() && owner => return Ok(()),
                    LockChange::Lock { reason } => {
                        let by = if owner {
                            model::compute::LockedBy::Owner
                        } else {
                            model::compute::LockedBy::Admin
                        };
                        sql::set_lock(tx, &sid, Some(by), reason.as_deref())?;
                        "lock"
                    }
                    LockChange::Unlock => {
                        if held == Some(model::compute::LockedBy::Admin) && !admin {
                            return Err(crate::abort(Error::Forbidden(
                                "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed."
                                    .into(),
                            )));
                        }
                        sql::set_lock(tx, &sid, None, None)?;
                        "unlock"
                    }
                };
                let a = sql::start_action(tx, &sid, &rid, name, &project, &user)?;
                let ev = sql::start_event(tx, a, &format!("api_{name}"), &host)?;
                sql::finish_event(tx, ev, true, None)
            })
            .await?;
        Ok(())
    }

    /// The last `lines` lines of a server's console (all of it when `None`).
    pub async fn console_output(
        &self,
        ctx: &Context,
        id: &str,
        lines: Option<usize>,
    ) -> Result<String> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-console-output to be performed.".into(),
            ));
        }
        if s.vm_state == VmState::Building || s.launched_at.is_none() {
            return Err(Error::Conflict(format!("Instance {} is not ready", s.id)));
        }
        let sid = s.id.clone();
        match self
            .blocking(&s.id, move |d| d.console_output(&sid, lines))
            .await
        {
            Ok(out) => Ok(out),
            Err(driver::DriverError::NotSupported(_)) => Err(Error::NotImplemented(
                "Unable to get console log, functionality not implemented".into(),
            )),
            Err(driver::DriverError::NotFound(_)) => Err(Error::Conflict(format!(
                "Instance {} is not running on its backend",
                s.id
            ))),
            Err(e) => Err(Error::Task(e.to_string())),
        }
    }

    /// A server's instance actions, newest first; readable after the server is deleted.
    pub async fn instance_actions(
        &self,
        ctx: &Context,
        id: &str,
    ) -> Result<(Server, Vec<InstanceAction>)> {
        let s = self.server_any_state(ctx, id).await?;
        let sid = s.id.clone();
        let actions = self.store.read(move |c| sql::list_actions(c, &sid)).await?;
        Ok((s, actions))
    }

    pub async fn instance_action(
        &self,
        ctx: &Context,
        id: &str,
        request_id: &str,
    ) -> Result<(Server, InstanceAction, Vec<ActionEvent>)> {
        let s = self.server_any_state(ctx, id).await?;
        let (sid, rid) = (s.id.clone(), request_id.to_owned());
        let (a, events) = self
            .store
            .read(move |c| sql::get_action(c, &sid, &rid))
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "Action {request_id} on instance {id} could not be found."
                ))
            })?;
        Ok((s, a, events))
    }

    /// A server the caller may read, deleted ones included (instance actions outlive
    /// servers).
    async fn server_any_state(&self, ctx: &Context, id: &str) -> Result<Server> {
        let sid = ServerId::parse(id).ok_or_else(|| crate::common::not_found(id))?;
        let s = self
            .store
            .read(move |c| sql::get_server(c, &sid))
            .await?
            .ok_or_else(|| crate::common::not_found(id))?;
        if !ctx.can_read(&s.project_id) || !ctx.has(Persona::Reader) && !ctx.is_admin() {
            return Err(crate::common::not_found(id));
        }
        Ok(s)
    }

    pub(crate) async fn run_power(
        &self,
        id: ServerId,
        action: PowerAction,
        action_id: i64,
        from_vm: VmState,
    ) {
        let event = self.event(action_id, action.event()).await;
        let id2 = id.clone();
        let result = self
            .blocking(&id, move |d| match action {
                PowerAction::RebootSoft => d.reboot(&id2, driver::RebootKind::Soft),
                PowerAction::RebootHard => d.reboot(&id2, driver::RebootKind::Hard),
                PowerAction::Stop => d.power_off(&id2),
                PowerAction::Start => d.power_on(&id2),
                PowerAction::Pause => d.pause(&id2),
                PowerAction::Unpause => d.unpause(&id2),
                PowerAction::Suspend => d.suspend(&id2),
                PowerAction::Resume => d.resume(&id2),
            })
            .await;
        match result {
            Ok(()) => {
                self.settle(&id, event, action.task(), action.end(), |_, _| Ok(()))
                    .await;
            }
            Err(e) => {
                tracing::warn!(server_id = %id, error = %e, action = action.nova_name(), "action failed");
                // A failed reboot leaves the guest in doubt: ERROR, as Nova does. Other
                // actions roll back to where they started.
                let vm = if matches!(action, PowerAction::RebootSoft | PowerAction::RebootHard) {
                    VmState::Error
                } else {
                    from_vm
                };
                // What failed, then the backend's words (which only admins read).
                let msg = format!("Action {} on instance {id} failed: {e}", action.nova_name());
                self.step_with(
                    &id,
                    Some(action.task()),
                    (vm, None, None),
                    crate::steps::record_fault(500, msg),
                )
                .await;
                self.finish(event, false, Some(e.to_string())).await;
            }
        }
    }
}
