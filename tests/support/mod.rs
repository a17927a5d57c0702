//! In-process fakes for the integration tests: DNS, HTTPS and SMTP servers on 127.0.0.1:0 and
//! certificates minted with rcgen. Nothing here touches the internet.
#![allow(dead_code)]
pub mod certs;
pub mod dns;
pub mod fleet;
pub mod http;
pub mod https;
pub mod lab;
pub mod smtp;
