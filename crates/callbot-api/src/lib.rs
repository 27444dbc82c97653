#![doc = include_str!("../README.md")]

mod client;
mod error;
pub mod sign;
pub mod wire;

pub use client::{
    ActionObserver, ActionOutcome, ActionRecord, Client, ClientConfig, RetryPolicy,
    ensure_crypto_provider,
};
pub use error::ApiError;
pub use sign::{Algorithm, SecretKey, SignedHeaders, VerifyError};
pub use wire::{Callback, Endpoint, PRODUCT_ID};
