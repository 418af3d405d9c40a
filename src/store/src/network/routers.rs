//! Routers (written with the routers and floating IPs of the networking service).

#[allow(unused_imports)]
use super::*;
