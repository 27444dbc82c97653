#![doc = include_str!("../README.md")]

pub mod sign;
pub mod wire;

pub use sign::{Algorithm, SecretKey, SignedHeaders, VerifyError};
pub use wire::{Callback, Endpoint, PRODUCT_ID};
