//! Operations that span several record families and must commit as one: each is one
//! function over a [`WriteTx`](crate::WriteTx), plus a one-call wrapper on the
//! [`Store`](crate::Store).

pub mod webhook;
