//! Floating IPs.

#[allow(unused_imports)]
use super::*;
