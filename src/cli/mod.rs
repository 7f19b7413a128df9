//! Command implementations, one file per command.
