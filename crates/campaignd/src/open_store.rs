//! Picks the store backend from the URL scheme, once.

#![allow(dead_code)] // wired by the store work (issue 4)
