//! The driver of a box with no usable backend: every server it is asked to build fails with
//! a fault that says why, so a user sees the reason in `openstack server show` instead of a
//! server that pretends to run.

use model::compute::ServerId;

use crate::{
    Capabilities, ComputeDriver, DriverError, InstanceInfo, InstanceSpec, Operation, RebootKind,
    Resources, Result,
};

pub struct Unavailable {
    pub reason: String,
}

impl Unavailable {
    fn fail<T>(&self) -> Result<T> {
        Err(DriverError::Failed(self.reason.clone()))
    }
}

impl ComputeDriver for Unavailable {
    fn name(&self) -> &'static str {
        "none"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn spawn(&self, _: &InstanceSpec) -> Result<()> {
        self.fail()
    }
    fn destroy(&self, _: &ServerId) -> Result<()> {
        // Nothing was ever made, so there is nothing to remove.
        Ok(())
    }
    fn reboot(&self, _: &ServerId, _: RebootKind) -> Result<()> {
        self.fail()
    }
    fn power_off(&self, _: &ServerId) -> Result<()> {
        self.fail()
    }
    fn power_on(&self, _: &ServerId) -> Result<()> {
        self.fail()
    }
    fn pause(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Pause))
    }
    fn unpause(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Unpause))
    }
    fn suspend(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Suspend))
    }
    fn resume(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Resume))
    }
    fn console_output(&self, _: &ServerId, _: Option<usize>) -> Result<String> {
        Err(DriverError::NotSupported(Operation::ConsoleOutput))
    }
    fn get_info(&self, id: &ServerId) -> Result<InstanceInfo> {
        Err(DriverError::NotFound(id.clone()))
    }
    fn list_instances(&self) -> Result<Vec<ServerId>> {
        Ok(Vec::new())
    }
    fn available_resources(&self) -> Result<Resources> {
        Ok(Resources::default())
    }
}
