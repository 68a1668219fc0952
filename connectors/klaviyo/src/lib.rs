//! growthflow connector (being written).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
