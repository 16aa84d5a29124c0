//! The partition services PAPR defines, as a guest sees them: which
//! hypercalls exist and how a number is decoded ([`table`]), the HPT
//! calls of the fast path ([`hpt`]), RTAS's tokens and buffers
//! ([`rtas`]), and every full-path call's and RTAS service's behaviour
//! against the machine's [`services::Env`] ([`services`]).
//!
//! Numbers, return codes and flags are `papr_abi`'s, shared with the test
//! guests; this module only uses them.

pub mod hpt;
pub mod rtas;
pub mod services;
pub mod table;
