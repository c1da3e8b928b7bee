//! Black-box tests: the real `postern` binary against real SMTP and HTTP
//! peers on loopback. One test binary for the whole suite.

mod support;

mod abuse;
mod api_errors;
mod bench;
mod bench_plugin_memory;
mod bench_smpp;
mod cli;
mod console;
mod console_bench;
mod console_http;
mod http_senders;
mod messages;
mod multihost;
mod plugins;
mod queue;
mod realtime;
mod rocketchat;
mod smpp;
mod smpp_node;
mod smtp;
mod storage;
mod tenants;
mod twofa;
mod uploads;
