//! Sockets. This first layer has only connected AF_UNIX pairs
//! (socketpair(2)), kept entirely inside the sentry.

pub mod unix;
