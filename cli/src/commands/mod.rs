//! One file per group of commands.

pub mod account;
pub mod admin;
pub mod deploy;
pub mod functions;
pub mod init;
pub mod invoke;
pub mod logs;
pub mod secrets;
