//! The methods under test, split by topic the way a real hub would be.

pub mod builds;
pub mod misc;
pub mod tasks;
pub mod users;
