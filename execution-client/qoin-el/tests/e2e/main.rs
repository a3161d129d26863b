//! End-to-end tests of the `qoin-el` binary: one test program for all of them.

mod account_cli;
mod dapp_tools;
mod rpc;
