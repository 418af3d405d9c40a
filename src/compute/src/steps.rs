//! The steps every server action is made of, in one place: the checks before it starts
//! ([`Compute::may_act`]), the transaction that takes the task state and records the
//! instance action ([`Compute::begin`]), the moves of a background task between states with
//! what they record beside ([`Compute::step_with`]), and its end: [`Compute::settle`] when the
//! driver work succeeded, [`Compute::fail_back`] or [`Compute::fail_to_error`] when it did not.

use chrono::Utc;
use model::Context;
use model::UserId;
use model::compute::{PowerState, Server, ServerFault, ServerId, TaskState, VmState};
use store::Transaction;
use store::compute as sql;

use crate::actions::Action;
use crate::common::policy;
use crate::{Compute, Error, Result};

/// The end power state of a server settled in `vm`.
pub(crate) fn power_of(vm: VmState) -> PowerState {
    match vm {
        VmState::Active => PowerState::Running,
        VmState::Paused => PowerState::Paused,
        VmState::Suspended => PowerState::Suspended,
        VmState::ShelvedOffloaded => PowerState::NoState,
        _ => PowerState::Shutdown,
    }
}

/// The extras of a step that records a fault on the server (shown while it is in ERROR).
pub(crate) fn record_fault(
    code: u16,
    message: String,
) -> impl FnOnce(&Transaction<'_>, &ServerId) -> store::Result<()> + Send + 'static {
    move |tx, id| {
        sql::set_fault(
            tx,
            id,
            &ServerFault {
                code,
                message,
                details: None,
                created_at: Utc::now(),
            },
        )
    }
}

/// Powers the guest off again when the action started from a stopped server (rebuild,
/// resize and its revert boot the guest; Nova leaves such a server stopped).
pub(crate) fn stop_if(
    d: &dyn driver::ComputeDriver,
    id: &ServerId,
    stop: bool,
) -> driver::Result<()> {
    if stop { d.power_off(id) } else { Ok(()) }
}

impl Compute {
    /// Records a fault on a server (shown while it is in ERROR).
    pub(crate) async fn fault(&self, id: &ServerId, message: String) {
        let id2 = id.clone();
        if let Err(e) = self
            .store
            .write(move |tx| record_fault(500, message)(tx, &id2))
            .await
        {
            tracing::error!(server_id = %id, error = %e, "recording a fault");
        }
    }

    /// The checks every action makes before it starts: the caller may write the server, a
    /// lock stops a non-admin (for lock-checked actions), and Nova's state table allows it.
    pub(crate) fn may_act(&self, ctx: &Context, s: &Server, action: Action) -> Result<()> {
        if !ctx.can_write(&s.project_id) {
            return Err(policy(&format!(
                "os_compute_api:servers:{}",
                action.nova_name()
            )));
        }
        if action.lock_checked() {
            crate::common::check_lock(ctx, s)?;
        }
        crate::actions::check_action(action, s)
    }

    /// Takes `task` on a server still in the state `s` was read in, runs `prepare` and
    /// records the instance action, all in one transaction; returns the action's id. The
    /// caller has checked [`may_act`](Self::may_act) first.
    pub(crate) async fn begin(
        &self,
        s: &Server,
        action: Action,
        task: TaskState,
        request_id: &str,
        user: &UserId,
        prepare: impl FnOnce(&Transaction<'_>) -> store::Result<()> + Send + 'static,
    ) -> Result<i64> {
        let named = (action.nova_name(), action.lock_checked());
        self.begin_named(s, named, task, request_id, user, prepare)
            .await
    }

    /// [`begin`](Self::begin) for an instance action named `action` whose start a lock
    /// stops when `lock_checked` (a soft delete, which is no [`Action`]: delete is legal in
    /// any state).
    pub(crate) async fn begin_named(
        &self,
        s: &Server,
        (action, lock_checked): (&'static str, bool),
        task: TaskState,
        request_id: &str,
        user: &UserId,
        prepare: impl FnOnce(&Transaction<'_>) -> store::Result<()> + Send + 'static,
    ) -> Result<i64> {
        let (sid, vm, from, rid, project, user) = (
            s.id.clone(),
            s.vm_state,
            s.task_state,
            request_id.to_owned(),
            s.project_id.clone(),
            user.clone(),
        );
        // An action that passed the lock check on an unlocked server checks again in the
        // transaction that starts it, so a lock committed in between wins. (Snapshots and
        // backups are not lock-checked, as in Nova.)
        let bound_by_lock = lock_checked && !s.locked();
        Ok(self
            .store
            .write(move |tx| {
                if bound_by_lock {
                    crate::common::refuse_if_locked(tx, &sid)?;
                }
                if !sql::set_task_state(tx, &sid, vm, from, Some(task))? {
                    return Err(crate::abort(Error::Conflict(format!(
                        "Cannot '{action}' instance {sid} while it is in task_state changing"
                    ))));
                }
                prepare(tx)?;
                sql::start_action(tx, &sid, &rid, action, &project, &user)
            })
            .await?)
    }

    pub(crate) async fn load(&self, id: &ServerId) -> Option<Server> {
        let id2 = id.clone();
        match self.store.read(move |c| sql::get_server(c, &id2)).await {
            Ok(s) => s.filter(|s| !s.deleted),
            Err(e) => {
                tracing::error!(server_id = %id, error = %e, "reading a server");
                None
            }
        }
    }

    pub(crate) async fn sysmeta(&self, id: &ServerId, key: &'static str) -> Option<String> {
        let id2 = id.clone();
        self.store
            .read(move |c| sql::get_sysmeta(c, &id2, key))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(server_id = %id, error = %e, "reading system metadata");
                None
            })
    }

    /// A step of a task failed with the guest in doubt: ERROR with a fault.
    pub(crate) async fn fail_to_error(
        &self,
        id: &ServerId,
        from: TaskState,
        event: Option<i64>,
        message: String,
    ) {
        tracing::warn!(server_id = %id, error = %message, "action failed; server in ERROR");
        self.step_with(
            id,
            Some(from),
            (VmState::Error, None, None),
            record_fault(500, message.clone()),
        )
        .await;
        self.finish(event, false, Some(message)).await;
    }

    /// A step of a task failed with the guest unharmed: back where the action started.
    pub(crate) async fn fail_back(
        &self,
        id: &ServerId,
        from: TaskState,
        vm: VmState,
        event: Option<i64>,
        message: String,
    ) {
        tracing::warn!(server_id = %id, error = %message, "action failed; server back to {}", vm.as_str());
        self.step(id, Some(from), vm, None, None).await;
        self.finish(event, false, Some(message)).await;
    }

    /// The start of an action whose request carries nothing but the server: the caller may
    /// act on it in its state, the task state and the instance action are taken together,
    /// and the task `work` makes (of the service, the server and the instance action) runs
    /// in the background.
    pub(crate) async fn start_work<F, Fut>(
        &self,
        ctx: &Context,
        id: &str,
        (act, task): (Action, TaskState),
        request_id: &str,
        work: F,
    ) -> Result<()>
    where
        F: FnOnce(Compute, ServerId, i64) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, act)?;
        self.start(&s, (act, task), request_id, &ctx.user_id, work)
            .await
    }

    /// [`begin`](Self::begin)s an action that prepares nothing, then hands the runner the
    /// task `work` makes (of the service, the server and the instance action).
    pub(crate) async fn start<F, Fut>(
        &self,
        s: &Server,
        (act, task): (Action, TaskState),
        request_id: &str,
        user: &UserId,
        work: F,
    ) -> Result<()>
    where
        F: FnOnce(Compute, ServerId, i64) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let action = self
            .begin(s, act, task, request_id, user, |_| Ok(()))
            .await?;
        let sid = s.id.clone();
        self.run(&s.id, move |c| work(c, sid, action));
        Ok(())
    }

    /// Moves a server between task states; false (logged) if it was no longer in `from`.
    pub(crate) async fn step(
        &self,
        id: &ServerId,
        from: Option<TaskState>,
        vm: VmState,
        task: Option<TaskState>,
        power: Option<PowerState>,
    ) -> bool {
        self.step_with(id, from, (vm, task, power), |_, _| Ok(()))
            .await
    }

    /// [`step`](Self::step), and `extras` in the same transaction when the server moved:
    /// what the step records beside the state (system metadata, the flavor, a fault) lands
    /// with it or not at all.
    pub(crate) async fn step_with(
        &self,
        id: &ServerId,
        from: Option<TaskState>,
        (vm, task, power): (VmState, Option<TaskState>, Option<PowerState>),
        extras: impl FnOnce(&Transaction<'_>, &ServerId) -> store::Result<()> + Send + 'static,
    ) -> bool {
        let id2 = id.clone();
        let moved = self
            .store
            .write(move |tx| {
                if !sql::transition(tx, &id2, from, vm, task, power)? {
                    return Ok(false);
                }
                extras(tx, &id2)?;
                Ok(true)
            })
            .await;
        match moved {
            Ok(true) => true,
            Ok(false) => {
                tracing::info!(server_id = %id, "server changed under its task; task stops");
                false
            }
            Err(e) => {
                tracing::error!(server_id = %id, error = %e, "state change failed");
                false
            }
        }
    }

    /// Ends a background step whose driver work succeeded: the server leaves task `from`
    /// for `vm` and `power`, with `extras` in the same transaction, and the instance action's
    /// `event` is finished, failed if the server was no longer where its task left it.
    /// Returns whether the server moved.
    pub(crate) async fn settle(
        &self,
        id: &ServerId,
        event: Option<i64>,
        from: TaskState,
        (vm, power): (VmState, PowerState),
        extras: impl FnOnce(&Transaction<'_>, &ServerId) -> store::Result<()> + Send + 'static,
    ) -> bool {
        let moved = self
            .step_with(id, Some(from), (vm, None, Some(power)), extras)
            .await;
        let why = (!moved).then(|| "the server changed under its task".to_owned());
        self.finish(event, moved, why).await;
        moved
    }

    pub(crate) async fn event(&self, action: i64, name: &'static str) -> Option<i64> {
        let host = self.cfg.host.clone();
        self.store
            .write(move |tx| sql::start_event(tx, action, name, &host))
            .await
            .map_err(|e| tracing::error!(error = %e, "recording an instance action event"))
            .ok()
    }

    pub(crate) async fn finish(&self, event: Option<i64>, ok: bool, details: Option<String>) {
        if let Some(ev) = event
            && let Err(e) = self
                .store
                .write(move |tx| sql::finish_event(tx, ev, ok, details.as_deref()))
                .await
        {
            tracing::error!(error = %e, "finishing an instance action event");
        }
    }
}
