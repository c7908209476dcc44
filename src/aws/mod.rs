//! The AWS edge: clients, error classification, retries and waits, and one
//! small module per service.

pub mod arn;
