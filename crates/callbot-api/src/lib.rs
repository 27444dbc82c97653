#![doc = include_str!("../README.md")]

mod client;
mod error;
pub mod sign;
pub mod wire;

pub use client::{
    ActionObserver, ActionOutcome, ActionRecord, Client, ClientConfig, DEFAULT_MAX_RESPONSE_BYTES,
    ResponseVerification, RetryPolicy, SignatureCheck, SignatureOutcome, UnknownVerification,
    ensure_crypto_provider,
};
pub use error::ApiError;
pub use sign::{Algorithm, SecretKey, SignedHeaders, VerifyError};
pub use wire::{Callback, Endpoint, PRODUCT_ID};
