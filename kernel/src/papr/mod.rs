//! The partition services PAPR defines, as a guest sees them: which
//! hypercalls exist and how a number is decoded ([`table`]), the HPT
//! calls ([`hpt`]), and RTAS ([`rtas`]).
//!
//! Numbers, return codes and flags are `papr_abi`'s, shared with the test
//! guests; this module only uses them.

pub mod hpt;
pub mod rtas;
pub mod table;
