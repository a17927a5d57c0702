//! I/O: DNS, HTTPS and SMTP. Every function here has a deadline and a size cap, and returns
//! what it saw as data; judging it is the stages' job.

pub mod cache;
pub mod dns;
pub mod health;
pub mod https;
pub mod smtp;
pub mod target;
pub mod tls;
