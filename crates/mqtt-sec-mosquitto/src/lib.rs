#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod event;
mod ffi;
pub mod log;
mod plugin;
mod state;

pub use config::ConfigError;
pub use plugin::{Plugin, StartError};
